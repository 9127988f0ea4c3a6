"""Check the two conditions of unsupervised ASR (Yang et al., arXiv 2603.02285) on a corpus.

C2 on text (``--text``): rank and smallest singular value of the context matrix of the
labels (characters for Mandarin; left and right neighbours, ``--context-size`` units
each), the most collinear label pairs by cosine of their context columns, and the groups
of near-interchangeable labels (cosine >= ``--threshold``) — labels that unpaired audio
cannot tell apart through the LM. See :mod:`less.unsup.conditions`.

C1 on audio (``--cuts NAME=CUTS``, e.g. test_clean and test_wild): a context ABX — can a
character's own frames tell which characters surround it? 50 % error: no (C1 holds); lower:
the audio depends on context. Beside it, the unit ABX over the same segments (can the
frames tell the character?) as the scale. C1 needs unit timing, which the mini corpus
lacks: a trained model's CTC forced alignment (``--align-checkpoint``) is written once to
``--alignments-dir/align_<NAME>.jsonl`` and reused. Features: ``fbank`` by default, or an
encoder layer of ``--checkpoint`` (``--layer``). Without ``--cuts`` only C2 is checked.

Example (the mini recipe)::

    python -m less.bin.check_unsup_conditions --lang zh --text data/text/mini-asr_text_only.zh.txt \\
        --cuts test_clean=data/fbank/mini-asr_cuts_test_clean.jsonl.gz \\
        --cuts test_wild=data/fbank/mini-asr_cuts_test_wild.jsonl.gz \\
        --alignments-dir exp/asr/iter0 --align-checkpoint exp/asr/iter0/epoch-30.pt --out exp/asr/unsup_conditions.json
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from less.data.cuts import keep_cuts
from less.unsup.conditions import check_c2, context_items, context_matrix, unit_items
from less.unsup.ngram import add_text_argument, text_file_sentences
from less.utils import cli_parser, setup_logging, write_json_atomic

log = logging.getLogger("less.check_unsup_conditions")


def _named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=CUTS, got {text!r}")
    return name, Path(path)


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    add_text_argument(p, "text corpus, one sentence a line (C2)")
    p.add_argument(
        "--lang", choices=["zh", "es", "en"], default="zh", help="normalisation and units of --text"
    )
    p.add_argument(
        "--context-size", type=int, default=1, help="units of context on each side (1: bigram)"
    )
    p.add_argument(
        "--min-count", type=int, default=20, help="labels rarer than this are left out of C2"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="cosine joining labels into interchangeable groups",
    )
    p.add_argument("--max-pairs", type=int, default=30, help="collinear pairs printed")
    p.add_argument(
        "--cuts",
        type=_named,
        action="append",
        default=[],
        help="NAME=CUTS with features (C1; repeatable)",
    )
    p.add_argument(
        "--alignments-dir", type=Path, help="where align_<NAME>.jsonl are read or written"
    )
    p.add_argument(
        "--align-checkpoint", type=Path, help="trained CTC model for the forced alignment"
    )
    p.add_argument(
        "--checkpoint", type=Path, help="model whose encoder layer is compared (with --layer)"
    )
    p.add_argument("--layer", default="fbank", help="fbank (no checkpoint), embed, 0..5 or final")
    p.add_argument(
        "--units",
        choices=["char", "espeak-cmn"],
        default="char",
        help="C1 units: characters, or their espeak-ng syllables (homophones one category)",
    )
    p.add_argument(
        "--max-group-size",
        type=int,
        default=10,
        help="ABX tokens kept per (context, speaker, unit)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, help="JSON report")
    return p


def check_c1(name: str, cuts_path: Path, args: argparse.Namespace) -> dict:
    import torch
    from lhotse import CutSet

    from less.bin.abx import load_encoder, unit_map_for, utterance_features
    from less.ssl.abx import abx_error, segment
    from less.ssl.alignment import align_cuts, load_alignments, save_alignments

    if args.alignments_dir is None:
        raise SystemExit(
            "C1 (--cuts) needs --alignments-dir (and --align-checkpoint the first time)"
        )
    cuts = CutSet.from_file(cuts_path).to_eager()
    path = args.alignments_dir / f"align_{name}.jsonl"
    if path.is_file():
        alignments = load_alignments(path)
    else:
        if args.align_checkpoint is None:
            raise SystemExit(f"{path} does not exist: give --align-checkpoint to make it")
        from less.decode.recognizer import Recognizer

        alignments, skipped = align_cuts(Recognizer.from_file(args.align_checkpoint, "cpu"), cuts)
        save_alignments(path, alignments)
        log.info(
            "%s: aligned %d cuts with %s (%d skipped) -> %s",
            name,
            len(alignments),
            args.align_checkpoint,
            skipped,
            path,
        )
    aligned = {a.cut_id for a in alignments}
    cuts = keep_cuts(cuts, lambda c: c.id in aligned)
    unit_map = unit_map_for(alignments, args.units)
    encoder = None
    if args.layer != "fbank":
        if args.checkpoint is None:
            raise SystemExit(f"--layer {args.layer} needs --checkpoint")
        encoder = load_encoder(args.checkpoint, True, torch.device("cpu"))
    frames = utterance_features(cuts, args.layer, encoder, torch.device("cpu"), 200.0)
    result = {}
    for kind, items in (
        ("context", context_items(alignments, unit_map)),
        ("unit", unit_items(alignments, unit_map)),
    ):
        features = [segment(*frames[item.cut_id], item.start, item.end) for item in items]
        abx = abx_error(items, features, args.max_group_size, args.seed)
        result[kind] = abx.as_dict()
    log.info(
        "C1 %s (%s, %s): context ABX %.2f%% over %d context pairs (50%% = context inaudible, C1 holds); "
        "unit ABX %.2f%% over %d unit pairs",
        name,
        args.layer,
        args.units,
        100 * result["context"]["within"],
        result["context"]["within_pairs"],
        100 * result["unit"]["within"],
        result["unit"]["within_pairs"],
    )
    return {
        "cuts": str(cuts_path),
        "alignments": str(path),
        "layer": args.layer,
        "units": args.units,
        "utterances": len(alignments),
        **result,
    }


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if not args.text and not args.cuts:
        raise SystemExit("give --text (C2) and/or --cuts (C1)")
    report: dict = {}
    if args.text:
        sentences = list(text_file_sentences(args.text, args.lang))
        c2 = check_c2(
            context_matrix(sentences, args.context_size, args.min_count),
            args.threshold,
            max(args.max_pairs, 50),
        )
        print("\n".join(c2.lines(args.max_pairs)))
        report["c2"] = {
            "text": [str(p) for p in args.text],
            "sentences": len(sentences),
            "context_size": args.context_size,
            "min_count": args.min_count,
            "threshold": args.threshold,
            **asdict(c2),
        }
    if args.cuts:
        import torch

        torch.set_num_threads(max(1, args.num_threads))
        report["c1"] = {name: check_c1(name, path, args) for name, path in args.cuts}
        for name, result in report["c1"].items():
            print(
                f"C1 {name}: context ABX {100 * result['context']['within']:.2f}% "
                f"({result['context']['within_pairs']} context pairs; 50% = C1 holds), "
                f"unit ABX {100 * result['unit']['within']:.2f}% ({result['unit']['within_pairs']} unit pairs)"
            )
    if args.out:
        write_json_atomic(args.out, report)
        log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
