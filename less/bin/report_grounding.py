"""The table of the visual-grounding experiment (``egs/mini/less/local/grounding.sh``).

Reads ``<out-dir>/<encoder>_s<seed>/abx_<lang>.json`` (less.bin.abx with phone alignments),
``<out-dir>/abx/fbank_<lang>.json`` and the last validation line of each grounded run's
training log (speech -> image R@1 / R@5 on dev), and writes ``<out-dir>/RESULTS.md``:

* phone ABX error (within / across speaker, %) per language, encoder and layer, mean ± sample
  std over seeds;
* the bilingual gap (ABX_bi - ABX_mono) / ABX_mono of Mandarin per layer, audio-only (zhes
  against zh) and grounded (zhes_vg against zh_vg), paired by seed (mean ± std of the
  per-seed gaps), and the grounding gain (audio-only gap - grounded gap);
* retrieval on dev for the grounded encoders (chance: k / distinct scenes).

Example::

    python -m less.bin.report_grounding --out-dir exp_vg --encoders zh zh_vg zhes zhes_vg --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from less.report import read_abx_layers
from less.stats import mean_std as stats_mean_std
from less.utils import cli_parser, write_text_atomic

LANGS = ("zh", "es")
PAIRS = (("audio only", "zh", "zhes"), ("grounded", "zh_vg", "zhes_vg"))  # (name, mono, bilingual)


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--encoders", nargs="+", default=["zh", "zh_vg", "zhes", "zhes_vg"])
    p.add_argument("--seeds", nargs="+", default=["1", "2", "3"])
    return p


def mean_std(values: list[float]) -> str:
    """``mean ± sample std`` (one value: itself; none: ``-``)."""
    if not values:
        return "-"
    mean, std = stats_mean_std(values)
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def load_abx(path: Path) -> dict[str, dict[str, float]] | None:
    """layer -> {"within": %, "across": %}; None when the run has not got there."""
    if not path.is_file():
        return None
    layers = read_abx_layers(path)
    return {layer: {k: 100 * r[k] for k in ("within", "across")} for layer, r in layers.items()}


_VALID = re.compile(r"validation .*?visual_r1 ([0-9.eE+-]+) visual_r5 ([0-9.eE+-]+)")


def last_retrieval(run_dir: Path) -> tuple[float, float] | None:
    """R@1, R@5 of the last validation in a run's training logs."""
    found = None
    for log in sorted((run_dir / "log").glob("log-*.txt")):
        for line in log.read_text(errors="replace").splitlines():
            m = _VALID.search(line)
            if m:
                found = (100 * float(m.group(1)), 100 * float(m.group(2)))
    return found


def collect(out_dir: Path, encoders: list[str], seeds: list[str]) -> dict:
    """(encoder, lang) -> seed -> layer -> {"within", "across"}"""
    runs: dict = {}
    for enc in encoders:
        for lang in LANGS:
            for seed in seeds:
                abx = load_abx(out_dir / f"{enc}_s{seed}" / f"abx_{lang}.json")
                if abx is not None:
                    runs.setdefault((enc, lang), {})[seed] = abx
    return runs


def abx_table(runs: dict, fbank: dict[str, dict], encoders: list[str], lang: str) -> list[str]:
    layers = sorted(
        {
            layer
            for (e, lg), by_seed in runs.items()
            if lg == lang
            for r in by_seed.values()
            for layer in r
        },
        key=lambda x: (x != "embed", x == "final", x),
    )
    lines = [f"| encoder (seeds) | {' | '.join(layers)} |", "| --- |" + " --- |" * len(layers)]
    if lang in fbank:
        f = fbank[lang]["fbank"]
        lines.append(
            f"| fbank | {f['within']:.2f} / {f['across']:.2f} |" + " |" * (len(layers) - 1)
        )
    for enc in encoders:
        by_seed = runs.get((enc, lang), {})
        if not by_seed:
            continue
        cells = []
        for layer in layers:
            w = [r[layer]["within"] for r in by_seed.values() if layer in r]
            a = [r[layer]["across"] for r in by_seed.values() if layer in r]
            cells.append(f"{mean_std(w)} / {mean_std(a)}")
        lines.append(f"| {enc} ({len(by_seed)}) | {' | '.join(cells)} |")
    return lines


