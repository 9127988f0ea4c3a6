"""ctc-wfst: CTC decoding through T o G (kaldilm G, kaldi-decoder Viterbi search)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("kaldi_decoder", reason="ctc-wfst needs kaldi-decoder")

from less.decode.wfst import build_graph  # noqa: E402
from less.unsup.ngram import NgramScorer, train_kneser_ney, write_arpa  # noqa: E402
from tests.helpers import flags

TOKENS = ["<blk>", "<sos/eos>", "<unk>", "一", "二", "三"]
SENTENCES = ["一二三", "一二", "二三一", "三三", "一二二", "三一二"]


@pytest.fixture()
def arpa(tmp_path: Path) -> Path:
    path = tmp_path / "lm.arpa"
    write_arpa(train_kneser_ney([list(s) for s in SENTENCES], order=2), path)
    return path


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out, prev = [], None
    for t in path:
        if t != 0 and t != prev:
            out.append(t)
        prev = t
    return tuple(out)


def exhaustive_best(log_probs: np.ndarray, scorer: NgramScorer, lm_scale: float) -> tuple[int, ...]:
    """max over every frame labelling (blank and the three units) of
    log p_ctc(path) + lm_scale * ln p_lm(collapse(path) </s>): what T o G's best path is."""
    units = [0, 3, 4, 5]
    best, best_score = None, -math.inf
    for path in itertools.product(units, repeat=log_probs.shape[0]):
        tokens = collapse(path)
        score = sum(log_probs[i, t] for i, t in enumerate(path))
        score += lm_scale * scorer.log_prob([TOKENS[t] for t in tokens])
        if score > best_score:
            best, best_score = tokens, score
    return best


@pytest.mark.parametrize("lm_scale", [0.3, 1.0, 3.0])
def test_standard_topology_finds_the_exhaustive_best_path(arpa: Path, lm_scale: float):
    decoder = build_graph(TOKENS, arpa, topo="standard", lm_scale=lm_scale, beam=50.0)
    scorer = NgramScorer.from_arpa(arpa)
    rng = np.random.default_rng(int(lm_scale * 10))
    agree = 0
    for _ in range(20):
        logits = rng.normal(size=(5, len(TOKENS))) * 2.0
        logits[:, 1:3] = -30.0  # <sos/eos>, <unk> never win
        log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        expected = exhaustive_best(log_probs, scorer, lm_scale)
        agree += tuple(decoder.decode(log_probs.astype(np.float32))) == expected
    assert agree == 20


def test_the_lm_decides_what_the_acoustics_leave_open_and_repeats_need_a_blank(arpa: Path, caplog):
    def frames(*rows):
        m = np.full((len(rows), len(TOKENS)), math.log(1e-4), dtype=np.float32)
        for i, row in enumerate(rows):
            for symbol, p in row.items():
                m[i, TOKENS.index(symbol)] = math.log(p)
        return m

    for topo in ("standard", "compact"):
        decoder = build_graph(TOKENS, arpa, topo=topo, lm_scale=1.0)
        ids = TOKENS.index
        # after 一, 二 is what the LM saw (3 times), 三 never: a 45/55 acoustic split goes to 二
        assert decoder.decode(frames({"一": 0.9}, {"<blk>": 0.9}, {"二": 0.45, "三": 0.55})) == [
            ids("一"),
            ids("二"),
        ]
        # without the LM's pull, greedy would take 三
        weak = build_graph(TOKENS, arpa, topo=topo, lm_scale=0.01)
        assert weak.decode(frames({"一": 0.9}, {"<blk>": 0.9}, {"二": 0.45, "三": 0.55})) == [
            ids("一"),
            ids("三"),
        ]
        # CTC: a unit's repeated frames are one unit, a blank between them makes two
        assert decoder.decode(frames({"一": 0.9}, {"一": 0.9})) == [ids("一")]
        assert decoder.decode(frames({"一": 0.9}, {"<blk>": 0.9}, {"一": 0.9})) == [
            ids("一"),
            ids("一"),
        ]

    bpe = ["<blk>", "<sos/eos>", "<unk>", "\u2581the", "\u2581a", "s"]
    with pytest.raises(ValueError, match="not the CTC vocabulary"):
        build_graph(bpe, arpa)
    build_graph(TOKENS + ["四"], arpa)
    assert "1 CTC tokens are not in the LM" in caplog.text


@pytest.mark.slow
def test_decode_cli_with_an_lm_writes_lm_scale_results(mini_data: Path, seed_model, tmp_path: Path):
    from less.bin import decode as decode_cli
    from tests.helpers import train_mini_lm

    torch.set_num_threads(1)
    exp = seed_model("asr")
    lm = tmp_path / "lm.arpa"
    train_mini_lm(mini_data, lm)
    test = mini_data / "fbank" / "mini-asr_cuts_test_clean.jsonl.gz"
    with pytest.raises(SystemExit, match="needs --lm"):
        decode_cli.main(
            ["--exp-dir", str(exp), "--epoch", "1", "--method", "ctc-wfst", "--test", f"t={test}"]
        )
    decode_cli.main(
        [
            *flags(
                exp_dir=str(exp),
                epoch="1",
                method=["ctc-wfst", "ctc-greedy-search"],
                lm=str(lm),
                lm_scales="0.5,2.0",
                test=f"t={test}",
            ),
        ]
    )
    summary = json.loads((exp / "ctc-wfst" / "results-t-epoch-1_avg-1.json").read_text())
    assert summary["metric"] == "CER" and "lm_scale_0.5" in json.dumps(summary)
    recogs = (exp / "ctc-wfst" / "recogs-t-lm_scale_0.5-epoch-1_avg-1.txt").read_text()
    assert recogs.count("ref=") == summary["num_cuts"]
    assert (exp / "ctc-wfst" / "recogs-t-lm_scale_2.0-epoch-1_avg-1.txt").is_file()
