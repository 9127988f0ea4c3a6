"""RESULTS.md from decoding results: the rows, settings chosen on dev, pseudo-label columns, plots,
comparisons of groups of runs over seeds and paired comparisons (``python -m less.bin.report``
is the command line; its help says what each table holds)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from less.decode.results import read_recogs, result_filename
from less.layout import SEED_SYSTEM, kept_report, parse_result_path
from less.metrics import align_units
from less.stats import (
    CORPUS_METRICS,
    bleu_sentence_stats,
    corpus_metric,
    error_rate_stats,
    mean_std,
    paired_bootstrap,
    sign_test,
)
from less.utils import atomic_path

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
        where = parse_result_path(path.relative_to(exp_dir))
        if where is None:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        found.append(
            Result(
                where.task,
                where.system,
                where.iteration,
                where.method,
                data["test"],
                data["metric"],
                float(data["value"]),
                data.get("best_setting", ""),
                data.get("command", ""),
                path,
                data.get("settings"),
            )
        )
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
                r = replace(
                    r, value=float(r.settings[setting]), setting=f"{setting} (on {select_on})"
                )
            else:
                r = replace(r, setting=f"{r.setting} (best on this set)")
        out.append(r)
    return out


def pl_summary(pl_dir: Path | None, task: str, system: str, iteration: int, part: str) -> dict:
    if pl_dir is None or system == SEED_SYSTEM:
        return {}
    path = kept_report(pl_dir, task, system, iteration, part)
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
        "dropped_error": errors.get("teacher label error, dropped cuts"),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def system_rank(system: str) -> tuple:
    """Sort key of a system name: S, S_cont, N, L, then the L_<threshold> variants by threshold, U,
    then any other name alphabetically."""
    fixed = {"S": 0, "S_cont": 1, "N": 2, "L": 3, "U": 5}
    if system in fixed:
        return (fixed[system], 0.0, system)
    if system.startswith("L_"):
        try:
            return (4, float(system[2:]), system)
        except ValueError:
            pass
    return (9, 0.0, system)


def markdown(results: list[Result], pl_dir: Path | None, primary: dict[str, str], part: str) -> str:
    key = lambda r: (r.task, r.test, r.iteration, system_rank(r.system))  # noqa: E731
    main = sorted((r for r in results if r.method == primary.get(r.task, r.method)), key=key)
    lines = [
        "# Results",
        "",
        "Systems: **S** supervised seed (iteration 0); **N** noisy student, teacher labels without LLM;",
        "**L** LESS: LLM-corrected labels kept where `hypo_wer <= threshold` (**L_t**: at threshold t);",
        "**S_cont** control: the seed trained as long again on the supervised data alone; **U** L plus the",
        "sequence-level unsupervised loss on the cuts L rejects.",
        "Pseudo-label columns: hours kept of the unlabeled set, and the true label error (from the",
        "hidden references) of the teacher's labels, the LLM's labels, and the labels trained on.",
        "",
        "| task | system | iter | test | metric | value | setting | PL hours kept | teacher PL err % | LLM PL err % | kept PL err % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in main:
        pl = pl_summary(pl_dir, r.task, r.system, r.iteration, part)
        hours = "-" if not pl else f"{pl['hours_kept']:.2f} / {pl['hours_in']:.2f}"
        lines.append(
            f"| {r.task} | {r.system} | {r.iteration} | {r.test} | {r.metric} | {r.value:.2f} | {r.setting or '-'} | {hours} | "
            f"{_pct(pl.get('teacher_error'))} | {_pct(pl.get('llm_error'))} | {_pct(pl.get('kept_error'))} |"
        )
    others = sorted((r for r in results if r.method != primary.get(r.task, r.method)), key=key)
    if others:
        lines += [
            "",
            "## Other decoding methods",
            "",
            "| task | system | iter | test | method | metric | value | setting |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r.task} | {r.system} | {r.iteration} | {r.test} | {r.method} | {r.metric} | {r.value:.2f} "
            f"| {r.setting or '-'} |"
            for r in others
        ]
    lines += ["", "## Commands", ""]
    by_command: dict[str, list[str]] = {}
    for r in sorted(results, key=key):
        by_command.setdefault(r.command, []).append(
            f"{r.task} {r.system} iter{r.iteration} {r.method} {r.test}"
        )
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
                points = sorted(
                    (r.iteration, r.value) for r in rows if r.system == system and r.test == test
                )
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


def read_abx_layers(path: Path) -> dict[str, dict[str, float]]:
    """layer -> {"within", "across"} error rates (fractions) of one ABX result file
    (``less.bin.abx --out``)."""
    layers = json.loads(path.read_text(encoding="utf-8"))["layers"]
    return {layer: {k: values[k] for k in ("within", "across")} for layer, values in layers.items()}


def _abx_results(run: Path, task: str) -> dict[tuple[str, str], dict[str, float]]:
    """(test, layer) -> {"within", "across"} of the run's pretrained encoder(s)."""
    out = {}
    for path in sorted(run.glob(f"{task}/ssl_*/abx_*.json")):
        test = path.stem[len("abx_") :]
        for layer, values in read_abx_layers(path).items():
            out[(test, layer)] = values
    return out


