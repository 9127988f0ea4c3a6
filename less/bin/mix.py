"""Stage 9a: supervised + kept pseudo-labelled cuts -> the training set of the next student.

Example::

    python -m less.bin.mix --sup-cuts data/fbank/mini-asr_cuts_train_sup.jsonl.gz \\
        --pl-cuts data/pl/asr/L/iter1/unsup_wild_cuts_kept.jsonl.gz \\
        --out-cuts data/pl/asr/L/iter1/train_mix_cuts.jsonl.gz --pl-ratio 0 --sup-repeat 1

See :mod:`less.pseudo.mix` for what ``--pl-ratio`` and ``--sup-repeat`` mean.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from less.data.cuts import read_cuts
from less.pseudo.mix import mix_cuts
from less.utils import already_done, cli_parser, save_cuts_atomic, setup_logging, write_json_atomic

log = logging.getLogger("less.pseudo.mix")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--sup-cuts", type=Path, required=True, help="supervised training cuts")
    p.add_argument(
        "--pl-cuts", type=Path, required=True, help="kept pseudo-labelled cuts (filter_pl output)"
    )
    p.add_argument("--out-cuts", type=Path, required=True)
    p.add_argument(
        "--pl-ratio",
        type=float,
        default=0.0,
        help="hours of pseudo-labelled audio per supervised hour (0: all kept cuts)",
    )
    p.add_argument("--sup-repeat", type=int, default=1, help="times each supervised cut appears")
    p.add_argument("--seed", type=int, default=0, help="seed of the pseudo-labelled subsampling")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if already_done(args.out_cuts, log):
        return
    mixed, stats = mix_cuts(
        read_cuts(args.sup_cuts),
        read_cuts(args.pl_cuts),
        pl_ratio=args.pl_ratio,
        sup_repeat=args.sup_repeat,
        seed=args.seed,
    )
    save_cuts_atomic(mixed, args.out_cuts)
    write_json_atomic(
        args.out_cuts.with_name(args.out_cuts.name.replace(".jsonl.gz", ".stats.json")),
        stats.__dict__,
    )
    log.info("wrote %s: %s", args.out_cuts, stats)


if __name__ == "__main__":
    main()
