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
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from less.utils import atomic_path, setup_logging, write_text_atomic

log = logging.getLogger("less.report")

_RESULT = re.compile(r"^results-(?P<test>.+)-(?P<suffix>epoch-\d+_avg-\d+)\.json$")


@dataclass
class Result:
    task: str
    system: str
    iteration: int
    method: str
    test: str
    metric: str
    value: float
    setting: str
    command: str
    path: Path
    settings: dict[str, float] | None = None


def find_results(exp_dir: Path) -> list[Result]:
    found = []
    for path in sorted(exp_dir.glob("*/**/results-*.json")):
        match = _RESULT.match(path.name)
        if not match:
            continue
        rel = path.relative_to(exp_dir).parts  # task/iter0/method/file or task/sys/iterK/method/file
        if len(rel) == 4 and rel[1] == "iter0":
            task, system, iteration, method = rel[0], "S", 0, rel[2]
        elif len(rel) == 5 and rel[2].startswith("iter"):
            task, system, iteration, method = rel[0], rel[1], int(rel[2][4:]), rel[3]
        else:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        found.append(Result(task, system, iteration, method, data["test"], data["metric"], float(data["value"]),
                            data.get("best_setting", ""), data.get("command", ""), path, data.get("settings")))
    return found


def higher_is_better(metric: str) -> bool:
    return metric.upper() == "BLEU"


def select_settings(results: list[Result], select_on: str = "dev") -> list[Result]:
    """Report every test set at the setting that is best on ``select_on`` (never tune on test)."""
    chosen: dict[tuple, str] = {}
    for r in results:
        if r.test == select_on and r.settings:
            pick = max if higher_is_better(r.metric) else min
            chosen[(r.task, r.system, r.iteration, r.method)] = pick(r.settings, key=r.settings.get)
    out = []
    for r in results:
        setting = chosen.get((r.task, r.system, r.iteration, r.method))
        if r.settings and len(r.settings) > 1:
            if setting is not None and setting in r.settings:
                r = replace(r, value=float(r.settings[setting]), setting=f"{setting} (on {select_on})")
            else:
                r = replace(r, setting=f"{r.setting} (best on this set)")
        out.append(r)
    return out


