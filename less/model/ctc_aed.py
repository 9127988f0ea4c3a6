"""The student model: Zipformer encoder with a CTC head and an optional attention decoder.

ASR: both heads predict the transcript (same vocabulary).  AST: CTC predicts the source
transcript (e.g. Spanish BPE, ``ctc_vocab_size``) as an auxiliary task, the decoder the
translation (English BPE, ``decoder_vocab_size``).

Loss weights: ``ctc_scale=0.1, aed_scale=0.9`` by default, the values icefall's published
Zipformer CTC/AED LibriSpeech results were trained with (``--ctc-loss-scale 0.1
--attention-decoder-loss-scale 0.9``); ``train.py``'s own defaults, 0.2/0.8, are tuned for
CTC as an auxiliary of the transducer.  For AST the CTC head predicts a different sequence
than the one we evaluate, so the smaller auxiliary weight is the safer of the two.  A model
without decoder trains on the plain CTC loss (weight 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from less.model.attention_decoder import AttentionDecoder
from less.model.configs import ModelConfig, get_config
from less.model.scaling import ScheduledFloat
from less.model.scaling import set_batch_count as _set_batch_count
from less.model.subsampling import Conv2dSubsampling
from less.model.unit_encoder import UnitEncoder
from less.model.zipformer import Zipformer


class CtcAedModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        enc = config.encoder
        self.encoder_embed = Conv2dSubsampling(
            enc.feature_dim,
            enc.encoder_dim[0],
            *enc.subsampling_channels,
            dropout=ScheduledFloat((0.0, enc.dropout_start), (20000.0, enc.dropout_end)),
        )
        self.encoder = Zipformer(enc)
        self.unit_encoder: UnitEncoder | None = None
        if config.unit_encoder_layers > 0:
            self.unit_encoder = UnitEncoder(
                enc.output_dim,
                config.unit_encoder_layers,
                config.unit_encoder_heads,
                config.unit_encoder_feedforward_dim,
                config.unit_encoder_dropout,
            )
        self.ctc_output = nn.Sequential(
            nn.Dropout(config.ctc_dropout),
            nn.Linear(enc.output_dim, config.ctc_vocab_size),
            nn.LogSoftmax(dim=-1),
        )
        self.attention_decoder: AttentionDecoder | None = None
        if config.decoder_vocab_size is not None:
            self.attention_decoder = AttentionDecoder(
                vocab_size=config.decoder_vocab_size,
                decoder_dim=config.decoder_dim,
                num_layers=config.decoder_num_layers,
                num_heads=config.decoder_num_heads,
                feedforward_dim=config.decoder_feedforward_dim,
                memory_dim=enc.output_dim,
                dropout=config.decoder_dropout,
                sos_id=config.sos_id,
                eos_id=config.eos_id,
                label_smoothing=config.label_smoothing,
            )

    @property
    def sos_id(self) -> int:
        return self.config.sos_id

    @property
    def eos_id(self) -> int:
        return self.config.eos_id

    @property
    def blank_id(self) -> int:
        return self.config.blank_id

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """fbank (B, T, 80) at 100 Hz -> (B, T', D) at 25 Hz, T' = ((T - 7) // 2 + 1) // 2."""
        if feats.ndim != 3 or feats.shape[-1] != self.config.encoder.feature_dim:
            raise ValueError(
                f"expected features (batch, time, {self.config.encoder.feature_dim}), got {tuple(feats.shape)}"
            )
        if int(feat_lens.min()) < 9:
            raise ValueError(
                f"every input needs at least 9 frames (got lengths {feat_lens.tolist()})"
            )
        x, x_lens = self.encoder_embed(feats, feat_lens)
        enc_out, enc_lens = self.encoder(x, x_lens)
        if self.unit_encoder is not None:
            enc_out = self.unit_encoder(enc_out, enc_lens)
        return enc_out, enc_lens

    def ctc_log_probs(self, enc_out: Tensor) -> Tensor:
        """(B, T', D) -> log-probabilities (B, T', ctc_vocab_size)."""
        return self.ctc_output(enc_out)

    def decoder_logits(
        self, enc_out: Tensor, enc_lens: Tensor, ys_in: Tensor, ys_in_lens: Tensor
    ) -> Tensor:
        if self.attention_decoder is None:
            raise RuntimeError("this model has no attention decoder (decoder_vocab_size=None)")
        return self.attention_decoder(enc_out, enc_lens, ys_in, ys_in_lens)

    def forward(
        self,
        feats: Tensor,
        feat_lens: Tensor,
        ctc_targets: list[list[int]],
        aed_targets: list[list[int]] | None = None,
    ) -> dict[str, Tensor | int]:
        """Losses summed over the batch (the trainer normalises by frames for logging).

        Returns ``loss``, ``ctc_loss``, ``aed_loss`` (0 without decoder/targets) and counts
        ``utterances``, ``feat_frames``, ``frames`` (encoder output), ``ctc_tokens``,
        ``aed_tokens`` (eos included).  ``ctc_loss`` may be inf for an utterance with more
        tokens than frames: ``zero_infinity`` is off so the trainer can detect and skip it.
        """
        batch = feats.shape[0]
        if len(ctc_targets) != batch or (aed_targets is not None and len(aed_targets) != batch):
            raise ValueError(f"{batch} utterances but {len(ctc_targets)} CTC target lists")
        enc_out, enc_lens = self.encode(feats, feat_lens)

        log_probs = self.ctc_log_probs(enc_out)
        flat = [t for tokens in ctc_targets for t in tokens]
        if flat and not (0 < min(flat) and max(flat) < self.config.ctc_vocab_size):
            raise ValueError(
                f"CTC targets must lie in 1..{self.config.ctc_vocab_size - 1} (0 is blank)"
            )
        ctc_loss = F.ctc_loss(
            log_probs.transpose(0, 1).float(),
            torch.tensor(flat, dtype=torch.long),
            enc_lens.cpu(),
            torch.tensor([len(t) for t in ctc_targets], dtype=torch.long),
            blank=self.config.blank_id,
            reduction="sum",
            zero_infinity=False,
        )

        aed_loss = torch.zeros((), device=feats.device)
        aed_tokens = 0
        if self.attention_decoder is not None and aed_targets is not None:
            vocab = self.config.decoder_vocab_size
            if any(not 0 <= t < vocab for tokens in aed_targets for t in tokens):
                raise ValueError(f"decoder targets must lie in 0..{vocab - 1}")
            aed_loss, aed_tokens = self.attention_decoder.loss(enc_out, enc_lens, aed_targets)

        if self.attention_decoder is None:
            loss = ctc_loss
        else:
            loss = self.config.ctc_scale * ctc_loss + self.config.aed_scale * aed_loss
        return {
            "loss": loss,
            "ctc_loss": ctc_loss.detach(),
            "aed_loss": aed_loss.detach(),
            "utterances": batch,
            "feat_frames": int(feat_lens.sum()),
            "frames": int(enc_lens.sum()),
            "ctc_tokens": len(flat),
            "aed_tokens": aed_tokens,
        }


def build_model(name: str, **overrides) -> CtcAedModel:
    """``CtcAedModel(get_config(name, **overrides))``, e.g. ``build_model("xs",
    ctc_vocab_size=500, decoder_vocab_size=None)``."""
    return CtcAedModel(get_config(name, **overrides))


def output_lengths(feat_lens: Tensor) -> Tensor:
    """Encoder output frames (25 Hz) for ``feat_lens`` 100 Hz input frames."""
    return ((feat_lens - 7) // 2 + 1) // 2


def set_batch_count(model: nn.Module, batch_count: float) -> None:
    """Advance every schedule (dropout, layer skip, balancer limits...) to ``batch_count``.

    Call before each training step.  icefall uses the duration-adjusted count
    ``batch_idx * max_duration * world_size / 600`` (schedules were tuned for 600 s batches).
    """
    _set_batch_count(model, batch_count)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def encoder_ctc_parameters(model: CtcAedModel) -> int:
    """Parameters of front end + encoder + CTC head (what the published counts report)."""
    return sum(count_parameters(m) for m in (model.encoder_embed, model.encoder, model.ctc_output))
