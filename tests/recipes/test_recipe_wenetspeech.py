"""egs/wenetspeech/less/run.sh on fake AISHELL-1 + WenetSpeech corpora in their real layouts.

Stages 0-3 run through run.sh (a subprocess, as a user runs it) once per module; the
tests check the manifests, features and lang dir they leave. A slow test runs stages
4-10 on the same data with a tiny model and a local fake OpenAI-compatible LLM server.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from less.llm.testing import FakeChatServer
from tests.fake_corpora import make_aishell, make_wenetspeech
from tests.helpers import (
    ROOT,
    TINY_RECIPE_TRAINING,
    assert_help_lists,
    assert_results_rows,
    assert_stages_are_guarded_blocks,
    flags,
    recipe_cuts,
    recipe_supervisions,
    run_script,
)

RUN_SH = ROOT / "egs" / "wenetspeech" / "less" / "run.sh"


def run_recipe(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_script(RUN_SH, *args, timeout=timeout)


def own_recording(path: Path) -> None:
    """A long Mandarin recording of one's own: three espeak sentences between silences."""
    from less.data.espeak import synthesize

    silence = np.zeros(12000, np.float32)
    parts = []
    for sentence in (
        "今天天气很好我们去公园散步吧",
        "这个问题我们明天再讨论",
        "我买了三斤苹果很便宜",
    ):
        parts += [silence, synthesize(sentence, "cmn")]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.concatenate([*parts, silence]), 16000)


