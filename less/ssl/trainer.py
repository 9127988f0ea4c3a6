"""The pretraining loop behind ``python -m less.bin.ssl_pretrain`` (flags there).

Built from the supervised trainer's pieces: the lhotse sampler and batches of
:mod:`less.data.datamodule` (SpecAugment off: masking is the objective's), ScaledAdam +
Eden, the checkpoint helpers and the same exact-resume scheme as :mod:`less.training`:
every checkpoint holds the model, optimizer, scheduler, training position and RNG
states; masks and Gumbel noise are drawn from a generator seeded by the batch's cut ids,
the epoch and ``--seed``, so a run killed anywhere and restarted reaches the same weights
as one never interrupted (CPU).

Several GPUs (or CPU processes): ``torchrun --nproc-per-node N -m less.bin.ssl_pretrain ...``
(DDP: each rank takes its share of every epoch's batches, the schedules count the batches of
all ranks, validation sums over the ranks, rank 0 writes checkpoints and logs, and the ranks'
weights are compared at the end). ``--dtype bf16|fp16`` trains under autocast (fp16 with a
gradient scaler); the quantizers' labels are computed in fp32 whatever the dtype.

Checkpoints keep the encoder under the names of :class:`less.model.CtcAedModel`
(``encoder_embed.*``, ``encoder.*``) in ``"model"``, next to the heads and quantizer
buffers, so ``python -m less.bin.train --init-encoder-from <exp>/epoch-N.pt`` starts a
supervised model from the pretrained encoder.

Speech-image grounding (``--visual-images``, :mod:`less.ssl.grounding`): every
``--visual-every``-th step also takes a paired batch from the ``--visual-cuts``; the step's
loss becomes ``ssl(audio batch) + visual_weight * InfoNCE(paired batch)`` (plus
``visual_ssl_weight * ssl(paired audio)``, off by default).  The paired batch is a function
of the step index (:class:`~less.ssl.grounding.PairedBatches`), so exact resume needs no
extra state; the grounding parameters live under ``grounding.*`` in ``"model"`` (and in the
optimizer), which ``--init-encoder-from`` does not take.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from less.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
)
from less.data.cuts import keep_cuts
from less.data.datamodule import DataConfig, _batch_seed, load_cuts
from less.loop import EpochLoop, run_ranks
from less.ssl.grounding import GroundingConfig
from less.ssl.model import SslModel, SslObjectiveConfig
from less.ssl.speechlm import SpeechLmConfig
from less.utils import resolve_dtype, seed_everything

log = logging.getLogger("less.ssl")

STAT_KEYS = (
    "loss",
    "anchor_loss",
    "anchor_acc",
    "anchor_ppl",
    "enhanced_loss",
    "enhanced_acc",
    "enhanced_ppl",
    "speech_ce",
    "speech_acc",
    "unit_ce",
    "unit_acc",
    "text_ctc",
    "visual_infonce",
    "visual_acc",
    "visual_temp",
    "visual_ssl_loss",
    "visual_r1",
    "visual_r5",
)

# Enhanced-label perplexity below this fraction of the anchoring labels' counts as a collapse.
# On the mini corpus (8192-code books) the anchoring labels' perplexity per logged window is
# 320-580; BiRQ's collapsing enhanced labels went from about 290 to 30-70 within 100-200
# batches and ended at 3-7 (three seeds, egs/mini/less/RESULTS.md).
COLLAPSE_RATIO = 0.1


def collapse_warning(stats: dict[str, float], ratio: float = COLLAPSE_RATIO) -> str | None:
    """A warning when BiRQ's enhanced labels use far fewer codes than the anchoring ones.

    ``stats`` are the logged means of a window of batches; None when there are no
    enhanced labels yet or they are spread.
    """
    enhanced, anchor = stats.get("enhanced_ppl"), stats.get("anchor_ppl")
    if enhanced is None or anchor is None or enhanced >= ratio * anchor:
        return None
    return (
        f"the enhanced labels are collapsing: code perplexity {enhanced:.1f} against {anchor:.1f} for "
        f"the anchoring labels (below {ratio:g} x); a collapsed run gives an encoder worse than random "
        "weights. Settings that kept them spread on the mini corpus: --anchor-weight 10 or "
        "--label-grad-scale 0.1 (see less/ssl/model.py)"
    )


@dataclass
class SslConfig:
    exp_dir: str = "exp/ssl/bestrq"
    train_cuts: list[str] = field(default_factory=list)
    # several --train-cuts (languages) are interleaved by CutSet.mux with these weights (default equal)
    train_weights: list[float] | None = None
    valid_cuts: str | None = None
    model: str = "xs"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    num_epochs: int = 10
    start_epoch: int = 0
    start_batch: int = 0
    base_lr: float = 0.045
    lr_batches: float = 2000.0
    lr_epochs: float = 8.0
    warmup_batches: float = 200.0
    ref_duration: float = 600.0
    seed: int = 42
    save_every_n: int = 4000
    keep_last_k: int = 30
    log_interval: int = 10
    device: str = "auto"
    max_batches_per_epoch: int = 0
    num_threads: int = 0  # torch CPU threads; 0: torch's default (all cores)
    dtype: str = "fp32"  # autocast dtype: fp32, bf16, fp16 (with a gradient scaler), auto
    valid_every_epochs: int = 1  # validate after every N-th epoch (and after the last)
    objective: SslObjectiveConfig = field(default_factory=SslObjectiveConfig)
    # method speechlm: the units (less.bin.speechlm_units output) and the character tokens of the
    # UCTC head (the fine-tuning model's lang dir)
    speechlm: SpeechLmConfig = field(default_factory=SpeechLmConfig)
    unit_dir: str | None = None
    lang_dir: str | None = None
    data: DataConfig = field(default_factory=lambda: DataConfig(spec_augment=False))
    # speech-image grounding on a fraction of the steps (less.ssl.grounding); off without images
    grounding: GroundingConfig = field(default_factory=GroundingConfig)

    def __post_init__(self) -> None:
        if isinstance(self.objective, dict):
            self.objective = SslObjectiveConfig(**self.objective)
        if isinstance(self.speechlm, dict):
            self.speechlm = SpeechLmConfig(**self.speechlm)
        if isinstance(self.grounding, dict):
            self.grounding = GroundingConfig(**self.grounding)
        if self.objective.method == "speechlm" and not (self.unit_dir and self.lang_dir):
            raise ValueError(
                "--method speechlm needs --unit-dir (less.bin.speechlm_units) and --lang-dir"
            )
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"--dtype must be auto, fp32, bf16 or fp16, not {self.dtype!r}")
        if self.objective.method == "speechlm" and self.grounding.enabled:
            raise ValueError(
                "--visual-images goes with --method bestrq or birq (SpeechLM is not wired for it)"
            )
        if isinstance(self.data, dict):
            self.data = DataConfig(**self.data)
        self.data.spec_augment = False


class SslTrainer(EpochLoop):
    log = log
    what = "pretraining"

    def __init__(self, cfg: SslConfig):
        super().__init__(cfg)
        self.init_ranks()
        self.device = self.pick_device()
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        if self.world_size > 1 and cfg.grounding.enabled:
            raise SystemExit(
                "--visual-images runs in one process (its paired batches do not go through DDP); "
                "drop torchrun or the grounding"
            )
        self.warned_epoch: int | None = None  # the collapse warning is logged once per epoch

    # ---------------------------------------------------------------- set-up
    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.units: dict[str, list[int]] | None = None
        if cfg.objective.method == "speechlm":
            self.model = self.build_speechlm()
        else:
            self.model = SslModel(cfg.objective, cfg.model, cfg.model_overrides)
        if cfg.grounding.enabled:
            from less.ssl.grounding import GroundingHead, frame_dim

            g = cfg.grounding
            # its initial weights from a generator of their own: the global one drives the
            # Zipformer's training-time masks, which must be the same as in the audio-only
            # run of the same seed (the two differ by the grounding alone)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 7919)
                head = GroundingHead(
                    frame_dim(self.model.model_config, g.stack), g.dim, g.temperature
                )
            self.model.add_module("grounding", head)
        log.info(
            "%s on model %s: %.2fM parameters (encoder %.2fM)",
            cfg.objective.method,
            cfg.model,
            sum(p.numel() for p in self.model.parameters()) / 1e6,
            sum(v.numel() for v in self.model.encoder_state().values()) / 1e6,
        )
        self.model.to(self.device)
        # the momentum label generator (BiRQ with --enhanced-label-source ema) is not optimised
        trained = [
            (name, param) for name, param in self.model.named_parameters() if param.requires_grad
        ]
        self.make_optimizer(trained)
        resume = self.resume_checkpoint()
        if resume is not None:
            ckpt = load_checkpoint(resume)
            saved = SslObjectiveConfig(**ckpt["config"]["objective"])
            if asdict(saved) != asdict(cfg.objective):
                raise ValueError(
                    f"{resume} was trained with another objective configuration: {asdict(saved)}"
                )
            saved_speechlm = ckpt["config"].get("speechlm")
            if cfg.objective.method == "speechlm" and saved_speechlm != asdict(self.model.cfg):
                raise ValueError(
                    f"{resume} was trained with another SpeechLM configuration: {saved_speechlm}"
                )
            saved_grounding = GroundingConfig(
                **ckpt["config"].get("grounding") or {}
            ).architecture()
            if saved_grounding != cfg.grounding.architecture():
                raise ValueError(
                    f"{resume} was trained with another grounding set-up: {saved_grounding} "
                    f"(now {cfg.grounding.architecture()}); use the same --visual-* flags"
                )
            self.model.load_state_dict(ckpt["model"])
            self.restore_position(ckpt, resume)
        self.ddp_model = self.wrap_ddp(self.model)
        log.info("%s on %s, %d rank(s)", self.dtype, self.device, self.world_size)
        self.train_cuts = load_cuts(cfg.train_cuts, cfg.train_weights, seed=cfg.seed)
        self.valid_cuts = load_cuts([cfg.valid_cuts]) if cfg.valid_cuts else None
        if self.units is not None:
            self.train_cuts = self.with_units(self.train_cuts, "training")
            if self.valid_cuts is not None:
                self.valid_cuts = self.with_units(self.valid_cuts, "validation")
        self.visual_valid = None
        if cfg.grounding.enabled:
            self.setup_grounding()

    def setup_grounding(self) -> None:
        """Scene images, the paired training stream and the validation pairs."""
        from less.data.datamodule import SpeechDataset
        from less.ssl.grounding import PairedBatches, SceneImages

        cfg, g = self.cfg, self.cfg.grounding
        self.scenes = SceneImages(g.images)
        self.scene_keys: dict[str, str] = {}  # paired cut id -> scene key
        self.paired_max_duration = g.max_duration or cfg.data.max_duration
        self.paired = PairedBatches(
            self.paired_cuts(g.cuts, "training"), self.paired_max_duration, cfg.seed
        )
        if g.valid_cuts:
            self.visual_valid = self.paired_cuts(g.valid_cuts, "validation")
            if self.valid_cuts is None:  # the loop validates when it has validation cuts
                self.valid_cuts = self.visual_valid
        # paired audio as validation audio: no SpecAugment, noise or volume perturbation
        self.collate = SpeechDataset(cfg.data, training=False, seed=cfg.seed)
        log.info(
            "grounding: InfoNCE x %g on every %d-th step, %d paired batches per pass (%g s each), pooled "
            "from the %s layer",
            g.weight,
            g.every,
            len(self.paired),
            self.paired_max_duration,
            g.stack,
        )

    def paired_cuts(self, paths: list[str], what: str) -> list:
        """The cuts of ``paths`` (concatenated) that have a scene and a usable duration."""
        from lhotse import CutSet

        data = self.cfg.data
        kept, counts = [], {"cuts": 0, "no scene": 0, "duration": 0}
        for path in paths:
            for cut in CutSet.from_file(path):
                counts["cuts"] += 1
                key = self.scenes.key(cut)
                if key is None:
                    counts["no scene"] += 1
                elif not data.min_cut_duration <= cut.duration <= data.max_cut_duration:
                    counts["duration"] += 1
                else:
                    if self.scene_keys.setdefault(cut.id, key) != key:
                        raise ValueError(
                            f"cut {cut.id} appears twice in the paired cuts with different scenes"
                        )
                    kept.append(cut)
        if not kept:
            raise ValueError(
                f"none of the {counts['cuts']} {what} cuts of {', '.join(paths)} has a scene in "
                f"{self.scenes.index} and a duration in [{data.min_cut_duration}, "
                f"{data.max_cut_duration}] s"
            )
        log.info(
            "grounding %s pairs: %d of %d cuts (%d distinct scenes); %d without a scene, %d outside the "
            "duration range",
            what,
            len(kept),
            counts["cuts"],
            len({self.scene_keys[c.id] for c in kept}),
            counts["no scene"],
            counts["duration"],
        )
        return kept

    def build_speechlm(self):
        """SpeechLM's model, its speech units per cut and its text batches (from --unit-dir)."""
        from less.bin.speechlm_units import load_speech_units, load_text_units
        from less.data.tokenizer import load_tokenizer
        from less.ssl.speechlm import SpeechLmModel, TextUnitBatches
        from less.ssl.units import UnitLexicon

        cfg = self.cfg
        unit_dir = Path(cfg.unit_dir)
        lexicon = UnitLexicon.load(unit_dir)
        # the unit count is a property of the unit directory: the stored config records it
        cfg.speechlm = SpeechLmConfig(**{**asdict(cfg.speechlm), "num_units": len(lexicon)})
        tokenizer = load_tokenizer(cfg.lang_dir)
        model = SpeechLmModel(cfg.speechlm, tokenizer.vocab_size, cfg.model, cfg.model_overrides)
        self.units = load_speech_units(unit_dir / "speech_units.jsonl.gz")
        units, chars, dropped = [], [], 0
        max_frames = int(
            cfg.data.max_duration * 25
        )  # a text batch holds as many frames as a speech batch
        for text, seq in load_text_units(unit_dir / "text_units.jsonl.gz"):
            ids = tokenizer.encode(text)
            if not ids or tokenizer.unk_id in ids or len(ids) > len(seq) or len(seq) > max_frames:
                dropped += 1
                continue
            units.append(seq)
            chars.append(ids)
        if cfg.speechlm.text_weight > 0 and not units:
            raise ValueError(
                f"{unit_dir}/text_units.jsonl.gz: no usable sentence for the UCTC loss"
            )
        self.text_batches = TextUnitBatches(units, chars, max_frames, cfg.seed) if units else None
        log.info(
            "SpeechLM: %d units, speech units of %d cuts, %d text sentences (%d dropped: empty, "
            "out-of-vocabulary, more characters than units or more units than a batch), "
            "%d text batches per pass",
            len(lexicon),
            len(self.units),
            len(units),
            dropped,
            self.text_batches.per_pass if self.text_batches else 0,
        )
        return model

    def with_units(self, cuts, what: str):
        """The cuts that have speech units (the others were not recognised or not aligned)."""
        kept = keep_cuts(cuts, lambda c: c.id in self.units)
        total = sum(1 for _ in cuts)
        if len(kept) == 0:
            raise ValueError(
                f"none of the {what} cuts has speech units in {self.cfg.unit_dir}: "
                "run less.bin.speechlm_units on them"
            )
        log.info("SpeechLM %s cuts with speech units: %d of %d", what, len(kept), total)
        return kept

    # ----------------------------------------------------------------- steps
    def batch_count(self) -> float:
        """The schedules' position: audio seen by all ranks, in ``ref_duration`` batches."""
        cfg = self.cfg
        return (
            self.state["batch_idx_train"]
            * cfg.data.max_duration
            * self.world_size
            / cfg.ref_duration
        )

    def compute(self, batch: dict[str, Any], epoch: int) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(
            _batch_seed(batch["cut_ids"], epoch, self.cfg.seed)
        )
        feats = batch["inputs"].to(self.device)
        feat_lens = batch["input_lens"].to(self.device)
        # training steps go through DDP (the gradient all-reduce); validation does not
        model = self.ddp_model if self.model.training else self.model
        with self.autocast():
            if self.units is None:
                return model(feats, feat_lens, generator, self.batch_count())
            # SpeechLM: frame units, and in training one text batch per step (each rank its own)
            frame_units = [self.units[cut_id] for cut_id in batch["cut_ids"]]
            text = None
            if self.model.training and self.text_batches is not None:
                step = self.state["batch_idx_train"]
                text = self.text_batches[(step - 1) * self.world_size + self.rank + 1]
            return model(feats, feat_lens, frame_units, text, generator)

    def paired_index(self) -> int | None:
        """This step's paired batch: every ``--visual-every``-th step (``batch_idx_train``
        counts from 1), so the stream's position is the step index itself."""
        g = self.cfg.grounding
        step = self.state["batch_idx_train"]
        if not g.enabled or step % g.every:
            return None
        return step // g.every - 1

    def grounding_outputs(self, cuts: list, epoch: int, with_ssl: bool) -> dict[str, Any]:
        """InfoNCE (and statistics, embeddings, scene keys) of one batch of paired cuts;
        ``with_ssl``: also the SSL loss of their audio (``visual_ssl_loss``)."""
        from lhotse import CutSet

        from less.ssl.grounding import eval_mode

        g = self.cfg.grounding
        batch = self.collate[CutSet.from_cuts(cuts)]
        feats = batch["inputs"].to(self.device)
        feat_lens = batch["input_lens"].to(self.device)
        keys = [self.scene_keys[cut_id] for cut_id in batch["cut_ids"]]
        with eval_mode(self.model.encoder_embed, self.model.encoder):  # see eval_mode: why
            frames, frame_lens = self.model.representation(feats, feat_lens, g.stack)
        out = self.model.grounding(
            frames, frame_lens, self.scenes.images(keys).to(self.device), keys
        )
        out["keys"] = keys
        if with_ssl:
            out["visual_ssl_loss"] = self.compute(batch, epoch)["loss"]
        return out

    def add_grounding(self, out: dict[str, Any], index: int, epoch: int) -> dict[str, Any]:
        """The SSL step's outputs with the paired batch ``index``'s losses added."""
        g = self.cfg.grounding
        visual = self.grounding_outputs(self.paired[index], epoch, with_ssl=g.ssl_weight > 0)
        loss = out["loss"] + g.weight * visual["visual_infonce"]
        if "visual_ssl_loss" in visual:
            loss = loss + g.ssl_weight * visual["visual_ssl_loss"]
        stats = {k: v for k, v in visual.items() if k.startswith("visual_")}
        return {**out, **stats, "loss": loss, "visual_pairs": len(visual["keys"])}

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float] | None:
        from less.model import set_batch_count

        self.model.train()
        set_batch_count(self.model, self.batch_count())
        out = self.compute(batch, epoch)
        index = self.paired_index()
        if index is not None:
            out = self.add_grounding(out, index, epoch)
        loss = out["loss"]
        if not self.all_finite(loss):
            log.warning(
                "batch %d: loss is %s%s; skipped. Cuts: %s",
                self.state["batch_idx_train"],
                float(loss),
                " here, not finite on another rank" if torch.isfinite(loss) else "",
                ", ".join(batch["cut_ids"]),
            )
            self.skip_batch(loss)
            return None
        self.scaler.scale(loss).backward()
        self.scheduler.step_batch(self.state["batch_idx_train"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.update_label_generator(self.batch_count())
        values = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items()}
        values["lr"] = self.scheduler.get_last_lr()[0]
        self.log_scalars("train", values)
        return values

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """SSL losses on ``--valid-cuts`` and grounding statistics on ``--visual-valid-cuts``;
        without the former, ``loss`` (best-valid-loss.pt) is the validation InfoNCE."""
        stats = self.validate_ssl() if self.cfg.valid_cuts else {}
        if self.visual_valid is not None:
            stats.update(self.validate_grounding(self.visual_valid))
            stats.setdefault("loss", stats["visual_infonce"])
        return stats

    @torch.no_grad()
    def validate_grounding(self, cuts: list) -> dict[str, float]:
        """InfoNCE (mean per pair over fixed batches) and speech -> image R@1 / R@5 over all
        of ``cuts`` (the gallery: their distinct scenes), in eval mode."""
        from less.ssl.grounding import PairedBatches, retrieval_recall

        self.model.eval()
        batches = PairedBatches(cuts, self.paired_max_duration, shuffle=False)
        speech, image, keys, total = [], [], [], 0.0
        for index in range(len(batches)):
            out = self.grounding_outputs(batches[index], 0, with_ssl=False)
            total += float(out["visual_infonce"]) * len(out["keys"])
            speech.append(out["speech_emb"])
            image.append(out["image_emb"])
            keys += out["keys"]
        recall = retrieval_recall(torch.cat(speech), torch.cat(image), keys)
        return {
            "visual_infonce": total / len(keys),
            "visual_r1": recall["r1"],
            "visual_r5": recall["r5"],
        }

    @torch.no_grad()
    def validate_ssl(self) -> dict[str, float]:
        """Mean losses over the validation set (each rank its share, summed over the ranks),
        masks seeded as in training (epoch 0)."""
        self.model.eval()
        loader = self.valid_loader()
        # per statistic: the sum of value x masked frames, and the masked frames it was seen on
        sums = torch.zeros(2, len(STAT_KEYS), dtype=torch.float64, device=self.device)
        for batch in loader:
            out = self.compute(batch, 0)
            for i, key in enumerate(STAT_KEYS):
                if key in out:
                    sums[0, i] += float(out[key]) * out["masked"]
                    sums[1, i] += out["masked"]
        if self.world_size > 1:
            torch.distributed.all_reduce(sums)
        return {
            key: float(sums[0, i] / sums[1, i]) for i, key in enumerate(STAT_KEYS) if sums[1, i] > 0
        }

    def save(self, path: Path) -> None:
        if not self.is_main:
            return
        save_checkpoint(
            path,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            grad_scaler=self.scaler.state_dict(),
            train_state=dict(self.state),
            rng=rng_state(),
            config=asdict(self.cfg),
            ssl_method=self.cfg.objective.method,
        )

    # -------------------------------------------------------------- logging
    def progress_label(self) -> str:
        return f"{self.cfg.objective.method} "

    def format_valid(self, stats: dict[str, float]) -> str:
        return _format(stats)

    def after_step(self, epoch: int, n: int, progress) -> None:
        if not self.counts:
            return
        means = self.means()
        shown = ("loss", "anchor_ppl", "enhanced_ppl", "unit_acc", "visual_infonce")
        progress.set_postfix({k: f"{means[k]:.3g}" for k in shown if k in means})
        if n % self.cfg.log_interval:
            return
        if self.is_main:  # the windows of the other ranks end unlogged
            log.info(
                "epoch %d batch %d (global %d): %s lr %.2e, %.1f s audio/s",
                epoch,
                self.state["batch_idx_in_epoch"],
                n,
                _format(means),
                means["lr"],
                self.audio_per_second(),
            )
            warning = collapse_warning(means, COLLAPSE_RATIO)
            if warning and self.warned_epoch != epoch:
                log.warning(
                    "epoch %d batch %d: %s", epoch, self.state["batch_idx_in_epoch"], warning
                )
                self.warned_epoch = epoch
        self.reset_totals()


def _format(stats: dict[str, float]) -> str:
    return " ".join(f"{k} {stats[k]:.4g}" for k in STAT_KEYS if k in stats)


def run_pretraining(cfg: SslConfig) -> None:
    run_ranks(cfg, SslTrainer, log, "log-ssl-{stamp}.txt")
