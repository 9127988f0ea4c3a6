"""AISHELL-1 preparation (less.local.aishell) on a fake corpus in the real layout."""

from __future__ import annotations

import pytest
from lhotse import CutSet, load_manifest

from less.local.aishell import main, prepare_aishell
from less.local.common import DurationBounds, manifest_paths
from tests.fake_corpora import make_aishell


def load_split(output_dir, split):
    recordings_path, supervisions_path = manifest_paths(output_dir, "aishell", split)
    return load_manifest(recordings_path), load_manifest(supervisions_path)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("aishell")
    fake = make_aishell(root / "corpus")
    output_dir = root / "manifests"
    main(["--corpus-dir", str(fake.corpus_dir), "--output-dir", str(output_dir)])
    return fake, output_dir


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_texts_are_normalised_and_complete(prepared, split):
    fake, output_dir = prepared
    recordings, supervisions = load_split(output_dir, split)
    assert {s.id: s.text for s in supervisions} == fake.texts[split]
    assert set(recordings.ids) == set(fake.texts[split])
    assert all(s.language == "zh" for s in supervisions)


def test_dropped_and_untranscribed_utterances_are_absent(prepared):
    fake, output_dir = prepared
    _, train = load_split(output_dir, "train")
    assert not set(fake.dropped) & set(train.ids)
    assert not set(fake.untranscribed) & set(train.ids)
    # A 0.7 s test utterance survives: duration bounds only apply to train.
    _, test = load_split(output_dir, "test")
    assert test["BAC009S0764W0121"].duration == pytest.approx(0.7)


def test_audio_loads_through_lhotse(prepared):
    fake, output_dir = prepared
    for split in ("train", "test"):
        cuts = CutSet.from_manifests(*load_split(output_dir, split))
        for cut in cuts:
            audio = cut.load_audio()
            assert audio.shape == (1, fake.num_samples[cut.recording_id])
            assert cut.supervisions[0].speaker == cut.recording_id[6:11]


def test_rerun_is_a_no_op(prepared):
    fake, output_dir = prepared
    files = sorted(output_dir.iterdir())
    times = [p.stat().st_mtime_ns for p in files]
    prepare_aishell(fake.corpus_dir, output_dir)
    assert [p.stat().st_mtime_ns for p in sorted(output_dir.iterdir())] == times
    assert len(files) == 6


def test_duration_bounds_are_flags(tmp_path):
    fake = make_aishell(tmp_path / "corpus")
    prepare_aishell(fake.corpus_dir, tmp_path / "out", DurationBounds(0.5, 1.45))
    _, train = load_split(tmp_path / "out", "train")
    # 0.6 s "太短" is now kept, the 1.5 s utterance is now too long.
    assert train["BAC009S0002W0125"].text == "太短"
    assert "BAC009S0002W0122" not in train.ids


def test_transcript_line_with_missing_audio_names_file_line_and_path(tmp_path):
    fake = make_aishell(tmp_path / "corpus", missing_audio=True)
    line_number, utt_id = fake.missing_audio
    with pytest.raises(FileNotFoundError) as error:
        prepare_aishell(fake.corpus_dir, tmp_path / "out")
    message = str(error.value)
    assert f"aishell_transcript_v0.8.txt:{line_number}:" in message
    expected_path = fake.corpus_dir / "data_aishell" / "wav" / "train" / "S0002" / f"{utt_id}.wav"
    assert str(expected_path) in message
    assert not (tmp_path / "out").exists()
    # The documented escape hatch skips it and prepares the rest.
    prepare_aishell(fake.corpus_dir, tmp_path / "out", on_missing_audio="skip")
    _, train = load_split(tmp_path / "out", "train")
    assert set(train.ids) == set(fake.texts["train"])


def test_missing_corpus_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="AISHELL-1 corpus directory .*nowhere"):
        prepare_aishell(tmp_path / "nowhere", tmp_path / "out")


def test_data_aishell_dir_passed_instead_of_its_parent(tmp_path):
    fake = make_aishell(tmp_path / "corpus")
    with pytest.raises(FileNotFoundError, match="pass its parent"):
        prepare_aishell(fake.corpus_dir / "data_aishell", tmp_path / "out")


def test_unextracted_speaker_tarballs(tmp_path):
    wav_dir = tmp_path / "corpus" / "data_aishell" / "wav"
    wav_dir.mkdir(parents=True)
    (wav_dir / "S0002.tar.gz").write_bytes(b"")
    transcript = tmp_path / "corpus" / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True)
    transcript.write_text("BAC009S0002W0122 你 好\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="S0002.tar.gz"):
        prepare_aishell(tmp_path / "corpus", tmp_path / "out")
