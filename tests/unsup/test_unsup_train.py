"""less.bin.train --unsup-cuts (system U): trains on rejected cuts, resumes exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from lhotse import CutSet
from lhotse.utils import fastcopy

from less.bin import train as train_cli
from less.checkpoint import load_checkpoint
from tests.helpers import flags, same_weights, train_args, train_mini_lm


def annotated_unsup_cuts(data: Path, out: Path, num_cuts: int = 6) -> Path:
    """The first unlabeled cuts with a pseudo-label record as filter_pl --annotated-cuts
    writes it: an N-best around the hidden reference, an LLM text, every third cut kept."""
    cuts = []
    source = CutSet.from_file(data / "fbank" / "mini-asr_cuts_unsup_wild.jsonl.gz")
    for i, cut in enumerate(c for c in source if c.duration <= 8.0):
        if i == num_cuts:
            break
        sup = cut.supervisions[0]
        ref = (sup.custom or {})["ref_text"]
        pl = {
            "iter": 1,
            "teacher": "test",
            "hyp": ref[:-1],
            "nbest": [[ref[:-1], -1.0], [ref[1:], -2.0]],
            "confidence": 0.5,
            "llm": {"model": "test", "prompt_sha": "", "text": ref, "status": "ok"},
            "hypo_wer": 0.3,
            "kept": i % 3 == 0,
        }
        cuts.append(
            fastcopy(
                cut, supervisions=[fastcopy(sup, text=ref[:-1], custom={**sup.custom, "pl": pl})]
            )
        )
    CutSet.from_cuts(cuts).to_file(out)
    return out


@pytest.mark.slow
def test_unsup_training_resumes_exactly(mini_data: Path, tmp_path: Path):
    """A run killed after any checkpoint and restarted reaches the same weights, with the
    unlabeled stream cycling (more steps than unlabeled batches) through the kill."""
    torch.set_num_threads(1)
    unsup = annotated_unsup_cuts(mini_data, tmp_path / "unsup.jsonl.gz")
    lm = tmp_path / "lm.arpa"
    train_mini_lm(mini_data, lm, extra_tokens=False)
    extra = (
        *flags(
            num_epochs="2",
            max_batches_per_epoch="4",
            save_every_n="3",
            unsup_cuts=str(unsup),
            unsup_lm=str(lm),
            unsup_lm_weight="0.5",
            unsup_prior_weight="0.3",
            unsup_weight="0.5",
            unsup_max_duration="10",
        ),
    )
    straight = tmp_path / "straight"
    train_cli.main(train_args(mini_data, straight, *extra))
    final = load_checkpoint(straight / "epoch-2.pt")
    state = final["train_state"]
    assert state["batch_idx_train"] == 8
    assert state["unsup_epoch"] >= 2  # the few rejected cuts ran out and the stream cycled
    (log_file,) = (straight / "log").glob("log-train-*.txt")
    text = log_file.read_text()
    written = list(CutSet.from_file(unsup))
    kept = sum(c.supervisions[0].custom["pl"]["kept"] for c in written)
    assert len(written) >= 4 and kept >= 1
    assert (
        f"{len(written) - kept} of {len(written)} used ({kept} kept by the filter skipped" in text
    )
    assert " unsup " in text and "/frame" in text

    for kept in ("checkpoint-3.pt", "epoch-1.pt", "checkpoint-6.pt"):
        resumed = tmp_path / f"resumed-{kept}"
        resumed.mkdir()
        shutil.copy(straight / kept, resumed / kept)
        train_cli.main(train_args(mini_data, resumed, *extra))
        again = load_checkpoint(resumed / "epoch-2.pt")
        assert same_weights(again["model"], final["model"]), kept
        assert again["train_state"]["unsup_epoch"] == state["unsup_epoch"], kept
        assert again["train_state"]["unsup_batch_idx"] == state["unsup_batch_idx"], kept

    # the unlabeled batches changed the weights: a run without them ends elsewhere
    plain = tmp_path / "plain"
    train_cli.main(
        train_args(mini_data, plain, "--num-epochs", "2", "--max-batches-per-epoch", "4")
    )
    assert not same_weights(load_checkpoint(plain / "epoch-2.pt")["model"], final["model"])


def test_unsup_cuts_need_asr(mini_data: Path, tmp_path: Path):
    unsup = annotated_unsup_cuts(mini_data, tmp_path / "unsup.jsonl.gz", num_cuts=2)
    with pytest.raises(SystemExit, match="--task asr"):
        train_cli.main(
            train_args(mini_data, tmp_path / "ast", "--unsup-cuts", str(unsup), task="ast")
        )
