"""SpeechLM-P pre-training (Zhang et al., TASLP 2024) on the project's Zipformer.

What one step computes (the authors' ``speechlm_criterion`` and model code, read in
microsoft/unilm ``speechlm/``; our own implementation):

* **UMLM on speech**: spans of the input are masked (:mod:`less.ssl.masking`, the BEST-RQ
  masking of this project: span starts at 25 Hz, masked fbank frames replaced by quiet
  noise); the phoneme units of the masked frames (:mod:`less.ssl.units`) are predicted by a
  linear head on the Zipformer output *and* by another on the unit-encoder output
  (cross-entropy on masked frames only, the two losses summed);
* **random swapping**: between the Zipformer and the unit encoder, frames of a second span
  mask that are *not* masked are replaced by the embedding of their own unit (the swap
  never touches a masked frame, whose unit is what the loss asks for);
* **UCTC**: an unpaired text batch, its upsampled units (:class:`~less.ssl.units.DurationModel`)
  embedded by the same unit embedding, masked with the same span masking (a learned mask
  embedding), runs through the unit encoder and the CTC head of the CTC/AED model, whose
  targets are the sentence's characters; weight ``text_weight`` (repo default 0.1).  The
  unit encoder and that CTC head keep the names of :class:`less.model.CtcAedModel`, so
  fine-tuning starts from them (``less.bin.train --init-from-prefixes``).

Differences from the authors', flagged: linear unit heads instead of cosine similarity with
label embeddings (temperature 0.1); masking on the input fbank as everywhere in this
project instead of a learned mask embedding after a CNN; the span masking at 25 Hz
(``mask_prob`` 0.16, ``mask_span`` 5 = 200 ms, ~58 % of the frames: the authors' 0.8 x
10 frames at 50 Hz masks about as much); a conv-position unit encoder
(:mod:`less.model.unit_encoder`).  ``text_weight=0`` is SpeechLM-P without text: the same
units and swapping, no UCTC (the issue's ablation that separates units from text).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from less.ssl.masking import mask_input, span_mask
from less.ssl.quantizer import valid_mask
from less.ssl.units import padded_labels

SPEECHLM_PREFIXES = ("encoder_embed.", "encoder.", "unit_encoder.", "ctc_output.")


@dataclass
class SpeechLmConfig:
    num_units: int = 0  # unit inventory size (units.txt); set from the unit directory
    unit_encoder_layers: int = 2
    mask_prob: float = 0.16  # span start probability per 25 Hz frame
    mask_span: int = 5  # frames (200 ms)
    mask_noise_std: float = 0.1
    # the swap mask: ~40 % of the 25 Hz frames before overlaps, the authors' share (their swap
    # mask is half their masking probability, 0.4 of 50 Hz frames, in spans of 5 = 100 ms)
    swap_prob: float = 0.2
    swap_span: int = 2
    text_weight: float = 0.1  # UCTC; 0: without text
    speech_weight: float = 1.0  # UMLM at each of the two outputs

    def __post_init__(self) -> None:
        for name in ("mask_prob", "swap_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.unit_encoder_layers < 1:
            raise ValueError("SpeechLM needs a unit encoder: unit_encoder_layers >= 1")
        if self.text_weight < 0:
            raise ValueError(f"text_weight must be >= 0, got {self.text_weight}")


def swap_positions(
    masked: Tensor, real: Tensor, prob: float, span: int, generator: torch.Generator | None = None
) -> Tensor:
    """Frames whose speech representation is replaced by their unit embedding: a second span
    mask, minus every masked frame (and padding)."""
    lens = real.sum(dim=1)
    if prob <= 0:
        return torch.zeros_like(masked)
    chosen = span_mask(lens, masked.shape[1], prob, span, generator, min_masked=0)
    return chosen & ~masked & real


class SpeechLmModel(nn.Module):
    """Front end + Zipformer + unit encoder + CTC head (the names of CtcAedModel), the unit
    embedding, a mask embedding for text, and the two UMLM heads."""

    def __init__(
        self,
        cfg: SpeechLmConfig,
        ctc_vocab_size: int,
        model: str = "xs",
        model_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from less.model import build_model

        if cfg.num_units < 3:
            raise ValueError(
                f"num_units {cfg.num_units}: load the unit inventory first (units.txt)"
            )
        full = build_model(
            model,
            ctc_vocab_size=ctc_vocab_size,
            decoder_vocab_size=None,
            unit_encoder_layers=cfg.unit_encoder_layers,
            **(model_overrides or {}),
        )
        self.cfg = cfg
        self.model_config = full.config
        self.encoder_embed = full.encoder_embed
        self.encoder = full.encoder
        self.unit_encoder = full.unit_encoder
        self.ctc_output = full.ctc_output
        dim = full.config.encoder.output_dim
        self.unit_embed = nn.Embedding(cfg.num_units, dim)
        nn.init.normal_(self.unit_embed.weight, std=dim**-0.5)
        self.text_mask_embed = nn.Parameter(torch.empty(dim).uniform_(-0.1, 0.1))
        self.speech_head = nn.Linear(dim, cfg.num_units)
        self.unit_head = nn.Linear(dim, cfg.num_units)

    def transferable_state(self) -> dict[str, Tensor]:
        """What fine-tuning takes: front end, Zipformer, unit encoder, CTC head."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(SPEECHLM_PREFIXES)}

    def update_label_generator(self, batch_count: float) -> None:
        """No label generator to update (the units are fixed): the trainer's hook for BiRQ."""

    def encoder_state(self) -> dict[str, Tensor]:
        return {
            k: v
            for k, v in self.state_dict().items()
            if k.startswith(("encoder_embed.", "encoder."))
        }

    def speech_losses(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        frame_units: Sequence[Sequence[int]],
        generator: torch.Generator | None,
    ) -> dict[str, Any]:
        from less.model import output_lengths

        cfg = self.cfg
        lens = output_lengths(feat_lens)
        num_frames = int(lens.max())
        for b, units in enumerate(frame_units):
            if len(units) != int(lens[b]):
                raise ValueError(
                    f"utterance {b}: {len(units)} unit labels for {int(lens[b])} encoder frames"
                )
        labels = padded_labels(frame_units, num_frames).to(feats.device)
        real = valid_mask(lens, num_frames).to(feats.device)
        masked = span_mask(lens, num_frames, cfg.mask_prob, cfg.mask_span, generator) & real
        x, x_lens = self.encoder_embed(
            mask_input(feats, feat_lens, masked, cfg.mask_noise_std, generator), feat_lens
        )
        enc_out, enc_lens = self.encoder(x, x_lens)
        if enc_out.shape[1] != num_frames:
            raise RuntimeError(f"encoder gave {enc_out.shape[1]} frames, labels have {num_frames}")
        swap = swap_positions(masked, real, cfg.swap_prob, cfg.swap_span, generator)
        unit_in = torch.where(
            swap.unsqueeze(-1), self.unit_embed(labels.clamp(min=0)).to(enc_out.dtype), enc_out
        )
        unit_out = self.unit_encoder(unit_in, enc_lens)
        target = labels[masked]
        speech_logits = self.speech_head(enc_out[masked]).float()
        unit_logits = self.unit_head(unit_out[masked]).float()
        speech_ce = F.cross_entropy(speech_logits, target)
        unit_ce = F.cross_entropy(unit_logits, target)
        return {
            "speech_ce": speech_ce,
            "unit_ce": unit_ce,
            "speech_acc": float((speech_logits.detach().argmax(-1) == target).float().mean()),
            "unit_acc": float((unit_logits.detach().argmax(-1) == target).float().mean()),
            "masked": int(masked.sum()),
            "swapped": int(swap.sum()),
            "frames": int(real.sum()),
        }

    def text_loss(
        self,
        text_units: Sequence[Sequence[int]],
        char_targets: Sequence[Sequence[int]],
        generator: torch.Generator | None,
    ) -> tuple[Tensor, int]:
        """UCTC: masked, embedded text units -> unit encoder -> CTC head; (loss per target
        character, characters)."""
        cfg = self.cfg
        device = self.unit_embed.weight.device
        lens = torch.tensor([len(u) for u in text_units], dtype=torch.long)
        if int(lens.min()) < 1:
            raise ValueError("an empty text unit sequence")
        num_frames = int(lens.max())
        units = padded_labels(text_units, num_frames, pad=0).to(device)
        # no forced span here (min_masked=0): the text loss does not need masked positions
        masked = (
            span_mask(lens, num_frames, cfg.mask_prob, cfg.mask_span, generator, min_masked=0)
            & valid_mask(lens, num_frames)
        ).to(device)
        x = self.unit_embed(units)
        x = torch.where(masked.unsqueeze(-1), self.text_mask_embed.to(x.dtype), x)
        out = self.unit_encoder(x, lens.to(device))
        log_probs = self.ctc_output(out).float()
        flat = [t for target in char_targets for t in target]
        loss = F.ctc_loss(
            log_probs.transpose(0, 1),
            torch.tensor(flat, dtype=torch.long),
            lens,
            torch.tensor([len(t) for t in char_targets], dtype=torch.long),
            blank=self.model_config.blank_id,
            reduction="sum",
            zero_infinity=True,
        )
        return loss / max(len(flat), 1), len(flat)

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        frame_units: Sequence[Sequence[int]],
        text: tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Any]:
        """Losses of one speech batch (with its frame units) and, when ``text`` = (upsampled
        units, character ids) is given and ``text_weight > 0``, one text batch."""
        out = self.speech_losses(feats, feat_lens, frame_units, generator)
        loss = self.cfg.speech_weight * (out["speech_ce"] + out["unit_ce"])
        if text is not None and self.cfg.text_weight > 0:
            text_ctc, chars = self.text_loss(text[0], text[1], generator)
            loss = loss + self.cfg.text_weight * text_ctc
            out.update(text_ctc=text_ctc, text_chars=chars)
        out["loss"] = loss
        return out


