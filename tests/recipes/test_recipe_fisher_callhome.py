"""egs/fisher_callhome_spanish/less/run.sh on fake LDC Fisher/Callhome Spanish + fisher-callhome-corpus.

Stages 0-3 run through run.sh (a subprocess, as a user runs it) once per module, on a
fake corpus in the real layouts (SPHERE audio, .tdf/.txt transcripts, mapping and
translation files) where one Fisher dev segment has an empty Spanish transcript, as
the real evaluation sets do. A slow test runs stages 4-10 with a tiny model, espeak
Spanish recordings as the user's unlabeled audio and a local fake LLM server.
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
from tests.fake_corpora import FISHER_CONVERSATIONS, make_fisher_callhome, write_sphere
from tests.helpers import (
    ROOT,
    TINY_RECIPE_TRAINING,
    assert_help_lists,
    assert_stages_are_guarded_blocks,
    flags,
    recipe_cuts,
    recipe_supervisions,
    run_script,
)

RUN_SH = ROOT / "egs" / "fisher_callhome_spanish" / "less" / "run.sh"
CORPUS = "fisher-callhome"
TRAIN_SPLITS = ("fisher_train", "callhome_train")
EVAL_SPLITS = ("fisher_dev", "fisher_dev2", "fisher_test", "callhome_devtest", "callhome_evltest")
BPE = 40  # the fake corpus has a few dozen words
TINY_TRAINING = [*TINY_RECIPE_TRAINING, "--bpe-vocab-size", str(BPE)]
# Fisher dev line 5 ("((mm))", channel B) becomes pure annotation: empty Spanish after stripping
EMPTY_SPANISH_ID = f"{FISHER_CONVERSATIONS['fisher_dev']}-B-0005"


def run_recipe(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_script(RUN_SH, *args, timeout=timeout)


def corpus_options(fake) -> list:
    return [
        *flags(
            fisher_speech_dir=fake.fisher_speech_dir,
            fisher_transcript_dir=fake.fisher_transcript_dir,
            callhome_speech_dir=fake.callhome_speech_dir,
            callhome_transcript_dir=fake.callhome_transcript_dir,
            translation_dir=fake.translation_dir,
        ),
    ]


def blank_a_fisher_dev_transcript(fake) -> None:
    """Make Fisher dev transcript line 5 annotation only, and the release's .es side agree."""
    conversation = FISHER_CONVERSATIONS["fisher_dev"]
    tdf = next(fake.fisher_transcript_dir.rglob(f"{conversation}.tdf"))
    lines = tdf.read_text(encoding="utf-8").split("\n")
    header = sum("file;unicode" in line or ";;MM" in line for line in lines)
    fields = lines[header + 4].split("\t")
    assert fields[7] == "((mm))"
    fields[7] = "[noise]"
    lines[header + 4] = "\t".join(fields)
    tdf.write_text("\n".join(lines), encoding="utf-8")
    es = fake.translation_dir / "corpus" / "ldc" / "fisher_dev.es"
    es_lines = es.read_text(encoding="utf-8").split("\n")
    assert es_lines[3] == "mm"
    es_lines[3] = ""
    es.write_text("\n".join(es_lines), encoding="utf-8")
    fake.segments["fisher_dev"][EMPTY_SPANISH_ID].text = ""


def own_recordings(out_dir: Path) -> None:
    """Long unlabeled Spanish recordings of one's own: espeak sentences between silences,
    one at 16 kHz (FLAC), one at 8 kHz (WAV)."""
    from scipy.signal import resample_poly

    from less.data.espeak import synthesize

    def recording(sentences: tuple[str, ...]) -> np.ndarray:
        silence = np.zeros(12000, np.float32)
        parts = []
        for sentence in sentences:
            parts += [silence, synthesize(sentence, "es")]
        return np.concatenate([*parts, silence])

    out_dir.mkdir(parents=True, exist_ok=True)
    sf.write(
        out_dir / "uno.flac",
        recording(("Buenas tardes, me llamo Carmen.", "Vivo en Chicago con mi familia.")),
        16000,
    )
    slow = recording(("¿Qué tal? Yo también vivo allí.", "Mañana vamos al parque con los niños."))
    sf.write(out_dir / "dos.wav", resample_poly(slow, 1, 2).astype(np.float32), 8000)


