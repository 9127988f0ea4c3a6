"""Self-supervised objectives on the project's Zipformer encoder: BEST-RQ and BiRQ.

**BEST-RQ** (Chiu et al., ICML 2022): labels are random-projection codes of the
normalised, stacked input frames (:mod:`less.ssl.quantizer`); spans of the input are
masked (:mod:`less.ssl.masking`); a linear head per codebook on the encoder output
predicts the codes of the masked frames (cross-entropy on masked frames only).

**BiRQ** (Jiang, Cui, Kingsbury, Chen, Chen, arXiv 2509.15430): the model labels itself.
Enhanced labels are random-projection codes of an intermediate stack of the *same*
Zipformer, run on the *unmasked* input; the anchoring labels are BEST-RQ's codes of the
raw input.  From the paper (its abstract; the full text was not reachable from this
workplace, so the details below are our reading of it and of the authors' penalty-based
bilevel line of work):

* enhanced labels: intermediate representation -> random-projection quantizer (a second,
  independent projection + codebook) -> code selected with a straight-through
  Gumbel-softmax, so the labels are differentiable and gradients reach the lower layers
  that produce them (end-to-end label refinement, no external label encoder);
* anchoring labels: BEST-RQ codes of the raw input, no gradient; they "stabilise training
  and prevent collapse";
* bilevel problem: upper level ``min_theta L_enh(theta)`` (predict the enhanced labels, a
  function of ``theta``) subject to ``theta in argmin L_anc`` (the BEST-RQ problem);
* first-order solution: the penalty (value-function) reformulation
  ``min L_enh + gamma * (L_anc - min L_anc)``; the value ``min L_anc`` does not depend on
  ``theta``, so one single-loop step follows ``grad L_enh + gamma * grad L_anc`` (total
  derivatives; ``grad L_enh`` includes the path through the Gumbel-softmax labels).  No
  second-order terms, no inner loop.

Choices where the paper (as far as we could read it) is silent, all flags
(:class:`SslObjectiveConfig`):

* ``enhanced_stack``: which Zipformer stack gives the enhanced labels (default 2, the
  third of six, the first 12.5 Hz stack: halfway through the encoder, as HuBERT takes its
  second-iteration targets from a middle layer).  Its 50 Hz output is normalised like the
  input and pairs of frames are stacked to the 25 Hz label rate;
* when the enhanced labels start: ``enhanced_start_batches`` (schedule batches, default
  1600: about the first third of our 15-epoch mini-corpus run) of BEST-RQ alone, then the
  enhanced weight ramps linearly from 0 over ``enhanced_warmup_batches`` (200).  Measured
  on the mini corpus: started from a random network (start 0), the enhanced labels
  collapse within ~60 batches (code perplexity per batch 610 -> 125, while a random or a
  BEST-RQ-trained stack gives ~650-700); started from the BEST-RQ state after ~420
  batches, they stay spread (~400-450) and become learnable.  This is HuBERT's "first
  iteration on simple targets", kept inside one run and one budget;
* ``anchor_weight`` (gamma, the penalty weight) 1.0, ``enhanced_weight`` 1.0; optionally a
  penalty schedule, ``anchor_weight`` growing geometrically to ``anchor_weight_end`` over
  ``anchor_weight_batches`` from the start of the enhanced labels;
* Gumbel temperature decays geometrically from ``gumbel_temp_start`` to
  ``gumbel_temp_end`` over ``gumbel_temp_batches`` (schedule batches; wav2vec 2.0's
  2 -> 0.5 schedule is the model; our logits are cosines, so 1.0 -> 0.5 over 4000).  The
  temperature sets how hard the labels are pulled towards predictability: at 0.1 the
  enhanced labels of a small model collapse onto a handful of codes within tens of
  steps, anchored or not (anchoring only slows it), at 0.5-1.0 slowly;
* ``diversity_weight`` (default 0, off): an optional wav2vec 2.0-style code-diversity
  penalty on the enhanced quantizer's soft assignments (at ``diversity_temperature``).
  It does stop the collapse from a random start (weight 1 or 0.1: perplexity stays
  750-1050), but the labels then move too fast to be learned (enhanced loss stays at or
  above ln(codebook size) for 80 batches), so the BEST-RQ phase above is the default
  remedy; ``label_grad_scale`` scales the gradient through the labels;
* the hard label is the noise-free nearest code (``gumbel_noise_in_forward=False``):
  with 8192 codes in 16 dimensions, Gumbel noise in the forward pass would pick among
  dozens of nearly equidistant codes; the noise still shapes the soft relaxation the
  gradient flows through.  ``True`` gives the textbook estimator;
* the label pass runs in eval mode (no dropout, layer skipping or channel masking:
  labels are a function of the input, not of the dropout draw), with gradients
  (``enhanced_label_grad=False`` stops them: labels become plain self-distillation
  targets, an ablation).

What the paper's settings are (found on the first author's research site, which paraphrases
the paper with its equation and table numbers; the arXiv text itself was not reachable): the
penalty form is ``w1 F + w2 (G - min G)`` with the *same* encoder in both levels and one
single-loop step on ``w1 grad F + w2 grad G`` (as implemented here), ``w1 = 0.1`` (enhanced)
and ``w2 = 2.4`` (anchor): a penalty constant of 24, not 1; Gumbel temperature 0.5; the
enhanced labels from ~70 % of the encoder's depth (layer 7 of 10; layer 4 best of 2-4 in a
5-layer ablation); the gradient of the enhanced loss passes through the target path.  Flags
for those: ``--enhanced-weight 0.1 --anchor-weight 2.4 --gumbel-temp-start 0.5
--gumbel-temp-end 0.5 --enhanced-stack 3``.

``enhanced_label_source="ema"`` (not in the paper) takes the enhanced labels from a momentum
copy of the front end and the lower stacks instead (data2vec's teacher; HuBERT's next
iteration, updated continuously): a plain copy of the online encoder until the enhanced
labels start, then ``ema <- d ema + (1 - d) online`` after every optimizer step; the labels
are fixed targets, no gradient reaches the generator, so nothing pulls them towards a
collapse.

Without the anchoring term (gamma = 0) the cheapest way to predict self-made labels is
to make them constant: the enhanced labels collapse; the anchoring term slows that down
(``tests/ssl/test_ssl.py`` measures it at a low temperature, gamma 10 vs 0).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from less.ssl.masking import mask_input, span_mask
from less.ssl.quantizer import (
    LABEL_STACK,
    RandomProjectionQuantizer,
    code_perplexity,
    normalize_features,
    stack_input_frames,
    stack_pairs,
    valid_mask,
)

METHODS = (
    "bestrq",
    "birq",
    "speechlm",
)  # speechlm: less.ssl.speechlm (its own model; units, not codes)
LABEL_SOURCES = ("online", "ema")
ENCODER_PREFIXES = ("encoder_embed.", "encoder.")


def _geometric(start: float, end: float, done: float, length: float) -> float:
    """``start`` -> ``end`` geometrically over ``length`` (``done`` clamped to 0..length)."""
    progress = min(max(done / max(length, 1e-9), 0.0), 1.0)
    return start * (end / start) ** progress


@dataclass
class SslObjectiveConfig:
    method: str = "bestrq"
    label_norm: str = "utterance"  # utterance | batch | none
    code_dim: int = 16
    codebook_size: int = 8192
    num_codebooks: int = 1
    quantizer_seed: int = 1234
    mask_prob: float = 0.04  # span start probability per 25 Hz label frame
    mask_span: int = 10  # label frames (400 ms)
    mask_noise_std: float = 0.1
    # BiRQ
    enhanced_stack: int = 2
    enhanced_code_dim: int = 16
    enhanced_codebook_size: int = 8192
    enhanced_num_codebooks: int = 1
    anchor_weight: float = 1.0
    enhanced_weight: float = 1.0
    enhanced_start_batches: float = 1600.0
    enhanced_warmup_batches: float = 200.0
    gumbel_temp_start: float = 1.0
    gumbel_temp_end: float = 0.5
    gumbel_temp_batches: float = 4000.0
    gumbel_noise_in_forward: bool = False
    enhanced_label_grad: bool = True
    label_grad_scale: float = 1.0
    diversity_weight: float = 0.0
    diversity_temperature: float = 0.1
    enhanced_label_source: str = "online"  # online (the paper's self-labelling) | ema
    ema_decay: float = 0.999
    anchor_weight_end: float | None = (
        None  # penalty schedule: anchor_weight grows to this (None: constant)
    )
    anchor_weight_batches: float = 4000.0  # over these schedule batches from enhanced_start_batches

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown SSL method {self.method!r}; choose from {METHODS}")
        if self.enhanced_label_source not in LABEL_SOURCES:
            raise ValueError(
                f"unknown enhanced label source {self.enhanced_label_source!r}; "
                f"choose from {LABEL_SOURCES}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.anchor_weight_end is not None and (
            self.anchor_weight <= 0 or self.anchor_weight_end <= 0
        ):
            raise ValueError(
                "a penalty schedule (anchor_weight_end) needs anchor_weight > 0 and anchor_weight_end > 0, "
                f"got {self.anchor_weight} -> {self.anchor_weight_end}"
            )

    def anchor_scale(self, batch: float) -> float:
        """The penalty constant at ``batch``: ``anchor_weight``, or with ``anchor_weight_end`` a
        geometric growth from it to that over ``anchor_weight_batches`` once the enhanced labels
        start (penalty methods tighten the constraint as they go)."""
        if self.anchor_weight_end is None:
            return self.anchor_weight
        return _geometric(
            self.anchor_weight,
            self.anchor_weight_end,
            batch - self.enhanced_start_batches,
            self.anchor_weight_batches,
        )

    def gumbel_temperature(self, batch: float) -> float:
        return _geometric(
            self.gumbel_temp_start, self.gumbel_temp_end, batch, self.gumbel_temp_batches
        )

    def enhanced_scale(self, batch: float) -> float:
        """0 before ``enhanced_start_batches``, then a linear ramp to ``enhanced_weight``."""
        done = batch - self.enhanced_start_batches
        if done < 0:
            return 0.0
        if self.enhanced_warmup_batches <= 0:
            return self.enhanced_weight
        return self.enhanced_weight * min(1.0, done / self.enhanced_warmup_batches)


class EncoderOnly(nn.Module):
    """Front end + Zipformer with the module names of :class:`less.model.CtcAedModel`, so
    that ``encoder_embed.*`` / ``encoder.*`` tensors move between the two unchanged."""

    def __init__(self, model: str = "xs", model_overrides: dict[str, Any] | None = None) -> None:
        super().__init__()
        from less.model import build_model

        # build the ASR model of this configuration and keep its encoder: one copy of the
        # construction code, the same parameter names and initialisation
        full = build_model(
            model, ctc_vocab_size=4, decoder_vocab_size=None, **(model_overrides or {})
        )
        self.model_name = model
        self.model_config = full.config
        self.encoder_embed = full.encoder_embed
        self.encoder = full.encoder

    @property
    def output_dim(self) -> int:
        return self.model_config.encoder.output_dim

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Same contract as :meth:`CtcAedModel.encode` (25 Hz output)."""
        if int(feat_lens.min()) < 9:
            raise ValueError(
                f"every input needs at least 9 frames (got lengths {feat_lens.tolist()})"
            )
        x, x_lens = self.encoder_embed(feats, feat_lens)
        return self.encoder(x, x_lens)

    def representation(self, feats: Tensor, feat_lens: Tensor, layer: str) -> tuple[Tensor, Tensor]:
        """Frame representations (B, T, D) and lengths of ``layer``: ``embed`` (front end,
        50 Hz), a stack index ``0..num_stacks-1`` (that stack's output, 50 Hz) or ``final``
        (encoder output, 25 Hz)."""
        if layer == "final":
            return self.encode(feats, feat_lens)
        x, x_lens = self.encoder_embed(feats, feat_lens)
        if layer == "embed":
            return x, x_lens
        outputs = self.encoder.stack_outputs(x, x_lens, int(layer))
        return outputs[-1].transpose(0, 1), x_lens

    def encoder_state(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(ENCODER_PREFIXES)}


