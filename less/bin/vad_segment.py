"""Stage 1: split long unlabeled recordings into speech segments with Silero VAD.

Reads a recording manifest (any audio lhotse can read; resampled to 16 kHz for the VAD)
and writes a cut set with one cut per speech segment of at most ``--max-segment``
seconds. Each cut carries one supervision spanning it with ``text=None`` (unlabeled:
the pseudo-labelling stage fills it in).

Hidden references (the mini corpus keeps the true utterances of its unlabeled audio in
``custom["ref_text"]``): when ``--supervisions`` is given, each segment's supervision gets
the part of the reference that lies inside it in time, as ``custom["ref_text"]`` /
``custom["ref_translated_text"]`` — for measuring pseudo-label error only, never as a
training label. A segment holding half an utterance gets (about) half its words, not all
or none of them; see :func:`attach_references` for the rules and their approximations.

Input: a recording manifest (``--recordings``), or a directory of audio files
(``--audio-dir``: every file below it whose extension is in ``--audio-extensions``,
recording id = its path relative to the directory with ``/`` replaced by ``_`` and the
extension removed) — how a recipe takes a user's own long recordings without a
preparer of their own.

Resumable: finished recordings are appended to ``<out>.partial.jsonl`` as they are done;
a rerun after a kill continues from there. The output is written atomically at the end.

Bad audio: a file that cannot be read is an error naming it, or, with ``--skip-bad-audio``,
a logged skip (each file and why, and the count; a rerun tries them again). WAV files cut
short (their header announces more audio than the file holds: a copy or recording that was
interrupted; they are read as far as they go) and files too short to hold a word
(< 0.1 s) are warned about.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import struct
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from less.data.text import LANGUAGES, join_units, scoring_units
from less.utils import (
    already_done,
    cli_parser,
    config_from_args,
    config_options,
    progress_bar,
    read_progress,
    save_cuts_atomic,
    setup_logging,
)

log = logging.getLogger("less.vad_segment")
VAD_SAMPLE_RATE = 16000
MIN_AUDIO_SECONDS = 0.1  # shorter than any word: a file this short is almost certainly broken


@dataclass(frozen=True)
class VadConfig:
    """How Silero's speech probabilities become segments (times in seconds)."""

    threshold: float = 0.5
    min_speech: float = 0.25
    min_silence: float = 0.3
    max_segment: float = 30.0
    min_segment: float = 0.5
    padding: float = 0.1
    chunk: float = 600.0
    channel: int = 0


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--recordings", type=Path, help="recording manifest of long audio")
    p.add_argument(
        "--audio-dir", type=Path, help="directory of long audio files (instead of --recordings)"
    )
    p.add_argument(
        "--audio-extensions",
        default="wav,flac,ogg,opus,mp3,m4a",
        help="with --audio-dir: comma-separated extensions of the files to use",
    )
    p.add_argument("--supervisions", type=Path, help="hidden reference utterances (reporting only)")
    p.add_argument("--out-cuts", type=Path, required=True, help="output cut set (.jsonl.gz)")
    p.add_argument(
        "--language", default=None, help="language code stored in the supervisions (zh, es)"
    )
    config_options(
        p,
        VadConfig(),
        threshold="speech probability threshold",
        min_speech="drop speech shorter than this (s)",
        min_silence="silence needed to end a segment (s)",
        max_segment="split segments longer than this (s)",
        min_segment="drop final segments shorter than this (s)",
        padding="pad each segment on both sides (s)",
        chunk="process long recordings in chunks of this many seconds (bounded memory)",
        channel="channel of multi-channel recordings to use",
    )
    p.add_argument(
        "--skip-bad-audio",
        action="store_true",
        help="skip audio files that cannot be read (each is logged with the reason, and counted) "
        "instead of stopping at the first one",
    )
    p.add_argument("--log-file", type=Path, default=None, help="also log to this file")
    return p


class BadAudioError(RuntimeError):
    """An audio file that cannot be read; the message names it."""


def detect_speech(audio: torch.Tensor, model, cfg: VadConfig) -> list[tuple[float, float]]:
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(
        audio,
        model,
        threshold=cfg.threshold,
        sampling_rate=VAD_SAMPLE_RATE,
        min_speech_duration_ms=int(cfg.min_speech * 1000),
        max_speech_duration_s=cfg.max_segment - 2 * cfg.padding,
        min_silence_duration_ms=int(cfg.min_silence * 1000),
        speech_pad_ms=int(cfg.padding * 1000),
    )
    return [(s["start"] / VAD_SAMPLE_RATE, s["end"] / VAD_SAMPLE_RATE) for s in stamps]


