"""Tokenizers behind one interface: Mandarin characters and sentencepiece BPE.

A ``lang`` directory (``data/lang_char``, ``data/lang_bpe_<N>_<lang>``) holds
``tokens.txt`` (``<symbol> <id>`` per line, icefall's format), ``lang.json``
(type and language) and, for BPE, ``bpe.model``. Ids are fixed across types:
``<blk>`` = 0 (CTC blank), ``<sos/eos>`` = 1, ``<unk>`` = 2. Text is normalised
(:func:`less.data.text.normalize`) before encoding, so training targets and
scoring see the same text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from less.data.text import normalize, scoring_units

BLANK = "<blk>"
SOS_EOS = "<sos/eos>"
UNK = "<unk>"
SPECIAL_SYMBOLS = (BLANK, SOS_EOS, UNK)


class Tokenizer(Protocol):
    lang: str
    blank_id: int
    sos_id: int
    eos_id: int
    unk_id: int

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def read_tokens(path: str | Path) -> list[str]:
    """Read ``tokens.txt`` into a list indexed by id; checks ids are 0..N-1."""
    path = Path(path)
    symbols: dict[int, str] = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{path}:{line_number}: expected '<symbol> <id>', got {line!r}")
        symbols[int(parts[1])] = parts[0]
    if sorted(symbols) != list(range(len(symbols))):
        raise ValueError(f"{path}: token ids are not contiguous from 0")
    table = [symbols[i] for i in range(len(symbols))]
    if tuple(table[:3]) != SPECIAL_SYMBOLS:
        raise ValueError(f"{path}: the first ids must be {SPECIAL_SYMBOLS}, got {table[:3]}")
    return table


def write_tokens(path: Path, symbols: Sequence[str]) -> None:
    from less.utils import write_text_atomic

    write_text_atomic(path, "".join(f"{s} {i}\n" for i, s in enumerate(symbols)))


class _Special:
    blank_id = 0
    sos_id = 1
    eos_id = 1
    unk_id = 2


class CharTokenizer(_Special):
    """Mandarin: one token per character; Latin words (rare in Mandarin corpora) stay whole."""

    def __init__(self, symbols: Sequence[str], lang: str = "zh"):
        self.lang = lang
        self.symbols = list(symbols)
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def units(self, text: str) -> list[str]:
        return scoring_units(text, self.lang)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(u, self.unk_id) for u in self.units(text)]

    def decode(self, ids: Sequence[int]) -> str:
        pieces = [self.symbols[i] for i in ids if i >= self.unk_id]
        out = ""
        for piece in pieces:
            if out and piece.isascii() and out[-1].isascii() and piece.isalnum():
                out += " "
            out += piece
        return out


class BpeTokenizer(_Special):
    """Sentencepiece BPE whose piece ids equal the token ids (specials trained in place)."""

    def __init__(self, model_path: str | Path, lang: str):
        import sentencepiece as spm

        self.lang = lang
        self.model_path = str(model_path)
        self.sp = spm.SentencePieceProcessor(model_file=self.model_path)
        if [self.sp.id_to_piece(i) for i in range(3)] != [BLANK, SOS_EOS, UNK]:
            raise ValueError(f"{model_path}: ids 0-2 must be {SPECIAL_SYMBOLS}")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def symbols(self) -> list[str]:
        """Piece of every id (as ``CharTokenizer.symbols``)."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(normalize(text, self.lang))

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) > self.unk_id])


def load_tokenizer(lang_dir: str | Path) -> CharTokenizer | BpeTokenizer:
    lang_dir = Path(lang_dir)
    meta_path = lang_dir / "lang.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: run less.bin.prepare_lang for {lang_dir}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta["type"] == "char":
        return CharTokenizer(read_tokens(lang_dir / "tokens.txt"), meta["lang"])
    if meta["type"] == "bpe":
        return BpeTokenizer(lang_dir / "bpe.model", meta["lang"])
    raise ValueError(f"{meta_path}: unknown tokenizer type {meta['type']!r}")


def build_char_lang(
    texts: Iterable[str], lang: str, out_dir: Path, min_count: int = 1
) -> CharTokenizer:
    """Collect the units of ``texts`` (sorted by frequency, then code point) into ``out_dir``."""
    from collections import Counter

    from less.utils import write_json_atomic

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(scoring_units(text, lang))
    units = sorted((u for u, c in counts.items() if c >= min_count), key=lambda u: (-counts[u], u))
    if not units:
        raise ValueError(f"no text to build {out_dir} from")
    symbols = [*SPECIAL_SYMBOLS, *units]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tokens(out_dir / "tokens.txt", symbols)
    write_json_atomic(out_dir / "lang.json", {"type": "char", "lang": lang, "min_count": min_count})
    return CharTokenizer(symbols, lang)


def build_bpe_lang(
    texts: Iterable[str], lang: str, out_dir: Path, vocab_size: int, character_coverage: float = 1.0
) -> BpeTokenizer:
    """Train sentencepiece BPE with ``<blk>``, ``<sos/eos>``, ``<unk>`` at ids 0, 1, 2."""
    import sentencepiece as spm

    from less.utils import atomic_path, write_json_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [normalize(t, lang) for t in texts]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"no text to train {out_dir}/bpe.model on")
    train_text = out_dir / "train_text.txt"
    with atomic_path(train_text) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(out_dir / "bpe.model") as tmp_model:
        prefix = str(tmp_model)[: -len(".model")]
        spm.SentencePieceTrainer.train(
            input=str(train_text),
            model_prefix=prefix,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            unk_id=2,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            user_defined_symbols=[BLANK, SOS_EOS],
            input_sentence_size=10_000_000,
            shuffle_input_sentence=True,
            num_threads=1,
            minloglevel=2,
        )
        Path(prefix + ".vocab").unlink(missing_ok=True)
    tokenizer = BpeTokenizer(out_dir / "bpe.model", lang)
    write_tokens(
        out_dir / "tokens.txt", [tokenizer.sp.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    )
    write_json_atomic(
        out_dir / "lang.json", {"type": "bpe", "lang": lang, "vocab_size": vocab_size}
    )
    return tokenizer
