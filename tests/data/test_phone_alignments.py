"""Exact phone alignments from espeak-ng's phoneme events (less.data.espeak,
less.local.mini.phones, less.bin.phone_alignments) and ABX through them (less.bin.abx)."""

from __future__ import annotations

import ctypes
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from less.data import espeak
from less.local.mini.phones import AudioMismatch, phone_stats, split_alignments
from less.ssl.alignment import load_alignments
from tests.helpers import flags

ZH = "你明天有空吗？"
ES = "el profesor compró tres libros nuevos."


def _assert_well_formed(phones: list[tuple[str, float, float]], duration: float) -> None:
    assert phones
    for name, start, end in phones:
        assert name and "ˈ" not in name and "ˌ" not in name
        assert 0.0 <= start < end <= duration + 1e-9
    assert all(a[2] <= b[1] + 1e-9 for a, b in zip(phones, phones[1:]))  # in order, no overlap


# ------------------------------------------------------------------------ espeak events


def test_event_struct_matches_speak_lib_h():
    event = espeak.EspeakEvent
    assert ctypes.sizeof(event) == 40
    assert (event.audio_position.offset, event.sample.offset) == (16, 20)
    assert (event.user_data.offset, event.id.offset) == (24, 32)


def test_phone_segments_end_at_the_next_event_and_drop_pauses():
    rate = espeak.ESPEAK_SAMPLE_RATE
    events = [
        ("n", 0),
        ("ˈi", rate // 10),
        ("", rate // 5),
        ("m", rate // 5),
        ("a", rate // 2),
        ("", rate),
    ]
    phones = espeak.phone_segments(events, end_sample=2 * rate, offset_s=0.05, duration_s=0.9)
    assert [p[0] for p in phones] == [
        "n",
        "i",
        "m",
        "a",
    ]  # stress mark gone; pauses and the zero-length join dropped
    assert phones[0][1:] == (0.0, pytest.approx(0.05))  # clipped at the trimmed start
    assert phones[1][1:] == (pytest.approx(0.05), pytest.approx(0.15))
    assert phones[-1][1:] == (
        pytest.approx(0.45),
        pytest.approx(0.9),
    )  # ends at the pause, clipped to the audio


def test_plain_synthesis_is_unchanged_by_phone_events():
    before = espeak.synthesize(ZH, "cmn+f3", rate=150, pitch=60)
    with_phones, _ = espeak.synthesize_with_phones(ZH, "cmn+f3", rate=150, pitch=60)
    after = espeak.synthesize(
        ZH, "cmn+f3", rate=150, pitch=60
    )  # the server did not keep the events option
    assert np.array_equal(before, with_phones) and np.array_equal(before, after)
    spanish = espeak.synthesize(ES, "es-419+klatt", rate=200, pitch=30, seed=3)
    assert np.array_equal(
        spanish, espeak.synthesize_with_phones(ES, "es-419+klatt", rate=200, pitch=30, seed=3)[0]
    )


@pytest.mark.parametrize(
    "text, voice, expected",
    [
        (
            ZH,
            "cmn",
            ["n", "i", "m", "i", "ŋ", "th", "iɛ", "n", "j", "iou", "kh", "onɡ", "m", "ɑ"],
        ),  # no tones
        (ES, "es", ["e", "l", "p", "ɾ", "o", "f", "e", "s", "o", "ɾ"]),
    ],
)
def test_mandarin_and_spanish_voices_give_ipa_phones(text, voice, expected):
    audio, phones = espeak.synthesize_with_phones(text, voice)
    _assert_well_formed(phones, len(audio) / espeak.SAMPLE_RATE)
    assert [p[0] for p in phones][: len(expected)] == expected
    assert phones[-1][2] > 0.8 * len(audio) / espeak.SAMPLE_RATE  # the phones cover the speech


def test_phones_differ_between_sentences_and_pauses_are_gaps():
    _, one = espeak.synthesize_with_phones("el gato come pescado", "es")
    audio, two = espeak.synthesize_with_phones("el perro bebe agua, y la niña canta", "es")
    assert [p[0] for p in one] != [p[0] for p in two]
    _assert_well_formed(two, len(audio) / espeak.SAMPLE_RATE)
    gaps = [b[1] - a[2] for a, b in zip(two, two[1:])]
    assert max(gaps) > 0.05  # the comma's pause belongs to no phone
    assert gaps.index(max(gaps)) == [p[0] for p in two].index("ɣ") + 2  # after "agua"


# ------------------------------------------------------------------------- the corpus


def test_alignments_of_the_tiny_corpus_match_its_audio_and_manifests(mini_corpus: Path):
    from lhotse import load_manifest

    for task, split in (("asr", "test_clean"), ("ast", "test_wild")):
        alignments = list(
            split_alignments(mini_corpus, task, split, progress=False)
        )  # verifies every file
        supervisions = load_manifest(
            mini_corpus / "manifests" / f"mini-{task}_supervisions_{split}.jsonl.gz"
        )
        by_id = {s.id: s for s in supervisions}
        assert [a.cut_id for a in alignments] == [s.id for s in supervisions]
        for a in alignments:
            assert a.speaker == by_id[a.cut_id].speaker
            assert a.duration == pytest.approx(by_id[a.cut_id].duration)
            _assert_well_formed(a.units, a.duration)
        stats = phone_stats(alignments)
        assert stats.utterances == len(supervisions) and stats.phones > 10 * stats.utterances
        assert 0.03 < stats.mean_duration < 0.2


def test_a_tampered_flac_is_reported_with_its_recording(mini_corpus: Path, tmp_path: Path):
    from less.bin import phone_alignments

    data = tmp_path / "data"
    (data / "manifests").mkdir(parents=True)
    shutil.copy(mini_corpus / "manifests" / "mini-asr_build.json", data / "manifests")
    shutil.copytree(
        mini_corpus / "audio" / "mini-asr" / "test_clean",
        data / "audio" / "mini-asr" / "test_clean",
    )
    out = tmp_path / "phones.jsonl"
    phone_alignments.main(
        ["--data-dir", str(data), "--task", "asr", "--split", "test_clean", "--out", str(out)]
    )
    assert len(load_alignments(out)) == len(
        list((data / "audio" / "mini-asr" / "test_clean").glob("*.flac"))
    )
    victim = sorted((data / "audio" / "mini-asr" / "test_clean").glob("*.flac"))[1]
    audio, rate = soundfile.read(victim, dtype="int16")
    audio[len(audio) // 2] += 1
    soundfile.write(victim, audio, rate, format="FLAC", subtype="PCM_16")
    with pytest.raises(AudioMismatch, match=victim.stem):
        list(split_alignments(data, "asr", "test_clean", progress=False))
    with pytest.raises(SystemExit, match=victim.stem):
        phone_alignments.main(
            [
                *flags(
                    data_dir=str(data),
                    task="asr",
                    split="test_clean",
                    out=str(tmp_path / "again.jsonl"),
                ),
            ]
        )
    with pytest.raises(SystemExit, match="long multi-utterance"):
        phone_alignments.main(
            ["--data-dir", str(data), "--task", "asr", "--split", "unsup_wild", "--out", str(out)]
        )


def test_abx_on_fbank_through_the_phone_alignments(mini_corpus: Path, tmp_path: Path):
    import torch

    from less.bin import abx, compute_fbank, phone_alignments

    torch.set_num_threads(1)
    man = mini_corpus / "manifests"
    cuts = tmp_path / "cuts_test_clean.jsonl.gz"
    compute_fbank.main(
        [
            *flags(
                recordings=str(man / "mini-asr_recordings_test_clean.jsonl.gz"),
                supervisions=str(man / "mini-asr_supervisions_test_clean.jsonl.gz"),
                out_cuts=str(cuts),
            ),
        ]
    )
    phones = tmp_path / "test_clean.phones.jsonl"
    phone_alignments.main(
        [
            *flags(data_dir=str(mini_corpus), task="asr", split="test_clean", out=str(phones)),
        ]
    )
    out = tmp_path / "abx.json"
    # cut ids are "<recording>-<index>", the alignments name supervisions: abx maps them
    abx.main(
        [
            *flags(
                cuts=str(cuts),
                alignments=str(phones),
                units="phone",
                layer="fbank",
                context="any",
                max_group_size="4",
                out=str(out),
            ),
        ]
    )
    result = json.loads(out.read_text())["layers"]["fbank"]
    assert result["items"] > 0 and result["within_pairs"] > 0 and result["across_pairs"] > 0
    assert result["within"] < 0.5 and result["across"] < 0.5
    with pytest.raises(SystemExit, match="phone_alignments"):
        abx.main(
            [
                *flags(
                    cuts=str(cuts),
                    alignments=str(tmp_path / "missing.jsonl"),
                    units="phone",
                    layer="fbank",
                    out=str(out),
                ),
            ]
        )
