"""Errors system B fixes against system A, inside vs outside the near-interchangeable label
groups of ``less.bin.check_unsup_conditions`` (see :mod:`less.unsup.fixes`).

Example (system U against L on test_wild, the groups of the mini Mandarin text)::

    python -m less.bin.compare_fixes \\
        --base exp/asr/L/iter1/attention-decoder-rescoring/recogs-test_wild-attention_scale_0.5-epoch-4_avg-3.txt \\
        --other exp/asr/U/iter1/attention-decoder-rescoring/recogs-test_wild-attention_scale_0.5-epoch-4_avg-3.txt \\
        --conditions exp/asr/unsup_conditions.json --out exp/asr/U/iter1/fixes_test_wild.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from less.decode.results import read_recogs
from less.unsup.fixes import compare_fixes
from less.utils import cli_parser, setup_logging, write_json_atomic

log = logging.getLogger("less.compare_fixes")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument(
        "--base", type=Path, required=True, help="recogs file of system A (less.bin.decode)"
    )
    p.add_argument(
        "--other", type=Path, required=True, help="recogs file of system B, same test set"
    )
    p.add_argument(
        "--conditions",
        type=Path,
        required=True,
        help="less.bin.check_unsup_conditions output (its c2 groups)",
    )
    p.add_argument("--out", type=Path, help="JSON of the counts")
    return p


def _by_cut(path: Path) -> dict:
    return {cut_id: (refs[0], hyp) for cut_id, refs, hyp in read_recogs(path)}


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    conditions = json.loads(args.conditions.read_text())
    if "groups" not in conditions.get("c2", {}):
        raise SystemExit(
            f"{args.conditions}: no c2 groups (run check_unsup_conditions with --text)"
        )
    groups = conditions["c2"]["groups"]
    counts = compare_fixes(_by_cut(args.base), _by_cut(args.other), groups)
    log.info(
        "%s -> %s: base errors inside groups %d (fixed %d, %.1f %%), outside %d (fixed %d, %.1f %%); "
        "newly wrong %d",
        args.base,
        args.other,
        counts.errors_inside,
        counts.fixed_inside,
        100 * counts.fix_rate_inside,
        counts.errors_outside,
        counts.fixed_outside,
        100 * counts.fix_rate_outside,
        counts.broken,
    )
    if args.out:
        write_json_atomic(
            args.out,
            {
                "base": str(args.base),
                "other": str(args.other),
                "groups": len(groups),
                **counts.as_dict(),
            },
        )


if __name__ == "__main__":
    main()
