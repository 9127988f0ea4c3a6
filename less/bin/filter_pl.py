"""Stage 8: keep pseudo-labelled cuts whose LLM correction changed little (``hypo_wer``).

Reads the LLM-corrected cuts (``<part>_cuts_llm.jsonl.gz``), writes the kept cuts with
their training label applied (``<part>_cuts_kept.jsonl.gz``), all cuts annotated with
``pl["hypo_wer"]``/``pl["kept"]`` (``--annotated-cuts``, optional), and a report
(``<out>.report.json`` and ``.txt``): cuts and hours kept, why the others were dropped,
and — where hidden references exist, as in the mini corpus — the true error rate of the
teacher labels and the LLM labels over all cuts, and of the labels kept vs. dropped.

LESS (the paper's setting)::

    python -m less.bin.filter_pl --in-cuts .../unsup_wild_cuts_llm.jsonl.gz \\
        --out-cuts .../unsup_wild_cuts_kept.jsonl.gz --task asr --lang zh --max-hypo-wer 0.1

Noisy-student without an LLM (teacher labels, no hypo_wer)::

    python -m less.bin.filter_pl --in-cuts .../unsup_wild_cuts_pl.jsonl.gz \\
        --out-cuts .../kept.jsonl.gz --task asr --lang zh --max-hypo-wer -1 --label teacher
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from less.data.cuts import read_cuts
from less.pseudo.filter import FilterConfig, filter_cuts
from less.utils import (
    already_done,
    cli_parser,
    config_from_args,
    config_options,
    save_cuts_atomic,
    setup_logging,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger("less.filter_pl")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--in-cuts", type=Path, required=True)
    p.add_argument("--out-cuts", type=Path, required=True, help="kept cuts, labels applied")
    p.add_argument(
        "--annotated-cuts", type=Path, help="all cuts with pl['hypo_wer'] and pl['kept']"
    )
    p.add_argument("--task", choices=["asr", "ast"], required=True)
    p.add_argument(
        "--lang",
        choices=["zh", "es", "en"],
        required=True,
        help="language of the pseudo-label that the LLM corrected (zh; en for translations)",
    )
    config_options(
        p,
        FilterConfig(lang="zh"),
        choices={"label": ["llm", "teacher"]},
        max_hypo_wer="keep cuts with hypo_wer <= this (the paper: 0.1); negative: no hypo_wer filter",
        label="which text the kept cuts train on",
        keep_llm_failures="keep cuts whose LLM answer was rejected/failed (with the teacher text)",
        min_confidence="drop cuts with lower teacher confidence",
        min_chars_per_second="units (chars zh, words otherwise) per s",
        max_chars_per_second=None,
        max_length_ratio="drop cuts whose label and teacher lengths differ by more than this factor",
    )
    p.add_argument(
        "--max-lm-cer",
        type=float,
        default=-1.0,
        help="WeNet's LM filter: drop cuts whose teacher 1-best and LM decoding (pseudo_label --lm) "
        "differ by more than this edit-distance rate (negative: off)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if already_done(args.out_cuts, log):
        return
    from lhotse import CutSet

    cfg = config_from_args(
        FilterConfig,
        args,
        max_hypo_wer=None if args.max_hypo_wer < 0 else args.max_hypo_wer,
        max_lm_cer=None if args.max_lm_cer < 0 else args.max_lm_cer,
    )
    kept, annotated, report = filter_cuts(read_cuts(args.in_cuts), cfg, args.task)
    if args.annotated_cuts:
        save_cuts_atomic(CutSet.from_cuts(annotated), args.annotated_cuts)
    stem = args.out_cuts.name.replace(".jsonl.gz", "")
    write_json_atomic(args.out_cuts.with_name(stem + ".report.json"), report.as_dict())
    write_text_atomic(
        args.out_cuts.with_name(stem + ".report.txt"), "\n".join(report.lines()) + "\n"
    )
    save_cuts_atomic(CutSet.from_cuts(kept), args.out_cuts)
    for line in report.lines():
        log.info("%s", line)


if __name__ == "__main__":
    main()