def segment_recording(recording, model, cfg: VadConfig) -> list[tuple[float, float]]:
    """Speech segments (start, end) in seconds; chunks are stitched where speech crosses a border."""
    segments: list[tuple[float, float]] = []
    offset = 0.0
    while offset < recording.duration - 1e-3:
        duration = min(cfg.chunk, recording.duration - offset)
        try:
            samples = recording.load_audio(offset=offset, duration=duration, channels=cfg.channel)
        except Exception as e:
            paths = ", ".join(s.source for s in recording.sources)
            raise BadAudioError(
                f"recording {recording.id} ({paths}): cannot read audio: {e}"
            ) from e
        audio = torch.from_numpy(samples).reshape(-1).float()
        if recording.sampling_rate != VAD_SAMPLE_RATE:
            from lhotse.augmentation import Resample

            audio = torch.from_numpy(
                Resample(recording.sampling_rate, VAD_SAMPLE_RATE)(audio.numpy()[None])[0]
            )
        model.reset_states()
        for start, end in detect_speech(audio, model, cfg):
            start, end = start + offset, min(end + offset, recording.duration)
            if (
                segments
                and start - segments[-1][1] < 0.05
                and end - segments[-1][0] <= cfg.max_segment
            ):
                segments[-1] = (segments[-1][0], end)  # speech continued across the chunk border
            else:
                segments.append((start, end))
        offset += duration
    return [(round(s, 3), round(e, 3)) for s, e in segments if e - s >= cfg.min_segment]


def reference_text(sup) -> str:
    """The hidden true text of a reference supervision (``custom["ref_text"]``, else ``text``)."""
    return (sup.custom or {}).get("ref_text") or sup.text or ""


def _units(text: str, lang: str | None) -> list[str]:
    """Scoring units (characters for zh, words otherwise); plain words when the language is unknown."""
    return scoring_units(text, lang) if lang in LANGUAGES else text.split()


def timed_units(sup, lang: str | None) -> list[tuple[float, str]]:
    """``(time, unit)`` of each scoring unit of reference ``sup``, in recording time.

    With a word alignment (lhotse's ``sup.alignment["word"]``) a word's units sit at that
    word's centre. Without one (neither the mini corpus nor WenetSpeech stores any) the
    utterance's units are spread uniformly over its duration: unit ``i`` of ``n`` is put at
    ``start + (i + 0.5) * duration / n``. This is an APPROXIMATION: speaking rate varies
    within an utterance and a Latin word lasts longer than a Mandarin character, so a cut
    inside an utterance may put a unit or two on the wrong side of it.
    """
    words = (sup.alignment or {}).get("word")
    if words:
        return [(w.start + w.duration / 2, u) for w in words for u in _units(w.symbol, lang)]
    units = _units(reference_text(sup), lang)
    step = sup.duration / max(len(units), 1)
    return [(sup.start + (i + 0.5) * step, u) for i, u in enumerate(units)]


def attach_references(cut, references: list) -> None:
    """Attach to ``cut``'s supervision the hidden truth that lies inside it in time.

    * ``ref_text``: the reference units (:func:`timed_units`) whose time falls in
      ``[cut.start, cut.end)``, in time order; with non-overlapping segments each unit
      goes to at most one segment, and units in the gaps between segments to none.
    * ``ref_translated_text``: translations have no time alignment to the source words,
      so an utterance's translation is kept whole when more than half of the utterance's
      duration lies inside the cut, and dropped otherwise (each translation goes to at
      most one segment). Set only when at least one translation is kept and every such
      utterance has one.
    * ``ref_utterances``: how many utterances have more than half their duration inside.
    * ``ref_coverage``: ``[[utterance id, units inside, units in all], ...]`` for every
      utterance with a unit inside: how much of each reference this segment holds.

    Nothing is attached when the cut holds no reference unit and no utterance's majority.
    ``ref_text`` is normalised text (units put back together by ``join_units``), which
    scoring normalises the same way again.
    """
    sup = cut.supervisions[0]
    start, end = cut.start, cut.end
    lang = sup.language
    taken: list[str] = []
    coverage: list[list] = []
    mostly_inside = []
    for ref in sorted(references, key=lambda s: s.start):
        if ref.end <= start or ref.start >= end:
            continue
        lang = lang or ref.language
        units = timed_units(ref, lang)
        inside = [u for t, u in units if start <= t < end]
        if inside:
            taken.extend(inside)
            coverage.append([ref.id, len(inside), len(units)])
        if min(end, ref.end) - max(start, ref.start) > ref.duration / 2:
            mostly_inside.append(ref)
    if not coverage and not mostly_inside:
        return
    custom = sup.custom
    custom["ref_text"] = join_units(taken, lang or "")
    translations = [
        ((s.custom or {}).get("ref_translated_text") or {}).get("en") for s in mostly_inside
    ]
    if translations and all(t is not None for t in translations):
        custom["ref_translated_text"] = {"en": " ".join(translations)}
    custom["ref_utterances"] = len(mostly_inside)
    custom["ref_coverage"] = coverage