def run_results(run: Path, task: str, primary: str, select_on: str = "dev") -> list[Result]:
    """One run's results of ``task`` with the ``primary`` method, at the settings chosen on ``select_on``."""
    found = [
        r
        for r in select_settings(find_results(run), select_on)
        if r.task == task and r.method == primary
    ]
    if not found:
        raise SystemExit(f"{run}: no {task} {primary} results (run the decoding stages first)")
    return found


def _pl_rows(
    groups: dict[str, list[Path]], task: str, systems: set[tuple[str, int]], part: str
) -> list[str]:
    """Markdown rows: per run (its pseudo-labels in ``<run>/pl``, the --seeds layout) and system,
    hours kept and label errors; then the mean over the group's runs."""
    out = []
    for name, runs in groups.items():
        for system, iteration in sorted(systems, key=lambda si: (si[1], system_rank(si[0]))):
            found = [(run, pl_summary(run / "pl", task, system, iteration, part)) for run in runs]
            found = [(run, pl) for run, pl in found if pl]
            for run, pl in found:
                out.append(
                    f"| {name} | {run.name} | {system} | {iteration} | {pl['hours_kept']:.2f} / {pl['hours_in']:.2f} "
                    f"| {_pct(pl['teacher_error'])} | {_pct(pl['llm_error'])} | {_pct(pl['kept_error'])} "
                    f"| {_pct(pl['dropped_error'])} |"
                )
            if len(found) > 1:

                def mean(key: str, found: list = found) -> float | None:
                    values = [pl[key] for _, pl in found if pl[key] is not None]
                    return sum(values) / len(values) if values else None

                out.append(
                    f"| {name} | mean | {system} | {iteration} | {mean('hours_kept'):.2f} / {mean('hours_in'):.2f} "
                    f"| {_pct(mean('teacher_error'))} | {_pct(mean('llm_error'))} | {_pct(mean('kept_error'))} "
                    f"| {_pct(mean('dropped_error'))} |"
                )
    return out


