"""Zipformer front end: 80-dim fbank at 100 Hz -> ``(T - 7) // 2`` frames at ~50 Hz.

Three small 2-D convolutions (only the second strides in time) followed by one ConvNeXt
block (depthwise 7x7, pointwise expand x3, SwooshL, pointwise project) and a linear layer
to the width of the first encoder stack.  The remaining x2 to 25 Hz happens at the end of
the encoder, so every encoder stack sees at least 50 Hz input.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from less.model.scaling import (
    Balancer,
    BiasNorm,
    Dropout3,
    FloatLike,
    ScaledConv2d,
    ScaleGrad,
    ScheduledFloat,
    SwooshR,
    Whiten,
    swoosh_linear,
)


def subsampled_lengths(feat_lens: Tensor) -> Tensor:
    """Frames left after :class:`Conv2dSubsampling` for inputs of ``feat_lens`` frames."""
    return (feat_lens - 7) // 2


class ConvNeXt(nn.Module):
    """ConvNeXt block on (batch, channels, time, freq) with per-sequence layer skipping.

    ``valid_frames`` zeroes time steps beyond each sequence's length before the 7x7
    depthwise conv, so the last frames of a short sequence see zeros there exactly as when
    it is run alone (the conv pads with zeros): padding cannot leak into real frames.
    """

    def __init__(
        self, channels: int, hidden_ratio: int = 3, kernel_size: tuple[int, int] = (7, 7)
    ) -> None:
        super().__init__()
        hidden = channels * hidden_ratio
        self.layerdrop_rate = ScheduledFloat((0.0, 0.2), (20000.0, 0.015))
        self.depthwise_conv = nn.Conv2d(
            channels,
            channels,
            kernel_size=kernel_size,
            groups=channels,
            padding=(kernel_size[0] // 2, kernel_size[1] // 2),
        )
        self.pointwise_conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.hidden_balancer = Balancer(  # on the channels-last view
            hidden, channel_dim=-1, min_positive=0.3, max_positive=1.0, min_abs=0.75, max_abs=5.0
        )
        self.pointwise_conv2 = ScaledConv2d(hidden, channels, kernel_size=1, initial_scale=0.01)
        self.out_balancer = Balancer(
            channels, channel_dim=1, min_positive=0.4, max_positive=0.6, min_abs=1.0, max_abs=6.0
        )
        self.out_whiten = Whiten(
            num_groups=1, whitening_limit=5.0, prob=(0.025, 0.25), grad_scale=0.01
        )

    def forward(self, x: Tensor, valid_frames: Tensor | None = None) -> Tensor:
        """x: (batch, channels, time, freq) in channels-last memory (the layout oneDNN's
        depthwise conv is fast in); the pointwise convs run as matmuls on the
        (batch, time, freq, channels) view of the same memory, without copies."""
        if valid_frames is not None:
            x = x * valid_frames
        bypass = x
        # in fp32 also under autocast: oneDNN's bf16 depthwise 7x7 backward is ~3x slower than
        # fp32 on CPUs (it was a fifth of the xs model's training step)
        conv = self.depthwise_conv
        with torch.autocast(x.device.type, enabled=False):
            y = F.conv2d(
                x.float(), conv.weight, conv.bias, padding=conv.padding, groups=conv.groups
            )
        y = y.permute(0, 2, 3, 1)  # (batch, time, freq, channels)
        conv1, conv2 = self.pointwise_conv1, self.pointwise_conv2
        y = F.linear(y, conv1.weight.flatten(1), conv1.bias)
        y = swoosh_linear(
            self.hidden_balancer(y), conv2.weight.flatten(1), conv2.bias, "SwooshL", self.training
        )
        if self.training:
            rate = float(self.layerdrop_rate)
            if rate > 0.0:
                keep = torch.rand(y.shape[0], 1, 1, 1, device=y.device) > rate
                y = y * keep.to(y.dtype)
        x = self.out_balancer(bypass + y.permute(0, 3, 1, 2))
        if x.requires_grad:
            # channels last for Whiten: the permuted view is contiguous
            x = self.out_whiten(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x


class Conv2dSubsampling(nn.Module):
    """(batch, T, in_channels) -> (batch, (T - 7) // 2, out_channels).  Needs T >= 9."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        layer1_channels: int = 8,
        layer2_channels: int = 32,
        layer3_channels: int = 128,
        dropout: FloatLike = 0.1,
    ) -> None:
        super().__init__()
        if in_channels < 7:
            raise ValueError(
                f"Conv2dSubsampling needs at least 7 input channels, got {in_channels}"
            )
        self.conv = nn.Sequential(
            nn.Conv2d(1, layer1_channels, kernel_size=3, padding=(0, 1)),
            ScaleGrad(0.2),  # keeps the first conv's gradients small (fp16 headroom)
            Balancer(layer1_channels, channel_dim=1, max_abs=1.0),
            SwooshR(),
            nn.Conv2d(layer1_channels, layer2_channels, kernel_size=3, stride=2),
            Balancer(layer2_channels, channel_dim=1, max_abs=4.0),
            SwooshR(),
            nn.Conv2d(layer2_channels, layer3_channels, kernel_size=3, stride=(1, 2)),
            Balancer(layer3_channels, channel_dim=1, max_abs=4.0),
            SwooshR(),
        )
        self.convnext = ConvNeXt(layer3_channels)
        self.out_width = (((in_channels - 1) // 2) - 1) // 2
        self.out = nn.Linear(self.out_width * layer3_channels, out_channels)
        self.out_whiten = Whiten(
            num_groups=1,
            whitening_limit=ScheduledFloat((0.0, 4.0), (20000.0, 8.0), default=4.0),
            prob=(0.025, 0.25),
            grad_scale=0.02,
        )
        self.out_norm = BiasNorm(out_channels)
        self.dropout = Dropout3(dropout, shared_dim=1)

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        # Channels-last memory from the first conv's output on: oneDNN's convolutions (above
        # all their backward) are several times faster on CPU in that layout.  (The 1-channel
        # input is both layouts at once, so the first conv would not choose it by itself.)
        x = self.conv[0](x.unsqueeze(1)).contiguous(memory_format=torch.channels_last)
        for layer in self.conv[1:]:
            x = layer(x)  # (batch, channels, T', freq)
        out_lens = subsampled_lengths(x_lens)
        valid = None
        if torch.onnx.is_in_onnx_export() or bool((out_lens < x.shape[2]).any()):
            frames = torch.arange(x.shape[2], device=x.device)
            valid = (frames[None, :] < out_lens[:, None]).to(x.dtype)[:, None, :, None]
        x = self.convnext(x, valid)
        batch, channels, num_frames, freqs = x.shape
        # ``out`` takes channel-major (c * freqs + f) input; reorder its weight to the
        # (time, freq, channels) memory order instead of copying the activations
        weight = (
            self.out.weight.reshape(-1, channels, freqs)
            .transpose(1, 2)
            .reshape(-1, freqs * channels)
        )
        x = F.linear(
            x.permute(0, 2, 3, 1).reshape(batch, num_frames, freqs * channels),
            weight,
            self.out.bias,
        )
        x = self.dropout(self.out_norm(self.out_whiten(x)))
        return x, out_lens