def wav_header_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a RIFF WAV file against its size, or None.

    soundfile (and so lhotse) reads a WAV file cut short as far as it goes and reports the
    shorter duration without a word; the header still says how much audio there should be.
    Files that are not RIFF WAV (whatever their name) are left to soundfile.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "<" if head[:4] == b"RIFF" else ">"
            size = os.fstat(f.fileno()).st_size
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return "it ends inside its header (no audio data)"
                declared = struct.unpack(f"{order}I", chunk[4:])[0]
                if chunk[:4] == b"data":
                    present = size - f.tell()
                    if declared in (0, 0xFFFFFFFF) and present > 0:
                        return "its header gives no audio size (the writer stopped before finishing the file)"
                    if declared > present:
                        return (
                            f"it is cut short: its header announces {declared} bytes of audio, the file holds "
                            f"{present} ({100 * present / declared:.0f}%)"
                        )
                    return None
                f.seek(declared + (declared & 1), os.SEEK_CUR)
    except OSError:
        return None


def warn_about_audio(recordings) -> int:
    """Log truncated WAV files and files too short to hold a word; return how many."""
    warned = 0
    for recording in recordings:
        for source in recording.sources:
            if source.type != "file":
                continue
            problem = (
                wav_header_problem(source.source)
                if str(source.source).lower().endswith(".wav")
                else None
            )
            if problem is None and recording.duration < MIN_AUDIO_SECONDS:
                problem = f"it holds {recording.duration:.3f} s of audio, too short for a word"
            if problem is not None:
                warned += 1
                log.warning("recording %s (%s): %s", recording.id, source.source, problem)
    if warned:
        log.warning(
            "%d audio file(s) look damaged or empty (see above); they are used as far as they go",
            warned,
        )
    return warned


def log_skipped(skipped: list[tuple[str, str]]) -> None:
    if skipped:
        log.warning("skipped %d unreadable audio file(s) (--skip-bad-audio):", len(skipped))
        for path, reason in skipped:
            log.warning("  skipped %s: %s", path, reason)


def recordings_from_dir(
    audio_dir: Path,
    extensions: str,
    skip_bad: bool = False,
    skipped: list[tuple[str, str]] | None = None,
):
    """Recordings of the audio files below ``audio_dir``. An unreadable file is an error naming
    it, or with ``skip_bad`` a logged skip appended to ``skipped`` as ``(path, reason)``."""
    from lhotse import Recording, RecordingSet

    if not audio_dir.is_dir():
        raise FileNotFoundError(f"audio directory {audio_dir} does not exist or is not a directory")
    wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    paths = sorted(
        p
        for p in audio_dir.rglob("*")
        if p.suffix.lower() in wanted and p.is_file() and not p.name.startswith(".")
    )
    if not paths:
        raise FileNotFoundError(
            f"no audio files ({', '.join(sorted(wanted))}) found below {audio_dir}"
        )
    recordings = []
    for path in progress_bar(paths, desc="reading audio headers", unit="file"):
        recording_id = str(path.relative_to(audio_dir).with_suffix("")).replace("/", "_")
        try:
            recordings.append(Recording.from_file(path, recording_id=recording_id))
        except Exception as e:  # lhotse/soundfile raise their own error types
            reason = " ".join(str(e).split())[:300]
            if not skip_bad:
                raise BadAudioError(
                    f"cannot read audio file {path}: {reason} (--skip-bad-audio skips such files)"
                ) from e
            log.warning("cannot read audio file %s, skipping it: %s", path, reason)
            if skipped is not None:
                skipped.append((str(path), reason))
    if not recordings:
        raise BadAudioError(f"none of the {len(paths)} audio files below {audio_dir} can be read")
    duplicates = len(recordings) - len({r.id for r in recordings})
    if duplicates:
        raise ValueError(
            f"{audio_dir}: {duplicates} recording id(s) occur twice (files differing only by "
            "extension, or by '/' against '_'); rename or remove them"
        )
    return RecordingSet.from_recordings(recordings)


