"""Train an interpolated Kneser-Ney character (or word) n-gram LM and write it as ARPA.

The LM of system U's sequence-level loss (``less.bin.train --unsup-lm``): it scores each
hypothesis ``c`` of an unlabeled cut with ``log p_ngram(c)``. Units are those error rates
count (:func:`less.data.text.scoring_units`: characters for Mandarin, words otherwise),
after the project's normalisation. Estimation: :mod:`less.unsup.ngram` (own code: the
maintained packages convert ARPA files but do not estimate them); ``--fst-out`` converts
the result with ``kaldilm`` (Kaldi's arpa2fst) into a G FST for graph decoding, which also
checks the file.

Texts: ``--text`` files (one sentence per line) and ``--cuts`` cut sets, whose sentence is
the LLM's correction (``custom["pl"]["llm"]["text"]``) where a cut has one, else the
supervision text. Hidden references (``custom["ref_text"]``) are never read.

Example (the recipe's: the text-only corpus + the LLM-corrected pseudo-labels)::

    python -m less.bin.train_ngram --lang zh --order 3 --text data/text/mini-asr_text_only.zh.txt \\
        --cuts data/pl/asr/L/iter1/unsup_wild_cuts_kept.jsonl.gz --extra-tokens data/lang_char/tokens.txt \\
        --out data/lm/asr_char_3gram.arpa
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

from less.pseudo.record import find_record, find_supervision
from less.unsup.ngram import (
    NgramScorer,
    add_text_argument,
    perplexity,
    sentence_units,
    text_file_sentences,
    train_kneser_ney,
    write_arpa,
)
from less.utils import cli_parser, setup_logging, write_json_atomic

log = logging.getLogger("less.train_ngram")


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    add_text_argument(p, "text file, one sentence a line (repeatable)")
    p.add_argument(
        "--cuts",
        type=Path,
        action="append",
        default=[],
        help="cut set whose LLM texts (else supervision texts) are added (repeatable)",
    )
    p.add_argument(
        "--lang", choices=["zh", "es", "en"], required=True, help="normalisation and units"
    )
    p.add_argument("--order", type=int, default=3, help="n-gram order")
    p.add_argument(
        "--extra-tokens",
        type=Path,
        help="tokens.txt whose symbols all get a probability (no <unk> for a known CTC token)",
    )
    p.add_argument("--valid-text", type=Path, help="text file whose perplexity is reported")
    p.add_argument("--out", type=Path, required=True, help="ARPA file to write")
    p.add_argument(
        "--fst-out",
        type=Path,
        help="also write the G FST (kaldilm arpa2fst, binary) and its words.txt beside it",
    )
    return p


def read_sentences(args: argparse.Namespace) -> Iterator[list[str]]:
    yield from text_file_sentences(args.text, args.lang)
    for path in args.cuts:
        from less.data.cuts import read_cuts

        for cut in read_cuts(path):  # an empty kept-cuts file is an empty set, not None
            record, carrier = find_record(cut, str(path)), find_supervision(cut)
            for index, sup in enumerate(cut.supervisions):
                text = (record.llm_text if record and index == carrier else None) or sup.text
                units = sentence_units(text or "", args.lang)
                if units:
                    yield units


def extra_vocabulary(path: Path | None) -> list[str]:
    if path is None:
        return []
    from less.data.tokenizer import SPECIAL_SYMBOLS, read_tokens

    return [
        s
        for s in read_tokens(path)
        if s not in SPECIAL_SYMBOLS and not s.startswith("▁") and " " not in s
    ]


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if args.out.is_file() and (args.fst_out is None or args.fst_out.is_file()):
        log.info("%s exists: nothing to do", args.out)
        return
    if not args.text and not args.cuts:
        raise SystemExit("give --text and/or --cuts")
    sentences = list(read_sentences(args))
    if not sentences:
        raise SystemExit(f"no sentences in {[str(p) for p in args.text + args.cuts]}")
    lm = train_kneser_ney(sentences, args.order, extra_vocabulary(args.extra_tokens))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_arpa(lm, args.out)
    counts = [len(grams) for grams in lm.log_probs]
    scorer = NgramScorer(lm)
    train_ppl, _ = perplexity(scorer, sentences[:20000])
    stats = {
        "sentences": len(sentences),
        "units": sum(len(s) for s in sentences),
        "order": args.order,
        "ngrams": counts,
        "vocabulary": len(lm.vocabulary),
        "train_perplexity": train_ppl,
    }
    if args.valid_text:
        valid = list(text_file_sentences([args.valid_text], args.lang))
        stats["valid_perplexity"], stats["valid_units"] = perplexity(scorer, valid)
    log.info(
        "%d sentences, %d units -> %s: n-grams per order %s, vocabulary %d, perplexity %.2f (training text)%s",
        stats["sentences"],
        stats["units"],
        args.out,
        counts,
        stats["vocabulary"],
        train_ppl,
        f", {stats['valid_perplexity']:.2f} ({args.valid_text})" if args.valid_text else "",
    )
    write_json_atomic(args.out.with_suffix(".stats.json"), stats)
    if args.fst_out:
        import kaldilm

        from less.utils import atomic_path

        args.fst_out.parent.mkdir(parents=True, exist_ok=True)
        words = args.fst_out.with_name(args.fst_out.name.split(".")[0] + ".words.txt")
        with atomic_path(args.fst_out) as tmp_fst, atomic_path(words) as tmp_words:
            kaldilm.arpa2fst(
                str(args.out),
                str(tmp_fst),
                disambig_symbol="#0",
                write_symbol_table=str(tmp_words),
                max_arpa_warnings=-1,
            )
        log.info("G FST (kaldilm arpa2fst) -> %s, symbols %s", args.fst_out, words)


if __name__ == "__main__":
    main()