def compare_groups(
    groups: dict[str, list[Path]],
    task: str,
    primary: str,
    select_on: str = "dev",
    part: str = "unsup_wild",
) -> str:
    """Markdown: each group's results averaged over its runs (one run per seed)."""
    rows: dict[tuple[str, str, int, str], dict[str, list]] = {}
    abx: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for name, runs in groups.items():
        for run in runs:
            for r in run_results(run, task, primary, select_on):
                entry = rows.setdefault(
                    (name, r.system, r.iteration, r.test),
                    {"metric": r.metric, "values": [], "settings": []},
                )
                entry["values"].append(r.value)
                entry["settings"].append(r.setting.split(" ")[0] if r.setting else "-")
            for (test, layer), values in _abx_results(run, task).items():
                slot = abx.setdefault((name, test, layer), {"within": [], "across": []})
                slot["within"].append(values["within"])
                slot["across"].append(values["across"])
    order = {name: i for i, name in enumerate(groups)}
    pl_rows = _pl_rows(
        groups, task, {(system, iteration) for (_, system, iteration, _) in rows}, part
    )
    lines = [
        f"# {task}: runs averaged over seeds ({primary}; settings chosen on {select_on} per run)",
        "",
        "| group | system | iter | test | metric | mean | std | runs | per run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (name, system, iteration, test), entry in sorted(
        rows.items(), key=lambda kv: (kv[0][3], kv[0][2], system_rank(kv[0][1]), order[kv[0][0]])
    ):
        mean, std = mean_std(entry["values"])
        per_run = ", ".join(f"{v:.2f}" for v in entry["values"])
        lines.append(
            f"| {name} | {system} | {iteration} | {test} | {entry['metric']} | {mean:.2f} | {std:.2f} | "
            f"{len(entry['values'])} | {per_run} |"
        )
    if pl_rows:
        lines += [
            "",
            f"## Pseudo-labels per run ({part}; true label error from the hidden references, %)",
            "",
            "Teacher: its labels on all cuts; LLM: the LLM's labels on all cuts; kept: the labels trained on;",
            "dropped: the teacher's labels of the cuts the filter dropped.",
            "",
            "| group | run | system | iter | hours kept | teacher | LLM | kept | dropped |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += pl_rows
    if abx:
        lines += [
            "",
            "## ABX error of the pretrained encoders (%)",
            "",
            "| group | test | layer | within mean | within std | across mean | across std | runs |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        layer_order = lambda layer: (layer != "fbank", layer != "embed", layer == "final", layer)  # noqa: E731
        for (name, test, layer), slot in sorted(
            abx.items(), key=lambda kv: (kv[0][1], order[kv[0][0]], layer_order(kv[0][2]))
        ):
            within, across = mean_std(slot["within"]), mean_std(slot["across"])
            lines.append(
                f"| {name} | {test} | {layer} | {100 * within[0]:.2f} | {100 * within[1]:.2f} | "
                f"{100 * across[0]:.2f} | {100 * across[1]:.2f} | {len(slot['within'])} |"
            )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Side:
    """One side of a ``--paired`` comparison: a system, in every group or in one group."""

    system: str
    group: str | None = None

    def __str__(self) -> str:
        return self.system if self.group is None else f"{self.group}:{self.system}"


@dataclass
class UtteranceScores:
    """One system's per-utterance results on one test set of one run (from ``recogs``)."""

    cut_ids: list[str]
    refs: list[list[list[str]]]
    stats: np.ndarray
    """``(n, k)`` sufficient statistics of the corpus metric (:mod:`less.stats`)."""
    sentence: np.ndarray
    """Per-utterance score for the sign test: errors (CER/WER) or sentence BLEU."""


def recogs_path(r: Result) -> Path:
    """The ``recogs`` file behind ``r`` at the setting the report shows."""
    match = _RESULT.match(r.path.name)
    if match is None:
        raise ValueError(f"{r.path}: not a results-<test>-<suffix>.json file")
    setting = r.setting.split(" ")[0] if r.setting else ""
    return r.path.parent / result_filename("recogs", r.test, setting, match["suffix"])


def utterance_scores(r: Result) -> UtteranceScores:
    """Per-utterance statistics of ``r``, checked against the corpus value of its JSON."""
    path = recogs_path(r)
    if not path.is_file():
        raise SystemExit(
            f"{path}: missing; --paired needs the per-utterance results behind {r.path}"
        )
    if r.metric not in CORPUS_METRICS:
        raise SystemExit(
            f"{r.path}: metric {r.metric!r} has no paired statistics ({', '.join(CORPUS_METRICS)})"
        )
    entries = read_recogs(path)
    if not entries:
        raise SystemExit(f"{path}: no utterances")
    cut_ids = [cut_id for cut_id, _, _ in entries]
    refs = [cut_refs for _, cut_refs, _ in entries]
    if r.metric == "BLEU":
        stats, sentence = bleu_sentence_stats(
            [" ".join(hyp) for _, _, hyp in entries],
            [[" ".join(ref) for ref in cut_refs] for cut_refs in refs],
        )
    else:
        several = next((cut_id for cut_id, cut_refs, _ in entries if len(cut_refs) != 1), None)
        if several is not None:
            raise SystemExit(
                f"{path}: cut {several!r} has several references; {r.metric} needs one"
            )
        errors = [align_units(cut_refs[0], hyp).errors for _, cut_refs, hyp in entries]
        stats = error_rate_stats(errors, [len(cut_refs[0]) for cut_refs in refs])
        sentence = stats[:, 0].copy()
    value = float(corpus_metric(stats, CORPUS_METRICS[r.metric]))
    if abs(value - r.value) > 0.01:
        raise SystemExit(
            f"{path}: {r.metric} recomputed from the recogs is {value:.4f}, "
            f"but {r.path} says {r.value:.4f} at setting {r.setting or '-'}"
        )
    return UtteranceScores(cut_ids, refs, stats, sentence)


def _iteration_pairs(iters_a: set[int], iters_b: set[int]) -> list[tuple[int, int]]:
    """Iterations compared: the same ones, or every iteration against the seed S (iteration 0 only)."""
    if iters_a == {0} and iters_b != {0}:
        return [(0, k) for k in sorted(iters_b)]
    if iters_b == {0} and iters_a != {0}:
        return [(k, 0) for k in sorted(iters_a)]
    return [(k, k) for k in sorted(iters_a & iters_b)]


def _p_value(p: float, num_resamples: int) -> str:
    return f"< {1 / num_resamples:.2g}" if p == 0 else f"{p:.3g}"


def _sign_cell(differences: list[float] | np.ndarray, lower_is_better: bool) -> str:
    """``better/worse/tied (p)`` of A against B."""
    test = sign_test(differences)
    better, worse = (
        (test.negative, test.positive) if lower_is_better else (test.positive, test.negative)
    )
    return f"{better}/{worse}/{test.ties} (p {test.p_value:.3g})"


def paired_rows(
    a: Side,
    b: Side,
    runs_a: list[list[Result]],
    runs_b: list[list[Result]],
    num_resamples: int,
    bootstrap_seed: int,
) -> list[str]:
    """Markdown rows of A against B, run i of A paired with run i of B (the same seed)."""

    def index(runs: list[list[Result]], system: str) -> list[dict[tuple[int, str], Result]]:
        return [{(r.iteration, r.test): r for r in found if r.system == system} for found in runs]

    by_run_a, by_run_b = index(runs_a, a.system), index(runs_b, b.system)
    iterations = [
        set.intersection(*({k[0] for k in run} for run in by_run))
        for by_run in (by_run_a, by_run_b)
    ]
    rows = []
    for iter_a, iter_b in _iteration_pairs(*iterations):
        tests = set.intersection(
            *({t for k, t in run if k == iter_a} for run in by_run_a),
            *({t for k, t in run if k == iter_b} for run in by_run_b),
        )
        for test in sorted(tests):
            results_a = [run[(iter_a, test)] for run in by_run_a]
            results_b = [run[(iter_b, test)] for run in by_run_b]
            metric = results_a[0].metric
            if any(r.metric != metric for r in results_a + results_b):
                raise SystemExit(f"{test}: metrics differ between runs ({results_a[0].path}, ...)")
            scores_a = [utterance_scores(r) for r in results_a]
            scores_b = [utterance_scores(r) for r in results_b]
            for ra, rb, sa, sb in zip(results_a, results_b, scores_a, scores_b):
                if sa.cut_ids != sb.cut_ids:
                    raise SystemExit(
                        f"{recogs_path(ra)} and {recogs_path(rb)} are not the same utterances"
                    )
            shared = all(
                s.cut_ids == scores_a[0].cut_ids and s.refs == scores_a[0].refs for s in scores_a
            )
            boot = paired_bootstrap(
                [s.stats for s in scores_a],
                [s.stats for s in scores_b],
                CORPUS_METRICS[metric],
                num_resamples=num_resamples,
                seed=bootstrap_seed,
                shared_utterances=shared,
            )
            lower_is_better = metric != "BLEU"
            per_seed = [ra.value - rb.value for ra, rb in zip(results_a, results_b)]
            utt_diffs = [sa.sentence - sb.sentence for sa, sb in zip(scores_a, scores_b)]
            utt_diffs = sum(utt_diffs) if shared else np.concatenate(utt_diffs)
            sizes = sorted({len(s.cut_ids) for s in scores_a})
            utterances = (
                f"{sizes[0]} x {len(scores_a)} seeds, shared"
                if shared
                else ", ".join(str(len(s.cut_ids)) for s in scores_a) + " (per seed)"
            )
            (mean_a, std_a), (mean_b, std_b) = (
                mean_std([r.value for r in results_a]),
                mean_std([r.value for r in results_b]),
            )
            iteration = str(iter_a) if iter_a == iter_b else f"{iter_a} vs {iter_b}"
            rows.append(
                f"| {a} - {b} | {test} | {iteration} | {metric} | {mean_a:.2f} ± {std_a:.2f} | {mean_b:.2f} ± {std_b:.2f} | "
                f"{', '.join(f'{r.value:.2f}' for r in results_a)} | {', '.join(f'{r.value:.2f}' for r in results_b)} | "
                f"{boot.difference:+.2f} | [{boot.low:+.2f}, {boot.high:+.2f}] | {_p_value(boot.p_value, num_resamples)} | "
                f"{_sign_cell(per_seed, lower_is_better)} | {_sign_cell(utt_diffs, lower_is_better)} | {utterances} |"
            )
            log.info(
                "%s - %s %s iter %s: %s %+.2f [%+.2f, %+.2f], p %.3g",
                a,
                b,
                test,
                iteration,
                metric,
                boot.difference,
                boot.low,
                boot.high,
                boot.p_value,
            )
    return rows


def paired_comparison(
    groups: dict[str, list[Path]],
    pairs: list[tuple[Side, Side]],
    task: str,
    primary: str,
    select_on: str = "dev",
    num_resamples: int = 1000,
    bootstrap_seed: int = 0,
) -> str:
    """Markdown: system A against system B paired by seed, with bootstrap intervals and sign tests."""
    results = {
        name: [run_results(run, task, primary, select_on) for run in runs]
        for name, runs in groups.items()
    }
    lines = [
        f"## Paired comparisons over seeds ({task}, {primary}; settings chosen on {select_on} per run)",
        "",
        "Runs of A and B are paired by position in their `--group` (one run per seed). Per test set: each",
        "system's mean ± sample std over seeds and every seed's value; A - B is the mean over seeds of the",
        "per-seed corpus difference (negative: A has fewer errors; for BLEU positive is better).",
        f"95 % CI and p: paired bootstrap over utterances ({num_resamples} resamples, RNG seed {bootstrap_seed}),",
        "utterances resampled within each seed, with one draw shared by all seeds when they decoded the same",
        "utterances; p is twice the fraction of resamples where the difference is 0 or has the other sign.",
        "It measures the uncertainty of the finite test set for these trained models, not seed-to-seed",
        "variance. Sign tests (exact binomial, two-sided, ties dropped) count A better/worse/tied over seeds",
        "(n seeds cannot reach p < 2/2^n: 0.25 for three) and over utterances (errors, or sentence BLEU;",
        "with shared utterances the difference summed over seeds).",
        "",
        "| A - B | test | iter | metric | A mean ± std | B mean ± std | A per seed | B per seed | A - B | 95 % CI "
        "| p (bootstrap) | seeds A better/worse/tied (p) | utterances A better/worse/tied (p) | utterances |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a, b in pairs:
        if a.group is None:
            combos = [(Side(a.system, name), Side(b.system, name)) for name in groups]
        else:
            combos = [(a, b)]
        for side_a, side_b in combos:
            for side in (side_a, side_b):
                if side.group not in groups:
                    raise SystemExit(f"--paired {a},{b}: no --group named {side.group!r}")
            runs_a, runs_b = results[side_a.group], results[side_b.group]
            if len(runs_a) != len(runs_b):
                raise SystemExit(
                    f"--paired {a},{b}: groups {side_a.group!r} and {side_b.group!r} have "
                    f"{len(runs_a)} and {len(runs_b)} runs; runs are paired by position"
                )
            # the group is named unless there is only one
            named = a.group is not None or len(groups) > 1
            label_a, label_b = (side_a, side_b) if named else (a, b)
            rows = paired_rows(label_a, label_b, runs_a, runs_b, num_resamples, bootstrap_seed)
            if not rows:
                raise SystemExit(
                    f"--paired {a},{b}: no test set with results of both {side_a} and {side_b} in every run"
                )
            lines += rows
    return "\n".join(lines) + "\n"
