"""Bad input files: manifests that are not UTF-8 or cut short, unreadable and damaged audio,
temporary files left by a killed write."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, RecordingSet

from less.bin import prepare_lang, vad_segment
from less.data.cuts import ManifestError, read_cuts, read_manifest
from less.llm.testing import llm_correct_command
from less.utils import atomic_path, remove_stale_temp_files, remove_stale_temp_files_in
from tests.helpers import flags

RATE = 16000


def supervision_line(sup_id: str, text: str) -> bytes:
    record = {
        "id": sup_id,
        "recording_id": "rec",
        "start": 0.0,
        "duration": 1.0,
        "channel": 0,
        "text": "@@",
    }
    return json.dumps(record).encode("utf-8").replace(b"@@", text.encode("latin-1")) + b"\n"


def write_gz(path: Path, data: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(data)
    return path


# -- manifests -----------------------------------------------------------------------------------


def test_a_latin1_transcript_names_the_manifest_line_and_id(tmp_path) -> None:
    """lhotse raises a bare UnicodeDecodeError: no file, no line."""
    data = supervision_line("sup-a", "hola") + supervision_line("sup-b", "hasta mañana")
    plain = tmp_path / "sups.jsonl"
    plain.write_bytes(data)
    for path in (write_gz(tmp_path / "sups.jsonl.gz", data), plain):
        with pytest.raises(ManifestError) as caught:
            read_manifest(path, "supervision manifest")
        message = str(caught.value)
        assert f"supervision manifest {path}: line 2 (id 'sup-b'): byte 0xf1" in message
        assert "mañana" in message and "UTF-8" in message
    with pytest.raises(ManifestError, match=r"sups\.jsonl\.gz: line 2"):
        list(
            prepare_lang.supervision_texts(tmp_path / "sups.jsonl.gz", "text", "es")
        )  # read lazily


def test_a_cut_set_cut_short_or_not_utf8_names_the_file(tmp_path) -> None:
    good = tmp_path / "cuts.jsonl.gz"
    from less.llm.testing import make_pl_cuts

    make_pl_cuts(["uno", "dos", "tres"]).to_file(good)
    data = gzip.decompress(good.read_bytes())
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(ManifestError, match=f"cut set {truncated}: truncated or corrupt gzip"):
        read_cuts(truncated)
    latin1 = write_gz(tmp_path / "latin1.jsonl.gz", data.replace(b"dos", "dós".encode("latin-1")))
    with pytest.raises(ManifestError, match=r"latin1\.jsonl\.gz: line 2 \(id 'cut-0001'\)"):
        read_cuts(latin1)
    broken_json = write_gz(tmp_path / "broken.jsonl.gz", data.replace(b"\n", b"\n{oops\n", 1))
    with pytest.raises(ManifestError, match=r"broken\.jsonl\.gz: line 2 is not valid JSON"):
        read_cuts(broken_json)
    assert len(read_cuts(good)) == 3


def test_stages_name_the_bad_manifest(tmp_path) -> None:
    """The stage CLIs read through these helpers (here llm_correct's --in-cuts)."""
    bad = write_gz(tmp_path / "pl.jsonl.gz", supervision_line("sup-b", "mañana"))
    result = subprocess.run(
        llm_correct_command(bad, tmp_path / "out.jsonl.gz", "--backend openai --model m"),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode != 0
    assert f"ManifestError: cut set {bad}: line 1 (id 'sup-b')" in result.stderr


def test_a_corpus_transcript_that_is_not_utf8_names_file_and_line(tmp_path) -> None:
    from less.local.aishell import check_transcript_audio

    transcript = tmp_path / "aishell_transcript_v0.8.txt"
    transcript.write_bytes(
        "BAC009S0002W0122 而 对 楼市\n".encode() + "BAC009S0002W0123 caf\xe9\n".encode("latin-1")
    )
    with pytest.raises(ManifestError, match=f"{transcript}: line 2: byte 0xe9"):
        check_transcript_audio(transcript, tmp_path, {}, "skip")


# -- audio files ---------------------------------------------------------------------------------


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * rng.uniform(0.5, 1.0, t.size)).astype(np.float32)


def audio_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "audio"
    (directory / "sub").mkdir(parents=True)
    sf.write(directory / "good.wav", speechlike(2.0), RATE, subtype="PCM_16")
    (directory / "broken.wav").write_bytes(b"RIFF this is not audio at all")
    sf.write(directory / "sub" / "cut.wav", speechlike(2.0, 1), RATE, subtype="PCM_16")
    data = (directory / "sub" / "cut.wav").read_bytes()
    (directory / "sub" / "cut.wav").write_bytes(
        data[: len(data) // 2]
    )  # a copy that was interrupted
    sf.write(directory / "click.wav", speechlike(0.05), RATE, subtype="PCM_16")
    return directory


def test_one_unreadable_file_stops_the_directory_unless_skipped(tmp_path, caplog) -> None:
    directory = audio_dir(tmp_path)
    out = tmp_path / "cuts.jsonl.gz"
    with pytest.raises(vad_segment.BadAudioError, match=r"broken\.wav.*--skip-bad-audio"):
        vad_segment.main(["--audio-dir", str(directory), "--out-cuts", str(out)])
    log_file = tmp_path / "vad.log"
    caplog.set_level(logging.INFO)
    vad_segment.main(
        [
            *flags(audio_dir=str(directory), out_cuts=str(out)),
            "--skip-bad-audio",
            "--log-file",
            str(log_file),
        ]
    )
    cuts = read_cuts(out)  # (Silero hears no speech in these tones: what matters is what was read)
    assert {cut.recording.id for cut in cuts} <= {"good", "sub_cut", "click"}
    log = log_file.read_text()
    assert "3 recordings (0.00 h) ->" in log  # the three readable files were segmented
    assert (
        "skipped 1 unreadable audio file(s)" in log and f"skipped {directory / 'broken.wav'}" in log
    )
    assert (
        "recording sub_cut" in log and "cut short: its header announces 64000 bytes of audio" in log
    )
    assert "recording click" in log and "too short for a word" in log
    assert "recording good" not in log


def test_wav_header_checks(tmp_path) -> None:
    assert vad_segment.wav_header_problem(tmp_path / "missing.wav") is None
    path = tmp_path / "a.wav"
    sf.write(path, speechlike(1.0), RATE, subtype="PCM_16")
    assert vad_segment.wav_header_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    assert "cut short" in vad_segment.wav_header_problem(path)
    path.write_bytes(data[:40] + b"\x00\x00\x00\x00" + data[44:])  # data size never written
    assert "gives no audio size" in vad_segment.wav_header_problem(path)
    path.write_bytes(data[:30])
    assert "ends inside its header" in vad_segment.wav_header_problem(path)
    flac = tmp_path / "b.wav"  # not RIFF, whatever the name: soundfile decides
    sf.write(flac, speechlike(0.2), RATE, format="FLAC")
    assert vad_segment.wav_header_problem(flac) is None
    recordings = RecordingSet.from_recordings([Recording.from_file(flac, recording_id="b")])
    assert vad_segment.warn_about_audio(recordings) == 0


# -- temporary files of killed writes ------------------------------------------------------------


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporary_files_of_killed_writes_are_removed_by_the_next_write(tmp_path) -> None:
    """A SIGKILL during a checkpoint write left .epoch-3.pt.<random>.tmp.pt, which no later run removed."""
    from less.utils import _HOST

    target = tmp_path / "exp" / "epoch-3.pt"
    target.parent.mkdir()
    killed_here = target.parent / f".epoch-3.pt.{_HOST}-{dead_pid()}.k1ll3d00.tmp.pt"
    running_here = target.parent / f".epoch-3.pt.{_HOST}-{os.getppid()}.runn1ng0.tmp.pt"
    old_unnamed = target.parent / ".epoch-3.pt.q8f2k1zz.tmp.pt"  # a name the old code made
    recent_unnamed = target.parent / ".epoch-3.pt.a7b7c7d7.tmp.pt"
    other_host = target.parent / ".epoch-3.pt.otherhost-12.b1b2b3b4.tmp.pt"
    other_target = target.parent / f".epoch-4.pt.{_HOST}-{dead_pid()}.x0x0x0x0.tmp.pt"
    unrelated = target.parent / ".epoch-3.pt.notes.txt"
    for path in (
        killed_here,
        running_here,
        old_unnamed,
        recent_unnamed,
        other_host,
        other_target,
        unrelated,
    ):
        path.write_bytes(b"x" * 100)
    an_hour_ago = time.time() - 2 * 3600
    os.utime(old_unnamed, (an_hour_ago, an_hour_ago))

    with atomic_path(target) as tmp:
        assert tmp.name.startswith(f".epoch-3.pt.{_HOST}-{os.getpid()}.") and tmp.name.endswith(
            ".tmp.pt"
        )
        tmp.write_bytes(b"checkpoint")
    assert target.read_bytes() == b"checkpoint"
    assert not killed_here.exists() and not old_unnamed.exists() and not other_target.exists()
    assert (
        running_here.exists()
        and recent_unnamed.exists()
        and other_host.exists()
        and unrelated.exists()
    )
    assert not any(
        p.name.startswith(f".epoch-3.pt.{_HOST}-{os.getpid()}") for p in target.parent.iterdir()
    )

    # the same for one target, and for a whole directory at a trainer's start
    again = target.parent / f".epoch-3.pt.{_HOST}-{dead_pid()}.zzzzzzzz.tmp.pt"
    again.write_bytes(b"x")
    assert remove_stale_temp_files(target) == [again]
    cuts = tmp_path / "data" / "cuts.jsonl.gz"
    cuts.parent.mkdir()
    stale = cuts.parent / f".cuts.jsonl.gz.{_HOST}-{dead_pid()}.abcdefgh.tmp.jsonl.gz"
    stale.write_bytes(b"x")
    assert remove_stale_temp_files_in(cuts.parent) == [stale]


def test_keep_cuts_keeps_order_without_lhotse_lambda_warning(tmp_path: Path):
    import warnings

    from lhotse import CutSet
    from lhotse.testing.dummies import dummy_cut

    from less.data.cuts import keep_cuts

    CutSet.from_cuts(dummy_cut(i, duration=1.0 + i) for i in (3, 0, 2, 1)).to_file(
        tmp_path / "cuts.jsonl.gz"
    )
    cuts = CutSet.from_jsonl_lazy(tmp_path / "cuts.jsonl.gz")  # as the trainers open them
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CutSet.filter(lambda ...) warns: that would fail here
        kept = keep_cuts(cuts, lambda c: c.duration >= 2.0)
    ids = [c.id for c in cuts]
    assert [c.id for c in kept] == [ids[0], ids[2], ids[3]] and len(kept) == 3