@pytest.fixture(scope="module")
def prepared(module_dir):
    """Stages 0-3 of run.sh on fake corpora, with an own recording as extra unlabeled audio."""
    root = module_dir
    aishell = make_aishell(root / "aishell")
    wenetspeech = make_wenetspeech(root / "WenetSpeech")
    own_recording(root / "own" / "day1" / "talk.flac")
    data = root / "data"
    result = run_recipe(
        *flags(
            stop_stage=3,
            nj=1,
            aishell_dir=aishell.corpus_dir,
            wenetspeech_dir=wenetspeech.corpus_dir,
            unsup_audio_dir=root / "own",
            data=data,
            exp=root / "exp",
        ),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, data, aishell, wenetspeech


def test_run_sh_syntax_and_help():
    assert_help_lists(
        RUN_SH,
        (
            "--aishell-dir",
            "--wenetspeech-dir",
            "--wenetspeech-subset",
            "--unsup-audio-dir",
            "--min-utt-duration",
            "--max-utt-duration",
            "--model ",
            "--num-iters",
            "--llm-backend",
            "--llm-base-url",
            "--llm-model",
            "--llm-api-key-env",
            "--max-hypo-wer",
            "--model-overrides",
        ),
        {
            "--model": r"\[medium\]",
            "--num-iters": r"\[3\]",
            "--llm-backend": r"\[openai\]",
            "--max-hypo-wer": r"\[0.1\]",
            "--llm-model": r"\[Qwen/Qwen2.5-7B-Instruct\]",
        },
    )


def test_every_stage_is_a_guarded_block():
    """Stages 0-3 (the corpus's own) are blocks of run.sh; 4-10 are the shared less_loop's."""
    assert_stages_are_guarded_blocks(RUN_SH)


@pytest.mark.slow
def test_aishell_manifests(prepared):
    _, data, aishell, _ = prepared
    for split in ("train", "dev", "test"):
        sups = recipe_supervisions(data, "aishell", split)
        assert {i: s.text for i, s in sups.items()} == aishell.texts[split]
        assert all(s.language == "zh" for s in sups.values())
    assert not set(aishell.dropped) & set(recipe_supervisions(data, "aishell", "train"))


@pytest.mark.slow
def test_wenetspeech_manifests(prepared):
    _, data, _, wenetspeech = prepared
    unlabeled = recipe_supervisions(data, "wenetspeech", "M")
    assert {i: s.custom["ref_text"] for i, s in unlabeled.items()} == wenetspeech.texts["M"]
    assert all(s.text is None for s in unlabeled.values())  # labels hidden: reporting only
    for split in ("DEV", "TEST_NET", "TEST_MEETING"):
        assert {
            i: s.text for i, s in recipe_supervisions(data, "wenetspeech", split).items()
        } == wenetspeech.texts[split]
    every_id = set().union(
        *(
            recipe_supervisions(data, "wenetspeech", s)
            for s in ("M", "DEV", "TEST_NET", "TEST_MEETING")
        )
    )
    tagged = {i for i, why in wenetspeech.dropped.items() if why.startswith("text tagged")}
    assert len(tagged) == 4 and not tagged & every_id
    assert not (
        data / "manifests" / "wenetspeech_supervisions_L.jsonl.gz"
    ).exists()  # --wenetspeech-subset M


@pytest.mark.slow
def test_fbank_of_supervised_and_test_sets(prepared):
    _, data, aishell, wenetspeech = prepared
    train = recipe_cuts(data, "aishell_cuts_train")
    assert len(train) == 3 * len(aishell.texts["train"])  # 0.9x / 1.0x / 1.1x speed perturbation
    assert sum(c.id.endswith("_sp0.9") for c in train) == len(aishell.texts["train"])
    for name, expected in (
        ("aishell_cuts_dev", aishell.texts["dev"]),
        ("aishell_cuts_test", aishell.texts["test"]),
        ("wenetspeech_cuts_TEST_NET", wenetspeech.texts["TEST_NET"]),
        ("wenetspeech_cuts_TEST_MEETING", wenetspeech.texts["TEST_MEETING"]),
        ("wenetspeech_cuts_DEV", wenetspeech.texts["DEV"]),
    ):
        found = recipe_cuts(data, name)
        assert sorted(c.supervisions[0].text for c in found) == sorted(expected.values()), name
    for cut in train + recipe_cuts(data, "wenetspeech_cuts_TEST_NET"):
        assert cut.has_features and cut.num_features == 80
        assert abs(cut.num_frames - cut.duration * 100) <= 2
        assert cut.load_features().shape == (cut.num_frames, 80)
    # WenetSpeech recordings are whole videos: each cut is one segment (trimmed), not the file
    test_net = recipe_cuts(data, "wenetspeech_cuts_TEST_NET")[0]
    assert test_net.duration == pytest.approx(2.7) and test_net.start == pytest.approx(0.1)


@pytest.mark.slow
def test_unlabeled_set_is_wenetspeech_plus_own_vad_segments(prepared):
    _, data, _, wenetspeech = prepared
    vad = list(CutSet.from_file(data / "manifests" / "user_cuts_unsup_wild.jsonl.gz"))
    assert 1 <= len(vad) <= 3 and all(c.recording.id == "day1_talk" for c in vad)
    assert all(1.0 <= c.duration <= 20.0 for c in vad)
    unlabeled = recipe_cuts(data, "unlabeled_cuts_unsup_wild")
    assert len(unlabeled) == len(wenetspeech.texts["M"]) + len(vad)
    from_wenet = {c.id: c.supervisions[0] for c in unlabeled if c.id in wenetspeech.texts["M"]}
    assert {i: s.custom["ref_text"] for i, s in from_wenet.items()} == wenetspeech.texts["M"]
    assert all(c.supervisions[0].text is None and c.has_features for c in unlabeled)


@pytest.mark.slow
def test_lang_char_covers_the_supervised_text(prepared):
    _, data, aishell, _ = prepared
    tokens = dict(
        line.split() for line in (data / "lang_char" / "tokens.txt").read_text().splitlines()
    )
    assert tokens["<blk>"] == "0" and tokens["<sos/eos>"] == "1" and tokens["<unk>"] == "2"
    assert set("".join(aishell.texts["train"].values())) <= set(tokens)


@pytest.mark.slow
def test_stages_4_to_10_end_to_end_with_a_fake_llm_server(prepared):
    root, data, _, _ = prepared
    exp = root / "exp"
    with FakeChatServer() as server:
        result = run_recipe(
            *flags(stage=4, nj=1, unsup_audio_dir=root / "own", data=data, exp=exp),
            *TINY_RECIPE_TRAINING,
            *flags(
                num_iters=1,
                systems="N L",
                llm_base_url=server.base_url,
                llm_model="test-zh-instruct",
            ),
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    unlabeled = recipe_cuts(data, "unlabeled_cuts_unsup_wild")
    assert len(server.chat_bodies) == len(unlabeled)
    assert all(body["model"] == "test-zh-instruct" for body in server.chat_bodies)
    assert "中文" in server.chat_bodies[0]["messages"][-1]["content"]  # the packaged Chinese prompt

    for test in ("aishell_test", "TEST_NET", "TEST_MEETING"):
        for exp_dir in (
            exp / "asr" / "iter0",
            exp / "asr" / "N" / "iter1",
            exp / "asr" / "L" / "iter1",
        ):
            for method in ("ctc-greedy-search", "attention-decoder-rescoring"):
                summary = json.loads(
                    (exp_dir / method / f"results-{test}-epoch-1_avg-1.json").read_text()
                )
                assert summary["metric"] == "CER" and summary["num_cuts"] >= 1
    pl = list(CutSet.from_file(data / "pl" / "asr" / "iter1" / "unsup_wild_cuts_pl.jsonl.gz"))
    assert len(pl) == len(unlabeled) and all("pl" in c.supervisions[0].custom for c in pl)
    corrected = list(
        CutSet.from_file(data / "pl" / "asr" / "L" / "iter1" / "unsup_wild_cuts_llm.jsonl.gz")
    )
    assert all(
        c.supervisions[0].custom["pl"]["llm"]["model"] == "test-zh-instruct" for c in corrected
    )
    for system in ("N", "L"):
        assert (data / "pl" / "asr" / system / "iter1" / "unsup_wild_cuts_kept.jsonl.gz").is_file()
        assert (data / "pl" / "asr" / system / "iter1" / "train_mix_cuts.jsonl.gz").is_file()
        assert (exp / "asr" / system / "iter1" / "epoch-1.pt").is_file()
    assert_results_rows(
        exp / "RESULTS.md",
        "| asr | S | 0 | TEST_MEETING |",
        "| asr | N | 1 | TEST_MEETING |",
        "| asr | L | 1 | aishell_test |",
    )


def test_stage_with_missing_inputs_names_the_file(tmp_path):
    data = tmp_path / "data"
    result = run_recipe("--stage", 4, "--stop-stage", 4, "--data", data, "--exp", tmp_path / "exp")
    assert result.returncode != 0
    assert (
        f"stage 4 needs {data}/fbank/aishell_cuts_train.jsonl.gz, which does not exist"
        in result.stderr
    )
    result = run_recipe("--stage", 6, "--stop-stage", 6, "--data", data, "--exp", tmp_path / "exp")
    assert result.returncode != 0
    assert f"stage 6 needs {data}/fbank/wenetspeech_cuts_M.jsonl.gz" in result.stderr


def test_missing_options_and_corpus_dirs(tmp_path):
    result = run_recipe("--stop-stage", 0, "--nj", 1, "--data", tmp_path / "data")
    assert result.returncode != 0 and "stage 0 needs --aishell-dir" in result.stderr
    result = run_recipe("--use-wenetspeech-unsup", "false", "--data", tmp_path / "data")
    assert result.returncode != 0 and "needs --unsup-audio-dir" in result.stderr
    result = run_recipe("--wenetspeech-subset", "XL")
    assert result.returncode != 0 and "--wenetspeech-subset must be S, M or L" in result.stderr
    missing = tmp_path / "no_such_aishell"
    result = run_recipe(
        *flags(
            stop_stage=0,
            nj=1,
            aishell_dir=missing,
            wenetspeech_dir=tmp_path,
            data=tmp_path / "data",
        ),
    )
    assert result.returncode != 0
    assert f"AISHELL-1 corpus directory {missing} does not exist" in result.stderr


def test_transcript_line_with_missing_audio_stops_stage_0(tmp_path):
    aishell = make_aishell(tmp_path / "aishell", missing_audio=True)
    line_number, utt_id = aishell.missing_audio
    transcript = aishell.corpus_dir / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    result = run_recipe(
        *flags(
            stop_stage=0,
            nj=1,
            aishell_dir=aishell.corpus_dir,
            wenetspeech_dir=tmp_path,
            data=tmp_path / "data",
        ),
    )
    assert result.returncode != 0
    assert (
        f"{transcript}:{line_number}: the transcript of {utt_id} refers to audio file"
        in result.stderr
    )


def test_wenetspeech_audio_missing_stops_stage_0(tmp_path):
    aishell = make_aishell(tmp_path / "aishell")
    wenetspeech = make_wenetspeech(tmp_path / "WenetSpeech", missing_audio=True)
    result = run_recipe(
        *flags(
            stop_stage=0,
            nj=1,
            aishell_dir=aishell.corpus_dir,
            wenetspeech_dir=wenetspeech.corpus_dir,
            data=tmp_path / "data",
        ),
    )
    assert result.returncode != 0
    assert (
        f"{wenetspeech.corpus_dir / 'WenetSpeech.json'}: audio Y0000000000_--5llN02F84"
        in result.stderr
    )
    assert "which does not exist" in result.stderr
