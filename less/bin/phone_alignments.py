"""Exact phone alignments of one split of the mini corpus, for ABX (``less.bin.abx --units phone``).

Re-plans the split from the corpus's build record (``<data-dir>/manifests/mini-<task>_build.json``),
re-synthesises every utterance with espeak-ng's phoneme events, re-renders it as the corpus
build did and checks it against the stored FLAC, sample for sample (a mismatch stops the
run, naming the recording), then writes one JSON line per utterance in
:mod:`less.ssl.alignment`'s format::

    {"cut_id": "<supervision id>", "speaker": "<espeak voice>", "duration": 3.42,
     "units": [["n", 0.0, 0.084], ["i", 0.084, 0.205], ...]}

Units are IPA phones without stress marks (Mandarin without tones), times in seconds from
the start of the recording; pauses are left out (gaps). ``less.bin.abx`` moves each line to
the cut that holds that supervision. Single-utterance splits only (train_sup, dev,
test_clean, test_wild); unsup_wild's long recordings are not handled.

Example::

    python -m less.bin.phone_alignments --data-dir data --task asr --split test_clean \\
        --out exp/abx/test_clean.phones.jsonl
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from less.local.mini.phones import (
    SINGLE_UTTERANCE_SPLITS,
    AudioMismatch,
    phone_stats,
    split_alignments,
)
from less.local.mini.plan import SPLITS, TASKS
from less.ssl.alignment import save_alignments
from less.utils import cli_parser, setup_logging, str2bool

log = logging.getLogger("less.phone_alignments")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--data-dir", type=Path, required=True, help="the mini corpus (manifests/ and audio/)"
    )
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--out", type=Path, required=True, help="phone alignments (JSON lines)")
    p.add_argument(
        "--verify",
        type=str2bool,
        default=True,
        help="check the re-synthesised audio against the stored files (default: true)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if args.split not in SINGLE_UTTERANCE_SPLITS:
        raise SystemExit(
            f"phone_alignments: {args.split} holds long multi-utterance recordings, which are not "
            f"handled; choose one of {SINGLE_UTTERANCE_SPLITS}"
        )
    try:
        alignments = list(split_alignments(args.data_dir, args.task, args.split, args.verify))
    except (AudioMismatch, FileNotFoundError) as err:
        raise SystemExit(f"phone_alignments: {err}") from err
    save_alignments(args.out, alignments)
    log.info(
        "%s %s: %s -> %s%s",
        args.task,
        args.split,
        phone_stats(alignments).describe(),
        args.out,
        "" if args.verify else " (audio not verified)",
    )


if __name__ == "__main__":
    main()
