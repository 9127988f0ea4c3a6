"""AISHELL-1 (supervised Mandarin read speech) -> lhotse manifests.

Layout expected below ``--corpus-dir`` (what ``data_aishell.tgz`` from OpenSLR 33
gives once the per-speaker tarballs in ``data_aishell/wav`` are extracted too; it is
the layout lhotse's ``prepare_aishell`` reads)::

    data_aishell/transcript/aishell_transcript_v0.8.txt   "<utt-id> <word> <word> ..."
    data_aishell/wav/{train,dev,test}/<speaker>/<utt-id>.wav   e.g. S0002/BAC009S0002W0122.wav

What this adds to lhotse's ``prepare_aishell`` (which it calls):

* a transcript line whose audio file does not exist stops the run with the transcript
  file, line number and the missing path (lhotse walks the wav files, so such a
  line would be silently ignored); ``--on-missing-audio skip`` turns this into a
  counted warning;
* wav files without a transcript line (the real corpus has a few hundred) are
  counted and skipped, as lhotse does, with one summary warning;
* texts pass through ``less.data.text.normalize(text, "zh")``; supervisions whose text
  is empty afterwards are dropped and counted; ``language`` is ``"zh"``;
* duration bounds (``--min-duration/--max-duration``, default 1.0/20.0 s) apply to
  ``train`` only: AISHELL utterances are 1-15 s, so the bounds only remove outliers,
  and dev/test stay whole so that CERs compare with published ones.

Outputs (written atomically; a run whose six files all exist does nothing)::

    <output-dir>/aishell_{recordings,supervisions}_{train,dev,test}.jsonl.gz

Usage::

    python -m less.local.aishell --corpus-dir download/aishell --output-dir data/manifests \\
        [--min-duration 1.0] [--max-duration 20.0] [--on-missing-audio error|skip] [--log-file F]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from lhotse.utils import fastcopy

from less.data.cuts import read_text_utf8
from less.data.text import normalize
from less.local.common import (
    DropCounter,
    DurationBounds,
    add_output_arguments,
    parse_preparer_args,
    preparer_parser,
    require_dir,
    require_file,
    split_is_done,
    write_split,
)

logger = logging.getLogger(__name__)

CORPUS = "aishell"
SPLITS = ("train", "dev", "test")
TRAIN_SPLITS = frozenset({"train"})
TRANSCRIPT = Path("data_aishell/transcript/aishell_transcript_v0.8.txt")
WAV_DIR = Path("data_aishell/wav")
LAYOUT_HINT = (
    f"Expected {TRANSCRIPT} and {WAV_DIR}/{{train,dev,test}}/<speaker>/<utt-id>.wav inside it "
    "(extract data_aishell.tgz from https://www.openslr.org/33, then every "
    f"{WAV_DIR}/S*.tar.gz inside it)."
)
_SPEAKER = re.compile(r"S\d{4}")


def check_layout(corpus_dir: str | Path) -> tuple[Path, Path]:
    """Return ``(transcript, wav_dir)`` or raise an error that says what is missing."""
    corpus_dir = require_dir(corpus_dir, "AISHELL-1 corpus directory", LAYOUT_HINT)
    if (corpus_dir / "transcript").is_dir() and (corpus_dir / "wav").is_dir():
        raise FileNotFoundError(
            f"{corpus_dir} looks like the data_aishell directory itself; pass its parent "
            f"{corpus_dir.parent} as --corpus-dir."
        )
    transcript = require_file(corpus_dir / TRANSCRIPT, "AISHELL-1 transcript", LAYOUT_HINT)
    wav_dir = require_dir(corpus_dir / WAV_DIR, "AISHELL-1 wav directory", LAYOUT_HINT)
    missing_splits = [split for split in SPLITS if not (wav_dir / split).is_dir()]
    if missing_splits:
        tarballs = sorted(p.name for p in wav_dir.glob("*.tar.gz"))[:3]
        hint = (
            f" Found unextracted tarballs {tarballs}: extract them in {wav_dir}."
            if tarballs
            else ""
        )
        raise FileNotFoundError(
            f"AISHELL-1 wav split directories {[str(wav_dir / s) for s in missing_splits]} "
            f"do not exist.{hint} {LAYOUT_HINT}"
        )
    return transcript, wav_dir


def index_wavs(wav_dir: Path) -> dict[str, Path]:
    """Utterance id -> wav path over the three split directories (as lhotse globs them)."""
    return {path.stem: path for split in SPLITS for path in (wav_dir / split).rglob("*.wav")}


def _expected_wav(utt_id: str, wav_dir: Path) -> str:
    speaker = _SPEAKER.search(utt_id)
    if speaker is not None:
        for split in SPLITS:
            if (wav_dir / split / speaker.group()).is_dir():
                return str(wav_dir / split / speaker.group() / f"{utt_id}.wav")
        return str(wav_dir / "{train,dev,test}" / speaker.group() / f"{utt_id}.wav")
    return str(wav_dir / "{train,dev,test}" / "<speaker>" / f"{utt_id}.wav")


def check_transcript_audio(
    transcript: Path, wav_dir: Path, wav_index: dict[str, Path], on_missing_audio: str
) -> tuple[set[str], int]:
    """Check that every transcript line has its audio; return (transcribed ids, lines skipped)."""
    transcribed: set[str] = set()
    skipped = 0
    text = read_text_utf8(
        transcript, "AISHELL-1 transcript"
    )  # an error naming file and line if not UTF-8
    for line_number, line in enumerate(text.split("\n"), start=1):
        tokens = line.split()
        if not tokens:
            continue
        utt_id = tokens[0]
        transcribed.add(utt_id)
        if utt_id in wav_index:
            continue
        message = (
            f"{transcript}:{line_number}: the transcript of {utt_id} refers to audio file "
            f"{_expected_wav(utt_id, wav_dir)}, which does not exist"
        )
        if on_missing_audio == "error":
            raise FileNotFoundError(
                message + " (rerun with --on-missing-audio skip to skip such lines)"
            )
        skipped += 1
        if skipped <= 5:
            logger.warning(message)
    return transcribed, skipped


class _DropLhotseNoTranscriptWarnings(logging.Filter):
    """lhotse warns twice per untranscribed wav; we count them and warn once instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("No transcript:") or message.endswith("has no transcript."))


