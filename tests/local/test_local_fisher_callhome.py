"""Fisher/Callhome Spanish->English preparation (less.local.fisher_callhome) on fake LDC corpora."""

from __future__ import annotations

import numpy as np
import pytest
from lhotse import CutSet, load_manifest

from less.local.common import manifest_paths
from less.local.fisher_callhome import (
    CALLHOME_SPLITS,
    FISHER_SPLITS,
    SPLITS,
    choose_channel,
    main,
    prepare_fisher_callhome,
)
from less.local.ldc_spanish import TranscriptSegment, strip_markup
from less.local.sph import convert_dir
from tests.fake_corpora import make_fisher_callhome


def load_split(output_dir, split):
    recordings_path, supervisions_path = manifest_paths(output_dir, "fisher-callhome", split)
    return load_manifest(recordings_path), load_manifest(supervisions_path)


def build(root, **kwargs):
    """A fake corpus with its SPHERE audio converted to FLAC, and the preparer's keyword arguments."""
    fake = make_fisher_callhome(root / "corpus", **kwargs)
    convert_dir(fake.fisher_speech_dir, root / "fisher_flac")
    convert_dir(fake.callhome_speech_dir, root / "callhome_flac")
    dirs = dict(
        translation_dir=fake.translation_dir,
        fisher_audio_dir=root / "fisher_flac",
        fisher_transcript_dir=fake.fisher_transcript_dir,
        callhome_audio_dir=root / "callhome_flac",
        callhome_transcript_dir=fake.callhome_transcript_dir,
    )
    return fake, dirs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fisher_callhome")
    fake, dirs = build(root)
    output_dir = root / "manifests"
    main(
        [f"--{name.replace('_', '-')}={path}" for name, path in dirs.items()]
        + [f"--output-dir={output_dir}"]
    )
    return fake, output_dir


def test_every_split_is_written(prepared):
    _, output_dir = prepared
    for split in SPLITS:
        assert all(path.is_file() for path in manifest_paths(output_dir, "fisher-callhome", split))


@pytest.mark.parametrize("split", SPLITS)
def test_segments_texts_translations_channels_and_times(prepared, split):
    fake, output_dir = prepared
    recordings, supervisions = load_split(output_dir, split)
    expected = fake.segments[split]
    assert sorted(supervisions.ids) == sorted(expected)
    for supervision in supervisions:
        want = expected[supervision.id]
        assert supervision.recording_id == want.recording_id
        assert supervision.text == want.text
        assert supervision.custom["translated_text"]["en"] == want.translation
        assert supervision.custom["transcript_lines"] == want.transcript_lines
        assert supervision.channel == want.channel
        assert supervision.start == pytest.approx(want.start)
        assert supervision.end == pytest.approx(want.end)
        assert supervision.language == "es"
        assert supervision.speaker == f"{want.recording_id}-{'AB'[want.channel]}"
    assert set(recordings.ids) == {want.recording_id for want in expected.values()}


@pytest.mark.parametrize("split", ["fisher_dev", "fisher_dev2", "fisher_test"])
def test_fisher_eval_sets_have_four_references(prepared, split):
    _, output_dir = prepared
    _, supervisions = load_split(output_dir, split)
    for supervision in supervisions:
        references = supervision.custom["translated_text"]["en"]
        assert isinstance(references, list) and len(references) == 4
    merged = next(s for s in supervisions if s.custom["transcript_lines"] == [3, 4])
    assert merged.text == "me llamo carmen y tengo veinticinco años"
    assert merged.custom["translated_text"]["en"][1] == "i'm carmen and i'm twenty five"
    assert (merged.start, merged.end) == pytest.approx((2.70, 4.90))


@pytest.mark.parametrize("split", ["fisher_train", *CALLHOME_SPLITS])
def test_single_reference_splits_hold_a_string(prepared, split):
    _, output_dir = prepared
    _, supervisions = load_split(output_dir, split)
    assert all(isinstance(s.custom["translated_text"]["en"], str) for s in supervisions)


def test_short_train_segment_dropped_but_kept_in_eval(prepared):
    fake, output_dir = prepared
    [(dropped_id, reason)] = fake.dropped["fisher_train"].items()
    assert reason == "shorter than 0.5 s"
    assert dropped_id not in load_split(output_dir, "fisher_train")[1].ids
    _, dev = load_split(output_dir, "fisher_dev")
    assert any(
        s.custom["transcript_lines"] == [5] and s.duration == pytest.approx(0.3) for s in dev
    )


