"""Tokenizers and lang directories: round trips for zh, es, en, special ids, bad input."""

import random

import pytest

from less.bin import prepare_lang
from less.data.tokenizer import build_bpe_lang, build_char_lang, load_tokenizer, read_tokens
from tests.helpers import flags

ES_WORDS = (
    "hola mundo cómo estás yo tengo tres gatos y dos perros en la casa grande mañana niño".split()
)
EN_WORDS = (
    "hello world how are you i have three cats and two dogs in the big house tomorrow".split()
)


def sentences(words, n=400, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def test_char_round_trip_and_specials(tmp_path):
    tok = build_char_lang(
        ["今天天气很好", "我们去北京", "他有三十五本书"], "zh", tmp_path / "lang_char"
    )
    assert (tok.blank_id, tok.sos_id, tok.eos_id, tok.unk_id) == (0, 1, 1, 2)
    ids = tok.encode("今天，我们去北京！")
    assert 0 not in ids and 1 not in ids and 2 not in ids
    assert tok.decode(ids) == "今天我们去北京"
    assert tok.encode("35本书") == tok.encode("三十五本书")  # numbers as the grammar writes them
    assert tok.encode("猫")[0] == tok.unk_id
    loaded = load_tokenizer(tmp_path / "lang_char")
    assert loaded.symbols == tok.symbols
    assert read_tokens(tmp_path / "lang_char" / "tokens.txt")[:3] == ["<blk>", "<sos/eos>", "<unk>"]


@pytest.mark.parametrize("lang, words", [("es", ES_WORDS), ("en", EN_WORDS)])
def test_bpe_round_trip(tmp_path, lang, words):
    tok = build_bpe_lang(sentences(words), lang, tmp_path / f"bpe_{lang}", vocab_size=60)
    assert tok.vocab_size == 60
    assert [tok.sp.id_to_piece(i) for i in range(3)] == ["<blk>", "<sos/eos>", "<unk>"]
    for text in sentences(words, n=20, seed=1):
        ids = tok.encode(text)
        assert min(ids) > 2
        assert tok.decode(ids) == text
    # normalisation happens inside encode: case, punctuation, digits
    assert (
        tok.decode(tok.encode(words[0].upper() + ", " + words[1] + "!")) == f"{words[0]} {words[1]}"
    )
    tokens = read_tokens(tmp_path / f"bpe_{lang}" / "tokens.txt")
    assert len(tokens) == 60 and load_tokenizer(tmp_path / f"bpe_{lang}").vocab_size == 60


def test_prepare_lang_from_text_files_rejects_bad_lines(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("今天天气很好\n我们去北京\n", encoding="utf-8")
    prepare_lang.main(
        [
            *flags(type="char", lang="zh", out_dir=str(tmp_path / "a"), extra_text=str(good)),
        ]
    )
    assert load_tokenizer(tmp_path / "a").vocab_size == 3 + len(set("今天天气很好我们去北京"))

    bad = tmp_path / "bad.txt"
    bad.write_bytes("今天\n".encode() + b"\xff\xfe broken\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: not valid UTF-8"):
        prepare_lang.main(
            [
                *flags(type="char", lang="zh", out_dir=str(tmp_path / "b"), extra_text=str(bad)),
            ]
        )
    empty = tmp_path / "empty.txt"
    empty.write_text("今天\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty.txt:2: empty line"):
        prepare_lang.main(
            [
                *flags(type="char", lang="zh", out_dir=str(tmp_path / "c"), extra_text=str(empty)),
            ]
        )
    assert not (tmp_path / "b" / "lang.json").exists()