@contextlib.contextmanager
def _quiet_lhotse_no_transcript() -> Iterator[None]:
    root = logging.getLogger()
    quiet = _DropLhotseNoTranscriptWarnings()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def prepare_aishell(
    corpus_dir: str | Path,
    output_dir: str | Path,
    bounds: DurationBounds = DurationBounds(1.0, 20.0),
    on_missing_audio: str = "error",
) -> None:
    """Write the six AISHELL-1 manifests (see the module docstring)."""
    if on_missing_audio not in ("error", "skip"):
        raise ValueError(f"on_missing_audio must be 'error' or 'skip', not {on_missing_audio!r}")
    if all(split_is_done(output_dir, CORPUS, split) for split in SPLITS):
        logger.info("AISHELL-1 manifests already in %s; nothing to do", output_dir)
        return
    transcript, wav_dir = check_layout(corpus_dir)
    wav_index = index_wavs(wav_dir)
    transcribed, skipped = check_transcript_audio(transcript, wav_dir, wav_index, on_missing_audio)
    if skipped:
        logger.warning(
            "%s: skipped %d transcript line(s) whose audio does not exist", transcript, skipped
        )
    untranscribed = len(set(wav_index) - transcribed)
    if untranscribed:
        logger.warning("%d wav file(s) have no transcript line and are skipped", untranscribed)

    from lhotse.recipes.aishell import prepare_aishell as lhotse_prepare_aishell

    with _quiet_lhotse_no_transcript():
        manifests = lhotse_prepare_aishell(corpus_dir, output_dir=None)
    for split in SPLITS:
        drops = DropCounter(CORPUS, split)
        kept = []
        for supervision in manifests[split]["supervisions"]:
            text = normalize(supervision.text or "", "zh")
            if not text:
                drops.drop("empty transcript after normalisation")
                continue
            if split in TRAIN_SPLITS:
                reason = bounds.reason_to_drop(supervision.duration)
                if reason is not None:
                    drops.drop(reason)
                    continue
            kept.append(fastcopy(supervision, text=text, language="zh"))
        drops.log()
        write_split(manifests[split]["recordings"], kept, output_dir, CORPUS, split)


def get_parser() -> argparse.ArgumentParser:
    parser = preparer_parser(
        "Prepare AISHELL-1 manifests (normalised texts, duration bounds on train)."
    )
    parser.add_argument(
        "--corpus-dir",
        type=Path,
        required=True,
        help="directory containing data_aishell/{wav,transcript}",
    )
    add_output_arguments(parser, min_duration=1.0, max_duration=20.0)
    parser.add_argument(
        "--on-missing-audio",
        choices=("error", "skip"),
        default="error",
        help="what to do with a transcript line whose wav file does not exist",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args, bounds = parse_preparer_args(get_parser(), argv)
    prepare_aishell(
        args.corpus_dir, args.output_dir, bounds, on_missing_audio=args.on_missing_audio
    )


if __name__ == "__main__":
    main()
