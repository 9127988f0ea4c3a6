"""Stage 10b: ``exp/RESULTS.md`` — one row per task x system x iteration x test set — and plots.

Reads what earlier stages wrote:

* ``<exp>/<task>/iter0/<method>/results-<test>-<suffix>.json`` — the supervised seed (system S);
* ``<exp>/<task>/<system>/iter<K>/<method>/results-<test>-<suffix>.json`` — students
  (N: noisy student without LLM, L: LESS);
* ``<pl-dir>/<task>/<system>/iter<K>/<unsup-part>_cuts_kept.report.json`` — pseudo-label
  hours kept and label error rates (``less.bin.filter_pl``).

Where a method has several settings (e.g. attention-rescoring scales), the setting is the
one best on ``--select-on`` (dev) of the same system, iteration and method, and every test
set is reported at it; without a dev result, each test set shows its own best setting,
marked ``(best on this set)``.

Each row shows the primary decoding method of the task (``--asr-method``, ``--ast-method``);
other methods follow in a second table. Every number comes with the command that made it.
A PNG per task plots the metric by iteration for every system and test set.

``--group NAME=EXP[,EXP...]`` (repeatable) writes instead a comparison of recipe runs
averaged over seeds, e.g. seed models from scratch vs. from BEST-RQ / BiRQ pretraining,
one ``--exp`` per training seed::

    python -m less.bin.report --task asr --out exp_ssl/RESULTS.md \
        --group scratch=exp_ssl/scratch_s1,exp_ssl/scratch_s2,exp_ssl/scratch_s3 \
        --group bestrq=exp_ssl/bestrq_s1,exp_ssl/bestrq_s2,exp_ssl/bestrq_s3

Per group, system and test set: mean, sample standard deviation and every run's value
(settings chosen on dev per run, as above); and the ABX error rates of the pretrained
encoders (``<exp>/<task>/ssl_<method>/abx_<test>.json``, stage 5) averaged the same way.

``--paired A,B`` (repeatable, with ``--group``) appends a paired comparison of system A
against system B, run by run (one run per seed), e.g. LESS against the noisy student over
three seeds::

    python -m less.bin.report --task asr --out exp_seeds/RESULTS.md \
        --group seeds=exp_s1,exp_s2,exp_s3 --paired L,N

A and B are systems of the same runs (``L,N``: in every group) or ``GROUP:SYSTEM`` of two
groups whose runs are paired by position (``--paired bestrq:S,scratch:S``). Per test set
and iteration: each system's mean ± std and per-seed values, the mean A - B difference with
a 95 % interval and p-value from a paired bootstrap over utterances, and exact sign tests
over seeds and over utterances (:mod:`less.stats`, which says how seeds are resampled).
The per-utterance results come from the ``recogs-*`` files next to each ``results-*.json``
(at the setting the table reports); a corpus value recomputed from them that differs from
the JSON's is an error.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from less.report import (
    Side,
    compare_groups,
    find_results,
    markdown,
    paired_comparison,
    plot,
    select_settings,
)
from less.utils import cli_parser, setup_logging, write_text_atomic

log = logging.getLogger("less.report")


def _pair(text: str) -> tuple[Side, Side]:
    """``A,B`` with A and B each ``SYSTEM`` or ``GROUP:SYSTEM`` (both or neither with a group)."""
    sides = text.split(",")
    if len(sides) != 2 or not all(sides):
        raise argparse.ArgumentTypeError(
            f"expected A,B (e.g. L,N or bestrq:S,scratch:S), got {text!r}"
        )
    parsed = []
    for side in sides:
        group, sep, system = side.rpartition(":")
        if sep and not (group and system):
            raise argparse.ArgumentTypeError(
                f"expected SYSTEM or GROUP:SYSTEM, got {side!r} in {text!r}"
            )
        parsed.append(Side(system, group or None))
    if (parsed[0].group is None) != (parsed[1].group is None):
        raise argparse.ArgumentTypeError(f"give a group to both sides or to neither, got {text!r}")
    return parsed[0], parsed[1]


def _group(text: str) -> tuple[str, list[Path]]:
    name, sep, dirs = text.partition("=")
    if not sep or not name or not dirs:
        raise argparse.ArgumentTypeError(f"expected NAME=EXP[,EXP...], got {text!r}")
    return name, [Path(d) for d in dirs.split(",") if d]


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--exp-dir", type=Path, default=Path("exp"))
    p.add_argument("--pl-dir", type=Path, default=Path("data/pl"))
    p.add_argument("--unsup-part", default="unsup_wild", help="name of the pseudo-labelled part")
    p.add_argument("--out", type=Path, help="default: <exp-dir>/RESULTS.md")
    p.add_argument(
        "--asr-method", default="attention-decoder-rescoring", help="primary method of the asr task"
    )
    p.add_argument(
        "--ast-method", default="attention-beam-search", help="primary method of the ast task"
    )
    p.add_argument(
        "--select-on",
        default="dev",
        help="test set on which a method's setting (e.g. attention scale) is chosen for all sets",
    )
    p.add_argument(
        "--group",
        type=_group,
        action="append",
        help="NAME=EXP[,EXP...]: compare groups of runs averaged over their seeds (needs --out, --task)",
    )
    p.add_argument(
        "--task", choices=["asr", "ast", "asr_en"], help="task of the --group comparison"
    )
    p.add_argument(
        "--paired",
        type=_pair,
        action="append",
        help="A,B: append system A against system B paired by seed (needs --group): SYSTEM in "
        "every group (L,N) or GROUP:SYSTEM, runs paired by position (bestrq:S,scratch:S)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples of --paired (default: 1000)",
    )
    p.add_argument(
        "--bootstrap-seed",
        type=int,
        default=0,
        help="RNG seed of the --paired bootstrap (default: 0)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    primary = {"asr": args.asr_method, "ast": args.ast_method, "asr_en": args.asr_method}
    if args.group:
        if not (args.out and args.task):
            raise SystemExit("--group needs --out and --task")
        groups = dict(args.group)
        if len(groups) != len(args.group):
            raise SystemExit("--group names must be distinct")
        text = compare_groups(
            groups, args.task, primary[args.task], args.select_on, args.unsup_part
        )
        if args.paired:
            if args.bootstrap < 1:
                raise SystemExit("--bootstrap must be at least 1")
            text += "\n" + paired_comparison(
                groups,
                args.paired,
                args.task,
                primary[args.task],
                args.select_on,
                args.bootstrap,
                args.bootstrap_seed,
            )
        write_text_atomic(args.out, text)
        log.info(
            "wrote %s (%d groups, %d runs, %d paired comparisons)",
            args.out,
            len(groups),
            sum(map(len, groups.values())),
            len(args.paired or []),
        )
        return
    if args.paired:
        raise SystemExit("--paired needs --group (the runs, one per seed)")
    results = select_settings(find_results(args.exp_dir), args.select_on)
    if not results:
        raise SystemExit(f"no results-*.json under {args.exp_dir}: run the decoding stages first")
    out = args.out or args.exp_dir / "RESULTS.md"
    text = markdown(
        results, args.pl_dir if args.pl_dir.is_dir() else None, primary, args.unsup_part
    )
    write_text_atomic(out, text)
    pngs = plot(results, primary, out.parent)
    log.info("wrote %s (%d results) and %s", out, len(results), ", ".join(map(str, pngs)))


if __name__ == "__main__":
    main()
