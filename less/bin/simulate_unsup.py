"""The simulation of Yang et al. (arXiv 2603.02285) at toy size: when can unpaired audio teach?

Exact enumeration of a few labels, observations and positions (see
:mod:`less.unsup.simulation` for the settings and :mod:`less.unsup.theory` for the model
and the derived bounds). Prints one row per setting — C1+C2 hold; C2 broken (two labels
interchangeable in the LM); the LM moved towards interchangeability (smallest singular
value shrinking); C1 broken (coarticulation) — and whether the derived bounds hold.
Seeded and deterministic: the same flags print the same table. Takes ~30 s on one core.

Example::

    python -m less.bin.simulate_unsup --out exp/unsup/simulation.json
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from less.unsup.simulation import SimulationConfig, format_table, run_simulation
from less.utils import (
    cli_parser,
    config_from_args,
    config_options,
    setup_logging,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger("less.simulate_unsup")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def get_parser() -> argparse.ArgumentParser:
    d = SimulationConfig()
    p = cli_parser(__doc__)
    config_options(
        p,
        d,
        length="positions N of every sequence",
        seed=None,
        restarts="random starts of every fit",
        polished="best starts run to convergence (L-BFGS)",
        num_samples="unpaired audio sequences drawn for the sigma_min rows (finite data)",
        sample_seeds="draws averaged per sigma_min row",
    )
    p.add_argument(
        "--sweep",
        type=_floats,
        default=d.sweep,
        help="comma-separated eps: the LM moved from interchangeable (0) to full rank (1)",
    )
    p.add_argument(
        "--coarticulation",
        type=_floats,
        default=d.coarticulation,
        help="comma-separated strengths of the C1-breaking truth (previous label's sound spilling over)",
    )
    p.add_argument(
        "--num-threads", type=int, default=1, help="torch CPU threads of the L-BFGS fits"
    )
    p.add_argument(
        "--out", type=Path, help="write the rows as JSON here (and the table beside it, .txt)"
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(max(1, args.num_threads))
    cfg = config_from_args(SimulationConfig, args)
    rows = run_simulation(cfg, show_progress=True)
    table = format_table(rows)
    print(table)
    if args.out:
        write_json_atomic(args.out, {"config": asdict(cfg), "rows": [asdict(r) for r in rows]})
        write_text_atomic(args.out.with_suffix(".txt"), table + "\n")
        log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
