"""Stage 1: split long unlabeled recordings into speech segments with Silero VAD.

Reads a recording manifest (any audio lhotse can read; resampled to 16 kHz for the VAD)
and writes a cut set with one cut per speech segment of at most ``--max-segment``
seconds. Each cut carries one supervision spanning it with ``text=None`` (unlabeled:
the pseudo-labelling stage fills it in).

Hidden references (the mini corpus keeps the true utterances of its unlabeled audio in
``custom["ref_text"]``): when ``--supervisions`` is given, every reference utterance
whose midpoint falls inside a segment is attached to that segment's supervision as
``custom["ref_text"]`` / ``custom["ref_translated_text"]`` — for measuring pseudo-label
error only, never as a training label.

Input: a recording manifest (``--recordings``), or a directory of audio files
(``--audio-dir``: every file below it whose extension is in ``--audio-extensions``,
recording id = its path relative to the directory with ``/`` replaced by ``_`` and the
extension removed) — how a recipe takes a user's own long recordings without a
preparer of their own.

Resumable: finished recordings are appended to ``<out>.partial.jsonl`` as they are done;
a rerun after a kill continues from there. The output is written atomically at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from less.utils import save_cuts_atomic, setup_logging

log = logging.getLogger("less.vad_segment")
VAD_SAMPLE_RATE = 16000


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recordings", type=Path, help="recording manifest of long audio")
    p.add_argument("--audio-dir", type=Path, help="directory of long audio files (instead of --recordings)")
    p.add_argument("--audio-extensions", default="wav,flac,ogg,opus,mp3,m4a",
                   help="with --audio-dir: comma-separated extensions of the files to use")
    p.add_argument("--supervisions", type=Path, help="hidden reference utterances (reporting only)")
    p.add_argument("--out-cuts", type=Path, required=True, help="output cut set (.jsonl.gz)")
    p.add_argument("--language", default=None, help="language code stored in the supervisions (zh, es)")
    p.add_argument("--threshold", type=float, default=0.5, help="speech probability threshold")
    p.add_argument("--min-speech", type=float, default=0.25, help="drop speech shorter than this (s)")
    p.add_argument("--min-silence", type=float, default=0.3, help="silence needed to end a segment (s)")
    p.add_argument("--max-segment", type=float, default=30.0, help="split segments longer than this (s)")
    p.add_argument("--min-segment", type=float, default=0.5, help="drop final segments shorter than this (s)")
    p.add_argument("--padding", type=float, default=0.1, help="pad each segment on both sides (s)")
    p.add_argument("--chunk", type=float, default=600.0,
                   help="process long recordings in chunks of this many seconds (bounded memory)")
    p.add_argument("--channel", type=int, default=0, help="channel of multi-channel recordings to use")
    return p


def detect_speech(audio: torch.Tensor, model, args: argparse.Namespace) -> list[tuple[float, float]]:
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(
        audio,
        model,
        threshold=args.threshold,
        sampling_rate=VAD_SAMPLE_RATE,
        min_speech_duration_ms=int(args.min_speech * 1000),
        max_speech_duration_s=args.max_segment - 2 * args.padding,
        min_silence_duration_ms=int(args.min_silence * 1000),
        speech_pad_ms=int(args.padding * 1000),
    )
    return [(s["start"] / VAD_SAMPLE_RATE, s["end"] / VAD_SAMPLE_RATE) for s in stamps]


def segment_recording(recording, model, args: argparse.Namespace) -> list[tuple[float, float]]:
    """Speech segments (start, end) in seconds; chunks are stitched where speech crosses a border."""
    segments: list[tuple[float, float]] = []
    offset = 0.0
    while offset < recording.duration - 1e-3:
        duration = min(args.chunk, recording.duration - offset)
        try:
            samples = recording.load_audio(offset=offset, duration=duration, channels=args.channel)
        except Exception as e:
            paths = ", ".join(s.source for s in recording.sources)
            raise RuntimeError(f"recording {recording.id} ({paths}): cannot read audio: {e}") from e
        audio = torch.from_numpy(samples).reshape(-1).float()
        if recording.sampling_rate != VAD_SAMPLE_RATE:
            from lhotse.augmentation import Resample

            audio = torch.from_numpy(
                Resample(recording.sampling_rate, VAD_SAMPLE_RATE)(audio.numpy()[None])[0]
            )
        model.reset_states()
        for start, end in detect_speech(audio, model, args):
            start, end = start + offset, min(end + offset, recording.duration)
            if segments and start - segments[-1][1] < 0.05 and end - segments[-1][0] <= args.max_segment:
                segments[-1] = (segments[-1][0], end)  # speech continued across the chunk border
            else:
                segments.append((start, end))
        offset += duration
    return [(round(s, 3), round(e, 3)) for s, e in segments if e - s >= args.min_segment]


def attach_references(cut, references: list) -> None:
    """Hidden truth of the utterances whose midpoint lies inside ``cut``."""
    inside = [
        s for s in references if cut.start <= s.start + s.duration / 2 < cut.start + cut.duration
    ]
    if not inside:
        return
    inside.sort(key=lambda s: s.start)
    joiner = "" if cut.supervisions[0].language == "zh" else " "
    custom = cut.supervisions[0].custom
    custom["ref_text"] = joiner.join((s.custom or {}).get("ref_text") or s.text or "" for s in inside)
    translations = [((s.custom or {}).get("ref_translated_text") or {}).get("en") for s in inside]
    if all(t is not None for t in translations):
        custom["ref_translated_text"] = {"en": " ".join(translations)}
    custom["ref_utterances"] = len(inside)


def recordings_from_dir(audio_dir: Path, extensions: str):
    """Recordings of the audio files below ``audio_dir``; unreadable files are errors naming them."""
    from lhotse import Recording, RecordingSet

    if not audio_dir.is_dir():
        raise FileNotFoundError(f"audio directory {audio_dir} does not exist or is not a directory")
    wanted = {"." + e.strip().lower().lstrip(".") for e in extensions.split(",") if e.strip()}
    paths = sorted(p for p in audio_dir.rglob("*")
                   if p.suffix.lower() in wanted and p.is_file() and not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no audio files ({', '.join(sorted(wanted))}) found below {audio_dir}")
    recordings = []
    for path in tqdm(paths, desc="reading audio headers", unit="file"):
        recording_id = str(path.relative_to(audio_dir).with_suffix("")).replace("/", "_")
        try:
            recordings.append(Recording.from_file(path, recording_id=recording_id))
        except Exception as e:  # lhotse/soundfile raise their own error types
            raise RuntimeError(f"cannot read audio file {path}: {e}") from e
    duplicates = len(recordings) - len({r.id for r in recordings})
    if duplicates:
        raise ValueError(f"{audio_dir}: {duplicates} recording id(s) occur twice (files differing only by "
                         "extension, or by '/' against '_'); rename or remove them")
    return RecordingSet.from_recordings(recordings)


def load_partial(path: Path) -> dict[str, list[tuple[float, float]]]:
    done: dict[str, list[tuple[float, float]]] = {}
    if not path.is_file():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: ignoring a truncated line (interrupted run)", path)
                continue
            done[entry["recording_id"]] = [tuple(x) for x in entry["segments"]]
    return done


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if args.out_cuts.is_file():
        log.info("%s exists: nothing to do", args.out_cuts)
        return
    from lhotse import CutSet, MonoCut, SupervisionSegment, load_manifest
    from silero_vad import load_silero_vad

    if (args.recordings is None) == (args.audio_dir is None):
        raise SystemExit("vad_segment: give exactly one of --recordings and --audio-dir")
    if args.recordings is not None:
        recordings = load_manifest(args.recordings)
    else:
        recordings = recordings_from_dir(args.audio_dir, args.audio_extensions)
    references = defaultdict(list)
    if args.supervisions:
        for sup in load_manifest(args.supervisions):
            references[sup.recording_id].append(sup)
    torch.set_num_threads(1)  # Silero runs fastest single-threaded on short windows
    model = load_silero_vad()
    partial = args.out_cuts.with_name(args.out_cuts.name + ".partial.jsonl")
    done = load_partial(partial)
    if done:
        log.info("resuming: %d of %d recordings already segmented", len(done), len(recordings))
    begin = time.time()
    with open(partial, "a", encoding="utf-8") as progress:
        for recording in tqdm(recordings, desc="VAD", unit="rec"):
            if recording.id in done:
                continue
            done[recording.id] = segment_recording(recording, model, args)
            progress.write(json.dumps({"recording_id": recording.id, "segments": done[recording.id]}) + "\n")
            progress.flush()

    cuts = []
    for recording in recordings:
        for start, end in done[recording.id]:
            cut_id = f"{recording.id}-{round(start * 100):07d}-{round(end * 100):07d}"
            sup = SupervisionSegment(
                id=cut_id, recording_id=recording.id, start=start, duration=round(end - start, 3),
                channel=args.channel, text=None, language=args.language, custom={},
            )
            cut = MonoCut(
                id=cut_id, start=start, duration=round(end - start, 3), channel=args.channel,
                recording=recording, supervisions=[sup.with_offset(-start)],
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
        len(recordings), total / 3600, len(cuts), speech / 3600, 100 * speech / max(total, 1e-9),
        speech / max(len(cuts), 1), time.time() - begin,
    )
    if references:
        n_refs = sum(len(v) for v in references.values())
        covered = sum(c.supervisions[0].custom.get("ref_utterances", 0) for c in cuts)
        log.info("reference utterances inside a segment: %d of %d", covered, n_refs)


if __name__ == "__main__":
    main()
