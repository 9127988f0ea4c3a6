"""Build a token inventory: ``data/lang_char`` (Mandarin characters) or ``data/lang_bpe_<N>_<lang>``.

Text comes from supervision manifests or cut sets (``--manifest``, repeatable) — the
transcript (``--field text``) or the English translation (``--field translation``) —
plus optional plain-text files (``--extra-text``, one sentence per line, e.g. the recipe's
text-only corpus). Transcripts without text (unlabeled audio) are ignored; an empty or
non-UTF-8 line in a text file is an error naming the file and line.

Examples::

    python -m less.bin.prepare_lang --type char --lang zh --out-dir data/lang_char \\
        --manifest data/manifests/mini-asr_supervisions_train_sup.jsonl.gz
    python -m less.bin.prepare_lang --type bpe --vocab-size 256 --lang en --field translation \\
        --out-dir data/lang_bpe_256_en \\
        --manifest data/manifests/mini-ast_supervisions_train_sup.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

from less.data.tokenizer import build_bpe_lang, build_char_lang
from less.utils import cli_parser, setup_logging

log = logging.getLogger("less.prepare_lang")


def supervision_texts(manifest: Path, field: str, lang: str) -> Iterator[str]:
    """Texts of every supervision in a supervision manifest or a cut set."""
    from less.data.cuts import iter_manifest, iter_supervisions, supervision_target

    for sup in iter_supervisions(iter_manifest(manifest)):
        text = supervision_target(sup, field, lang)
        if text:
            yield text


def text_file_lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{line_number}: not valid UTF-8 ({e})") from None
            if not line:
                raise ValueError(f"{path}:{line_number}: empty line in a text corpus")
            yield line


def get_parser() -> argparse.ArgumentParser:
    p = cli_parser(__doc__)
    p.add_argument("--type", choices=["char", "bpe"], required=True, help="token type")
    p.add_argument("--lang", choices=["zh", "es", "en"], required=True, help="language of the text")
    p.add_argument("--out-dir", type=Path, required=True, help="lang directory to create")
    p.add_argument(
        "--manifest",
        type=Path,
        action="append",
        default=[],
        help="supervision manifest or cut set to read texts from (repeatable)",
    )
    p.add_argument(
        "--field",
        choices=["text", "translation"],
        default="text",
        help="transcript (text) or supervision.custom['translated_text'][lang] (translation)",
    )
    p.add_argument(
        "--extra-text",
        type=Path,
        action="append",
        default=[],
        help="plain text file, one sentence per line (repeatable)",
    )
    p.add_argument(
        "--vocab-size", type=int, default=500, help="BPE vocabulary size (with the 3 specials)"
    )
    p.add_argument("--min-count", type=int, default=1, help="char: drop units seen fewer times")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    done = args.out_dir / "lang.json"
    if done.is_file():
        log.info("%s exists: nothing to do (delete it to rebuild)", done)
        return
    if not args.manifest and not args.extra_text:
        raise SystemExit("prepare_lang: give at least one --manifest or --extra-text")

    def texts() -> Iterator[str]:
        for manifest in args.manifest:
            yield from supervision_texts(manifest, args.field, args.lang)
        for path in args.extra_text:
            yield from text_file_lines(path)

    if args.type == "char":
        tokenizer = build_char_lang(texts(), args.lang, args.out_dir, min_count=args.min_count)
    else:
        tokenizer = build_bpe_lang(texts(), args.lang, args.out_dir, vocab_size=args.vocab_size)
    log.info(
        "wrote %s: %d tokens (%s, %s)", args.out_dir, tokenizer.vocab_size, args.type, args.lang
    )


if __name__ == "__main__":
    main()
