"""Stage 0 of the generic recipe (egs/lhotse/less): a user's lhotse manifests, checked, in the recipe's roles.

A corpus prepared by any of lhotse's recipes (``lhotse prepare <corpus>``) or by hand is a set of
*parts*, each either a recording + supervision manifest pair
``<prefix>_recordings_<part>.jsonl.gz`` / ``<prefix>_supervisions_<part>.jsonl.gz`` or a cut set
``<prefix>_cuts_<part>.jsonl.gz`` (with recordings). This stage gives the parts their roles
and writes them, under the recipe's names, to ``--output-dir``:

* ``<corpus>_{recordings,supervisions}_train``: the supervised parts, combined;
* ``<corpus>_{recordings,supervisions}_dev``: the part that selects models;
* ``<corpus>_{recordings,supervisions}_<test>``: each test part (``-`` in its name becomes ``_``);
* ``<corpus>_recordings_unsup`` (+ ``_supervisions_unsup`` when the parts have segments): the
  unlabeled parts, combined, with every supervision's text moved to ``custom["ref_text"]``
  (hidden: only the pseudo-label error report reads it; training never sees it).

Checks before anything is written, each an error that names the part, the file and the item:
a part that is missing (the message lists the parts found), an empty manifest, a part without
supervisions or transcripts where the role needs them, supervisions of recordings the
manifest lacks, or of a channel the recording does not have, or that end after their
recording; audio whose file disagrees with its manifest (sampling rate, channels: the first
``--check-audio`` recordings of each part are opened); multi-channel recordings of the
unlabeled set without segments naming a channel, or longer than ``--max-unsup-duration``
(VAD them first); and a recording in both the unlabeled set
and a labelled part. Audio at another sampling rate than the model's is fine (stage 2
resamples it).

Example (LibriSpeech after ``lhotse prepare librispeech``)::

    python -m less.local.lhotse_manifests --manifest-dir data/lhotse --prefix librispeech \\
        --train train-clean-100 --unsup "train-clean-360 train-other-500" --dev dev-clean \\
        --test "test-clean test-other" --output-dir data/manifests --corpus librispeech
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from less.data.cuts import manifest_path, read_manifest
from less.utils import cli_parser, setup_logging, str2bool

log = logging.getLogger("less.local.lhotse_manifests")

DURATION_TOLERANCE = (
    0.1  # seconds a supervision may run past its recording's end (lhotse's rounding)
)


class PartError(ValueError):
    """A part of the user's manifests that the recipe cannot use; the message says why and where."""


@dataclass
class Part:
    name: str
    recordings: Any  # RecordingSet
    supervisions: Any  # SupervisionSet or None
    source: str  # the file(s) read, for messages


