"""Pieces every real-corpus preparer shares: output names, duration bounds, drop counts.

The preparers in ``less.local`` turn a corpus as it lies on disk into
``<output-dir>/<corpus>_{recordings,supervisions}_<split>.jsonl.gz`` (the icefall
names). They share three habits kept here so that they cannot drift apart:

* outputs are written atomically and a split whose two files both exist is not
  prepared again (a rerun after a kill resumes);
* duration bounds apply to *training* splits only: evaluation sets stay whole so
  that results compare with published numbers;
* every dropped supervision is counted by reason and the counts are logged.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lhotse import (
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    validate_recordings_and_supervisions,
)

from less.data.cuts import manifest_path
from less.utils import save_cuts_atomic, setup_logging

logger = logging.getLogger(__name__)


def manifest_paths(output_dir: str | Path, corpus: str, split: str) -> tuple[Path, Path]:
    """``(recordings, supervisions)`` paths of one split, icefall-style."""
    return (
        manifest_path(output_dir, corpus, "recordings", split),
        manifest_path(output_dir, corpus, "supervisions", split),
    )


def split_is_done(output_dir: str | Path, corpus: str, split: str) -> bool:
    return all(path.is_file() for path in manifest_paths(output_dir, corpus, split))


def require_dir(path: str | Path | None, what: str, hint: str = "") -> Path:
    """Return ``path`` as a Path, or raise a FileNotFoundError that says what was expected."""
    if path is None:
        raise FileNotFoundError(f"No {what} given. {hint}".strip())
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what} {path} does not exist or is not a directory. {hint}".strip()
        )
    return path


def require_file(path: Path, what: str, hint: str = "") -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist. {hint}".strip())
    return path


@dataclass(frozen=True)
class DurationBounds:
    """Keep training supervisions with ``min_duration <= duration <= max_duration`` seconds.

    Very short segments carry almost no speech and very long ones blow up memory in
    attention layers; the bounds are flags so a recipe can change them.
    """

    min_duration: float
    max_duration: float

    def __post_init__(self) -> None:
        if self.min_duration < 0 or self.max_duration <= self.min_duration:
            raise ValueError(
                f"bad duration bounds: --min-duration {self.min_duration} "
                f"--max-duration {self.max_duration}"
            )

    def reason_to_drop(self, duration: float) -> str | None:
        if duration < self.min_duration:
            return f"shorter than {self.min_duration} s"
        if duration > self.max_duration:
            return f"longer than {self.max_duration} s"
        return None


class DropCounter:
    """Counts dropped supervisions per reason and logs them once per split."""

    def __init__(self, corpus: str, split: str) -> None:
        self.corpus = corpus
        self.split = split
        self.counts: Counter[str] = Counter()

    def drop(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def log(self) -> None:
        for reason, n in sorted(self.counts.items()):
            logger.warning(
                "%s %s: dropped %d supervision(s): %s", self.corpus, self.split, n, reason
            )


def write_split(
    recordings: RecordingSet | Iterable,
    supervisions: Iterable[SupervisionSegment],
    output_dir: str | Path,
    corpus: str,
    split: str,
) -> tuple[RecordingSet, SupervisionSet]:
    """Keep recordings that still have a supervision, log the figures, write both files atomically."""
    supervision_set = SupervisionSet.from_segments(sorted(supervisions, key=lambda s: s.id))
    used = {s.recording_id for s in supervision_set}
    recording_set = RecordingSet.from_recordings(
        sorted((r for r in recordings if r.id in used), key=lambda r: r.id)
    )
    missing = used - set(recording_set.ids)
    if missing:
        raise RuntimeError(
            f"{corpus} {split}: supervisions refer to recordings that were not prepared: "
            f"{sorted(missing)[:5]}"
        )
    # Supervisions inside their recording, on an existing channel: checked here, not at training time.
    validate_recordings_and_supervisions(recording_set, supervision_set)
    recordings_path, supervisions_path = manifest_paths(output_dir, corpus, split)
    # Supervisions first: the pair counts as done only when the recordings file exists too.
    save_cuts_atomic(supervision_set, supervisions_path)
    save_cuts_atomic(recording_set, recordings_path)
    speech_hours = sum(s.duration for s in supervision_set) / 3600
    audio_hours = sum(r.duration for r in recording_set) / 3600
    logger.info(
        "%s %s: %d recordings (%.2f h of audio), %d supervisions (%.2f h) -> %s",
        corpus,
        split,
        len(recording_set),
        audio_hours,
        len(supervision_set),
        speech_hours,
        supervisions_path,
    )
    return recording_set, supervision_set


def preparer_parser(description: str) -> argparse.ArgumentParser:
    """The argument parser of a preparer: ``--help`` shows every option's default."""
    return argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def add_output_arguments(
    parser, min_duration: float, max_duration: float, what: str = "utterances"
) -> None:
    """The options every preparer shares: output directory, training duration bounds, log file."""
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("data/manifests"),
        help="where manifests are written",
    )
    parser.add_argument(
        "--min-duration",
        type=float,
        default=min_duration,
        help=f"drop train {what} shorter than this (seconds)",
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=max_duration,
        help=f"drop train {what} longer than this (seconds)",
    )
    parser.add_argument("--log-file", type=Path, default=None, help="also log to this file")


def parse_preparer_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, DurationBounds]:
    """Parse ``argv`` with the options of :func:`add_output_arguments` among them, log to
    ``--log-file`` too, and return the options with the duration bounds they give."""
    args = parser.parse_args(argv)
    setup_logging(args.log_file)
    return args, DurationBounds(args.min_duration, args.max_duration)