def gap_table(runs: dict, lang: str) -> list[str]:
    """Per layer and ABX kind: the per-seed gaps of each pair, and the grounding gain over the
    seeds both pairs have (a seed is never set against another)."""
    lines = [
        "| layer | kind | audio-only gap % | grounded gap % | grounding gain (points) | per seed: audio; grounded |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    gaps: dict[
        tuple[str, str], dict[str, dict[str, float]]
    ] = {}  # (layer, kind) -> pair -> seed -> gap
    for name, mono, bi in PAIRS:
        m, b = runs.get((mono, lang), {}), runs.get((bi, lang), {})
        for seed in sorted(set(m) & set(b)):
            for layer in set(m[seed]) & set(b[seed]):
                for kind in ("within", "across"):
                    base = m[seed][layer][kind]
                    gap = 100 * (b[seed][layer][kind] - base) / base if base > 0 else float("nan")
                    gaps.setdefault((layer, kind), {}).setdefault(name, {})[seed] = gap
    for (layer, kind), by_pair in sorted(gaps.items()):
        audio, grounded = by_pair.get("audio only", {}), by_pair.get("grounded", {})
        common = sorted(set(audio) & set(grounded))
        gain = mean_std([audio[s] - grounded[s] for s in common]) if common else "-"

        def seeds(d: dict[str, float]) -> str:
            return ", ".join(f"s{s} {v:+.1f}" for s, v in sorted(d.items())) or "-"

        lines.append(
            f"| {layer} | {kind} | {mean_std(list(audio.values()))} | {mean_std(list(grounded.values()))} "
            f"| {gain} | {seeds(audio)}; {seeds(grounded)} |"
        )
    return lines


def report(out_dir: Path, encoders: list[str], seeds: list[str]) -> str:
    runs = collect(out_dir, encoders, seeds)
    missing = [
        f"{enc}_s{seed}/abx_{lang}.json"
        for enc in encoders
        for seed in seeds
        for lang in LANGS
        if seed not in runs.get((enc, lang), {})
    ]
    fbank = {
        lang: abx for lang in LANGS if (abx := load_abx(out_dir / "abx" / f"fbank_{lang}.json"))
    }
    parts = [
        "# Visual grounding: phone ABX of BEST-RQ encoders (mini corpus)",
        "",
        "ABX error % on test_clean, within / across speaker; phones from espeak-ng's own events; "
        "mean ± std over seeds.",
        "",
    ]
    for lang in LANGS:
        parts += [f"## {lang}", "", *abx_table(runs, fbank, encoders, lang), ""]
    parts += [
        "## Bilingual gap of Mandarin: (ABX_zhes - ABX_zh) / ABX_zh, paired by seed",
        "",
        *gap_table(runs, "zh"),
        "",
    ]
    rows = []
    for enc in encoders:
        got = [r for s in seeds if (r := last_retrieval(out_dir / f"{enc}_s{s}")) is not None]
        if got:
            rows.append(
                f"| {enc} ({len(got)}) | {mean_std([r[0] for r in got])} | {mean_std([r[1] for r in got])} |"
            )
    if rows:
        parts += [
            "## Speech -> image retrieval on dev (last validation)",
            "",
            "| encoder | R@1 % | R@5 % |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    if missing:
        parts += [f"Missing (not run yet, or failed): {', '.join(missing)}", ""]
    text = "\n".join(parts)
    write_text_atomic(out_dir / "RESULTS.md", text)
    return text


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    report(args.out_dir, args.encoders, args.seeds)


if __name__ == "__main__":
    main()
