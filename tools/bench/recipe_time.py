#!/usr/bin/env python3
"""Where a recipe run's time went: wall and CPU time per stage and per task.

Every stage block of ``egs/*/less/run.sh`` appends one line per task to
``<exp>/timing.tsv`` (``task stage start end wall_s cpu_s``; CPU time = user + system of
every process the stage ran, from the shell's cumulative children times).  This prints,
per stage, the wall and CPU seconds of each task, each stage's share of the run's CPU time,
and the run's elapsed time from the first stage's start to the last stage's end (tasks run
side by side, so the sum of the stage times exceeds it).  With ``--markdown`` the tables
come out as markdown (what RESULTS.md keeps).

A rerun that skips finished stages appends lines too; ``--last`` keeps, per (task,
stage), only the latest line (a stage resumed after a kill keeps its earlier lines unless
``--last``, so the sum is the total time spent).

Usage: python tools/bench/recipe_time.py egs/mini/less/exp/timing.tsv [--markdown] [--last]
       python tools/bench/recipe_time.py exp/timing.tsv exp/seed42/timing.tsv  (a --seeds run: corpus + one seed)
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass
class StageTime:
    task: str
    stage: str
    start: float
    end: float
    wall: float
    cpu: float


def read_timing(path: Path, last_only: bool = False) -> list[StageTime]:
    rows: list[StageTime] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        expected = {"task", "stage", "start", "end", "wall_s", "cpu_s"}
        if reader.fieldnames is None or not expected <= set(reader.fieldnames):
            raise SystemExit(
                f"{path}: expected a header with {sorted(expected)}, got {reader.fieldnames}"
            )
        for number, row in enumerate(reader, start=2):
            try:
                rows.append(
                    StageTime(
                        row["task"],
                        row["stage"],
                        float(row["start"]),
                        float(row["end"]),
                        float(row["wall_s"]),
                        float(row["cpu_s"]),
                    )
                )
            except (TypeError, ValueError) as e:
                raise SystemExit(f"{path}:{number}: malformed line ({e}): {row}") from e
    if last_only:
        latest: dict[tuple[str, str], StageTime] = {}
        for row in rows:
            latest[(row.task, row.stage)] = row
        rows = sorted(latest.values(), key=lambda r: r.start)
    if not rows:
        raise SystemExit(f"{path}: no stage times")
    return rows


def stage_key(stage: str) -> tuple[int, str]:
    """Numeric order, with sub-stages ("9:N") after their stage."""
    head, _, tail = stage.partition(":")
    try:
        return int(head), tail
    except ValueError:
        return 10**6, stage


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def format_tables(rows: list[StageTime], markdown: bool) -> str:
    tasks = sorted({r.task for r in rows}, key=lambda t: ("+" in t or t == "noise", t))
    stages = sorted({r.stage for r in rows}, key=stage_key)
    wall: dict[tuple[str, str], float] = defaultdict(float)
    cpu: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        wall[(r.stage, r.task)] += r.wall
        cpu[(r.stage, r.task)] += r.cpu
    total_cpu = sum(r.cpu for r in rows)
    elapsed = max(r.end for r in rows) - min(r.start for r in rows)
    header = ["stage"] + [f"{t} wall / CPU min" for t in tasks] + ["share of CPU"]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join("---" for _ in header) + " |")
    else:
        lines.append("  ".join(f"{h:>18}" if i else f"{h:<8}" for i, h in enumerate(header)))
    for stage in stages:
        cells = [stage]
        for task in tasks:
            if (stage, task) in wall:
                cells.append(f"{minutes(wall[(stage, task)])} / {minutes(cpu[(stage, task)])}")
            else:
                cells.append("-")
        stage_cpu = sum(cpu[(stage, t)] for t in tasks)
        cells.append(f"{100.0 * stage_cpu / total_cpu:.1f} %" if total_cpu > 0 else "-")
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append("  ".join(f"{c:>18}" if i else f"{c:<8}" for i, c in enumerate(cells)))
    task_totals = []
    for task in tasks:
        task_rows = [r for r in rows if r.task == task]
        task_totals.append(
            f"{task}: wall {minutes(sum(r.wall for r in task_rows))} min, "
            f"CPU {minutes(sum(r.cpu for r in task_rows))} min"
        )
    lines.append("")
    lines.append(
        f"elapsed (first stage start to last stage end): {minutes(elapsed)} min; "
        f"CPU time of all stages: {minutes(total_cpu)} min "
        f"(x{total_cpu / elapsed:.2f} of the elapsed time)"
        if elapsed > 0
        else ""
    )
    lines.append("per task: " + "; ".join(task_totals))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    # the standard library only (not less.utils.cli_parser): any python3 runs this file
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "timing",
        type=Path,
        nargs="+",
        help="the run's timing.tsv (exp/timing.tsv); with --seeds, the corpus stages' "
        "exp/timing.tsv and a seed's exp/seed<s>/timing.tsv together",
    )
    parser.add_argument("--markdown", action="store_true", help="markdown tables")
    parser.add_argument(
        "--last", action="store_true", help="only the latest line per task and stage"
    )
    args = parser.parse_args(argv)
    rows: list[StageTime] = []
    for path in args.timing:
        if not path.is_file():
            raise SystemExit(f"{path} not found (run.sh writes it into its --exp dir)")
        rows += read_timing(path, args.last)
    print(format_tables(sorted(rows, key=lambda r: r.start), args.markdown))
    print(
        f"(machine: {os.cpu_count()} CPUs; load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