class TextUnitBatches:
    """Batches of (upsampled units, character ids) of the text-only corpus, a function of the
    batch index alone (so a resumed run sees the same text): the corpus is shuffled per pass
    with ``seed`` and the pass number and cut into batches of at most ``max_frames`` units."""

    def __init__(
        self,
        units: Sequence[Sequence[int]],
        chars: Sequence[Sequence[int]],
        max_frames: int,
        seed: int = 0,
    ) -> None:
        if len(units) != len(chars) or not units:
            raise ValueError(
                f"need as many unit sequences as character sequences (>0), got {len(units)}, "
                f"{len(chars)}"
            )
        if max_frames < max(len(u) for u in units):
            raise ValueError(
                f"max_frames {max_frames} is shorter than the longest text ({max(len(u) for u in units)})"
            )
        self.units, self.chars, self.max_frames, self.seed = units, chars, max_frames, seed
        self._passes: dict[int, list[list[int]]] = {}
        self.per_pass = len(self._pass(0))  # about as many batches every pass (the same corpus)

    def _pass(self, index: int) -> list[list[int]]:
        if index not in self._passes:
            order = list(range(len(self.units)))
            random.Random(self.seed * 1_000_003 + index).shuffle(order)
            batches, current, frames = [], [], 0
            for i in order:
                n = len(self.units[i])
                if current and frames + n > self.max_frames:
                    batches.append(current)
                    current, frames = [], 0
                current.append(i)
                frames += n
            if current:
                batches.append(current)
            self._passes = {index: batches}  # keep one pass in memory
        return self._passes[index]

    def __getitem__(self, batch_index: int) -> tuple[list[Sequence[int]], list[Sequence[int]]]:
        pass_index, within = divmod(batch_index, self.per_pass)
        batches = self._pass(pass_index)
        ids = batches[within % len(batches)]
        return [self.units[i] for i in ids], [self.chars[i] for i in ids]
