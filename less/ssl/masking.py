"""Span masking of the encoder input for masked prediction (BEST-RQ style).

Masks are drawn at the label rate (25 Hz, one label frame = 4 input frames): every real
label frame starts a span of ``span`` label frames with probability ``start_prob``; spans
may overlap and are cut at the utterance's end, so the expected masked fraction is about
``1 - (1 - start_prob) ** span`` (BEST-RQ's 0.01 per 10 ms frame with 400 ms spans is
``start_prob=0.04, span=10`` here: ~34% masked).  The input frames behind a masked label
frame (``4j + 3 .. 4j + 6``, see :mod:`less.ssl.quantizer`) are replaced by noise.

The noise is small in the *normalised* domain (``noise_std`` of each utterance's standard
deviation around its mean), i.e. a masked frame looks like a quiet, featureless frame of
that utterance: the encoder sees raw fbank (as in fine-tuning), and zeros would be an
arbitrary loud value for log-mel features.
"""

from __future__ import annotations

import torch
from torch import Tensor

from less.ssl.quantizer import LABEL_OFFSET, LABEL_STACK, valid_mask


def expected_mask_fraction(start_prob: float, span: int) -> float:
    return 1.0 - (1.0 - start_prob) ** span


def span_mask(
    label_lens: Tensor,
    max_len: int,
    start_prob: float,
    span: int,
    generator: torch.Generator | None = None,
    min_masked: int = 1,
) -> Tensor:
    """(B, max_len) bool mask at the label rate; at least ``min_masked`` spans start in each
    utterance (so every utterance contributes to the loss)."""
    if not 0.0 <= start_prob <= 1.0 or span < 1:
        raise ValueError(f"need 0 <= start_prob <= 1 and span >= 1, got {start_prob}, {span}")
    batch = label_lens.shape[0]
    real = valid_mask(label_lens.cpu(), max_len)
    starts = (torch.rand(batch, max_len, generator=generator) < start_prob) & real
    for b in range(batch):
        n = int(label_lens[b])
        if n > 0 and int(starts[b].sum()) < min_masked:
            picks = torch.randperm(n, generator=generator)[:min_masked]
            starts[b, picks] = True
    # frame t is masked when a span starts in (t - span, t]
    padded = torch.nn.functional.pad(starts.float(), (span - 1, 0))
    covered = padded.unfold(1, span, 1).sum(-1) > 0
    return (covered & real).to(label_lens.device)


def mask_input(
    feats: Tensor,
    feat_lens: Tensor,
    label_mask: Tensor,
    noise_std: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Replace the input frames of masked label frames by ``mean + noise_std * std * N(0, 1)``
    of each utterance (per feature dim)."""
    batch, num_frames, _ = feats.shape
    frame_mask = torch.zeros(batch, num_frames, dtype=torch.bool, device=feats.device)
    upsampled = label_mask.repeat_interleave(LABEL_STACK, dim=1)
    end = min(num_frames, LABEL_OFFSET + upsampled.shape[1])
    frame_mask[:, LABEL_OFFSET:end] = upsampled[:, : end - LABEL_OFFSET]
    frame_mask &= valid_mask(feat_lens, num_frames)
    real = valid_mask(feat_lens, num_frames).unsqueeze(-1).to(feats.dtype)
    count = real.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean = (feats * real).sum(dim=1, keepdim=True) / count
    std = ((((feats - mean) * real) ** 2).sum(dim=1, keepdim=True) / count).sqrt()
    noise = torch.randn(feats.shape, generator=generator).to(feats.device, feats.dtype)
    fill = mean + noise_std * std * noise
    return torch.where(frame_mask.unsqueeze(-1), fill, feats)