@pytest.fixture(scope="module")
def prepared(module_dir):
    """Stages 0-3 of run.sh (no unlabeled audio yet)."""
    root = module_dir
    fake = make_fisher_callhome(root / "ldc")
    blank_a_fisher_dev_transcript(fake)
    data = root / "data"
    result = run_recipe(
        *flags(stop_stage=3, nj=1),
        *corpus_options(fake),
        *flags(bpe_vocab_size=BPE, data=data, exp=root / "exp"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, data, fake


def supervisions(data: Path, split: str):
    return recipe_supervisions(data, CORPUS, split)


def cuts(data: Path, split: str) -> list:
    return recipe_cuts(data, f"{CORPUS}_cuts_{split}")


def test_run_sh_syntax_and_help():
    assert_help_lists(
        RUN_SH,
        (
            "--fisher-speech-dir",
            "--fisher-transcript-dir",
            "--callhome-speech-dir",
            "--callhome-transcript-dir",
            "--translation-dir",
            "--unsup-audio-dir",
            "--bpe-vocab-size",
            "--llm-model",
            "--llm-base-url",
            "--max-hypo-wer",
            "--model-overrides",
        ),
        {"--llm-backend": r"\[openai\]", "--llm-model": r"Instruct\]", "--model": r"\[medium\]"},
    )


def test_every_stage_is_a_guarded_block():
    """Stages 0-3 (the corpus's own) are blocks of run.sh; 4-10 are the shared less_loop's."""
    assert_stages_are_guarded_blocks(RUN_SH)

    assert (
        "--require-text true" not in RUN_SH.read_text()
    )  # evaluation sets keep empty Spanish transcripts


@pytest.mark.slow
@pytest.mark.parametrize("split", TRAIN_SPLITS + EVAL_SPLITS)
def test_manifests_texts_translations_channels(prepared, split):
    _, data, fake = prepared
    sups = supervisions(data, split)
    assert set(sups) == set(fake.segments[split])
    for sup_id, expected in fake.segments[split].items():
        sup = sups[sup_id]
        assert sup.recording_id == expected.recording_id and sup.channel == expected.channel
        assert sup.start == pytest.approx(expected.start) and sup.end == pytest.approx(expected.end)
        assert sup.text == expected.text and sup.language == "es"
        assert sup.custom["translated_text"]["en"] == expected.translation
    assert not set(fake.dropped[split]) & set(sups)


@pytest.mark.slow
def test_four_references_and_the_empty_spanish_segment(prepared):
    _, data, fake = prepared
    for split in ("fisher_dev", "fisher_dev2", "fisher_test"):
        for cut in cuts(data, split):
            references = cut.supervisions[0].custom["translated_text"]["en"]
            assert isinstance(references, list) and len(references) == 4
    kept = {c.id: c for c in cuts(data, "fisher_dev")}
    assert kept[EMPTY_SPANISH_ID].supervisions[0].text == ""
    assert kept[EMPTY_SPANISH_ID].supervisions[0].custom["translated_text"]["en"] == [
        "mm",
        "hmm",
        "mhm",
        "mm hmm",
    ]
    assert kept[EMPTY_SPANISH_ID].has_features
    assert isinstance(
        cuts(data, "callhome_evltest")[0].supervisions[0].custom["translated_text"]["en"], str
    )
    # training validates on Fisher dev without it: the CTC loss needs a transcript
    valid = cuts(data, "valid")
    assert {c.id for c in valid} == set(fake.segments["fisher_dev"]) - {EMPTY_SPANISH_ID}
    assert all(c.has_features and c.supervisions[0].text for c in valid)


@pytest.mark.slow
def test_sph_converted_to_two_channel_flac(prepared):
    _, data, fake = prepared
    flacs = sorted((data / "flac").rglob("*.flac"))
    assert len(flacs) == len(fake.sph_paths)
    assert all(
        sf.info(str(path)).channels == 2 and sf.info(str(path)).samplerate == 8000 for path in flacs
    )


@pytest.mark.slow
def test_fbank_per_segment_on_its_channel(prepared):
    _, data, fake = prepared
    for split in EVAL_SPLITS:
        found = cuts(data, split)
        assert {c.id for c in found} == set(fake.segments[split])
        peaks = {}
        for cut in found:
            sup = cut.supervisions[0]
            assert cut.channel == sup.channel == fake.segments[split][cut.id].channel
            assert cut.sampling_rate == 16000 and cut.num_features == 80  # 8 kHz resampled
            assert (
                cut.duration == pytest.approx(sup.duration)
                and abs(cut.num_frames - cut.duration * 100) <= 2
            )
            peaks.setdefault(cut.channel, []).append(int(cut.load_features().mean(axis=0).argmax()))
        # side A carries a 300 Hz tone, side B 710 Hz: each cut holds its own side's audio
        assert max(peaks[0]) < min(peaks[1]), (split, peaks)
    train_sup = cuts(data, "train_sup")
    expected = sum(len(fake.segments[split]) for split in TRAIN_SPLITS)
    assert len(train_sup) == 3 * expected  # speed perturbation
    assert all(c.has_features and c.supervisions[0].text for c in train_sup)


@pytest.mark.slow
def test_bpe_dirs(prepared):
    _, data, _ = prepared
    for lang in ("es", "en"):
        tokens = (data / f"lang_bpe_{BPE}_{lang}" / "tokens.txt").read_text().splitlines()
        assert len(tokens) == BPE and tokens[:3] == ["<blk> 0", "<sos/eos> 1", "<unk> 2"]


@pytest.mark.slow
def test_stages_4_to_10_stop_without_unlabeled_audio_then_run_with_it(prepared):
    root, data, _ = prepared
    exp = root / "exp"
    result = run_recipe("--stage", 4, "--nj", 1, *TINY_TRAINING, "--data", data, "--exp", exp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "nothing to pseudo-label" in result.stdout
    assert not (data / "pl").exists()
    for split in EVAL_SPLITS:  # BLEU on every test set, the empty-Spanish segment included
        summary = json.loads(
            (
                exp
                / "ast"
                / "iter0"
                / "attention-beam-search"
                / f"results-{split}-epoch-1_avg-1.json"
            ).read_text()
        )
        assert summary["metric"] == "BLEU"
    assert "| ast | S | 0 | callhome_evltest | BLEU |" in (exp / "RESULTS.md").read_text()

    own_recordings(root / "own")
    with FakeChatServer() as server:
        result = run_recipe(
            *flags(stage=1, nj=1),
            *TINY_TRAINING,
            *flags(
                data=data,
                exp=exp,
                unsup_audio_dir=root / "own",
                num_iters=2,
                llm_base_url=server.base_url,
                llm_model="test-en-instruct",
            ),
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    unlabeled = list(CutSet.from_file(data / "fbank" / "user_cuts_unsup_wild.jsonl.gz"))
    assert {c.recording.id for c in unlabeled} == {"uno", "dos"} and len(unlabeled) >= 3
    assert all(c.sampling_rate == 16000 and c.has_features for c in unlabeled)
    assert len(server.chat_bodies) == 2 * len(unlabeled)  # one per cut and iteration
    assert all(body["model"] == "test-en-instruct" for body in server.chat_bodies)
    prompt = server.chat_bodies[0]["messages"][-1]["content"]
    assert "English" in prompt  # the packaged English prompt
    for iteration in (1, 2):
        pl_dir = data / "pl" / "ast" / ("iter1" if iteration == 1 else "L/iter2")
        labelled = list(CutSet.from_file(pl_dir / "unsup_wild_cuts_pl.jsonl.gz"))
        assert len(labelled) == len(unlabeled)
        assert all(
            "src_hyp" in c.supervisions[0].custom["pl"] for c in labelled
        )  # Spanish CTC target
        assert (
            data / "pl" / "ast" / "L" / f"iter{iteration}" / "unsup_wild_cuts_kept.jsonl.gz"
        ).is_file()
        for split in EVAL_SPLITS:
            assert (
                exp
                / "ast"
                / "L"
                / f"iter{iteration}"
                / "attention-beam-search"
                / f"bleu-summary-{split}-epoch-1_avg-1.txt"
            ).is_file()
    results = (exp / "RESULTS.md").read_text()
    assert "| ast | L | 2 | fisher_test | BLEU |" in results


def test_stage_with_missing_inputs_names_the_file(tmp_path):
    data = tmp_path / "data"
    result = run_recipe(
        *flags(stage=4, stop_stage=4, data=data, exp=tmp_path / "exp", bpe_vocab_size=BPE),
    )
    assert result.returncode != 0
    assert (
        f"stage 4 needs {data}/fbank/{CORPUS}_cuts_train_sup.jsonl.gz, which does not exist"
        in result.stderr
    )
    result = run_recipe("--stage", 6, "--data", data, "--unsup-audio-dir", tmp_path)
    assert (
        result.returncode != 0
        and f"stage 6 needs {data}/fbank/user_cuts_unsup_wild.jsonl.gz" in result.stderr
    )


def test_loop_stages_without_unlabeled_audio_say_so(tmp_path):
    result = run_recipe("--stage", 6, "--data", tmp_path / "data")
    assert result.returncode != 0
    assert "nothing to pseudo-label: no --unsup-audio-dir was given" in result.stderr


def test_missing_options_and_corpus_dirs(tmp_path):
    fake = make_fisher_callhome(tmp_path / "ldc")
    result = run_recipe("--stop-stage", 0, "--nj", 1, "--data", tmp_path / "data")
    assert result.returncode != 0 and "stage 0 needs --fisher-speech-dir" in result.stderr
    options = corpus_options(fake)
    missing = tmp_path / "no_such_dir"
    options[options.index("--fisher-speech-dir") + 1] = missing
    result = run_recipe("--stop-stage", 0, "--nj", 1, *options, "--data", tmp_path / "data")
    assert result.returncode != 0
    assert f"SPHERE input directory {missing} does not exist" in result.stderr


def test_shorten_compressed_sphere_stops_stage_0_with_how_to_decompress(tmp_path):
    fake = make_fisher_callhome(tmp_path / "ldc")
    packed = fake.fisher_speech_dir / "data" / "speech" / "20051101_000000_001_fsp.sph"
    write_sphere(packed, np.zeros((800, 2), np.int16), coding="pcm", shorten=True)
    result = run_recipe(
        "--stop-stage", 0, "--nj", 1, *corpus_options(fake), "--data", tmp_path / "data"
    )
    assert result.returncode != 0
    assert f"{packed} is shorten-compressed" in result.stderr and "sph2pipe" in result.stderr
    assert not list(
        (tmp_path / "data" / "flac").rglob("*.flac")
    )  # checked before converting anything


def test_mapping_line_out_of_range_stops_stage_0(tmp_path):
    fake = make_fisher_callhome(tmp_path / "ldc", out_of_range_split="fisher_dev")
    mapping, line_number = fake.out_of_range
    result = run_recipe(
        "--stop-stage", 0, "--nj", 1, *corpus_options(fake), "--data", tmp_path / "data"
    )
    assert result.returncode != 0
    assert (
        f"{mapping}:{line_number}: transcript line" in result.stderr
        and "is out of range" in result.stderr
    )


def test_mapping_line_whose_audio_is_missing_stops_stage_0(tmp_path):
    fake = make_fisher_callhome(tmp_path / "ldc")
    conversation = FISHER_CONVERSATIONS["fisher_test"]
    fake.sph_paths[conversation].unlink()
    result = run_recipe(
        "--stop-stage", 0, "--nj", 1, *corpus_options(fake), "--data", tmp_path / "data"
    )
    assert result.returncode != 0
    assert (
        f"Fisher Spanish audio: no {conversation}.flac below {tmp_path / 'data' / 'flac' / 'fisher'}"
        in result.stderr
    )
