"""train_text_lm: a small LM that AutoModelForCausalLM loads and rescore mode uses."""

from __future__ import annotations

import json
import subprocess

import pytest
from lhotse import CutSet
from transformers import AutoModelForCausalLM, AutoTokenizer

from less.llm.standin.text_lm import build_tokenizer
from less.llm.testing import make_pl_cuts, run_llm_correct
from tests.helpers import grammar_sentences, python_module


def test_character_tokenizer_round_trips_and_adds_bos() -> None:
    tokenizer = build_tokenizer(["今天天气很好", "打开OK GOOGLE"], "zh")
    ids = tokenizer("今天很好")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == 5
    assert tokenizer.decode(ids, skip_special_tokens=True) == "今天很好"
    assert (
        tokenizer.decode(tokenizer("OK GOOGLE")["input_ids"], skip_special_tokens=True)
        == "OK GOOGLE"
    )
    assert tokenizer.convert_ids_to_tokens(tokenizer("鑫")["input_ids"])[1] == "<unk>"


def test_bpe_tokenizer_for_english_round_trips() -> None:
    sentences = ["i went to the store", "we went to the station", "they go to the store"] * 20
    tokenizer = build_tokenizer(sentences, "en", vocab_size=60)
    ids = tokenizer("we went to the store")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "we went to the store"
    assert len(tokenizer) <= 60


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory):
    work = tmp_path_factory.mktemp("text_lm")
    text = work / "text.txt"
    text.write_text("\n".join(grammar_sentences(400)) + "\n", encoding="utf-8")
    out_dir = work / "lm"
    command = python_module(
        "less.bin.train_text_lm",
        text=text,
        lang="zh",
        out_dir=out_dir,
        config="nano",
        max_steps=60,
        batch_size=32,
        warmup_steps=10,
        eval_every=30,
        heldout_fraction=0.05,
    )
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out_dir, command


def test_trained_lm_loads_with_auto_classes_and_perplexity_drops(trained_lm) -> None:
    out_dir, command = trained_lm
    summary = json.loads((out_dir / "train_summary.json").read_text())
    assert summary["steps"] == 60
    assert summary["final_heldout_ppl"] < 0.5 * summary["initial_heldout_ppl"]
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    assert 0.05e6 < sum(p.numel() for p in model.parameters()) < 5e6
    assert (
        tokenizer.decode(tokenizer("我喜欢苹果")["input_ids"], skip_special_tokens=True)
        == "我喜欢苹果"
    )
    assert (out_dir.parent / ".lm.done").exists()
    # A finished model is skipped: the rerun does not train again.
    modified = (out_dir / "model.safetensors").stat().st_mtime_ns
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
    assert (out_dir / "model.safetensors").stat().st_mtime_ns == modified


@pytest.mark.slow
def test_rescore_cli_with_the_trained_lm_fixes_nbest_choices(trained_lm, tmp_path) -> None:
    out_dir, _ = trained_lm
    # Teacher prefers a wrong hypothesis by a small margin; the LM knows the grammar's words.
    cases = [
        ("今天我喜欢平果", "今天我喜欢苹果"),
        ("昨天老师买了火车漂", "昨天老师买了火车票"),
        ("明天小明想要一杯咖非", "明天小明想要一杯咖啡"),
        ("现在妈妈需要电恼", "现在妈妈需要电脑"),
    ]
    nbest = [[(wrong, -1.0), (right, -1.5)] for wrong, right in cases]
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    make_pl_cuts([wrong for wrong, _ in cases], nbest=nbest).to_file(in_cuts)
    options = "--task asr --lang zh --mode rescore --backend hf --lm-weight 1.0 --batch-size 4"
    more = ("--model", out_dir, "--num-threads", 1)
    result = run_llm_correct(in_cuts, out_cuts, options, *more)
    assert result.returncode == 0, result.stderr
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in CutSet.from_file(out_cuts)]
    assert [r["text"] for r in records] == [right for _, right in cases]
    assert all(
        r["status"] == "ok" and r["mode"] == "rescore" and r["nbest_index"] == 1 for r in records
    )
    assert json.loads((tmp_path / "out.report.json").read_text())["cache_hits"] == 0


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_fast_path_trains_a_nano_model_whose_loss_decreases(tmp_path, precision) -> None:
    """bf16 autocast + eager attention (the default) learns like fp32 does; the saved
    weights stay fp32 (autocast only lowers the matmuls)."""
    import torch
    from safetensors.torch import load_file

    from less.llm.standin.text_lm import TextLMTrainConfig, resolve_precision, train_text_lm

    torch.set_num_threads(1)
    config = TextLMTrainConfig(
        size="nano",
        max_steps=40,
        batch_size=32,
        learning_rate=5e-3,
        warmup_steps=5,
        eval_every=20,
        heldout_fraction=0.05,
        precision=precision,
        seed=0,
    )
    summary = train_text_lm(grammar_sentences(300, seed=6), tmp_path / "lm", config)
    assert summary["precision"] == resolve_precision(precision)
    assert summary["steps"] == 40 and summary["steps_per_second"] > 0
    losses = [h["train_loss"] for h in summary["history"][1:]]
    assert (
        losses[-1] < losses[0]
        and summary["final_heldout_ppl"] < 0.3 * summary["initial_heldout_ppl"]
    ), summary
    weights = load_file(str(tmp_path / "lm" / "model.safetensors"))
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
