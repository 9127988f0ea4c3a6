"""A subset of a cut set with a given number of hours, taken by whole recordings.

Comparisons at equal hours need it: a bilingual encoder trained on half the Mandarin and half
the Spanish audio against a monolingual one on all the Mandarin (the grounding recipe,
``egs/mini/less/local/grounding.sh``). Whole recordings are taken (in a seeded random order)
so that segments of one long recording never end up on both sides of a split, until the
hours are reached; the last recording is the one that crosses the target, so the subset
overshoots by less than one recording.

Example::

    python -m less.bin.subset_cuts --in-cuts data/fbank/mini-asr_cuts_unsup_wild.jsonl.gz \\
        --hours 0.55 --seed 0 --out-cuts exp_vg/data/zh_half.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
import random
from collections import defaultdict
from pathlib import Path

from less.data.cuts import read_cuts
from less.utils import cli_parser, save_cuts_atomic, setup_logging

log = logging.getLogger("less.subset_cuts")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--in-cuts", type=Path, required=True)
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--hours", type=float, help="hours of audio to keep")
    size.add_argument("--fraction", type=float, help="share of the input's hours to keep (0..1]")
    p.add_argument(
        "--fraction-of",
        type=Path,
        help="with --fraction: a share of this cut set's hours instead of the input's (equal hours "
        "across languages: half of the Mandarin hours from each of Mandarin and Spanish)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the recording order")
    p.add_argument("--out-cuts", type=Path, required=True)
    return p


def subset_by_recording(cuts, hours: float, seed: int = 0):
    """Cuts of whole recordings, in a seeded order, until ``hours`` are reached."""
    by_recording: dict[str, list] = defaultdict(list)
    for cut in cuts:
        by_recording[cut.recording_id].append(cut)
    order = sorted(by_recording)
    random.Random(seed).shuffle(order)
    kept, seconds = [], 0.0
    for recording in order:
        if seconds >= hours * 3600:
            break
        kept += by_recording[recording]
        seconds += sum(c.duration for c in by_recording[recording])
    return kept, seconds / 3600


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    from lhotse import CutSet

    cuts = list(read_cuts(args.in_cuts))
    if not cuts:
        raise SystemExit(f"subset_cuts: {args.in_cuts} holds no cuts")
    total = sum(c.duration for c in cuts) / 3600
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise SystemExit(f"subset_cuts: --fraction must be in (0, 1], not {args.fraction}")
    if args.fraction_of is not None and args.fraction is None:
        raise SystemExit("subset_cuts: --fraction-of needs --fraction")
    base = (
        total
        if args.fraction_of is None
        else sum(c.duration for c in read_cuts(args.fraction_of)) / 3600
    )
    hours = args.hours if args.hours is not None else args.fraction * base
    if hours > total + 1e-9:
        raise SystemExit(
            f"subset_cuts: {args.in_cuts} holds {total:.3f} h, fewer than the {hours:.3f} h asked for"
        )
    kept, got = subset_by_recording(cuts, hours, args.seed)
    save_cuts_atomic(CutSet.from_cuts(kept), args.out_cuts)
    log.info(
        "%s: %d of %d cuts, %.3f of %.3f h (asked %.3f h) -> %s",
        args.in_cuts,
        len(kept),
        len(cuts),
        got,
        total,
        hours,
        args.out_cuts,
    )


if __name__ == "__main__":
    main()
