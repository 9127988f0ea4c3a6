"""SpeechLM's shared unit encoder: a few Transformer layers over 25 Hz frames.

In the CTC/AED model (``ModelConfig.unit_encoder_layers > 0``) it sits between the Zipformer
and the heads: speech goes front end -> Zipformer -> unit encoder -> CTC / decoder.  In
SpeechLM pre-training (:mod:`less.ssl.speechlm`) the same layers also read embedded text
units, which is what ties the two modalities together.

Input: each frame is layer-normalised first, so a frame of a different source (a unit
embedding swapped in for a speech frame, or text) enters at the scale of its neighbours; the
Zipformer's output is ~30x the RMS of a newly initialised unit embedding, and without it the
position term below, made of the neighbours, drowned a swapped frame's own unit (the authors
layer-normalise their embeddings too).
Position: a depthwise convolution over time added to the input (wav2vec 2.0's convolutional
position embedding, here kernel 15 = 0.6 s), then LayerNorm; the authors use learned
absolute positions (3000) plus a relative bias, which would tie the model to a maximum
length.  Layers are pre-norm (``norm_first``), so a new unit encoder starts close to the
identity on top of a trained Zipformer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class UnitEncoder(nn.Module):
    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_heads: int = 4,
        feedforward_dim: int = 512,
        dropout: float = 0.1,
        pos_kernel: int = 15,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"a unit encoder needs at least one layer, got {num_layers}")
        if pos_kernel % 2 == 0:
            raise ValueError(f"pos_kernel must be odd, got {pos_kernel}")
        self.norm_pre = nn.LayerNorm(dim)
        self.pos_conv = nn.Conv1d(dim, dim, pos_kernel, padding=pos_kernel // 2, groups=dim)
        self.norm_in = nn.LayerNorm(dim)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            feedforward_dim,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """(B, T, D) frames and their lengths -> (B, T, D)."""
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= lens.to(x.device)[:, None]
        x = self.norm_pre(x).masked_fill(pad.unsqueeze(-1), 0.0)
        x = x + F.gelu(self.pos_conv(x.transpose(1, 2))).transpose(1, 2)
        x = self.layers(self.norm_in(x), src_key_padding_mask=pad)
        return self.norm_out(x).masked_fill(pad.unsqueeze(-1), 0.0)
