"""The generic lhotse recipe (egs/lhotse/less), its stage 0 (less.local.lhotse_manifests), and
egs/librispeech/less on a LibriSpeech-shaped tree.

Stage 0's checks run on hand-made manifests in-process (each bad input gives its error);
the generic recipe's stages 0-3 run on a hand-made Mandarin manifest set as a user runs it;
a slow test lays out a tiny LibriSpeech tree (espeak English, FLAC + .trans.txt), runs
lhotse's real preparer and stages 0-10 with a tiny model and a local fake LLM server, and
checks that the unlabeled references never reach training.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import (
    CutSet,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    load_manifest,
)

from less.llm.testing import FakeChatServer, last_line_answer
from less.local import lhotse_manifests
from tests.helpers import (
    ROOT,
    TINY_RECIPE_TRAINING,
    assert_help_lists,
    assert_results_rows,
    flags,
    run_script,
)

GENERIC = ROOT / "egs" / "lhotse" / "less" / "run.sh"
LIBRISPEECH = ROOT / "egs" / "librispeech" / "less" / "run.sh"
TINY_TRAINING = [*TINY_RECIPE_TRAINING, "--avg", "1", "--beam-size", "2"]

ENGLISH = [
    "the cat sat on the mat",
    "a dog runs in the park",
    "we went home after school",
    "she reads a book every night",
    "the sun is warm today",
    "my friend plays the piano",
    "they eat bread and cheese",
    "the river flows to the sea",
    "he opened the old door",
    "birds sing in the morning",
    "the train leaves at noon",
    "we like green apples",
    "the children draw a house",
    "it rained all day long",
    "the teacher speaks slowly",
    "a small boat crossed the lake",
    "please close the window",
    "the market opens early",
]
MANDARIN = ["今天天气很好", "我们去公园", "他在看书", "她喜欢喝茶", "明天下雨", "我的朋友很高兴"]


def tone(
    path: Path, seconds: float, rate: int = 16000, channels: int = 1, freq: float = 220.0
) -> None:
    t = np.arange(int(seconds * rate)) / rate
    audio = (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.stack([audio] * channels, axis=1) if channels > 1 else audio, rate)


def write_part(
    directory: Path,
    name: str,
    texts: list[str | None],
    prefix: str = "mine",
    rate: int = 16000,
    seconds: float = 1.0,
    segments: bool = True,
    offset: int = 0,
) -> tuple[Path, Path]:
    """A part of recordings (tones) and one supervision each, as lhotse manifests."""
    directory.mkdir(parents=True, exist_ok=True)
    recordings, supervisions = [], []
    for i, text in enumerate(texts):
        audio = directory / f"{name}-{offset + i}.wav"
        tone(audio, seconds, rate, freq=200.0 + 20 * i)
        recording = Recording.from_file(audio, recording_id=f"{name}-{offset + i}")
        recordings.append(recording)
        supervisions.append(
            SupervisionSegment(
                id=recording.id,
                recording_id=recording.id,
                start=0.0,
                duration=recording.duration,
                text=text,
            )
        )
    rec_path = directory / f"{prefix}_recordings_{name}.jsonl.gz"
    sup_path = directory / f"{prefix}_supervisions_{name}.jsonl.gz"
    RecordingSet.from_recordings(recordings).to_file(rec_path)
    if segments:
        SupervisionSet.from_segments(supervisions).to_file(sup_path)
    return rec_path, sup_path


def stage0(tmp_path: Path, *extra: str, unsup: str = "wild") -> list[str]:
    return [
        *flags(
            manifest_dir=str(tmp_path / "in"),
            prefix="mine",
            train="train",
            dev="dev",
            test="test-a",
            unsup=unsup,
            output_dir=str(tmp_path / "out"),
        ),
        *extra,
    ]


def good_corpus(tmp_path: Path) -> None:
    write_part(tmp_path / "in", "train", ["one two", "three four"])
    write_part(tmp_path / "in", "dev", ["five"])
    write_part(tmp_path / "in", "test-a", ["six"])
    write_part(tmp_path / "in", "wild", ["hidden words", "more hidden"])


def error_of(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        lhotse_manifests.main(argv)
    return str(stop.value.code)


# -- stage 0: roles and checks ------------------------------------------------------------------


def test_roles_written_and_unlabeled_text_hidden(tmp_path):
    good_corpus(tmp_path)
    lhotse_manifests.main(stage0(tmp_path))
    out = tmp_path / "out"
    for role in ("train", "dev", "test_a", "unsup"):
        assert (out / f"corpus_recordings_{role}.jsonl.gz").is_file(), role
    train = load_manifest(out / "corpus_supervisions_train.jsonl.gz")
    assert sorted(s.text for s in train) == ["one two", "three four"]
    unsup = list(load_manifest(out / "corpus_supervisions_unsup.jsonl.gz"))
    assert [s.text for s in unsup] == [None, None]
    assert sorted(s.custom["ref_text"] for s in unsup) == ["hidden words", "more hidden"]


def test_missing_part_lists_the_parts_found(tmp_path):
    good_corpus(tmp_path)
    message = error_of(stage0(tmp_path, unsup="train-other-500"))
    assert (
        "part 'train-other-500'" in message
        and "mine_recordings_train-other-500.jsonl.gz" in message
    )
    assert "dev, test-a, train, wild" in message


def test_empty_manifest(tmp_path):
    good_corpus(tmp_path)
    SupervisionSet.from_segments([]).to_file(tmp_path / "in" / "mine_supervisions_dev.jsonl.gz")
    message = error_of(stage0(tmp_path))
    assert "part 'dev'" in message and "mine_supervisions_dev.jsonl.gz is empty" in message


def test_labelled_part_without_supervisions_or_text(tmp_path):
    good_corpus(tmp_path)
    write_part(tmp_path / "in", "test-a", ["six"], segments=False)
    (tmp_path / "in" / "mine_supervisions_test-a.jsonl.gz").unlink()
    assert (
        "part 'test-a'" in (message := error_of(stage0(tmp_path))) and "no supervisions" in message
    )
    write_part(tmp_path / "in", "test-a", [""])
    message = error_of(stage0(tmp_path))
    assert "supervision test-a-0 has no transcript" in message


def test_sampling_rate_of_the_file_disagrees_with_the_manifest(tmp_path):
    good_corpus(tmp_path)
    tone(tmp_path / "in" / "train-1.wav", 1.0, rate=8000)  # rewritten after the manifest was made
    message = error_of(stage0(tmp_path))
    assert "recording train-1 says 16000 Hz" in message and "train-1.wav is at 8000 Hz" in message


def test_channel_that_the_recording_lacks(tmp_path):
    good_corpus(tmp_path)
    path = tmp_path / "in" / "mine_supervisions_dev.jsonl.gz"
    sups = SupervisionSet.from_segments(
        [SupervisionSegment("dev-0", "dev-0", 0.0, 1.0, channel=1, text="five")]
    )
    sups.to_file(path)
    message = error_of(stage0(tmp_path))
    assert (
        "supervision dev-0 is on channel(s) [1] of recording dev-0, which has channels [0]"
        in message
    )


def test_stereo_and_long_unlabeled_recordings_without_segments(tmp_path):
    good_corpus(tmp_path)
    wild = tmp_path / "in"
    tone(wild / "stereo.wav", 1.0, channels=2)
    RecordingSet.from_recordings([Recording.from_file(wild / "stereo.wav")]).to_file(
        wild / "mine_recordings_wild.jsonl.gz"
    )
    (wild / "mine_supervisions_wild.jsonl.gz").unlink()
    assert "recording stereo has 2 channels and no supervision names one" in error_of(
        stage0(tmp_path)
    )
    tone(wild / "long.wav", 3.0)
    RecordingSet.from_recordings([Recording.from_file(wild / "long.wav")]).to_file(
        wild / "mine_recordings_wild.jsonl.gz"
    )
    message = error_of(stage0(tmp_path, "--max-unsup-duration", "2"))
    assert "recording long lasts 3.0 s" in message and "--unsup-vad true" in message
    lhotse_manifests.main(
        stage0(tmp_path, "--max-unsup-duration", "2", "--unsup-vad", "true")
    )  # VAD comes later
    assert not (tmp_path / "out" / "corpus_supervisions_unsup.jsonl.gz").exists()


def test_unlabeled_recording_also_labelled(tmp_path):
    good_corpus(tmp_path)
    write_part(tmp_path / "in", "wild", ["x"], offset=0)
    (tmp_path / "in" / "wild-0.wav").rename(tmp_path / "in" / "train-0-copy.wav")
    recording = Recording.from_file(tmp_path / "in" / "train-0-copy.wav", recording_id="train-0")
    RecordingSet.from_recordings([recording]).to_file(
        tmp_path / "in" / "mine_recordings_wild.jsonl.gz"
    )
    SupervisionSet.from_segments([SupervisionSegment("w", "train-0", 0.0, 1.0, text="x")]).to_file(
        tmp_path / "in" / "mine_supervisions_wild.jsonl.gz"
    )
    message = error_of(stage0(tmp_path))
    assert "recording train-0 is both unlabeled and in the train set" in message


def test_supervision_after_the_end_of_its_recording(tmp_path):
    good_corpus(tmp_path)
    SupervisionSet.from_segments(
        [SupervisionSegment("dev-0", "dev-0", 0.5, 1.0, text="five")]
    ).to_file(tmp_path / "in" / "mine_supervisions_dev.jsonl.gz")
    assert (
        "supervision dev-0 ends at 1.50 s, after the end of recording dev-0 (1.00 s)"
        in error_of(stage0(tmp_path))
    )


def test_cut_sets_as_parts(tmp_path):
    good_corpus(tmp_path)
    rec, sup = (
        tmp_path / "in" / "mine_recordings_dev.jsonl.gz",
        tmp_path / "in" / "mine_supervisions_dev.jsonl.gz",
    )
    CutSet.from_manifests(recordings=load_manifest(rec), supervisions=load_manifest(sup)).to_file(
        tmp_path / "in" / "mine_cuts_dev.jsonl.gz"
    )
    rec.unlink(), sup.unlink()
    lhotse_manifests.main(stage0(tmp_path))
    assert [
        s.text for s in load_manifest(tmp_path / "out" / "corpus_supervisions_dev.jsonl.gz")
    ] == ["five"]


# -- the generic recipe ---------------------------------------------------------------------------


def test_generic_recipe_help_and_missing_options(tmp_path):
    assert subprocess.run(["bash", "-n", str(LIBRISPEECH)]).returncode == 0
    assert_help_lists(
        GENERIC,
        (
            "--manifest-dir",
            "--train-parts",
            "--unsup-parts",
            "--dev-part",
            "--test-parts",
            "--unsup-vad",
            "--token-type",
            "--llm-prompt-template",
        ),
    )
    result = run_script(GENERIC, "--stop-stage", 0, "--data", tmp_path / "data")
    assert result.returncode != 0 and "stage 0 needs --manifest-dir" in result.stderr
    result = run_script(GENERIC, "--lang", "fr")
    assert result.returncode != 0 and "--lang must be zh, en or es" in result.stderr
    result = run_script(
        GENERIC, "--stage", 6, "--data", tmp_path / "data", "--exp", tmp_path / "exp"
    )
    assert result.returncode != 0 and "stages 6-10 need unlabeled audio" in result.stderr


@pytest.mark.slow
def test_generic_recipe_stages_0_to_3_on_mandarin_manifests(tmp_path):
    from less.data.espeak import synthesize

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, texts in (("train", MANDARIN[:4]), ("dev", MANDARIN[4:5]), ("test", MANDARIN[5:])):
        for i, text in enumerate(texts):  # real speech under the manifests' recordings
            sf.write(inputs / f"{name}-{i}.wav", np.pad(synthesize(text, "cmn"), (0, 16000)), 16000)
        write_part_from_files(inputs, name, texts)
    data, exp = tmp_path / "data", tmp_path / "exp"
    result = run_script(
        GENERIC,
        *flags(
            manifest_dir=inputs,
            prefix="mine",
            lang="zh",
            train_parts="train",
            dev_part="dev",
            test_parts="test",
            stop_stage=3,
            nj=1,
            fbank_splits=1,
            data=data,
            exp=exp,
        ),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    train = CutSet.from_file(data / "fbank" / "corpus_cuts_train.jsonl.gz")
    assert len(train) == 4 and all(c.has_features for c in train)
    tokens = (data / "lang_char" / "tokens.txt").read_text(encoding="utf-8")
    assert all(ch in tokens for ch in "今天天气很好")
    assert "no unlabeled audio" not in result.stdout  # stage 3 was the last


def write_part_from_files(directory: Path, name: str, texts: list[str]) -> None:
    recordings = [
        Recording.from_file(directory / f"{name}-{i}.wav", recording_id=f"{name}-{i}")
        for i in range(len(texts))
    ]
    RecordingSet.from_recordings(recordings).to_file(directory / f"mine_recordings_{name}.jsonl.gz")
    SupervisionSet.from_segments(
        SupervisionSegment(r.id, r.id, 0.0, r.duration, text=t)
        for r, t in zip(recordings, texts, strict=True)
    ).to_file(directory / f"mine_supervisions_{name}.jsonl.gz")


# -- LibriSpeech through lhotse's preparer ----------------------------------------------------------


def make_librispeech(root: Path, parts: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac + .trans.txt (upper case)."""
    from less.data.espeak import synthesize

    texts: dict[str, dict[str, str]] = {}
    for p, (part, sentences) in enumerate(parts.items()):
        texts[part] = {}
        for s in range(min(2, len(sentences))):  # two speakers per part (one for a single sentence)
            speaker, chapter = 100 * (p + 1) + s, 10 * (p + 1) + s
            chapter_dir = root / "LibriSpeech" / part / str(speaker) / str(chapter)
            chapter_dir.mkdir(parents=True)
            lines = []
            for u, sentence in enumerate(sentences[s::2]):
                utt = f"{speaker}-{chapter}-{u:04d}"
                voice = "en" if s == 0 else "en-us"
                sf.write(chapter_dir / f"{utt}.flac", synthesize(sentence, voice), 16000)
                lines.append(f"{utt} {sentence.upper()}")
                texts[part][utt] = sentence.upper()
            (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return texts


@pytest.mark.slow
def test_librispeech_recipe_end_to_end_on_a_tiny_tree(tmp_path):
    parts = {
        "train-clean-100": ENGLISH[:12],
        "train-clean-360": ENGLISH[12:16],
        "dev-clean": ENGLISH[16:17],
        "test-clean": ENGLISH[17:18],
    }
    texts = make_librispeech(tmp_path / "corpus", parts)
    data, exp = tmp_path / "data", tmp_path / "exp"
    with FakeChatServer(answer_fn=last_line_answer) as server:
        result = run_script(
            LIBRISPEECH,
            *flags(
                librispeech_dir=tmp_path / "corpus",
                unsup_parts="train-clean-360",
                test_parts="test-clean",
                nj=1,
                fbank_splits=1,
                bpe_vocab_size=40,
            ),
            *TINY_TRAINING,
            *flags(
                num_iters=1,
                systems="N L",
                data=data,
                exp=exp,
                llm_base_url=server.base_url,
                llm_model="test-en-instruct",
            ),
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    labelled = CutSet.from_file(data / "pl" / "asr" / "iter1" / "unsup_wild_cuts_pl.jsonl.gz")
    assert len(labelled) == len(texts["train-clean-360"])
    # one request per cut the teacher gave words (an empty hypothesis is not sent)
    assert (
        server.total_answered
        == sum(bool(c.supervisions[0].custom["pl"]["hyp"]) for c in labelled)
        > 0
    )
    # lhotse's own preparer made the manifests the generic recipe read
    lhotse_sups = load_manifest(
        data / "lhotse" / "librispeech_supervisions_train-clean-360.jsonl.gz"
    )
    assert {s.id: s.text for s in lhotse_sups} == texts["train-clean-360"]
    # the unlabeled references are hidden from stage 0 on, and never reach training
    unsup = CutSet.from_file(data / "fbank" / "librispeech_cuts_unsup.jsonl.gz")
    assert {c.supervisions[0].custom["ref_text"] for c in unsup} == set(
        texts["train-clean-360"].values()
    )
    assert all(c.supervisions[0].text is None for c in unsup)
    seed_train = CutSet.from_file(data / "fbank" / "librispeech_cuts_train.jsonl.gz")
    assert {c.supervisions[0].recording_id.split("_sp")[0] for c in seed_train} == set(
        texts["train-clean-100"]
    )
    assert len(seed_train) == 3 * len(texts["train-clean-100"])  # with the 0.9x and 1.1x copies
    hidden = set(texts["train-clean-360"].values())
    for system in ("N", "L"):
        mix = CutSet.from_file(data / "pl" / "asr" / system / "iter1" / "train_mix_cuts.jsonl.gz")
        for cut in mix:
            sup = cut.supervisions[0]
            if cut.custom["origin"] == "sup":
                assert sup.recording_id.split("_sp")[0] in texts["train-clean-100"]
                continue
            record = sup.custom["pl"]
            label = record["llm"]["text"] if system == "L" else record["hyp"]
            assert sup.text == label and sup.text not in hidden
    # English ASR: the pseudo-labels' error is measured on the hidden transcripts (not on a translation)
    report = json.loads(
        (data / "pl" / "asr" / "L" / "iter1" / "unsup_wild_cuts_kept.report.json").read_text()
    )
    assert "teacher label error, all cuts" in report["label_error"]
    assert_results_rows(
        exp / "RESULTS.md",
        "| asr | S | 0 | test_clean | WER",
        "| asr | L | 1 | dev | WER",
        "| asr | N | 1 | test_clean | WER",
    )