def split_name(part: str) -> str:
    """The recipe's name of a test part: ``test-clean`` -> ``test_clean``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", part)
    if not name or name in {"train", "dev", "unsup"}:
        raise PartError(
            f"a test part cannot be called {part!r} (the recipe's own names are train, dev, unsup)"
        )
    return name


def available_parts(manifest_dir: Path, prefix: str) -> list[str]:
    head = f"{prefix}_" if prefix else ""
    found = set()
    for path in manifest_dir.glob(f"{head}*.jsonl.gz"):
        match = re.fullmatch(
            rf"{re.escape(head)}(recordings|supervisions|cuts)_(.+)\.jsonl\.gz", path.name
        )
        if match:
            found.add(match.group(2))
    return sorted(found)


def _input_path(manifest_dir: Path, prefix: str, kind: str, part: str) -> Path:
    return manifest_dir / f"{prefix + '_' if prefix else ''}{kind}_{part}.jsonl.gz"


def load_part(manifest_dir: Path, prefix: str, part: str) -> Part:
    """A part as recordings + supervisions (from a manifest pair, or from a cut set)."""
    from lhotse import RecordingSet, SupervisionSet

    recordings_path = _input_path(manifest_dir, prefix, "recordings", part)
    supervisions_path = _input_path(manifest_dir, prefix, "supervisions", part)
    cuts_path = _input_path(manifest_dir, prefix, "cuts", part)
    if recordings_path.is_file():
        recordings = read_manifest(recordings_path, f"recording manifest of part {part!r}")
        if not isinstance(recordings, RecordingSet) or len(recordings) == 0:
            raise PartError(
                f"part {part!r}: {recordings_path} is empty or not a recording manifest"
            )
        supervisions = None
        if supervisions_path.is_file():
            supervisions = read_manifest(
                supervisions_path, f"supervision manifest of part {part!r}"
            )
            if not isinstance(supervisions, SupervisionSet) or len(supervisions) == 0:
                raise PartError(
                    f"part {part!r}: {supervisions_path} is empty or not a supervision manifest"
                )
        source = str(recordings_path) + (
            f" + {supervisions_path}" if supervisions is not None else ""
        )
        return Part(part, recordings, supervisions, source)
    if cuts_path.is_file():
        from less.data.cuts import read_cuts

        cuts = read_cuts(cuts_path)
        if len(cuts) == 0:
            raise PartError(f"part {part!r}: {cuts_path} is empty")
        if any(not cut.has_recording for cut in cuts):
            raise PartError(
                f"part {part!r}: {cuts_path} has cuts without a recording (features only); "
                "the recipe computes its own features from the audio"
            )
        recordings, supervisions, _ = cuts.decompose()
        return Part(part, recordings, supervisions if len(supervisions) else None, str(cuts_path))
    found = available_parts(manifest_dir, prefix)
    raise PartError(
        f"part {part!r}: neither {recordings_path.name} nor {cuts_path.name} is in {manifest_dir} "
        f"(parts found there with prefix {prefix!r}: {', '.join(found) if found else 'none'})"
    )


def check_supervisions(part: Part, need_text: bool) -> None:
    """Supervisions refer to recordings and channels that exist, end inside them, have text if needed."""
    if part.supervisions is None:
        if need_text:
            raise PartError(
                f"part {part.name!r} ({part.source}) has no supervisions; as a labelled part it needs "
                "transcripts"
            )
        return
    recordings = {r.id: r for r in part.recordings}
    for sup in part.supervisions:
        recording = recordings.get(sup.recording_id)
        if recording is None:
            raise PartError(
                f"part {part.name!r} ({part.source}): supervision {sup.id} refers to recording "
                f"{sup.recording_id}, which is not in the part's recordings"
            )
        channels = sup.channel if isinstance(sup.channel, list) else [sup.channel]
        missing = [c for c in channels if c not in recording.channel_ids]
        if missing:
            raise PartError(
                f"part {part.name!r} ({part.source}): supervision {sup.id} is on channel(s) {missing} "
                f"of recording {recording.id}, which has channels {recording.channel_ids}"
            )
        if sup.end > recording.duration + DURATION_TOLERANCE:
            raise PartError(
                f"part {part.name!r} ({part.source}): supervision {sup.id} ends at {sup.end:.2f} s, "
                f"after the end of recording {recording.id} ({recording.duration:.2f} s)"
            )
        if need_text and not (sup.text or "").strip():
            raise PartError(
                f"part {part.name!r} ({part.source}): supervision {sup.id} has no transcript; "
                "every supervision of a labelled part needs one"
            )


def check_audio(part: Part, count: int) -> None:
    """The first ``count`` recordings: the file's sampling rate and channels match the manifest."""
    import soundfile as sf

    for recording in list(part.recordings)[:count]:
        for source in recording.sources:
            if source.type != "file":
                continue
            try:
                info = sf.info(source.source)
            except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
                raise PartError(
                    f"part {part.name!r}: recording {recording.id}: cannot read {source.source} "
                    f"({error})"
                ) from None
            if info.samplerate != recording.sampling_rate:
                raise PartError(
                    f"part {part.name!r} ({part.source}): recording {recording.id} says {recording.sampling_rate} Hz, "
                    f"but {source.source} is at {info.samplerate} Hz; prepare the manifest again from the files"
                )
            if len(source.channels) == 1 and info.channels > 1 and recording.num_channels == 1:
                continue  # one channel taken from a multi-channel file: fine
            if info.channels != len(source.channels):
                raise PartError(
                    f"part {part.name!r} ({part.source}): recording {recording.id} says channel(s) {source.channels}, "
                    f"but {source.source} has {info.channels}; prepare the manifest again from the files"
                )


def hide_text(supervisions):
    """Unlabeled segments: ``text`` moved into ``custom["ref_text"]`` (reports only)."""
    from lhotse import SupervisionSet
    from lhotse.utils import fastcopy

    return SupervisionSet.from_segments(
        fastcopy(s, text=None, custom={**(s.custom or {}), "ref_text": s.text}) if s.text else s
        for s in supervisions
    )


