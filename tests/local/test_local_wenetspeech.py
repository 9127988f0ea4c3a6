"""WenetSpeech preparation (less.local.wenetspeech) on a fake corpus: JSON + Ogg Opus audio."""

from __future__ import annotations

import json

import pytest
from lhotse import CutSet, load_manifest

from less.local.common import manifest_paths
from less.local.wenetspeech import EVAL_SETS, main, prepare_wenetspeech
from tests.fake_corpora import make_wenetspeech


def load_split(output_dir, split):
    recordings_path, supervisions_path = manifest_paths(output_dir, "wenetspeech", split)
    return load_manifest(recordings_path), load_manifest(supervisions_path)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("wenetspeech")
    fake = make_wenetspeech(root / "corpus")
    output_dir = root / "manifests"
    main(["--corpus-dir", str(fake.corpus_dir), "--output-dir", str(output_dir), "--subset", "S"])
    return fake, output_dir


def test_output_files(prepared):
    _, output_dir = prepared
    assert sorted(p.name for p in output_dir.iterdir()) == sorted(
        f"wenetspeech_{kind}_{split}.jsonl.gz"
        for kind in ("recordings", "supervisions")
        for split in ("S", *EVAL_SETS)
    )


def test_unlabeled_subset_has_no_text_but_a_reference(prepared):
    fake, output_dir = prepared
    _, supervisions = load_split(output_dir, "S")
    assert all(s.text is None for s in supervisions)
    assert {s.id: s.custom["ref_text"] for s in supervisions} == fake.texts["S"]
    assert all(s.language == "zh" for s in supervisions)


@pytest.mark.parametrize("split", EVAL_SETS)
def test_eval_sets_keep_normalised_text(prepared, split):
    fake, output_dir = prepared
    recordings, supervisions = load_split(output_dir, split)
    assert {s.id: s.text for s in supervisions} == fake.texts[split]
    assert all(not s.custom for s in supervisions)
    assert set(recordings.ids) == {s.recording_id for s in supervisions}


def test_tagged_and_short_segments_are_dropped(prepared):
    fake, output_dir = prepared
    kept = set()
    for split in ("S", *EVAL_SETS):
        kept |= set(load_split(output_dir, split)[1].ids)
    assert not kept & set(fake.dropped)
    # M-only and L-only segments are not part of S.
    assert "Y0000000000_--5llN02F84_S00002" not in kept
    assert "X0000000002_l_only_S00000" not in kept
    # The 0.5 s DEV segment is kept: bounds only apply to the training subset.
    assert "DEV_0000000001_S00001" in kept


def test_opus_audio_loads_through_lhotse(prepared):
    fake, output_dir = prepared
    recordings, supervisions = load_split(output_dir, "S")
    for recording in recordings:
        assert recording.sampling_rate == 16000
        assert recording.duration == pytest.approx(fake.audio_seconds[recording.id], abs=0.01)
    cuts = CutSet.from_manifests(recordings, supervisions).trim_to_supervisions()
    for cut in cuts:
        audio = cut.load_audio()
        assert audio.shape == (1, round(cut.duration * 16000))
        assert abs(audio).max() > 0.01


@pytest.mark.parametrize("subset", ["M", "L"])
def test_other_subsets_without_probing_and_with_brace_labels(tmp_path, subset):
    fake = make_wenetspeech(tmp_path / "corpus", braces=subset == "L")
    prepare_wenetspeech(fake.corpus_dir, tmp_path / "out", subset=subset, probe_audio=False)
    recordings, supervisions = load_split(tmp_path / "out", subset)
    assert {s.id: s.custom["ref_text"] for s in supervisions} == fake.texts[subset]
    for recording in recordings:  # durations from the JSON at 16 kHz, as lhotse does
        assert recording.num_samples == round(fake.audio_seconds[recording.id] * 16000)


def test_rerun_skips_finished_splits(prepared):
    fake, output_dir = prepared
    before = {p.name: p.stat().st_mtime_ns for p in output_dir.iterdir()}
    prepare_wenetspeech(fake.corpus_dir, output_dir, subset="S")
    assert {p.name: p.stat().st_mtime_ns for p in output_dir.iterdir()} == before


def test_missing_audio_is_an_error_naming_json_aid_and_path(tmp_path):
    fake = make_wenetspeech(tmp_path / "corpus", missing_audio=True)
    with pytest.raises(FileNotFoundError) as error:
        prepare_wenetspeech(fake.corpus_dir, tmp_path / "out")
    message = str(error.value)
    assert "WenetSpeech.json" in message and "Y0000000000_--5llN02F84" in message
    assert "Y0000000000_--5llN02F84.opus" in message and "--skip-missing-audio" in message
    prepare_wenetspeech(fake.corpus_dir, tmp_path / "out", skip_missing_audio=True)
    _, supervisions = load_split(tmp_path / "out", "S")
    assert set(supervisions.ids) == {"X0000000001_podcast_S00002"}


def test_subset_carried_by_no_segment_lists_the_labels_seen(tmp_path):
    fake = make_wenetspeech(tmp_path / "corpus")
    json_path = fake.corpus_dir / "WenetSpeech.json"
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    for audio in meta["audios"]:
        for segment in audio["segments"]:
            segment["subsets"] = [s for s in segment["subsets"] if s != "S"]
    json_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match=r"no segment lists subset\(s\) \['S'\].*'DEV', 'L', 'M'"):
        prepare_wenetspeech(fake.corpus_dir, tmp_path / "out")


def test_missing_corpus_dir_and_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="WenetSpeech corpus directory .*nowhere"):
        prepare_wenetspeech(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="WenetSpeech.json does not exist"):
        prepare_wenetspeech(tmp_path / "empty", tmp_path / "out")


def test_segment_without_a_field_names_its_place_in_the_json(tmp_path):
    fake = make_wenetspeech(tmp_path / "corpus")
    json_path = fake.corpus_dir / "WenetSpeech.json"
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    del meta["audios"][1]["segments"][2]["end_time"]
    json_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"audios\[1\] \(X0000000001_podcast\) segments\[2\].*end_time"
    ):
        prepare_wenetspeech(fake.corpus_dir, tmp_path / "out")
