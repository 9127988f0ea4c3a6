"""Decode test sets with a trained model and score them (CER/WER, or BLEU for translation).

Results in icefall's names under ``<exp-dir>/<method>/``:
``recogs-<test>-epoch-E_avg-A.txt``, ``errs-<test>-epoch-E_avg-A.txt``,
``wer-summary-<test>-epoch-E_avg-A.txt`` (``bleu-*`` for translations), plus
``results-<test>-epoch-E_avg-A.json`` for ``less.bin.report``. Rescoring with several
attention scales adds the setting to the recogs/errs names (``attention_scale_0.5``).

Scoring: Mandarin CER, Spanish/English WER (``less.metrics.error_rate``), BLEU with all
references of a segment (``less.metrics.bleu``: sacrebleu, lowercased, punctuation
removed, as ESPnet reports Fisher/Callhome). For ``--task ast`` models, CTC methods score
the Spanish transcript (WER) and ``attention-beam-search`` the English translation (BLEU).

Example::

    python -m less.bin.decode --exp-dir exp/asr/iter0 --epoch 20 --avg 5 \\
        --method ctc-greedy-search --method attention-decoder-rescoring \\
        --test test_clean=data/fbank/mini-asr_cuts_test_clean.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

from less.checkpoint import add_inference_arguments, add_model_selection_arguments, inference_device
from less.data.cuts import read_cuts, translation_references
from less.data.datamodule import DataConfig, make_loader
from less.decode.recognizer import METHODS, DecodeOptions, Recognizer
from less.decode.results import result_filename, save_asr_results, save_bleu_results
from less.utils import cli_parser, progress_bar, resolve_dtype, setup_logging, write_json_atomic

log = logging.getLogger("less.decode")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    add_model_selection_arguments(p, required=True)
    p.add_argument(
        "--method", action="append", choices=METHODS, help="decoding method (repeatable)"
    )
    p.add_argument("--test", action="append", required=True, help="NAME=CUTS.jsonl.gz (repeatable)")
    p.add_argument("--beam-size", type=int, default=10)
    p.add_argument("--nbest", type=int, default=10, help="CTC N-best size for rescoring")
    p.add_argument(
        "--attention-scales",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[1.0],
        help="comma-separated attention scales of attention-decoder-rescoring",
    )
    p.add_argument(
        "--ctc-weight",
        type=float,
        default=0.0,
        help="joint CTC weight of attention-beam-search (ASR)",
    )
    p.add_argument(
        "--lm", type=Path, help="ctc-wfst: ARPA n-gram LM over the CTC units (less.bin.train_ngram)"
    )
    p.add_argument(
        "--lm-scales",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.5],
        help="ctc-wfst: comma-separated LM weights against the CTC log-probs (one result each)",
    )
    p.add_argument(
        "--wfst-beam", type=float, default=16.0, help="ctc-wfst: beam of the Viterbi search"
    )
    p.add_argument(
        "--ctc-topo",
        choices=["auto", "standard", "compact"],
        default="auto",
        help="ctc-wfst: CTC topology of the graph (auto: standard up to 1000 units, else compact)",
    )
    p.add_argument(
        "--max-len-ratio",
        type=float,
        default=0.5,
        help="max output tokens per encoder frame (25 Hz; speech has < 0.3)",
    )
    add_inference_arguments(p)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--dtype",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="autocast of the encoder (searches and scores stay fp32); auto: bf16 on a CPU "
        "with native bf16, else fp32",
    )
    return p


def references(cut, task: str, method: str) -> tuple[str, list[str] | str]:
    """(what is scored, reference): the transcript, or all translation references for AST AED."""
    sup = cut.supervisions[0]
    if task == "ast" and method == "attention-beam-search":
        refs = translation_references(sup, "en")
        if not refs:
            raise ValueError(
                f"cut {cut.id}: no English reference (custom['translated_text']['en'])"
            )
        return "translation", refs
    if not sup.text:
        raise ValueError(f"cut {cut.id}: no reference transcript to score against")
    return "transcript", sup.text


def decode_test_set(
    recognizer: Recognizer, cuts, methods: list[str], opts: DecodeOptions, data_cfg: DataConfig
) -> dict[str, tuple[dict[str, list[tuple[str, object, str]]], float]]:
    """``{method: ({setting: [(cut id, reference, hypothesis)]}, seconds)}``: every method
    decodes each batch from one encoder pass (the encoder is most of the cost of CTC
    greedy search and of attention rescoring)."""
    loader, _, _ = make_loader(cuts, data_cfg, training=False)
    results: dict[str, dict[str, list[tuple[str, str]]]] = {m: {} for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    encoder_seconds = 0.0
    for batch in progress_bar(loader, desc="+".join(methods), unit="batch"):
        begin = time.time()
        enc_out, enc_lens = recognizer.encode(batch["inputs"], batch["input_lens"])
        encoder_seconds += time.time() - begin
        for method in methods:
            begin = time.time()
            by_setting = recognizer.decode_encoded(enc_out, enc_lens, method, opts)
            seconds[method] += time.time() - begin
            for setting, hyps in by_setting.items():
                for cut_id, hyp in zip(batch["cut_ids"], hyps):
                    results[method].setdefault(setting, []).append((cut_id, hyp.text))
    by_id = {c.id: c for c in cuts}
    return {
        method: (
            {
                setting: [
                    (cut_id, references(by_id[cut_id], recognizer.task, method)[1], text)
                    for cut_id, text in items
                ]
                for setting, items in by_setting.items()
            },
            seconds[method] + encoder_seconds / len(methods),
        )
        for method, by_setting in results.items()
    }


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    device = inference_device(args)
    methods = args.method or ["ctc-greedy-search"]
    tests = []
    for spec in args.test:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--test expects NAME=CUTS.jsonl.gz, got {spec!r}")
        tests.append((name, Path(path)))
    suffix = f"epoch-{args.epoch}_avg-{args.avg}"
    recognizer = None
    opts = DecodeOptions(
        beam_size=args.beam_size,
        nbest=args.nbest,
        attention_scales=args.attention_scales,
        ctc_weight=args.ctc_weight,
        max_len_ratio=args.max_len_ratio,
    )
    data_cfg = DataConfig(
        max_duration=args.max_duration, num_workers=args.num_workers, spec_augment=False
    )
    for name, path in tests:
        todo = []
        for method in methods:
            done = args.exp_dir / method / f"results-{name}-{suffix}.json"
            if done.is_file():
                log.info("%s exists: skipping %s on %s", done, method, name)
            else:
                todo.append(method)
        if not todo:
            continue
        if recognizer is None:
            recognizer = Recognizer.from_exp_dir(
                args.exp_dir,
                args.epoch,
                args.avg,
                args.use_averaged_model,
                device,
                resolve_dtype(args.dtype, device),
            )
            log.info("decoding in %s (encoder autocast) on %s", recognizer.dtype, device)
        if "ctc-wfst" in todo and opts.wfst is None:
            if args.lm is None:
                raise SystemExit(
                    "--method ctc-wfst needs --lm (an ARPA n-gram LM over the CTC units)"
                )
            from less.decode.wfst import build_graph

            opts.wfst = build_graph(
                recognizer.ctc_tokenizer.symbols,
                args.lm,
                topo=args.ctc_topo,
                lm_scale=args.lm_scales[0],
                beam=args.wfst_beam,
            )
            opts.lm_scales = tuple(args.lm_scales)
        cuts = read_cuts(path).to_eager()
        decoded = decode_test_set(recognizer, cuts, todo, opts, data_cfg)
        for method in todo:
            res_dir = args.exp_dir / method
            done = res_dir / f"results-{name}-{suffix}.json"
            results, elapsed = decoded[method]
            kind = references(cuts[0], recognizer.task, method)[0] if len(cuts) else "transcript"
            summary = {
                "method": method,
                "test": name,
                "suffix": suffix,
                "num_cuts": len(cuts),
                "command": "python -m less.bin.decode "
                + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
                "hours": sum(c.duration for c in cuts) / 3600,
                "seconds": elapsed,
                "settings": {},
            }
            if kind == "translation":
                scores = save_bleu_results(res_dir, name, suffix, results)
                summary["metric"] = "BLEU"
                summary["settings"] = {k: v.score for k, v in scores.items()}
                best = max(summary["settings"].items(), key=lambda kv: kv[1])
            else:
                lang = recognizer.ctc_tokenizer.lang
                scores = save_asr_results(res_dir, name, suffix, results, lang)
                summary["metric"] = "CER" if lang == "zh" else "WER"
                summary["settings"] = {k: v.percent for k, v in scores.items()}
                best = min(summary["settings"].items(), key=lambda kv: kv[1])
            summary["best_setting"], summary["value"] = best
            write_json_atomic(done, summary)
            log.info(
                "%s %s: %s %.2f (%s) on %d cuts in %.1f s -> %s",
                method,
                name,
                summary["metric"],
                best[1],
                best[0] or "-",
                len(cuts),
                elapsed,
                res_dir
                / result_filename(
                    "wer-summary" if kind != "translation" else "bleu-summary", name, "", suffix
                ),
            )


if __name__ == "__main__":
    main()