def pl_summary(pl_dir: Path | None, task: str, system: str, iteration: int, part: str) -> dict:
    if pl_dir is None or system == "S":
        return {}
    path = pl_dir / task / system / f"iter{iteration}" / f"{part}_cuts_kept.report.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf-8"))
    errors = report.get("label_error", {})
    return {
        "hours_kept": report.get("hours_kept"),
        "hours_in": report.get("hours_in"),
        "teacher_error": errors.get("teacher label error, all cuts"),
        "llm_error": errors.get("LLM label error, all cuts"),
        "kept_error": errors.get("training label error, kept cuts"),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown(results: list[Result], pl_dir: Path | None, primary: dict[str, str], part: str) -> str:
    systems_order = {"S": 0, "N": 1, "L": 2}
    key = lambda r: (r.task, r.test, r.iteration, systems_order.get(r.system, 9), r.system)  # noqa: E731
    main = sorted((r for r in results if r.method == primary.get(r.task, r.method)), key=key)
    lines = [
        "# Results",
        "",
        "Systems: **S** supervised seed (iteration 0); **N** noisy student, teacher labels without LLM;",
        "**L** LESS: LLM-corrected labels kept where `hypo_wer <= threshold`.",
        "Pseudo-label columns: hours kept of the unlabeled set, and the true label error (from the",
        "hidden references) of the teacher's labels, the LLM's labels, and the labels trained on.",
        "",
        "| task | system | iter | test | metric | value | setting | PL hours kept | teacher PL err % | LLM PL err % | kept PL err % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in main:
        pl = pl_summary(pl_dir, r.task, r.system, r.iteration, part)
        hours = "-" if not pl else f"{pl['hours_kept']:.2f} / {pl['hours_in']:.2f}"
        lines.append(f"| {r.task} | {r.system} | {r.iteration} | {r.test} | {r.metric} | {r.value:.2f} | {r.setting or '-'} | {hours} | "
                     f"{_pct(pl.get('teacher_error'))} | {_pct(pl.get('llm_error'))} | {_pct(pl.get('kept_error'))} |")
    others = sorted((r for r in results if r.method != primary.get(r.task, r.method)), key=key)
    if others:
        lines += ["", "## Other decoding methods", "",
                  "| task | system | iter | test | method | metric | value | setting |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r.task} | {r.system} | {r.iteration} | {r.test} | {r.method} | {r.metric} | {r.value:.2f} "
                  f"| {r.setting or '-'} |"
                  for r in others]
    lines += ["", "## Commands", ""]
    by_command: dict[str, list[str]] = {}
    for r in sorted(results, key=key):
        by_command.setdefault(r.command, []).append(f"{r.task} {r.system} iter{r.iteration} {r.method} {r.test}")
    for command, rows in by_command.items():
        lines.append(f"- `{command}`: {', '.join(rows)}")
    return "\n".join(lines) + "\n"


def plot(results: list[Result], primary: dict[str, str], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for task in sorted({r.task for r in results}):
        rows = [r for r in results if r.task == task and r.method == primary.get(task, r.method)]
        tests = sorted({r.test for r in rows})
        if not tests:
            continue
        fig, axes = plt.subplots(1, len(tests), figsize=(4 * len(tests), 3.2), squeeze=False)
        seed = {r.test: r.value for r in rows if r.system == "S"}
        for ax, test in zip(axes[0], tests):
            for system in sorted({r.system for r in rows if r.system != "S"}):
                points = sorted((r.iteration, r.value) for r in rows if r.system == system and r.test == test)
                if test in seed:
                    points = [(0, seed[test]), *points]
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=system)
            if test in seed:
                ax.axhline(seed[test], color="grey", linestyle=":", label="S")
            ax.set_title(f"{task} {test}")
            ax.set_xlabel("iteration")
            ax.set_ylabel(rows[0].metric)
            ax.legend()
        fig.tight_layout()
        path = out_dir / f"RESULTS-{task}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def _abx_results(run: Path, task: str) -> dict[tuple[str, str], dict[str, float]]:
    """(test, layer) -> {"within", "across"} of the run's pretrained encoder(s)."""
    out = {}
    for path in sorted(run.glob(f"{task}/ssl_*/abx_*.json")):
        test = path.stem[len("abx_"):]
        for layer, values in json.loads(path.read_text(encoding="utf-8"))["layers"].items():
            out[(test, layer)] = {"within": values["within"], "across": values["across"]}
    return out


def compare_groups(groups: dict[str, list[Path]], task: str, primary: str, select_on: str = "dev") -> str:
    """Markdown: each group's results averaged over its runs (one run per seed)."""
    rows: dict[tuple[str, str, int, str], dict[str, list]] = {}
    abx: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for name, runs in groups.items():
        for run in runs:
            found = [r for r in select_settings(find_results(run), select_on)
                     if r.task == task and r.method == primary]
            if not found:
                raise SystemExit(f"{run}: no {task} {primary} results (run the decoding stages first)")
            for r in found:
                entry = rows.setdefault((name, r.system, r.iteration, r.test), {"metric": r.metric, "values": [],
                                                                                  "settings": []})
                entry["values"].append(r.value)
                entry["settings"].append(r.setting.split(" ")[0] if r.setting else "-")
            for (test, layer), values in _abx_results(run, task).items():
                slot = abx.setdefault((name, test, layer), {"within": [], "across": []})
                slot["within"].append(values["within"])
                slot["across"].append(values["across"])
    order = {name: i for i, name in enumerate(groups)}
    lines = [f"# {task}: runs averaged over seeds ({primary}; settings chosen on {select_on} per run)", "",
             "| group | system | iter | test | metric | mean | std | runs | per run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (name, system, iteration, test), entry in sorted(rows.items(),
                                                         key=lambda kv: (kv[0][3], kv[0][2], kv[0][1], order[kv[0][0]])):
        mean, std = _mean_std(entry["values"])
        per_run = ", ".join(f"{v:.2f}" for v in entry["values"])
        lines.append(f"| {name} | {system} | {iteration} | {test} | {entry['metric']} | {mean:.2f} | {std:.2f} | "
                     f"{len(entry['values'])} | {per_run} |")
    if abx:
        lines += ["", "## ABX error of the pretrained encoders (%)", "",
                  "| group | test | layer | within mean | within std | across mean | across std | runs |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        layer_order = lambda layer: (layer != "fbank", layer != "embed", layer == "final", layer)  # noqa: E731
        for (name, test, layer), slot in sorted(abx.items(), key=lambda kv: (kv[0][1], order[kv[0][0]],
                                                                             layer_order(kv[0][2]))):
            within, across = _mean_std(slot["within"]), _mean_std(slot["across"])
            lines.append(f"| {name} | {test} | {layer} | {100 * within[0]:.2f} | {100 * within[1]:.2f} | "
                         f"{100 * across[0]:.2f} | {100 * across[1]:.2f} | {len(slot['within'])} |")
    return "\n".join(lines) + "\n"


def _group(text: str) -> tuple[str, list[Path]]:
    name, sep, dirs = text.partition("=")
    if not sep or not name or not dirs:
        raise argparse.ArgumentTypeError(f"expected NAME=EXP[,EXP...], got {text!r}")
    return name, [Path(d) for d in dirs.split(",") if d]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp-dir", type=Path, default=Path("exp"))
    p.add_argument("--pl-dir", type=Path, default=Path("data/pl"))
    p.add_argument("--unsup-part", default="unsup_wild", help="name of the pseudo-labelled part")
    p.add_argument("--out", type=Path, help="default: <exp-dir>/RESULTS.md")
    p.add_argument("--asr-method", default="attention-decoder-rescoring", help="primary method of the asr task")
    p.add_argument("--ast-method", default="attention-beam-search", help="primary method of the ast task")
    p.add_argument("--select-on", default="dev",
                   help="test set on which a method's setting (e.g. attention scale) is chosen for all sets")
    p.add_argument("--group", type=_group, action="append",
                   help="NAME=EXP[,EXP...]: compare groups of runs averaged over their seeds (needs --out, --task)")
    p.add_argument("--task", choices=["asr", "ast"], help="task of the --group comparison")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    primary = {"asr": args.asr_method, "ast": args.ast_method}
    if args.group:
        if not (args.out and args.task):
            raise SystemExit("--group needs --out and --task")
        groups = dict(args.group)
        if len(groups) != len(args.group):
            raise SystemExit("--group names must be distinct")
        write_text_atomic(args.out, compare_groups(groups, args.task, primary[args.task], args.select_on))
        log.info("wrote %s (%d groups, %d runs)", args.out, len(groups), sum(map(len, groups.values())))
        return
    results = select_settings(find_results(args.exp_dir), args.select_on)
    if not results:
        raise SystemExit(f"no results-*.json under {args.exp_dir}: run the decoding stages first")
    out = args.out or args.exp_dir / "RESULTS.md"
    text = markdown(results, args.pl_dir if args.pl_dir.is_dir() else None, primary, args.unsup_part)
    write_text_atomic(out, text)
    pngs = plot(results, primary, out.parent)
    log.info("wrote %s (%d results) and %s", out, len(results), ", ".join(map(str, pngs)))


if __name__ == "__main__":
    main()
