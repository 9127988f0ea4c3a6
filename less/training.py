"""The training loop behind ``python -m less.bin.train`` (see that module for the flags).

Configuration (``TrainConfig``) is separate from the state that changes while training
(``Trainer.state``: epoch, batch position, best validation loss, skipped batches); both
go into every checkpoint, so a checkpoint alone says how it was made and where to resume.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from less.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    update_averaged_model,
)
from less.data.datamodule import DataConfig, load_cuts
from less.data.tokenizer import load_tokenizer
from less.loop import EpochLoop, run_ranks
from less.utils import resolve_dtype, seed_everything

log = logging.getLogger("less.train")

ENCODER_PREFIXES = ("encoder_embed.", "encoder.")


@dataclass
class TrainConfig:
    task: str = "asr"
    exp_dir: str = "exp/iter0"
    train_cuts: list[str] = field(default_factory=list)
    train_weights: list[float] | None = None
    valid_cuts: str | None = None
    lang_dir: str = "data/lang_char"
    decoder_lang_dir: str | None = None
    model: str = "xs"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    ctc_scale: float | None = None
    aed_scale: float | None = None
    num_epochs: int = 30
    start_epoch: int = 0
    start_batch: int = 0
    base_lr: float = 0.045
    lr_batches: float = 7500.0
    lr_epochs: float = 3.5
    warmup_batches: float = 500.0
    ref_duration: float = 600.0
    seed: int = 42
    save_every_n: int = 4000
    keep_last_k: int = 30
    average_period: int = 200
    valid_interval: int = 3000
    log_interval: int = 50
    dtype: str = "auto"  # fp32, bf16, fp16 autocast; auto: bf16 on CPUs with native bf16, else fp32
    device: str = "auto"
    init_from: str | None = None
    init_avg: int = (
        1  # >1: init from the average decoding uses (--init-from epoch-E.pt, epochs E-A+1..E)
    )
    init_encoder_from: str | None = None
    # with init_encoder_from: the module names taken from it (default: ENCODER_PREFIXES); SpeechLM
    # adds its unit encoder and CTC head: encoder_embed.,encoder.,unit_encoder.,ctc_output.
    init_prefixes: list[str] | None = None
    # with init_from: "continue" the checkpoint's LR and regularisation schedules (Eden's batch and
    # epoch, the Zipformer's batch count: a student goes on where its teacher stopped) or "restart"
    # them from zero (warm-up, then the largest LR and the initial dropout/layer-skip rates again)
    init_schedule: str = "restart"
    # with init_encoder_from: fine-tuning the loaded (pretrained) modules more gently than the
    # fresh ones, as icefall-based SSL fine-tuning recipes do: their learning rate times this,
    # and none at all for the first freeze_encoder_batches batches (the fresh heads learn on a
    # fixed encoder first)
    encoder_lr_scale: float = 1.0
    freeze_encoder_batches: int = 0
    max_batches_per_epoch: int = 0
    num_threads: int = 0  # torch CPU threads; 0: torch's default (all cores)
    valid_every_epochs: int = 1  # validate after every N-th epoch (and after the last)
    # system U: the sequence-level loss on the cuts the filter rejected (less.unsup)
    unsup_cuts: str | None = None
    # chosen on the mini Mandarin dev set (seed 42: CER 22.76 / 16.41 / 13.70 at 1 / 0.3 / 0.1, L 15.26)
    unsup_weight: float = 0.1
    unsup_lm: str | None = None  # ARPA n-gram LM scoring the hypotheses
    unsup_lm_weight: float = 1.0  # lambda
    unsup_prior_weight: float = 1.0  # beta
    unsup_max_duration: float = 0.0  # seconds of audio per unlabeled batch (0: max_duration)
    data: DataConfig = field(default_factory=DataConfig)


def load_state_into(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    prefixes: tuple[str, ...] | None = None,
) -> None:
    """Load weights with errors that say which checkpoint and which tensors disagree.

    ``prefixes``: only the tensors under these module names, each of which must be in the
    checkpoint and in the model (ENCODER_PREFIXES: the front end and the Zipformer)."""
    if prefixes is not None:
        state = {k: v for k, v in state.items() if k.startswith(prefixes)}
        absent = [p for p in prefixes if not any(k.startswith(p) for k in state)]
        if absent:
            raise ValueError(
                f"{source}: no weights under {', '.join(p + '*' for p in absent)} found"
            )
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError(
            f"{source}: tensor shapes differ (another configuration or vocabulary?): {mismatched[:5]}"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if prefixes is not None:
        missing = [k for k in missing if k.startswith(prefixes)]
    if missing or unexpected:
        raise ValueError(
            f"{source}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}"
        )


def init_weights(path: str, avg: int = 1) -> dict[str, torch.Tensor]:
    """Weights to start from: a checkpoint's model, or with ``avg > 1`` the average of the
    ``avg`` epochs ending at ``path`` (``epoch-E.pt``), computed as decoding computes it, so
    a student starts from exactly the teacher that made its labels."""
    if avg <= 1:
        # epoch-N.pt, checkpoint-N.pt, or an averaged export (pretrained.pt): all have "model"
        return load_checkpoint(path)["model"]
    import re

    from less.checkpoint import averaged_model_state

    match = re.fullmatch(r"epoch-(\d+)\.pt", Path(path).name)
    if match is None:
        raise ValueError(f"--init-avg {avg} needs --init-from .../epoch-E.pt, got {path}")
    state, _ = averaged_model_state(
        Path(path).parent, int(match.group(1)), avg, use_averaged_model=True
    )
    return state


def schedule_position(path: str) -> dict[str, float]:
    """Where the schedules of the training that wrote checkpoint ``path`` stood at its end:
    Eden's batch and epoch and the Zipformer's batch count (``schedule_*`` of a student that
    continues them)."""
    ckpt = load_checkpoint(path)
    state, config = ckpt.get("train_state"), ckpt.get("config")
    if not state or not config:
        raise ValueError(
            f"{path}: no training state in this checkpoint (an export?); its schedules cannot "
            "be continued: use --init-schedule restart"
        )
    batches = int(state["batch_idx_train"])
    count = state.get("batch_count")
    if count is None:  # checkpoints written before batch_count was kept: one process
        count = (
            state.get("schedule_count", 0.0)
            + batches * config["data"]["max_duration"] / config["ref_duration"]
        )
    # an epoch-E.pt is saved after its epoch; a mid-epoch checkpoint counts the started epoch partly
    epochs = int(state["epoch"]) if state.get("epoch_done") else int(state["epoch"]) - 1
    return {
        "schedule_batches": int(state.get("schedule_batches", 0)) + batches,
        "schedule_epochs": int(state.get("schedule_epochs", 0)) + epochs,
        "schedule_count": float(count),
    }


class Trainer(EpochLoop):
    def __init__(self, cfg: TrainConfig):
        # schedule_*: where the LR and regularisation schedules start (the teacher's end with
        # init_schedule "continue"); batch_count: the Zipformer's schedule count of the last step
        super().__init__(
            cfg,
            skipped_batches=0,
            schedule_batches=0,
            schedule_epochs=0,
            schedule_count=0.0,
            batch_count=0.0,
        )
        self.init_ranks()
        self.device = self.pick_device()
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.ctc_tokenizer = load_tokenizer(cfg.lang_dir)
        if cfg.task == "ast":
            if not cfg.decoder_lang_dir:
                raise SystemExit("--task ast needs --decoder-lang-dir (the target-language tokens)")
            self.decoder_tokenizer = load_tokenizer(cfg.decoder_lang_dir)
        elif cfg.task == "asr":
            self.decoder_tokenizer = self.ctc_tokenizer
        else:
            raise SystemExit(f"unknown task {cfg.task!r} (asr or ast)")
        if cfg.unsup_cuts and cfg.task != "asr":
            raise SystemExit(
                "--unsup-cuts needs --task asr: for AST the N-best and LLM texts are English "
                "translations, not targets of the (source-language) CTC head"
            )
        self.unsup = None

    # ---------------------------------------------------------------- set-up
    def build_model(self) -> torch.nn.Module:
        from less.model.spec import ModelSpec

        return ModelSpec.from_train_config(asdict(self.cfg)).build(
            self.ctc_tokenizer, self.decoder_tokenizer
        )

    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.model = self.build_model()
        self.model_avg = copy.deepcopy(self.model).to(torch.float64) if self.is_main else None
        num_params = sum(p.numel() for p in self.model.parameters())
        log.info(
            "model %s: %.2fM parameters; %s on %s",
            cfg.model,
            num_params / 1e6,
            self.dtype,
            self.device,
        )
        self.model.to(self.device)
        self.make_optimizer(self.param_groups())

        resume = self.resume_checkpoint()
        if resume is not None:
            ckpt = load_checkpoint(resume)
            load_state_into(self.model, ckpt["model"], str(resume))
            if self.model_avg is not None:
                self.model_avg.load_state_dict(ckpt["model_avg"])
            self.restore_position(ckpt, resume)
        elif cfg.init_from or cfg.init_encoder_from:
            path = cfg.init_from or cfg.init_encoder_from
            prefixes = self.pretrained_prefixes()
            load_state_into(self.model, init_weights(path, cfg.init_avg), path, prefixes=prefixes)
            if self.model_avg is not None:
                self.model_avg.load_state_dict(self.model.state_dict())
            what = (
                "model"
                if prefixes is None
                else "encoder"
                if prefixes == ENCODER_PREFIXES
                else ", ".join(prefixes)
            )
            log.info("initialised the %s from %s", what, path)
            if cfg.init_from and cfg.init_schedule == "continue":
                self.state.update(schedule_position(path))
                log.info(
                    "schedules continue from %s: Eden at batch %d, epoch %d; batch count %.0f",
                    path,
                    self.state["schedule_batches"],
                    self.state["schedule_epochs"],
                    self.state["schedule_count"],
                )

        self.ddp_model = self.wrap_ddp(self.model)

        train_cuts = load_cuts(cfg.train_cuts, cfg.train_weights, seed=cfg.seed)
        self.train_cuts = train_cuts
        self.valid_cuts = load_cuts([cfg.valid_cuts]) if cfg.valid_cuts else None
        if cfg.unsup_cuts:
            from less.unsup.stream import build_objective

            self.unsup = build_objective(cfg, self.ctc_tokenizer, self.state, self.loader_kwargs())

    def pretrained_prefixes(self) -> tuple[str, ...] | None:
        """The module names --init-encoder-from loads; None without it."""
        cfg = self.cfg
        if cfg.init_encoder_from is None:
            if cfg.init_prefixes:
                raise SystemExit("--init-prefixes goes with --init-encoder-from")
            if cfg.encoder_lr_scale != 1.0 or cfg.freeze_encoder_batches:
                raise SystemExit(
                    "--encoder-lr-scale and --freeze-encoder-batches go with --init-encoder-from "
                    "(they fine-tune the pretrained modules it loads)"
                )
            return None
        if cfg.encoder_lr_scale <= 0.0 or cfg.freeze_encoder_batches < 0:
            raise SystemExit(
                f"--encoder-lr-scale must be > 0 and --freeze-encoder-batches >= 0, not "
                f"{cfg.encoder_lr_scale} and {cfg.freeze_encoder_batches}"
            )
        return tuple(cfg.init_prefixes) if cfg.init_prefixes else ENCODER_PREFIXES

    def param_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: one, or with --encoder-lr-scale or
        --freeze-encoder-batches the pretrained modules first (their own base LR) and the rest."""
        named = list(self.model.named_parameters())
        prefixes = self.pretrained_prefixes()
        cfg = self.cfg
        if prefixes is None or (cfg.encoder_lr_scale == 1.0 and not cfg.freeze_encoder_batches):
            return [{"params": named}]
        loaded = [(n, p) for n, p in named if n.startswith(prefixes)]
        fresh = [(n, p) for n, p in named if not n.startswith(prefixes)]
        log.info(
            "pretrained modules (%s, %.2fM parameters): LR x %g, frozen for the first %d batches",
            ", ".join(prefixes),
            sum(p.numel() for _, p in loaded) / 1e6,
            cfg.encoder_lr_scale,
            cfg.freeze_encoder_batches,
        )
        return [
            {"params": loaded, "lr": cfg.base_lr * cfg.encoder_lr_scale},
            {"params": fresh, "lr": cfg.base_lr},
        ]

    # ----------------------------------------------------------------- steps
    def targets(self, batch: dict[str, Any]) -> tuple[list[list[int]], list[list[int]]]:
        ctc = []
        for cut_id, text in zip(batch["cut_ids"], batch["texts"]):
            if not text:
                raise ValueError(f"cut {cut_id}: no transcript (supervision.text) to train on")
            ctc.append(self.ctc_tokenizer.encode(text))
        if self.cfg.task == "asr":
            return ctc, ctc
        aed = []
        for cut_id, translation in zip(batch["cut_ids"], batch["translations"]):
            if not translation:
                raise ValueError(
                    f"cut {cut_id}: no translation (supervision.custom['translated_text']['en'])"
                )
            aed.append(self.decoder_tokenizer.encode(translation))
        return ctc, aed

    def ctc_fits(self, cut) -> bool:
        """CTC needs at least as many output frames as target tokens."""
        from less.model import output_lengths

        text = cut.supervisions[0].text if cut.supervisions else None
        if not text:
            return True  # reported with the cut id when the batch is built
        num_frames = cut.num_frames if cut.has_features else round(cut.duration * 100)
        return int(output_lengths(torch.tensor([num_frames]))[0]) >= len(
            self.ctc_tokenizer.encode(text)
        )

    def compute_loss(
        self, model: torch.nn.Module, batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        ctc_targets, aed_targets = self.targets(batch)
        feats = batch["inputs"].to(self.device)
        feat_lens = batch["input_lens"].to(self.device)
        with self.autocast():
            return model(feats, feat_lens, ctc_targets, aed_targets)

    def describe_batch(self, batch: dict[str, Any]) -> str:
        return ", ".join(f"{c} ({d:.2f} s)" for c, d in zip(batch["cut_ids"], batch["durations"]))

    def train_step(self, batch: dict[str, Any], epoch: int = 0) -> dict[str, float] | None:
        from less.model import set_batch_count

        cfg = self.cfg
        self.model.train()
        batch_count = (
            self.state["schedule_count"]
            + self.state["batch_idx_train"]
            * cfg.data.max_duration
            * self.world_size
            / cfg.ref_duration
        )
        self.state["batch_count"] = batch_count
        set_batch_count(self.model, batch_count)
        try:
            out = self.compute_loss(self.ddp_model, batch)
            if self.unsup is not None:  # one unlabeled batch per step (system U)
                unsup = self.unsup.loss(self.model, self.device, self.autocast)
                out = {
                    **out,
                    **unsup,
                    "loss": out["loss"] + self.unsup.weight * unsup["unsup_loss"],
                }
            loss = out["loss"]
            if not self.all_finite(loss):
                self.state["skipped_batches"] += 1
                log.warning(
                    "batch %d: loss is %s%s; skipped (%d so far). Cuts: %s",
                    self.state["batch_idx_train"],
                    loss.item(),
                    " here, not finite on another rank" if torch.isfinite(loss) else "",
                    self.state["skipped_batches"],
                    ", ".join(batch["cut_ids"]),
                )
                self.skip_batch(loss)
                return None
            self.scaler.scale(loss).backward()
        except torch.OutOfMemoryError:
            log.error(
                "out of memory on batch %d with %d cuts: %s",
                self.state["batch_idx_train"],
                len(batch["cut_ids"]),
                self.describe_batch(batch),
            )
            raise
        self.scheduler.step_batch(self.state["schedule_batches"] + self.state["batch_idx_train"])
        if self.state["batch_idx_train"] <= cfg.freeze_encoder_batches:  # this batch's number
            # ScaledAdam at LR 0 leaves a tensor as it is (its momentum starts at zero) while
            # its gradient statistics warm up; the pretrained modules are group 0
            self.optimizer.param_groups[0]["lr"] = 0.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss per output frame (all ranks contribute)."""
        self.model.eval()
        loader = self.valid_loader(keep=self.ctc_fits)
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        skipped = 0
        for batch in loader:
            out = self.compute_loss(self.model, batch)
            if torch.isfinite(out["loss"]):
                total[0] += float(out["loss"])
                total[1] += float(out["frames"])
            else:
                skipped += 1
        if skipped:
            log.warning("validation: %d batch(es) with inf/NaN loss left out", skipped)
        if self.world_size > 1:
            torch.distributed.all_reduce(total)
        return {"loss": float(total[0] / max(float(total[1]), 1.0))}

    # ------------------------------------------------------------ checkpoints
    def save(self, path: Path) -> None:
        if not self.is_main:
            return
        save_checkpoint(
            path,
            model=self.model.state_dict(),
            model_avg=self.model_avg.state_dict() if self.model_avg is not None else None,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            grad_scaler=self.scaler.state_dict(),
            train_state=dict(self.state),
            rng=rng_state(),
            config=asdict(self.cfg),
            tokens={
                "ctc": self.cfg.lang_dir,
                "decoder": self.cfg.decoder_lang_dir or self.cfg.lang_dir,
            },
        )

    def loader_kwargs(self) -> dict[str, Any]:
        return {**super().loader_kwargs(), "keep": self.ctc_fits}

    def format_valid(self, stats: dict[str, float]) -> str:
        return f"loss {stats['loss']:.4f} per frame"

    def summary(self) -> str:
        return f"{self.state['skipped_batches']} skipped (inf/NaN); {super().summary()}"

    def after_step(self, epoch: int, n: int, progress) -> None:
        cfg = self.cfg
        if self.model_avg is not None and n % cfg.average_period == 0:
            update_averaged_model(self.model_avg, self.model, cfg.average_period, n)
        if self.is_main and n % cfg.log_interval == 0 and self.totals.get("frames"):
            totals, frames = self.totals, self.totals["frames"]
            lr = self.scheduler.get_last_lr()[-1]  # the fresh modules' (see param_groups)
            stats = {
                "loss": totals["loss"] / frames,
                "ctc_loss": totals["ctc_loss"] / frames,
                "aed_loss": totals["aed_loss"] / max(totals["aed_tokens"], 1.0),
                "lr": lr,
                "audio_per_second": self.audio_per_second(),
            }
            unsup = ""
            if "unsup_loss" in totals:
                stats["unsup_loss"] = totals["unsup_loss"] / max(totals["unsup_frames"], 1.0)
                unsup = f" unsup {stats['unsup_loss']:.4f}/frame"
            log.info(
                "epoch %d batch %d (global %d): loss %.4f/frame ctc %.4f aed %.4f/token%s lr %.2e, %.1f s audio/s",
                epoch,
                self.state["batch_idx_in_epoch"],
                n,
                stats["loss"],
                stats["ctc_loss"],
                stats["aed_loss"],
                unsup,
                lr,
                stats["audio_per_second"],
            )
            progress.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{lr:.1e}")
            self.log_scalars("train", stats)
            self.reset_totals()
        if self.valid_cuts is not None and n % cfg.valid_interval == 0:
            valid_loss = self.validate()["loss"]
            log.info("batch %d: validation loss %.4f per frame", n, valid_loss)
            self.log_scalars("valid", {"loss": valid_loss})


def run_training(cfg: TrainConfig) -> None:
    run_ranks(cfg, Trainer, log, "log-train-{stamp}-rank0.txt")
