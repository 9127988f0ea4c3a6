"""The epoch loop that supervised training and SSL pretraining share.

:class:`EpochLoop` owns what does not depend on the objective: where to resume from
(``--start-epoch/--start-batch`` or the newest checkpoint), the position in training
(``state``: epoch, batch of the epoch, batches in all, best validation loss), one
lhotse loader per epoch that skips the batches already trained on (exact mid-epoch
resume), ``checkpoint-<batch>.pt`` every ``save_every_n`` batches keeping the last K,
validation and ``epoch-N.pt`` / ``best-valid-loss.pt`` after each epoch, tensorboard and
a progress bar. Subclasses build the model and optimizer (``setup``), take one step
(``train_step``), validate, save, and format their statistics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from less.checkpoint import epoch_path, latest_checkpoint, remove_old_checkpoints, set_rng_state
from less.data.datamodule import DataConfig, make_loader
from less.utils import config_options, progress_bar


class EpochLoop:
    log = logging.getLogger("less.train")
    what = "training"  # for log lines: "training already finished"
    is_main = True
    world_size = 1
    rank = 0

    def __init__(self, cfg: Any, **extra_state: Any):
        self.cfg = cfg
        self.exp_dir = Path(cfg.exp_dir)
        self.state: dict[str, Any] = {
            "epoch": 1,
            "batch_idx_in_epoch": 0,
            "batch_idx_train": 0,
            "epoch_done": False,
            "best_valid_loss": math.inf,
            "best_valid_epoch": 0,
            **extra_state,
        }
        self.tb = None
        self.valid_cuts = None

    # ------------------------------------------------------ for subclasses
    def setup(self) -> None:
        """Build model, optimizer, scheduler; load ``resume_checkpoint()``; set train/valid cuts."""
        raise NotImplementedError

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float] | None:
        """One optimizer step; the batch's statistics, or None when the batch was skipped."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Validation statistics; ``"loss"`` selects ``best-valid-loss.pt``."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        raise NotImplementedError

    def loader_kwargs(self) -> dict[str, Any]:
        """Extra arguments of :func:`make_loader` for the training loader: this rank's share
        (subclasses add filters)."""
        return {"world_size": self.world_size, "rank": self.rank}

    def after_step(self, epoch: int, n: int, progress: tqdm) -> None:
        """Called after every batch (``n`` counts all batches): periodic logs, averaging..."""

    def format_valid(self, stats: dict[str, float]) -> str:
        return f"loss {stats['loss']:.4f}"

    def summary(self) -> str:
        return f"best validation loss {self.state['best_valid_loss']:.4f} (epoch {self.state['best_valid_epoch']})"

    # ------------------------------------------------------------- shared
    def init_ranks(self) -> None:
        """This process's place under torchrun (WORLD_SIZE, RANK; one process without)."""
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0

    def autocast(self):
        """The forward pass's autocast context for ``self.dtype`` (fp32: none)."""
        if self.dtype == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def wrap_ddp(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` under DistributedDataParallel when there are several ranks."""
        if self.world_size == 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank: a batch is skipped by all ranks or by
        none (a rank that skipped alone would leave the others waiting in the gradient
        all-reduce)."""
        finite = torch.tensor(float(torch.isfinite(loss.detach()).all()), device=self.device)
        if self.world_size > 1:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite.item())

    def valid_loader(self, **kwargs: Any):
        """This rank's share of the validation cuts, in order (``kwargs``: more of
        :func:`make_loader`'s arguments)."""
        loader, _, _ = make_loader(
            self.valid_cuts,
            self.cfg.data,
            training=False,
            world_size=self.world_size,
            rank=self.rank,
            **kwargs,
        )
        return loader

    def skip_batch(self, loss: torch.Tensor) -> None:
        """Drop a batch whose loss is not finite on some rank. Under DDP every rank still runs a
        backward (of zero) so that the gradient all-reduce stays in step; the gradients are
        discarded."""
        if self.world_size > 1:
            (loss.nan_to_num(0.0, 0.0, 0.0) * 0.0).backward()
        self.optimizer.zero_grad(set_to_none=True)

    def pick_device(self) -> torch.device:
        if self.cfg.device != "auto":
            return torch.device(self.cfg.device)
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")

    def make_optimizer(self, params: Any) -> None:
        """ScaledAdam over ``params`` (parameters, named ones or groups), its Eden schedule
        and the gradient scaler (active under fp16 only)."""
        from less.model import Eden, ScaledAdam

        cfg = self.cfg
        self.optimizer = ScaledAdam(params, lr=cfg.base_lr, clipping_scale=2.0)
        self.scheduler = Eden(
            self.optimizer, cfg.lr_batches, cfg.lr_epochs, warmup_batches=cfg.warmup_batches
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == "fp16")

    def restore_position(self, ckpt: dict[str, Any], path: Path) -> None:
        """Optimizer, scheduler, gradient scaler, training position and RNG states of a
        resumed checkpoint."""
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("grad_scaler"):
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.state.update(ckpt["train_state"])
        set_rng_state(ckpt["rng"])
        self.log.info(
            "resumed from %s: epoch %d, batch %d of the epoch, %d batches in all",
            path,
            self.state["epoch"],
            self.state["batch_idx_in_epoch"],
            self.state["batch_idx_train"],
        )

    def resume_checkpoint(self) -> Path | None:
        cfg = self.cfg
        if cfg.start_batch > 0:
            return self.exp_dir / f"checkpoint-{cfg.start_batch}.pt"
        if cfg.start_epoch > 1:
            return epoch_path(self.exp_dir, cfg.start_epoch - 1)
        if cfg.start_epoch == 1:
            return None  # explicit fresh start
        return latest_checkpoint(self.exp_dir) if self.exp_dir.is_dir() else None

    def log_scalars(self, prefix: str, values: dict[str, float]) -> None:
        if self.tb is None:
            return
        for name, value in values.items():
            self.tb.add_scalar(f"{prefix}/{name}", value, self.state["batch_idx_train"])

    def accumulate(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.totals[key] = self.totals.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        """Mean of each statistic over the steps since the last :meth:`reset_totals`."""
        return {key: value / self.counts[key] for key, value in self.totals.items()}

    def reset_totals(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def audio_per_second(self) -> float:
        return self.seconds / max(time.time() - self.epoch_start, 1e-9)

    def run(self) -> None:
        cfg = self.cfg
        if (
            epoch_path(self.exp_dir, cfg.num_epochs).is_file()
            and cfg.start_epoch == 0
            and cfg.start_batch == 0
        ):
            self.log.info(
                "%s exists: %s already finished",
                epoch_path(self.exp_dir, cfg.num_epochs),
                self.what,
            )
            return
        self.setup()
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.exp_dir / "tensorboard"))
        if self.state["epoch_done"]:
            self.state.update(epoch=self.state["epoch"] + 1, batch_idx_in_epoch=0, epoch_done=False)
        begin = time.time()
        for epoch in range(self.state["epoch"], cfg.num_epochs + 1):
            self.state["epoch"] = epoch
            self.train_one_epoch(epoch)
            self.state["epoch_done"] = True
            every = max(1, getattr(cfg, "valid_every_epochs", 1))
            if self.valid_cuts is not None and (epoch % every == 0 or epoch == cfg.num_epochs):
                stats = self.validate()
                self.log.info("epoch %d: validation %s", epoch, self.format_valid(stats))
                self.log_scalars("valid", stats)
                if stats["loss"] < self.state["best_valid_loss"]:
                    self.state.update(best_valid_loss=stats["loss"], best_valid_epoch=epoch)
                    self.save(self.exp_dir / "best-valid-loss.pt")
            self.save(epoch_path(self.exp_dir, epoch))
            self.state.update(epoch=epoch + 1, batch_idx_in_epoch=0, epoch_done=False)
        self.log.info(
            "done: %d epochs, %d batches, %.1f min; %s",
            cfg.num_epochs,
            self.state["batch_idx_train"],
            (time.time() - begin) / 60,
            self.summary(),
        )
        if self.tb is not None:
            self.tb.close()

    def train_one_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        skip = self.state["batch_idx_in_epoch"]
        loader, _, _ = make_loader(
            self.train_cuts,
            cfg.data,
            training=True,
            seed=cfg.seed,
            skip_batches=skip,
            epoch=epoch,
            **self.loader_kwargs(),
        )
        self.scheduler.step_epoch(self.state.get("schedule_epochs", 0) + epoch - 1)
        if skip:
            self.log.info("epoch %d: skipping the %d batches already trained on", epoch, skip)
        self.reset_totals()
        self.seconds = 0.0
        self.epoch_start = time.time()
        progress = progress_bar(
            loader,
            desc=f"{self.progress_label()}epoch {epoch}",
            unit="batch",
            initial=skip,
            disable=not self.is_main,
        )
        for batch in progress:
            if (
                cfg.max_batches_per_epoch
                and self.state["batch_idx_in_epoch"] >= cfg.max_batches_per_epoch
            ):
                break
            self.state["batch_idx_in_epoch"] += 1
            self.state["batch_idx_train"] += 1
            n = self.state["batch_idx_train"]
            values = self.train_step(batch, epoch)
            if values is not None:
                self.accumulate(values)
                self.seconds += sum(batch["durations"])
            self.after_step(epoch, n, progress)
            if n % cfg.save_every_n == 0:
                self.save(self.exp_dir / f"checkpoint-{n}.pt")
                if self.is_main:
                    remove_old_checkpoints(self.exp_dir, cfg.keep_last_k)
        self.log.info(
            "epoch %d: %d batches, %.1f min of audio in %.1f min",
            epoch,
            self.state["batch_idx_in_epoch"],
            self.seconds / 60,
            (time.time() - self.epoch_start) / 60,
        )

    def progress_label(self) -> str:
        return ""


@contextlib.contextmanager
def process_group():
    """Join torchrun's process group for the duration (gloo on CPU, NCCL on GPUs), leave it at
    the end; yields the world size (1: no group)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        yield world_size
    finally:
        if world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_ranks(cfg: Any, trainer_class: type, log: logging.Logger, log_file: str) -> EpochLoop:
    """Run ``trainer_class(cfg)`` on this rank: torch threads, the process group, rank 0's log
    file ``<exp_dir>/log/<log_file>`` (``{stamp}``: the start time) with the configuration and
    the environment, and after training the ranks' weights compared."""
    from dataclasses import asdict

    from less.utils import environment_info, setup_logging

    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    with process_group() as world_size:
        exp_dir = Path(cfg.exp_dir)
        exp_dir.mkdir(parents=True, exist_ok=True)
        main = int(os.environ.get("RANK", "0")) == 0
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
        setup_logging(exp_dir / "log" / log_file.format(stamp=stamp) if main else None)
        if main:
            log.info("configuration: %s", json.dumps(asdict(cfg), sort_keys=True))
            log.info("environment: %s", json.dumps(environment_info(), sort_keys=True))
        trainer = trainer_class(cfg)
        trainer.run()
        if world_size > 1:
            check_ranks_agree(trainer.model, log)
        return trainer


def check_ranks_agree(model: torch.nn.Module, log: logging.Logger) -> None:
    """DDP: every rank must hold the same weights after training (all-reduced gradients and
    identical optimizer steps); compares per-tensor sums and sums of squares across ranks."""
    with torch.no_grad():
        stats = (
            torch.stack(
                [
                    torch.stack([p.double().sum(), p.double().square().sum()])
                    for p in model.parameters()
                ]
            )
            .flatten()
            .cpu()
        )
    gathered = [torch.empty_like(stats) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, stats)
    broken = [rank for rank, other in enumerate(gathered) if not torch.isfinite(other).all()]
    if broken:
        raise RuntimeError(f"DDP: rank(s) {broken} hold NaN or infinite weights after training")
    differing = [rank for rank, other in enumerate(gathered) if not torch.equal(other, gathered[0])]
    if differing:
        raise RuntimeError(
            f"DDP: the weights of rank(s) {differing} differ from rank 0's after training"
        )
    log.info(
        "DDP: the %d ranks hold identical weights (%d tensors compared)",
        len(gathered),
        stats.numel() // 2,
    )


def add_loop_arguments(
    p: argparse.ArgumentParser, d, train_help: str, model_overrides_help: str
) -> None:
    """Options of the epoch loop (less.loop) that training and SSL pretraining share: the
    experiment dir, the cut sets, the model, the schedules and the batches; ``d``: defaults."""
    p.add_argument("--exp-dir", default=d.exp_dir, help="checkpoints, logs, tensorboard")
    p.add_argument("--train-cuts", action="append", required=True, help=train_help)
    p.add_argument(
        "--train-weights",
        type=lambda s: [float(x) for x in s.split(",")],
        help="comma-separated sampling weights of the --train-cuts (CutSet.mux; default equal)",
    )
    p.add_argument("--model", default=d.model, help="named configuration: xs, small, medium, large")
    p.add_argument("--model-overrides", type=json.loads, default={}, help=model_overrides_help)
    config_options(
        p,
        d,
        num_epochs=None,
        start_epoch="resume from epoch-(N-1).pt (0: continue from the newest checkpoint, if any)",
        start_batch="resume from checkpoint-<N>.pt",
        base_lr=None,
        lr_batches="Eden: batches of LR decay",
        lr_epochs="Eden: epochs of LR decay",
        warmup_batches=None,
        seed=None,
        save_every_n=None,
        keep_last_k=None,
        log_interval=None,
        valid_every_epochs="validate after every N-th epoch and after the last one",
        device="auto, cpu, cuda, cuda:1",
        num_threads="torch CPU threads (0: all cores). Several jobs on one small CPU: use 1 each",
        max_batches_per_epoch="0: the whole epoch (testing aid)",
    )
    config_options(
        p,
        DataConfig(),
        max_duration="seconds of audio per batch",
        num_buckets=None,
        num_workers=None,
        min_cut_duration=None,
        max_cut_duration=None,
    )
