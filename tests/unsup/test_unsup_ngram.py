"""Character n-gram LMs (less.unsup.ngram, less.bin.train_ngram): KN estimation, ARPA, scoring."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from less.unsup.ngram import (
    BOS,
    EOS,
    UNK,
    NgramScorer,
    read_arpa,
    train_kneser_ney,
    write_arpa,
)
from tests.helpers import flags


def toy_sentences(count: int = 300, seed: int = 0) -> list[list[str]]:
    """Template sentences with a few slots (so histories share and differ)."""
    rng = random.Random(seed)
    subjects, verbs, objects = ["我", "你", "他们"], ["买", "卖", "看"], ["书", "车", "花", "猫"]
    out = []
    for _ in range(count):
        words = [rng.choice(subjects), rng.choice(verbs), rng.choice("一二三"), rng.choice(objects)]
        if rng.random() < 0.3:
            words.append("吗")
        out.append(list("".join(words)))
    return out


@pytest.mark.parametrize("order", [1, 2, 3])
def test_probabilities_sum_to_one_for_every_history(tmp_path: Path, order: int):
    lm = train_kneser_ney(toy_sentences(), order, extra_vocabulary=["狗"])
    write_arpa(lm, tmp_path / "lm.arpa")
    scorer = NgramScorer(read_arpa(tmp_path / "lm.arpa"))
    vocabulary = scorer.lm.vocabulary
    assert {EOS, UNK, "狗"} <= set(vocabulary) and BOS not in vocabulary
    histories = {(BOS,)} | {g[:-1] for n in range(1, order) for g in scorer.lm.log_probs[n]}
    histories |= {(BOS, "狗"), ("狗", "狗"), ("吗", "我"), ("车",)}  # unseen ones back off
    for history in histories:
        total = sum(10 ** scorer.log10_prob(w, history) for w in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-5), history
    assert scorer.log10_prob("狗", ("我",)) < scorer.log10_prob("买", ("我",))
    assert scorer.log10_prob("象", (BOS,)) == scorer.log10_prob(UNK, (BOS,))  # unknown -> <unk>


def test_bigram_matches_the_kneser_ney_formula():
    """Interpolated KN worked by hand on 'a b', 'a b', 'b a' (order 2; D from count-of-counts)."""
    sentences = [["a", "b"], ["a", "b"], ["b", "a"]]
    scorer = NgramScorer(train_kneser_ney(sentences, 2))
    bigrams = Counter()
    for s in sentences:
        tokens = [BOS, *s, EOS]
        bigrams.update(zip(tokens, tokens[1:]))
    # bigram counts: <s>a 2, ab 2, b</s> 2, <s>b 1, ba 1, a</s> 1 -> n1 = 3, n2 = 3
    d2 = 3 / (3 + 2 * 3)
    # unigram continuation counts: a {<s>, b} 2, b {a, <s>} 2, </s> {b, a} 2 -> n1 = 0: D = 0.5
    d1 = 0.5
    vocabulary = ["</s>", "<unk>", "a", "b"]
    p1 = {
        w: max(c - d1, 0) / 6 + d1 * 3 / 6 / len(vocabulary)
        for w, c in {"a": 2, "b": 2, "</s>": 2, UNK: 0}.items()
    }
    total_a = 3  # a b (2), a </s> (1)
    p_b_a = (2 - d2) / total_a + d2 * 2 / total_a * p1["b"]
    p_unk_a = d2 * 2 / total_a * p1[UNK]
    assert 10 ** scorer.log10_prob("b", ("a",)) == pytest.approx(p_b_a, rel=1e-6)
    assert 10 ** scorer.log10_prob(UNK, ("a",)) == pytest.approx(p_unk_a, rel=1e-6)
    assert 10 ** scorer.log10_prob("a", ()) == pytest.approx(p1["a"], rel=1e-6)
    expected = (
        math.log(10 ** scorer.log10_prob("a", (BOS,)))
        + math.log(p_b_a)
        + math.log(10 ** scorer.log10_prob(EOS, ("b",)))
    )
    assert scorer.log_prob(["a", "b"]) == pytest.approx(expected, rel=1e-6)


def test_scores_agree_with_the_kaldilm_fst(tmp_path: Path):
    """Our backoff scores equal the path weights through kaldilm's arpa2fst G (tropical:
    the FST may find a cheaper backoff path, never a dearer one)."""
    kaldilm = pytest.importorskip("kaldilm")
    kaldifst = pytest.importorskip("kaldifst")
    sentences = toy_sentences()
    write_arpa(train_kneser_ney(sentences, 3), tmp_path / "lm.arpa")
    kaldilm.arpa2fst(
        str(tmp_path / "lm.arpa"),
        str(tmp_path / "G.fst"),
        write_symbol_table=str(tmp_path / "w.txt"),
    )
    graph = kaldifst.StdVectorFst.read(str(tmp_path / "G.fst"))
    symbols = {
        line.split()[0]: int(line.split()[1])
        for line in (tmp_path / "w.txt").read_text().splitlines()
    }
    scorer = NgramScorer.from_arpa(tmp_path / "lm.arpa")

    def fst_cost(units: list[str]) -> float:
        acceptor = kaldifst.make_linear_acceptor([symbols[u] for u in (BOS, *units, EOS)])
        kaldifst.arcsort(acceptor, sort_type="olabel")
        best = kaldifst.shortest_path(kaldifst.compose(acceptor, graph))
        cost, state = 0.0, best.start
        while True:
            arcs = list(kaldifst.ArcIterator(best, state))
            if not arcs:
                return cost + best.final(state).value
            cost, state = cost + arcs[0].weight.value, arcs[0].nextstate

    for units in sentences[:5]:
        assert fst_cost(units) == pytest.approx(-scorer.log_prob(units), abs=1e-3)
    for units in (list("书车我买"), list("吗吗吗")):
        assert fst_cost(units) <= -scorer.log_prob(units) + 1e-3


def test_train_ngram_cli(tmp_path: Path):
    from lhotse import CutSet, SupervisionSegment
    from lhotse.testing.dummies import dummy_cut

    from less.bin import train_ngram

    text = tmp_path / "text.txt"
    text.write_text("\n".join("".join(s) for s in toy_sentences(50)) + "\n", encoding="utf-8")
    cut = dummy_cut(0, duration=1.0)
    cut.supervisions = [
        SupervisionSegment(
            "s",
            cut.recording_id,
            0,
            1.0,
            text="teacher words",
            custom={"ref_text": "隐藏", "pl": {"hyp": "狗卖花", "llm": {"text": "狗买花"}}},
        ),
        # a second supervision without a record keeps its own text
        SupervisionSegment("s2", cut.recording_id, 0, 1.0, text="猫跑"),
    ]
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")
    out = tmp_path / "lm" / "char.arpa"
    with_fst = importlib.util.find_spec("kaldilm") is not None
    train_ngram.main(
        [
            *flags(
                lang="zh",
                order="3",
                text=str(text),
                cuts=str(tmp_path / "cuts.jsonl.gz"),
                out=str(out),
            ),
        ]
        + (["--fst-out", str(tmp_path / "lm" / "G.fst")] if with_fst else [])
    )
    lm = read_arpa(out)
    assert ("狗", "买") in lm.log_probs[1]  # the LLM text was read ...
    assert ("隐",) not in lm.log_probs[0]  # ... the hidden reference was not
    assert ("猫", "跑") in lm.log_probs[1]  # the LLM text is the record's supervision's only
    stats = json.loads(out.with_suffix(".stats.json").read_text())
    assert stats["sentences"] == 52 and stats["order"] == 3
    # a malformed record is refused, naming the file and the cut, not read as a supervised cut
    cut.supervisions[0].custom["pl"] = "狗买花"
    CutSet.from_cuts([cut]).to_file(tmp_path / "bad.jsonl.gz")
    with pytest.raises(ValueError, match=r"bad.jsonl.gz: cut .*: custom\['pl'\] must be"):
        train_ngram.main(
            flags(lang="zh", order="3", text=str(text), cuts=str(tmp_path / "bad.jsonl.gz"))
            + flags(out=str(tmp_path / "lm2" / "char.arpa"))
        )
    if with_fst:
        assert (tmp_path / "lm" / "G.fst").stat().st_size > 0 and (
            tmp_path / "lm" / "G.words.txt"
        ).is_file()
    stamp = out.stat().st_mtime_ns
    train_ngram.main(["--lang", "zh", "--text", str(text), "--out", str(out)])  # finished: skipped
    assert out.stat().st_mtime_ns == stamp