@pytest.mark.parametrize("split", ["fisher_dev", "callhome_train"])
def test_audio_of_each_segment_is_its_own_channel(prepared, split):
    """Fisher is μ-law (compare within quantisation), Callhome 16-bit PCM (exact)."""
    fake, output_dir = prepared
    recordings, supervisions = load_split(output_dir, split)
    for recording in recordings:
        assert recording.num_channels == 2 and recording.sampling_rate == fake.sampling_rate
        assert recording.load_audio().shape == (2, int(fake.seconds * fake.sampling_rate))
    cuts = CutSet.from_manifests(recordings, supervisions).trim_to_supervisions()
    for cut in cuts:
        supervision = cut.supervisions[0]
        audio = cut.load_audio()
        assert audio.shape == (1, cut.num_samples)
        first = round(cut.start * fake.sampling_rate)  # supervision times are relative to the cut
        original = fake.audio[cut.recording_id][
            first : first + cut.num_samples, supervision.channel
        ]
        got = audio[0] * 32768
        tolerance = 0.07 * np.abs(original) + 16 if split.startswith("fisher") else 0.5
        assert (np.abs(got - original) <= tolerance).all()


def test_rerun_is_a_no_op(prepared):
    fake, output_dir = prepared
    before = {p.name: p.stat().st_mtime_ns for p in output_dir.iterdir()}
    # No directories needed when everything is done.
    prepare_fisher_callhome(output_dir, fake.translation_dir)
    assert {p.name: p.stat().st_mtime_ns for p in output_dir.iterdir()} == before


@pytest.mark.parametrize("split, line_number", [("fisher_dev", 7), ("callhome_evltest", 6)])
def test_mapping_line_out_of_range_names_mapping_file_and_line(tmp_path, split, line_number):
    fake, dirs = build(tmp_path, out_of_range_split=split)
    mapping_file, expected_line = fake.out_of_range
    assert expected_line == line_number
    with pytest.raises(ValueError) as error:
        prepare_fisher_callhome(tmp_path / "out", splits=(split,), **dirs)
    message = str(error.value)
    assert f"{mapping_file}:{line_number}:" in message and "out of range" in message


def test_translation_line_count_mismatch(tmp_path):
    fake, dirs = build(tmp_path)
    reference = fake.translation_dir / "corpus" / "ldc" / "fisher_test.en.2"
    reference.write_text("only one line\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"fisher_test\.en\.2 has 1 lines but .*mapping/fisher_test has 6"
    ):
        prepare_fisher_callhome(tmp_path / "out", splits=("fisher_test",), **dirs)


def test_transcripts_that_disagree_with_the_es_side_stop_the_run(tmp_path):
    fake, dirs = build(tmp_path)
    es = fake.translation_dir / "corpus" / "ldc" / "callhome_devtest.es"
    es.write_text("\n".join(f"otra cosa {i}" for i in range(5)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line numbering does not match"):
        prepare_fisher_callhome(tmp_path / "out", splits=("callhome_devtest",), **dirs)


def test_missing_directories(tmp_path):
    fake, dirs = build(tmp_path)
    with pytest.raises(FileNotFoundError, match="fisher-callhome-corpus directory"):
        prepare_fisher_callhome(
            tmp_path / "out", **{**dirs, "translation_dir": tmp_path / "nowhere"}
        )
    with pytest.raises(FileNotFoundError, match="Fisher Spanish audio directory .*nowhere"):
        prepare_fisher_callhome(
            tmp_path / "out", **{**dirs, "fisher_audio_dir": tmp_path / "nowhere"}
        )
    with pytest.raises(FileNotFoundError, match="No Callhome Spanish transcript directory"):
        prepare_fisher_callhome(tmp_path / "out", **{**dirs, "callhome_transcript_dir": None})
    # Only the corpora of the requested splits are needed.
    prepare_fisher_callhome(
        tmp_path / "out", splits=FISHER_SPLITS, **{**dirs, "callhome_audio_dir": None}
    )


def test_audio_dir_with_sphere_but_no_flac_says_to_convert(tmp_path):
    fake, dirs = build(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m less.local.sph"):
        prepare_fisher_callhome(
            tmp_path / "out",
            splits=("fisher_dev",),
            **{**dirs, "fisher_audio_dir": fake.fisher_speech_dir},
        )


def test_strip_markup_follows_the_release_script():
    assert strip_markup('Me llamo <foreign lang="English"> Carmen </foreign>') == "Me llamo Carmen"
    assert strip_markup("((No sé)) si [distortion] viene {laugh}") == "No sé si viene"
    # "[[...]]" leaves a "]" exactly as strip_markup.pl does; normalisation removes it.
    assert strip_markup("[[comentario]] +vivo+ *a*  #sí# a/b") == "] vivo a sí ab"


def test_line_merging_both_sides_takes_the_side_with_more_speech():
    a = TranscriptSegment(1, 0.0, 1.0, 0, "x")
    b = TranscriptSegment(2, 1.0, 3.5, 1, "y")
    assert choose_channel([a]) == (0, False)
    assert choose_channel([a, b]) == (1, True)
