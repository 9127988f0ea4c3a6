"""DDP on CPU: two processes (torchrun, gloo) train the tiny model, agree on the weights, and resume."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
import torch

from less.checkpoint import load_checkpoint
from tests.helpers import torchrun, train_args


def run_train(data: Path, exp_dir: Path, epochs: int) -> subprocess.CompletedProcess:
    return torchrun(
        "less.bin.train",
        *train_args(
            data, exp_dir, "--num-epochs", str(epochs), "--num-threads", "1", "--dtype", "fp32"
        ),
    )


def rank0_log(exp_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((exp_dir / "log").glob("log-train-*-rank0.txt")))


@pytest.mark.slow
def test_two_cpu_processes_train_in_sync_and_resume(mini_data: Path, tmp_path: Path):
    exp = tmp_path / "ddp"
    first = run_train(mini_data, exp, epochs=1)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    log = rank0_log(exp)
    assert "DDP: the 2 ranks hold identical weights" in log
    one = load_checkpoint(exp / "epoch-1.pt")
    assert one["train_state"]["batch_idx_train"] > 0

    # a second run with more epochs resumes from epoch-1.pt under DDP and goes on
    second = run_train(mini_data, exp, epochs=2)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = rank0_log(exp)
    assert f"resumed from {exp / 'epoch-1.pt'}" in log
    two = load_checkpoint(exp / "epoch-2.pt")
    assert two["train_state"]["batch_idx_train"] > one["train_state"]["batch_idx_train"]
    assert any(not torch.equal(two["model"][k], one["model"][k]) for k in one["model"])
    assert log.count("DDP: the 2 ranks hold identical weights") == 2


def _agree_worker(rank: int, init_file: str, change: str, results: dict) -> None:
    from less.loop import check_ranks_agree

    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        if rank == 1 and change:
            with torch.no_grad():
                model.bias[0] = float("nan") if change == "nan" else model.bias[0] + 1e-6
        try:
            check_ranks_agree(model, logging.getLogger("test"))
            results[rank] = "agree"
        except RuntimeError as e:
            results[rank] = str(e)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize(
    "change, expected",
    [
        ("", "agree"),
        ("drift", "DDP: the weights of rank(s) [1] differ from rank 0's after training"),
        ("nan", "DDP: rank(s) [1] hold NaN or infinite weights after training"),
    ],
)
def test_the_rank_check_finds_a_rank_that_drifted(tmp_path: Path, change: str, expected: str):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_agree_worker, args=(str(tmp_path / "init"), change, results), nprocs=2, join=True)
        results = dict(results)
    assert results == {0: expected, 1: expected}
