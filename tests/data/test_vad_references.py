"""Stage 1's hidden references: a VAD segment gets the part of the truth that lies inside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from less.bin import vad_segment
from tests.helpers import flags

RATE = 16000
# Two utterances of one long recording: 你好世界 over 0.5-2.5 s (four characters, so their
# apportioned times are 0.75, 1.25, 1.75, 2.25 s) and 再见 over 3.0-4.0 s.
UTTERANCES = [("u1", 0.5, 2.0, "你好世界", "hello world"), ("u2", 3.0, 1.0, "再见", "goodbye")]


def _recording(tmp_path: Path) -> Recording:
    """A real 5 s file: noise bursts (speech stand-ins) at the utterance times, quiet elsewhere."""
    rng = np.random.default_rng(0)
    audio = 0.001 * rng.standard_normal(5 * RATE)
    t = np.arange(5 * RATE) / RATE
    for _, start, duration, _, _ in UTTERANCES:
        burst = (t >= start) & (t < start + duration)
        audio[burst] += (
            0.3 * np.sin(2 * np.pi * 220 * t[burst]) * rng.uniform(0.5, 1.0, burst.sum())
        )
    path = tmp_path / "long.wav"
    sf.write(path, audio.astype(np.float32), RATE)
    return Recording.from_file(path, recording_id="long")


def _references(language: str = "zh") -> list[SupervisionSegment]:
    return [
        SupervisionSegment(
            id=uid,
            recording_id="long",
            start=start,
            duration=duration,
            text=None,
            language=language,
            custom={"ref_text": text, "ref_translated_text": {"en": en}},
        )
        for uid, start, duration, text, en in UTTERANCES
    ]


def _cut(recording: Recording, start: float, end: float, language: str | None = "zh") -> MonoCut:
    sup = SupervisionSegment(
        id=f"c{start}",
        recording_id=recording.id,
        start=0.0,
        duration=end - start,
        text=None,
        language=language,
        custom={},
    )
    return MonoCut(
        id=f"c{start}",
        start=start,
        duration=end - start,
        channel=0,
        recording=recording,
        supervisions=[sup],
    )


def test_segment_cutting_an_utterance_gets_only_the_units_inside(tmp_path: Path):
    recording = _recording(tmp_path)
    first, second = _cut(recording, 0.0, 1.6), _cut(recording, 1.6, 4.2)
    for cut in (first, second):
        vad_segment.attach_references(cut, _references())
    a, b = first.supervisions[0].custom, second.supervisions[0].custom
    assert a["ref_text"] == "你好"  # not the whole utterance
    assert b["ref_text"] == "世界再见"
    # 1.1 s of u1's 2 s lie in the first segment: its translation goes there, and only there
    assert a["ref_translated_text"] == {"en": "hello world"}
    assert b["ref_translated_text"] == {"en": "goodbye"}
    assert (a["ref_utterances"], b["ref_utterances"]) == (1, 1)
    assert a["ref_coverage"] == [["u1", 2, 4]]
    assert b["ref_coverage"] == [["u1", 2, 4], ["u2", 2, 2]]


def test_translation_needs_more_than_half_of_the_utterance(tmp_path: Path):
    recording = _recording(tmp_path)
    cut = _cut(recording, 1.4, 2.9)  # 1.1 s of u1's 2 s: characters at 1.75 and 2.25 s
    vad_segment.attach_references(cut, _references())
    custom = cut.supervisions[0].custom
    assert custom["ref_text"] == "世界"
    assert custom["ref_translated_text"] == {"en": "hello world"}
    cut = _cut(recording, 1.6, 2.9)  # 0.9 s of 2 s: the words inside, not the translation
    vad_segment.attach_references(cut, _references())
    custom = cut.supervisions[0].custom
    assert custom["ref_text"] == "世界"
    assert "ref_translated_text" not in custom and custom["ref_utterances"] == 0
    silent = _cut(recording, 2.6, 2.9)  # between the utterances: nothing attached
    vad_segment.attach_references(silent, _references())
    assert silent.supervisions[0].custom == {}


def test_spanish_words_and_latin_words_in_mandarin(tmp_path: Path):
    recording = _recording(tmp_path)
    refs = _references("es")
    refs[0].custom["ref_text"] = "hola a todo el mundo"  # words at 0.7, 1.1, 1.5, 1.9, 2.3 s
    cut = _cut(recording, 0.0, 1.6, language="es")
    vad_segment.attach_references(cut, refs)
    assert cut.supervisions[0].custom["ref_text"] == "hola a todo"
    refs = _references()
    refs[0].custom["ref_text"] = "我用AI GPT"  # units 我 用 AI GPT: Latin words stay apart
    cut = _cut(recording, 1.6, 4.2, language=None)  # language taken from the references
    vad_segment.attach_references(cut, refs)
    assert cut.supervisions[0].custom["ref_text"] == "AI GPT再见"


def test_word_alignment_is_used_when_present(tmp_path: Path):
    recording = _recording(tmp_path)
    refs = _references()
    # the speaker says 你好世 quickly, then drags 界 to the end
    refs[0] = refs[0].with_alignment(
        "word",
        [
            AlignmentItem("你好", 0.5, 0.4),
            AlignmentItem("世", 0.9, 0.2),
            AlignmentItem("界", 1.1, 1.4),
        ],
    )
    cut = _cut(recording, 0.0, 1.6)
    vad_segment.attach_references(cut, refs)
    assert cut.supervisions[0].custom["ref_text"] == "你好世"  # uniform spreading would give 你好


def test_cli_attaches_partial_references(tmp_path: Path):
    recording = _recording(tmp_path)
    recordings, supervisions = tmp_path / "rec.jsonl.gz", tmp_path / "sup.jsonl.gz"
    RecordingSet.from_recordings([recording]).to_file(recordings)
    SupervisionSet.from_segments(_references()).to_file(supervisions)
    out = tmp_path / "cuts.jsonl.gz"
    # segments given as finished progress, so the test does not depend on what Silero hears in tones
    partial = tmp_path / "cuts.jsonl.gz.partial.jsonl"
    partial.write_text(
        json.dumps({"recording_id": "long", "segments": [[0.4, 1.6], [1.6, 4.1]]}) + "\n"
    )
    vad_segment.main(
        [
            *flags(
                recordings=str(recordings),
                supervisions=str(supervisions),
                language="zh",
                out_cuts=str(out),
            ),
        ]
    )
    cuts = sorted(CutSet.from_file(out), key=lambda c: c.start)
    assert [c.supervisions[0].custom["ref_text"] for c in cuts] == ["你好", "世界再见"]
    assert [c.supervisions[0].custom["ref_translated_text"]["en"] for c in cuts] == [
        "hello world",
        "goodbye",
    ]
    assert all(c.supervisions[0].text is None for c in cuts)
