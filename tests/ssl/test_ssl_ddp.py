"""SSL pretraining on several ranks (torchrun, DDP) and under autocast; the skip of a batch
whose loss is not finite on one rank, shared by every rank."""

from __future__ import annotations

import datetime
import logging
import re
import subprocess
from pathlib import Path

import pytest
import torch

from less.bin import ssl_pretrain
from less.checkpoint import load_checkpoint
from less.loop import EpochLoop, check_ranks_agree
from less.ssl.quantizer import RandomProjectionQuantizer
from tests.helpers import flags, torchrun
from tests.ssl.test_ssl import pretrain_args


def test_labels_do_not_depend_on_the_autocast_dtype():
    quantizer = RandomProjectionQuantizer(input_dim=320, code_dim=16, codebook_size=8192, seed=5)
    x = torch.randn(4, 60, 320, generator=torch.Generator().manual_seed(0))
    plain = quantizer.codes(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_bf16 = quantizer.codes(x)
        from_bf16_input = quantizer.codes(x.bfloat16())
    assert torch.equal(plain, under_bf16)
    # a bf16 input is widened, not quantised by a bf16 matmul: the same codes as its fp32 value
    assert torch.equal(from_bf16_input, quantizer.codes(x.bfloat16().float()))


def _skip_worker(rank: int, init_file: str, results: dict) -> None:
    torch.distributed.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=60),  # a rank left waiting fails instead of hanging
    )
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        loop = EpochLoop.__new__(EpochLoop)  # only the rank bookkeeping and the optimizer
        loop.world_size, loop.rank, loop.device = 2, rank, torch.device("cpu")
        loop.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        taken = []
        for step in range(4):
            loss = ddp(torch.full((2, 4), float(rank + 1 + step))).square().mean()
            if step == 1 and rank == 1:
                loss = loss * float("inf")
            if loop.all_finite(loss):
                loss.backward()
                loop.optimizer.step()
                loop.optimizer.zero_grad()
                taken.append(step)
            else:
                loop.skip_batch(loss)
        check_ranks_agree(model, logging.getLogger("test"))
        results[rank] = taken
    except Exception as error:  # noqa: BLE001 - reported to the test
        results[rank] = repr(error)
    finally:
        torch.distributed.destroy_process_group()


def test_a_non_finite_loss_on_one_rank_makes_every_rank_skip_the_batch(tmp_path: Path):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_skip_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
        results = dict(results)
    # both ranks skipped step 1 (rank 0's own loss was finite), stepped together otherwise,
    # and ended with the same weights
    assert results == {0: [0, 2, 3], 1: [0, 2, 3]}


def _first_losses(exp_dir: Path) -> list[float]:
    text = "".join(p.read_text() for p in sorted((exp_dir / "log").glob("log-ssl-*.txt")))
    return [float(x) for x in re.findall(r"\(global \d+\): loss ([\d.]+)", text)]


@pytest.mark.slow
def test_bf16_autocast_pretrains_close_to_fp32(mini_data: Path, tmp_path: Path):
    torch.set_num_threads(1)
    args = flags(num_epochs="1", max_batches_per_epoch="2")
    for dtype in ("fp32", "bf16"):
        ssl_pretrain.main(pretrain_args(mini_data, tmp_path / dtype, *args, "--dtype", dtype))
    fp32, bf16 = _first_losses(tmp_path / "fp32"), _first_losses(tmp_path / "bf16")
    assert len(fp32) == len(bf16) == 2
    # the same batch, labels and masks: the first losses differ by bf16 rounding alone
    assert bf16[0] != fp32[0]
    assert bf16[0] == pytest.approx(fp32[0], rel=0.02)
    saved = load_checkpoint(tmp_path / "bf16" / "epoch-1.pt")
    assert saved["config"]["dtype"] == "bf16"


def _batches(mini_data: Path, epoch: int, world_size: int) -> int:
    """Rank 0's training batches of an epoch of pretrain_args' cuts and batch settings."""
    from less.data.datamodule import DataConfig, load_cuts, make_loader

    cfg = DataConfig(max_duration=6, max_cut_duration=10, num_buckets=2, num_workers=0)
    cuts = load_cuts([str(mini_data / "fbank" / "mini-asr_cuts_unsup_wild.jsonl.gz")])
    loader, _, _ = make_loader(
        cuts, cfg, training=True, seed=3, world_size=world_size, rank=0, epoch=epoch
    )
    return sum(1 for _ in loader)


@pytest.mark.slow
def test_two_cpu_processes_pretrain_in_sync_and_resume(mini_data: Path, tmp_path: Path):
    exp = tmp_path / "ddp"
    valid = str(mini_data / "fbank" / "mini-asr_cuts_dev.jsonl.gz")

    def run(epochs: int) -> subprocess.CompletedProcess:
        return torchrun(
            "less.bin.ssl_pretrain",
            *pretrain_args(mini_data, exp),
            *flags(num_epochs=str(epochs), valid_cuts=valid, num_threads="1"),
        )

    first = run(1)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    logs = list((exp / "log").glob("log-ssl-*.txt"))
    assert len(logs) == 1  # rank 0 writes the log (and the checkpoints)
    text = logs[0].read_text()
    assert "fp32 on cpu, 2 rank(s)" in text
    assert "DDP: the 2 ranks hold identical weights" in text
    assert re.search(r"epoch 1: validation loss [\d.]+ anchor_loss [\d.]+", text)
    one = load_checkpoint(exp / "epoch-1.pt")
    # each rank took its share of the epoch's batches (lhotse gives both the same number)
    per_rank = [_batches(mini_data, epoch, world_size=2) for epoch in (1, 2)]
    assert one["train_state"]["batch_idx_train"] == per_rank[0] < _batches(mini_data, 1, 1)

    second = run(2)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    text = "".join(p.read_text() for p in sorted((exp / "log").glob("log-ssl-*.txt")))
    assert f"resumed from {exp / 'epoch-1.pt'}" in text
    assert text.count("DDP: the 2 ranks hold identical weights") == 2
    two = load_checkpoint(exp / "epoch-2.pt")
    assert two["train_state"]["batch_idx_train"] == sum(per_rank)
    assert any(not torch.equal(two["model"][k], one["model"][k]) for k in one["model"])


def test_grounding_under_torchrun_stops_with_a_clear_error(monkeypatch):
    from less.ssl.grounding import GroundingConfig
    from less.ssl.trainer import SslConfig, SslTrainer

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    config = SslConfig(grounding=GroundingConfig(images="scenes", cuts=["paired.jsonl.gz"]))
    with pytest.raises(SystemExit, match="--visual-images runs in one process"):
        SslTrainer(config)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert SslTrainer(config).world_size == 1  # one process: accepted