def combine(parts: list[Part]):
    from lhotse import RecordingSet, SupervisionSet

    recordings = RecordingSet.from_recordings(r for p in parts for r in p.recordings)
    ids = [r.id for r in recordings]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise PartError(
            f"recording {duplicate} is in more than one of the parts {[p.name for p in parts]}"
        )
    with_sups = [p for p in parts if p.supervisions is not None]
    if with_sups and len(with_sups) != len(parts):
        raise PartError(
            f"parts {[p.name for p in parts]} mix parts with and without supervisions; "
            "give them all segments or none"
        )
    supervisions = (
        SupervisionSet.from_segments(s for p in with_sups for s in p.supervisions)
        if with_sups
        else None
    )
    return recordings, supervisions


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--manifest-dir", type=Path, required=True, help="directory of the user's lhotse manifests"
    )
    p.add_argument(
        "--prefix",
        default="",
        help="corpus prefix of their file names (librispeech_..., '' for none)",
    )
    p.add_argument("--train", required=True, help="supervised part(s), space-separated")
    p.add_argument("--dev", required=True, help="the part that selects models (labelled)")
    p.add_argument("--test", default="", help="test part(s), space-separated (labelled)")
    p.add_argument(
        "--unsup", default="", help="unlabeled part(s), space-separated: their text is hidden"
    )
    p.add_argument(
        "--unsup-vad",
        type=str2bool,
        default=False,
        help="the unlabeled recordings will be VAD-segmented (stage 1): no length or channel check",
    )
    p.add_argument(
        "--max-unsup-duration",
        type=float,
        default=30.0,
        help="longest unlabeled recording without segments (s): longer ones need VAD first",
    )
    p.add_argument(
        "--check-audio",
        type=int,
        default=20,
        help="open this many recordings per part to check rate and channels (0: none)",
    )
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--corpus", default="corpus", help="prefix of the written manifests")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    from less.utils import atomic_path

    if not args.manifest_dir.is_dir():
        raise SystemExit(f"--manifest-dir {args.manifest_dir} is not a directory")
    roles: dict[str, tuple[list[str], bool]] = {
        "train": (args.train.split(), True),
        "dev": (args.dev.split(), True),
    }
    for test in args.test.split():
        roles[split_name(test)] = ([test], True)
    if args.unsup.split():
        roles["unsup"] = (args.unsup.split(), False)
    if len(roles["dev"][0]) != 1:
        raise SystemExit(f"--dev takes one part, not {roles['dev'][0]}")
    outputs = {
        role: [
            manifest_path(args.output_dir, args.corpus, kind, role)
            for kind in ("recordings", "supervisions")
        ]
        for role in roles
    }
    if all(paths[0].is_file() for paths in outputs.values()):
        log.info("manifests of %s in %s exist: nothing to do", ", ".join(roles), args.output_dir)
        return

    try:
        loaded = {}
        for role, (names, need_text) in roles.items():
            parts = [load_part(args.manifest_dir, args.prefix, name) for name in names]
            for part in parts:
                check_supervisions(part, need_text)
                check_audio(part, args.check_audio)
                if not need_text and part.supervisions is None and not args.unsup_vad:
                    long = next(
                        (r for r in part.recordings if r.duration > args.max_unsup_duration), None
                    )
                    if long is not None:
                        raise PartError(
                            f"part {part.name!r} ({part.source}): recording {long.id} lasts "
                            f"{long.duration:.1f} s and the part has no segments; long unlabeled audio "
                            "must be VAD-segmented first (the recipe's --unsup-vad true)"
                        )
                    multi = next((r for r in part.recordings if r.num_channels > 1), None)
                    if multi is not None:
                        raise PartError(
                            f"part {part.name!r} ({part.source}): recording {multi.id} has "
                            f"{multi.num_channels} channels and no supervision names one; give the part "
                            "segments with a channel, or mono recordings"
                        )
            loaded[role] = combine(parts)
        if "unsup" in loaded:
            unsup_ids = set(loaded["unsup"][0].ids)
            for role, (recordings, _) in loaded.items():
                shared = unsup_ids & set(recordings.ids) if role != "unsup" else set()
                if shared:
                    raise PartError(
                        f"recording {sorted(shared)[0]} is both unlabeled and in the {role} set "
                        f"({len(shared)} recordings in both)"
                    )
    except PartError as error:
        raise SystemExit(f"lhotse_manifests: {error}") from None

    args.output_dir.mkdir(parents=True, exist_ok=True)
    for role, (recordings, supervisions) in loaded.items():
        if role == "unsup" and supervisions is not None:
            supervisions = hide_text(supervisions)
        rec_path, sup_path = outputs[role]
        if supervisions is not None:
            with atomic_path(sup_path) as tmp:
                supervisions.to_file(tmp)
        with atomic_path(rec_path) as tmp:  # written last: its presence means the role is done
            recordings.to_file(tmp)
        hours = sum(r.duration for r in recordings) / 3600
        segments = (
            f", {len(supervisions)} segments" if supervisions is not None else ", no segments"
        )
        log.info(
            "%s: %d recordings, %.2f h%s (%s) -> %s",
            role,
            len(recordings),
            hours,
            segments,
            " ".join(roles[role][0]),
            rec_path,
        )


if __name__ == "__main__":
    main()
