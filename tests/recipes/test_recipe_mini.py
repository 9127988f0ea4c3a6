"""The whole mini recipe, stages 0-10, on the tiny profile, through run.sh (one slow test).

Model quality is irrelevant here (one epoch on a minute of audio): the test checks that
every stage runs and writes what the next one reads, that the LESS bookkeeping is right
(shared teacher outputs at iteration 1, LLM answers only for L, kept cuts, mixes, students
for N and L) and that a rerun skips finished work. The English LLM is a local fake
OpenAI-compatible server that returns the hypothesis unchanged, so L keeps every cut.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest
from lhotse import CutSet

from less.llm.testing import FakeChatServer
from tests.helpers import ROOT, assert_results_rows, flags

RUN = ROOT / "egs" / "mini" / "less" / "run.sh"


def tiny_run(data: Path, exp: Path, **options) -> list[str]:
    """run.sh on the tiny profile: one-epoch models, small beams, one thread, then ``options``."""
    return [
        str(RUN),
        *flags(profile="tiny", data=data, exp=exp, nj=1, seed_epochs=1, student_epochs=1),
        *flags(max_duration=20, beam_size=2, avg=1, num_threads=1, bpe_vocab_size=128),
        *flags(**options),
    ]


@pytest.mark.slow
def test_mini_recipe_end_to_end(tmp_path: Path):
    data, exp = tmp_path / "data", tmp_path / "exp"
    with FakeChatServer() as server:
        args = tiny_run(
            data,
            exp,
            ast_beam_size=2,
            train_workers=0,
            asr_lm_config="nano",
            ast_llm_backend="openai",
            ast_llm_base_url=server.base_url,
            ast_llm="fake-llm",
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        result = subprocess.run(args, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert server.total_answered > 0

    for task in ("asr", "ast"):
        pl = CutSet.from_file(data / "pl" / task / "iter1" / "unsup_wild_cuts_pl.jsonl.gz")
        vad = CutSet.from_file(data / "fbank" / f"mini-{task}_cuts_unsup_wild.jsonl.gz")
        assert len(pl) == len(vad) > 0
        record = pl[0].supervisions[0].custom["pl"]
        assert record["iter"] == 1 and "iter0" in record["teacher"] and record["nbest"]
        llm = CutSet.from_file(data / "pl" / task / "L" / "iter1" / "unsup_wild_cuts_llm.jsonl.gz")
        assert all("llm" in c.supervisions[0].custom["pl"] for c in llm)
        assert not (data / "pl" / task / "N" / "iter1" / "unsup_wild_cuts_llm.jsonl.gz").exists()
        with gzip.open(
            data / "pl" / task / "N" / "iter1" / "unsup_wild_cuts_kept.jsonl.gz", "rt"
        ) as f:
            n_kept = sum(1 for line in f if line.strip())  # lhotse reads an empty manifest as None
        n_report = json.loads(
            (data / "pl" / task / "N" / "iter1" / "unsup_wild_cuts_kept.report.json").read_text()
        )
        # no filter without an LLM: N drops only AST cuts whose teacher gave no source
        # transcript (the CTC target; a one-epoch tiny teacher often emits only blanks)
        assert n_kept == n_report["cuts_kept"] and n_report["cuts_in"] == len(pl)
        assert set(n_report["dropped_by"]) <= (
            {"empty source transcript"} if task == "ast" else set()
        )
        assert n_kept + sum(n_report["dropped_by"].values()) == len(pl)
        for system in ("N", "L"):
            mix = CutSet.from_file(
                data / "pl" / task / system / "iter1" / "train_mix_cuts.jsonl.gz"
            )
            assert {c.custom["origin"] for c in mix} >= {"sup"}
            assert (exp / task / system / "iter1" / "epoch-1.pt").is_file()
            method = "attention-decoder-rescoring" if task == "asr" else "attention-beam-search"
            for test in ("dev", "test_clean", "test_wild"):
                summary = json.loads(
                    (
                        exp
                        / task
                        / system
                        / "iter1"
                        / method
                        / f"results-{test}-epoch-1_avg-1.json"
                    ).read_text()
                )
                assert summary["metric"] == ("CER" if task == "asr" else "BLEU")
    # the fake English LLM echoes the hypothesis: hypo_wer 0, so L keeps every accepted answer
    report = json.loads(
        (data / "pl" / "ast" / "L" / "iter1" / "unsup_wild_cuts_kept.report.json").read_text()
    )
    assert report["dropped_by"].get("hypo_wer", 0) == 0
    assert report["cuts_kept"] + sum(report["dropped_by"].values()) == report["cuts_in"]

    assert_results_rows(
        exp / "RESULTS.md",
        "| asr | S | 0 | test_wild | CER",
        "| asr | L | 1 | test_wild | CER",
        "| ast | N | 1 | test_clean | BLEU",
    )
    assert (exp / "RESULTS-asr.png").stat().st_size > 1000

    # system U on the same teacher outputs and LLM answers: L's filter, an n-gram LM on the
    # text-only corpus + kept cuts, and a student with the unsupervised loss on the rejected cuts
    u_args = [
        *args,
        *flags(tasks="asr", systems="U", stage="7", stop_stage="9", report="false"),
        "--unsup-opts",
        "--unsup-max-duration=20 --log-interval=2",
    ]  # batch lines show the unsup loss
    u_run = subprocess.run(u_args, capture_output=True, text=True, env=env)
    assert u_run.returncode == 0, u_run.stdout[-3000:] + u_run.stderr[-3000:]
    u_dir = data / "pl" / "asr" / "U" / "iter1"
    u_filtered = CutSet.from_file(u_dir / "unsup_wild_cuts_filtered.jsonl.gz")
    rejected = [c for c in u_filtered if not c.supervisions[0].custom["pl"]["kept"]]
    l_report = json.loads(
        (data / "pl" / "asr" / "L" / "iter1" / "unsup_wild_cuts_kept.report.json").read_text()
    )
    assert len(u_filtered) - len(rejected) == l_report["cuts_kept"]  # U keeps exactly what L keeps
    assert (u_dir / "ngram.arpa").read_text(encoding="utf-8").lstrip().startswith("\\data\\")
    u_log = "".join(
        p.read_text() for p in (exp / "asr" / "U" / "iter1" / "log").glob("log-train-*.txt")
    )
    assert (
        rejected
        and f"unlabeled cuts {u_dir}/unsup_wild_cuts_filtered.jsonl.gz" in u_log
        and " unsup " in u_log
    )
    assert (exp / "asr" / "U" / "iter1" / "epoch-1.pt").is_file()
    # U is ASR only: the recipe refuses it for translation before training anything
    refused = subprocess.run(
        [
            *args,
            *flags(tasks="ast", systems="U", stage="8", stop_stage="9", report="false"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode != 0 and "ASR only" in refused.stderr

    # a rerun finds everything done and changes nothing
    stamp = (exp / "asr" / "L" / "iter1" / "epoch-1.pt").stat().st_mtime_ns
    again = subprocess.run([*args[:1], *args[1:], "--stage", "4"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (exp / "asr" / "L" / "iter1" / "epoch-1.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_mini_recipe_english_asr_task(tmp_path: Path):
    """--tasks asr_en: English ASR through the whole loop, its pseudo-labels corrected by an
    English LLM (here a local OpenAI-compatible server), WER in the report, the wild
    transcripts only in the pseudo-label error."""
    data, exp = tmp_path / "data", tmp_path / "exp"
    with FakeChatServer() as server:
        result = subprocess.run(
            tiny_run(
                data,
                exp,
                tasks="asr_en",
                asr_en_llm_backend="openai",
                ast_llm_base_url=server.base_url,
                asr_en_llm="fake-llm",
                asr_en_llm_few_shot=0,
            ),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pl = CutSet.from_file(data / "pl" / "asr_en" / "iter1" / "unsup_wild_cuts_pl.jsonl.gz")
    prompts = [body["messages"][-1]["content"] for body in server.chat_bodies]
    assert len(prompts) == sum(bool(c.supervisions[0].custom["pl"]["hyp"]) for c in pl) > 0
    # the packaged English ASR prompt
    assert all("English transcript" in prompt for prompt in prompts)
    report = json.loads(
        (data / "pl" / "asr_en" / "L" / "iter1" / "unsup_wild_cuts_kept.report.json").read_text()
    )
    assert (
        "teacher label error, all cuts" in report["label_error"]
    )  # against the hidden transcripts
    assert_results_rows(
        exp / "RESULTS.md",
        "| asr_en | S | 0 | test_wild | WER",
        "| asr_en | L | 1 | test_wild | WER",
        "| asr_en | N | 1 | test_clean | WER",
    )
