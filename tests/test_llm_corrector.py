"""The correction LM (less.llm.corrector + train_text_lm --objective correct): error
simulation, pair encoding, and a trained corrector rewriting hypotheses through
llm_correct --mode correct --backend hf."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

from less.llm.corrector import (
    SEPARATOR,
    ErrorSimulator,
    confusion_sets,
    correction_pairs,
    sound_key,
)
from less.llm.testing import make_pl_cuts
from less.llm.text_lm import _encode_pairs, build_tokenizer
from less.metrics import error_rate
from tests.test_llm_text_lm import grammar_sentences

PROMPT = Path(__file__).resolve().parents[1] / "less" / "llm" / "prompts" / "asr_zh_corrector.txt"


def test_sound_key_ignores_tone_and_stress():
    assert sound_key("mˈai2") == sound_key("mˈai5") == "mai"
    assert sound_key("s.ˈi.ɜ") == "s.i."


def test_confusions_list_homophones_first_then_one_phoneme_away():
    pronunciations = {"买": "mai2", "卖": "mai5", "麦": "mˈai1", "来": "lai2", "牛": "niu2", "?": ""}
    sets = confusion_sets(pronunciations, pronunciations.__getitem__)
    assert sets["买"][:2] == ["卖", "麦"] and "来" in sets["买"][2:]  # same syllable, then one phoneme off
    assert sets["牛"] == [] and "?" not in sets  # nothing close; no pronunciation: no entry


def test_error_simulator_rate_and_similar_substitutions():
    sentences = grammar_sentences(300, seed=1)
    chars = sorted({c for s in sentences for c in s})
    confusions = {c: ["X"] for c in chars}  # every "similar" substitution shows up as X
    simulator = ErrorSimulator(chars, confusions)
    rng = random.Random(0)
    assert simulator.corrupt("今天我喜欢苹果", 0.0, rng) == "今天我喜欢苹果"
    noisy = [simulator.corrupt(s, 0.3, rng) for s in sentences]
    cer = error_rate(sentences, noisy, "zh").rate
    assert 0.2 < cer < 0.4, cer  # about the asked rate
    text = "".join(noisy)
    substituted = sum(ch == "X" for ch in text)
    assert substituted > 0.3 * cer * sum(map(len, sentences))  # most errors are substitutions, most similar
    pairs = correction_pairs(sentences[:10], simulator, copies=3, max_rate=0.5, rng=rng)
    assert len(pairs) == 30 and [clean for _, clean in pairs[:3]] == [sentences[0]] * 3


def test_pairs_are_scored_from_the_first_clean_token():
    tokenizer = build_tokenizer(["今天我喜欢苹果", "平"], "zh", extra_chars=[SEPARATOR])
    (ids, first), = _encode_pairs(tokenizer, [("今天我喜欢平果", "今天我喜欢苹果")], max_len=64)
    assert tokenizer.decode(ids[:first], skip_special_tokens=True) == "今天我喜欢平果" + SEPARATOR
    assert tokenizer.decode(ids[first:], skip_special_tokens=True) == "今天我喜欢苹果"
    assert ids[-1] == tokenizer.eos_token_id
    # too long for max_len: the noisy side is cut, the separator and the clean side stay
    (ids, first), = _encode_pairs(tokenizer, [("今天" * 20, "今天我喜欢苹果")], max_len=20)
    assert len(ids) <= 20 and tokenizer.convert_ids_to_tokens(ids[first - 1]) == SEPARATOR
    assert tokenizer.decode(ids[first:], skip_special_tokens=True) == "今天我喜欢苹果"


@pytest.mark.slow
def test_trained_corrector_rewrites_hypotheses_through_llm_correct(tmp_path: Path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(grammar_sentences(1500, seed=2)) + "\n", encoding="utf-8")
    out_dir = tmp_path / "corrector"
    train = [sys.executable, "-m", "less.bin.train_text_lm", "--text", str(text), "--lang", "zh",
             "--out-dir", str(out_dir), "--config", "nano", "--objective", "correct", "--confusions", "none",
             "--max-steps", "600", "--batch-size", "64", "--lr", "5e-3", "--warmup-steps", "30",
             "--eval-every", "300", "--max-error-rate", "0.3", "--copies", "2"]
    result = subprocess.run(train, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads((out_dir / "train_summary.json").read_text())["heldout_correction"]
    assert check["cer_after"] < 0.5 * check["cer_before"], check

    cases = [("今天我喜欢平果", "今天我喜欢苹果"), ("昨天老师买了火车漂", "昨天老师买了火车票"),
             ("明天小明想要一杯咖非", "明天小明想要一杯咖啡"), ("现在妈妈需要电恼", "现在妈妈需要电脑"),
             ("今天学生看见音乐", "今天学生看见音乐")]
    in_cuts, out_cuts = tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz"
    make_pl_cuts([wrong for wrong, _ in cases]).to_file(in_cuts)
    result = subprocess.run(
        [sys.executable, "-m", "less.bin.llm_correct", "--in-cuts", str(in_cuts), "--out-cuts", str(out_cuts),
         "--task", "asr", "--lang", "zh", "--mode", "correct", "--backend", "hf", "--model", str(out_dir),
         "--prompt-template", str(PROMPT), "--batch-size", "4", "--num-threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [cut.supervisions[0].custom["pl"]["llm"] for cut in CutSet.from_file(out_cuts)]
    assert all(r["status"] == "ok" and r["mode"] == "correct" for r in records)
    fixed = sum(r["text"] == right for r, (_, right) in zip(records, cases))
    assert fixed >= 3, [r["text"] for r in records]
    assert records[-1]["text"] == cases[-1][1]  # a correct hypothesis is copied