def _masked_ce(logits: Tensor, targets: Tensor) -> tuple[Tensor, float]:
    loss = F.cross_entropy(logits, targets)
    accuracy = float((logits.detach().argmax(-1) == targets).float().mean())
    return loss, accuracy


class SslModel(EncoderOnly):
    """Encoder + prediction heads + frozen quantizers; :meth:`forward` returns the losses."""

    def __init__(
        self,
        objective: SslObjectiveConfig,
        model: str = "xs",
        model_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, model_overrides)
        if objective.method == "speechlm":
            raise ValueError("SpeechLM pre-trains less.ssl.speechlm.SpeechLmModel, not SslModel")
        self.objective = o = objective
        feature_dim = self.model_config.encoder.feature_dim
        self.anchor_quantizer = RandomProjectionQuantizer(
            LABEL_STACK * feature_dim,
            o.code_dim,
            o.codebook_size,
            o.num_codebooks,
            seed=o.quantizer_seed,
        )
        self.anchor_heads = nn.ModuleList(
            nn.Linear(self.output_dim, o.codebook_size) for _ in range(o.num_codebooks)
        )
        self.enhanced_quantizer: RandomProjectionQuantizer | None = None
        self.enhanced_heads = nn.ModuleList()
        if o.method == "birq":
            stacks = self.model_config.encoder.num_stacks
            if not 0 <= o.enhanced_stack < stacks:
                raise ValueError(f"enhanced_stack {o.enhanced_stack} outside 0..{stacks - 1}")
            dim = self.model_config.encoder.encoder_dim[o.enhanced_stack]
            self.enhanced_quantizer = RandomProjectionQuantizer(
                2 * dim,
                o.enhanced_code_dim,
                o.enhanced_codebook_size,
                o.enhanced_num_codebooks,
                seed=o.quantizer_seed + 1,
            )
            self.enhanced_heads = nn.ModuleList(
                nn.Linear(self.output_dim, o.enhanced_codebook_size)
                for _ in range(o.enhanced_num_codebooks)
            )
            if o.enhanced_label_source == "ema":
                # the label generator: a momentum copy of the front end and the encoder (only its
                # stacks up to enhanced_stack run), outside the optimizer (see update_label_generator)
                self.ema_embed = copy.deepcopy(self.encoder_embed)
                self.ema_encoder = copy.deepcopy(self.encoder)
                for param in self.label_generator_parameters():
                    param.requires_grad_(False)

    def label_generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the momentum label generator (empty unless ``enhanced_label_source="ema"``)."""
        if not hasattr(self, "ema_encoder"):
            return []
        return [*self.ema_embed.parameters(), *self.ema_encoder.parameters()]

    @torch.no_grad()
    def update_label_generator(self, batch_count: float) -> None:
        """After an optimizer step: the momentum label generator follows the online encoder.

        Before ``enhanced_start_batches`` it is a plain copy (the labels start from the
        BEST-RQ-trained state, as HuBERT's second iteration starts from its first model);
        from then on ``ema <- decay * ema + (1 - decay) * online`` for parameters, buffers
        copied.  No gradient ever reaches it: the labels cannot be pulled towards
        predictability (the collapse of the online self-labelling)."""
        if not hasattr(self, "ema_encoder"):
            return
        o = self.objective
        decay = o.ema_decay if batch_count >= o.enhanced_start_batches else 0.0
        for ema, online in ((self.ema_embed, self.encoder_embed), (self.ema_encoder, self.encoder)):
            for target, source in zip(ema.parameters(), online.parameters()):
                target.lerp_(source.detach(), 1.0 - decay)
            for target, source in zip(ema.buffers(), online.buffers()):
                target.copy_(source)

    @property
    def uses_ema_labels(self) -> bool:
        return hasattr(self, "ema_encoder")

    @property
    def label_gradients(self) -> bool:
        """Whether the enhanced labels are differentiable (online self-labelling with
        ``enhanced_label_grad``); momentum labels never are."""
        return self.objective.enhanced_label_grad and not self.uses_ema_labels

    @torch.no_grad()
    def anchor_codes(self, feats: Tensor, feat_lens: Tensor, num_label_frames: int) -> Tensor:
        """BEST-RQ labels (num_codebooks, B, num_label_frames) of the raw input."""
        normed = normalize_features(feats, feat_lens, self.objective.label_norm)
        return self.anchor_quantizer.codes(stack_input_frames(normed, num_label_frames))

    def enhanced_features(self, feats: Tensor, feat_lens: Tensor, num_label_frames: int) -> Tensor:
        """Normalised output of stack ``enhanced_stack`` on the unmasked input, stacked to
        the label rate: (B, num_label_frames, 2 * encoder_dim[stack]).  Runs in eval mode;
        differentiable unless ``enhanced_label_grad`` is off."""
        o = self.objective
        embed, encoder = (
            (self.ema_embed, self.ema_encoder)
            if self.uses_ema_labels
            else (self.encoder_embed, self.encoder)
        )
        modes = [(m, m.training) for m in (embed, encoder)]
        grad = contextlib.nullcontext() if self.label_gradients else torch.no_grad()
        try:
            for module, _ in modes:
                module.eval()
            with grad:
                x, x_lens = embed(feats, feat_lens)
                inner = encoder.stack_outputs(x, x_lens, o.enhanced_stack)[-1].transpose(0, 1)
                inner = normalize_features(inner, x_lens, o.label_norm)
                return stack_pairs(inner, num_label_frames)
        finally:
            for module, was_training in modes:
                module.train(was_training)

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        generator: torch.Generator | None = None,
        batch_count: float = 0.0,
    ) -> dict[str, Any]:
        """Losses (means over masked label frames) and statistics of one batch.

        ``generator`` draws the masks and the Gumbel noise (seed it per batch for exactly
        reproducible runs); ``batch_count`` drives the temperature and warm-up schedules.
        """
        from less.model import output_lengths

        o = self.objective
        label_lens = output_lengths(feat_lens)
        if int(label_lens.min()) < 1:
            raise ValueError(f"inputs too short for one label frame: lengths {feat_lens.tolist()}")
        num_label_frames = int(label_lens.max())
        real = valid_mask(label_lens, num_label_frames)
        anchor_codes = self.anchor_codes(feats, feat_lens, num_label_frames)
        mask = span_mask(label_lens, num_label_frames, o.mask_prob, o.mask_span, generator)
        masked_feats = mask_input(feats, feat_lens, mask, o.mask_noise_std, generator)
        enc_out, enc_lens = self.encode(masked_feats, feat_lens)
        if enc_out.shape[1] != num_label_frames or not torch.equal(enc_lens, label_lens):
            raise RuntimeError(
                f"encoder output lengths {enc_lens.tolist()} differ from labels {label_lens.tolist()}"
            )
        selected = mask & real
        hidden = enc_out[selected]  # (masked frames, D)

        anchor_losses, anchor_accs = zip(
            *(
                _masked_ce(head(hidden), anchor_codes[n][selected])
                for n, head in enumerate(self.anchor_heads)
            )
        )
        anchor_loss = torch.stack(anchor_losses).mean()
        out: dict[str, Any] = {
            "anchor_loss": anchor_loss,
            "anchor_acc": sum(anchor_accs) / len(anchor_accs),
            "anchor_ppl": code_perplexity(anchor_codes, real, o.codebook_size),
            "frames": int(real.sum()),
            "masked": int(selected.sum()),
        }
        if o.method == "bestrq" or batch_count < o.enhanced_start_batches:
            out["loss"] = (
                o.anchor_scale(batch_count) * anchor_loss if o.method == "birq" else anchor_loss
            )
            return out

        assert self.enhanced_quantizer is not None
        temperature = o.gumbel_temperature(batch_count)
        stacked = self.enhanced_features(feats, feat_lens, num_label_frames)
        with torch.no_grad():
            all_codes = self.enhanced_quantizer.codes(stacked.detach())
        enhanced_losses, enhanced_accs = [], []
        if not self.uses_ema_labels:
            codes, one_hot = self.enhanced_quantizer.gumbel_select(
                stacked[selected].unsqueeze(0),
                temperature,
                generator,
                o.gumbel_noise_in_forward,
                o.label_grad_scale,
            )
            for n, head in enumerate(self.enhanced_heads):
                log_probs = head(hidden).log_softmax(dim=-1)
                enhanced_losses.append(-(one_hot[n, 0] * log_probs).sum(dim=-1).mean())
                enhanced_accs.append(
                    float((log_probs.detach().argmax(-1) == codes[n, 0]).float().mean())
                )
        else:  # momentum labels: fixed targets, the nearest codes (the straight-through labels' value)
            for n, head in enumerate(self.enhanced_heads):
                loss_n, acc_n = _masked_ce(head(hidden), all_codes[n][selected])
                enhanced_losses.append(loss_n)
                enhanced_accs.append(acc_n)
        enhanced_loss = torch.stack(enhanced_losses).mean()
        enhanced_scale = o.enhanced_scale(batch_count)
        anchor_scale = o.anchor_scale(batch_count)
        loss = enhanced_scale * enhanced_loss + anchor_scale * anchor_loss
        if o.diversity_weight > 0:
            diversity = self.enhanced_quantizer.diversity_penalty(
                stacked[real].unsqueeze(0), o.diversity_temperature
            )
            loss = loss + o.diversity_weight * diversity
            out["diversity"] = diversity.detach()
        out.update(
            loss=loss,
            enhanced_loss=enhanced_loss,
            enhanced_acc=sum(enhanced_accs) / len(enhanced_accs),
            enhanced_ppl=code_perplexity(all_codes, real, o.enhanced_codebook_size),
            temperature=temperature,
            enhanced_scale=enhanced_scale,
            anchor_scale=anchor_scale,
        )
        return out