def load_partial(path: Path) -> dict[str, list[tuple[float, float]]]:
    return {
        entry["recording_id"]: [tuple(x) for x in entry["segments"]]
        for entry in read_progress(path, log)
    }


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging(args.log_file)
    if already_done(args.out_cuts, log):
        return
    from lhotse import CutSet, MonoCut, SupervisionSegment
    from silero_vad import load_silero_vad

    from less.data.cuts import read_manifest

    if (args.recordings is None) == (args.audio_dir is None):
        raise SystemExit("vad_segment: give exactly one of --recordings and --audio-dir")
    skipped: list[tuple[str, str]] = []
    if args.recordings is not None:
        recordings = read_manifest(args.recordings, "recording manifest")
    else:
        recordings = recordings_from_dir(
            args.audio_dir, args.audio_extensions, args.skip_bad_audio, skipped
        )
    warn_about_audio(recordings)
    references = defaultdict(list)
    if args.supervisions:
        for sup in read_manifest(args.supervisions, "supervision manifest"):
            references[sup.recording_id].append(sup)
    torch.set_num_threads(1)  # Silero runs fastest single-threaded on short windows
    model = load_silero_vad()
    vad = config_from_args(VadConfig, args)
    partial = args.out_cuts.with_name(args.out_cuts.name + ".partial.jsonl")
    done = load_partial(partial)
    if done:
        log.info("resuming: %d of %d recordings already segmented", len(done), len(recordings))
    begin = time.time()
    with open(partial, "a", encoding="utf-8") as progress:
        for recording in progress_bar(recordings, desc="VAD", unit="rec"):
            if recording.id in done:
                continue
            try:
                done[recording.id] = segment_recording(recording, model, vad)
            except BadAudioError as error:
                if not args.skip_bad_audio:
                    raise BadAudioError(f"{error} (--skip-bad-audio skips such files)") from error
                log.warning("%s; skipping it", error)
                skipped.append((", ".join(str(s.source) for s in recording.sources), str(error)))
                continue
            progress.write(
                json.dumps({"recording_id": recording.id, "segments": done[recording.id]}) + "\n"
            )
            progress.flush()

    recordings = [recording for recording in recordings if recording.id in done]
    if not recordings:
        log_skipped(skipped)
        raise BadAudioError("no recording could be read: nothing to segment")
    cuts = []
    for recording in recordings:
        for start, end in done[recording.id]:
            cut_id = f"{recording.id}-{round(start * 100):07d}-{round(end * 100):07d}"
            sup = SupervisionSegment(
                id=cut_id,
                recording_id=recording.id,
                start=start,
                duration=round(end - start, 3),
                channel=vad.channel,
                text=None,
                language=args.language,
                custom={},
            )
            cut = MonoCut(
                id=cut_id,
                start=start,
                duration=round(end - start, 3),
                channel=vad.channel,
                recording=recording,
                supervisions=[sup.with_offset(-start)],
            )
            attach_references(cut, references.get(recording.id, []))
            cuts.append(cut)
    cutset = CutSet.from_cuts(cuts)
    save_cuts_atomic(cutset, args.out_cuts)
    partial.unlink()
    total = sum(r.duration for r in recordings)
    speech = sum(c.duration for c in cuts)
    log.info(
        "%d recordings (%.2f h) -> %d segments, %.2f h of speech (%.0f%%), mean %.1f s, in %.0f s",
        len(recordings),
        total / 3600,
        len(cuts),
        speech / 3600,
        100 * speech / max(total, 1e-9),
        speech / max(len(cuts), 1),
        time.time() - begin,
    )
    log_skipped(skipped)
    if references:
        n_refs = sum(len(v) for v in references.values())
        covered = sum(c.supervisions[0].custom.get("ref_utterances", 0) for c in cuts)
        log.info("reference utterances mostly inside a segment: %d of %d", covered, n_refs)
        n_units = sum(
            len(timed_units(s, args.language or s.language))
            for refs in references.values()
            for s in refs
        )
        units_in = sum(
            n for c in cuts for _, n, _ in c.supervisions[0].custom.get("ref_coverage", [])
        )
        log.info(
            "reference units inside a segment: %d of %d (%.1f%%)",
            units_in,
            n_units,
            100 * units_in / max(n_units, 1),
        )


if __name__ == "__main__":
    main()
