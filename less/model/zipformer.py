"""Zipformer encoder (Yao et al., "Zipformer: A faster and better encoder for automatic
speech recognition", ICLR 2024), written for torch alone (no k2).

Shape of the network: the 50 Hz output of the conv front end goes through stacks of
Zipformer layers that run at different frame rates (default 50, 25, 12.5, 6.25, 12.5,
25 Hz).  Each stack downsamples its input with learned softmax weights, runs its layers,
upsamples by repetition and merges back into the full-rate stream with a learned
per-channel bypass scale.  The output takes each channel from the most recent stack that
has it and is downsampled x2 to 25 Hz.

A Zipformer layer is roughly two Conformer layers sharing one set of attention weights:
FF(3/4) -> non-linear attention -> self-attention -> conv -> FF(1) -> mid-layer bypass ->
self-attention -> conv -> FF(5/4) -> BiasNorm -> layer bypass.  The relative-position
attention weights are computed once per layer and used by the non-linear attention (head 0)
and both self-attention modules.

Tensors inside are (time, batch, channels).  Padding: key-padding masks in attention, zeroed
padded frames before each depthwise conv, and before each downsampling the frames past a
sequence's end are replaced by its last real frame (what running it alone does), so padding
never changes the outputs of real frames.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn as nn
from torch import Tensor

from less.model.configs import ZipformerConfig
from less.model.scaling import (
    ActivationDropoutAndLinear,
    Balancer,
    BiasNorm,
    Dropout2,
    FloatLike,
    ScaledLinear,
    ScheduledFloat,
    Whiten,
    convert_num_channels,
    limit_param_value,
    penalize_abs_values_gt,
    whitening_schedule,
)


def make_pad_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(batch, max_len) bool, True on padded frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def repeat_last_valid(x: Tensor, lengths: Tensor) -> Tensor:
    """Replace frames ``t >= lengths[b]`` of x (time, batch, C) by frame ``lengths[b] - 1``."""
    num_frames = x.shape[0]
    if not torch.onnx.is_in_onnx_export() and bool((lengths >= num_frames).all()):
        return x  # (an exported graph cannot branch on the lengths: it always gathers)
    t = torch.arange(num_frames, device=x.device)[:, None]
    index = torch.minimum(t, (lengths - 1).clamp(min=0)[None, :])  # (time, batch)
    return x.gather(0, index[:, :, None].expand_as(x))


class Zipformer(nn.Module):
    """(batch, T, encoder_dim[0]) at 50 Hz -> (batch, (T + 1) // 2, max(encoder_dim)) at 25 Hz."""

    def __init__(self, config: ZipformerConfig) -> None:
        super().__init__()
        self.config = c = config
        dropout = ScheduledFloat((0.0, c.dropout_start), (20000.0, c.dropout_end))
        num_stacks = c.num_stacks
        stacks = []
        for i in range(num_stacks):
            stack: nn.Module = ZipformerStack(
                num_layers=c.num_encoder_layers[i],
                embed_dim=c.encoder_dim[i],
                pos_dim=c.pos_dim,
                num_heads=c.num_heads[i],
                query_head_dim=c.query_head_dim[i],
                pos_head_dim=c.pos_head_dim[i],
                value_head_dim=c.value_head_dim[i],
                feedforward_dim=c.feedforward_dim[i],
                cnn_module_kernel=c.cnn_module_kernel[i],
                dropout=dropout,
                warmup_begin=c.warmup_batches * (i + 1) / (num_stacks + 1),
                warmup_end=c.warmup_batches * (i + 2) / (num_stacks + 1),
                final_layerdrop_rate=0.035 * c.downsampling_factor[i] ** 0.5,
            )
            if c.downsampling_factor[i] != 1:
                stack = DownsampledZipformerStack(stack, c.encoder_dim[i], c.downsampling_factor[i])
            stacks.append(stack)
        self.encoders = nn.ModuleList(stacks)
        self.downsample_output = SimpleDownsample(c.output_downsampling_factor)

    def _feature_masks(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> list:
        """Per-sequence channel dropout in training: of the channels above
        ``encoder_unmasked_dim``, the lower half is zeroed on 12.5% of sequences and the upper
        half on ~23%, so the narrow part of each stack learns to work alone; one draw per
        sequence for all stacks, so they agree on which sequences are masked."""
        c = self.config
        if not self.training:
            return [1.0] * c.num_stacks
        drop = 0.125
        mask1 = (torch.rand(1, batch_size, 1, device=device) > drop).to(dtype)
        mask2 = mask1 * (torch.rand(1, batch_size, 1, device=device) > drop).to(dtype)
        masks = []
        for dim, unmasked in zip(c.encoder_dim, c.encoder_unmasked_dim):
            mask = torch.ones(1, batch_size, dim, dtype=dtype, device=device)
            middle = unmasked + (dim - unmasked) // 2
            mask[:, :, unmasked:middle] *= mask1
            mask[:, :, middle:] *= mask2
            masks.append(mask)
        return masks

    def stack_outputs(
        self, x: Tensor, x_lens: Tensor, last_stack: int | None = None
    ) -> list[Tensor]:
        """Outputs (time, batch, encoder_dim[i]) at the 50 Hz input rate of stacks
        0..``last_stack`` (default: all); later stacks are not run.  Self-supervised targets
        and probes read intermediate stacks through this."""
        c = self.config
        last = c.num_stacks - 1 if last_stack is None else last_stack
        if not 0 <= last < c.num_stacks:
            raise ValueError(f"stack index {last_stack} outside 0..{c.num_stacks - 1}")
        x = x.transpose(0, 1)  # (time, batch, C)
        padding_mask = make_pad_mask(x_lens, x.shape[0])
        feature_masks = self._feature_masks(x.shape[1], x.device, x.dtype)
        outputs = []
        for i in range(last + 1):
            x = convert_num_channels(x, c.encoder_dim[i])
            x = self.encoders[i](x, x_lens, padding_mask, feature_masks[i])
            outputs.append(x)
        return outputs

    def forward(self, x: Tensor, x_lens: Tensor) -> tuple[Tensor, Tensor]:
        outputs = self.stack_outputs(x, x_lens)
        x = self._full_dim_output(outputs)
        x = self.downsample_output(x, x_lens)
        out_lens = (x_lens + 1) // 2
        return x.transpose(0, 1).contiguous(), out_lens

    def _full_dim_output(self, outputs: list[Tensor]) -> Tensor:
        """Each channel from the latest stack that has it (the widest stack is mid-network)."""
        dims = self.config.encoder_dim
        pieces = [outputs[-1]]
        cur = dims[-1]
        for i in range(len(dims) - 2, -1, -1):
            if dims[i] > cur:
                pieces.append(outputs[i][..., cur : dims[i]])
                cur = dims[i]
        return torch.cat(pieces, dim=-1)


class ZipformerStack(nn.Module):
    """``num_layers`` Zipformer layers at one frame rate, sharing a positional encoding."""

    def __init__(
        self,
        num_layers: int,
        pos_dim: int,
        warmup_begin: float,
        warmup_end: float,
        final_layerdrop_rate: float,
        initial_layerdrop_rate: float = 0.5,
        **layer_args,
    ) -> None:
        super().__init__()
        self.encoder_pos = CompactRelPositionalEncoding(pos_dim, dropout_rate=0.15)
        self.layers = nn.ModuleList(
            ZipformerLayer(pos_dim=pos_dim, **layer_args) for _ in range(num_layers)
        )
        self.num_layers = num_layers
        # warm layers up one after another: each is skipped on half of the sequences until
        # its turn, then its skip rate falls to final_layerdrop_rate
        delta = (warmup_end - warmup_begin) / num_layers
        for i, layer in enumerate(self.layers):
            begin = warmup_begin + i * delta
            layer.bypass.skip_rate = ScheduledFloat(
                (begin, initial_layerdrop_rate), (begin + delta, final_layerdrop_rate), default=0.0
            )

    def forward(
        self, src: Tensor, lengths: Tensor, padding_mask: Tensor, feature_mask: Tensor | float = 1.0
    ) -> Tensor:
        pos_emb = self.encoder_pos(src.shape[0], src.device, src.dtype)
        out = src * feature_mask
        for layer in self.layers:
            out = layer(out, pos_emb, padding_mask) * feature_mask
        return out


class DownsampledZipformerStack(nn.Module):
    """A stack run at 1/``downsample`` of the input frame rate, merged back by a bypass."""

    def __init__(self, encoder: ZipformerStack, dim: int, downsample: int) -> None:
        super().__init__()
        self.downsample_factor = downsample
        self.downsample = SimpleDownsample(downsample)
        self.encoder = encoder
        self.out_combiner = BypassModule(dim)

    def forward(
        self, src: Tensor, lengths: Tensor, padding_mask: Tensor, feature_mask: Tensor | float = 1.0
    ) -> Tensor:
        ds = self.downsample_factor
        x = self.downsample(src, lengths)
        x = self.encoder(x, (lengths + ds - 1) // ds, padding_mask[:, ::ds], feature_mask)
        x = x.repeat_interleave(ds, dim=0)[: src.shape[0]]  # upsample by repetition
        return self.out_combiner(src, x)


class SimpleDownsample(nn.Module):
    """Softmax-weighted average of each group of ``downsample`` frames (learned weights)."""

    def __init__(self, downsample: int) -> None:
        super().__init__()
        self.downsample = downsample
        self.bias = nn.Parameter(torch.zeros(downsample))

    def forward(self, src: Tensor, lengths: Tensor | None = None) -> Tensor:
        ds = self.downsample
        if lengths is not None:
            src = repeat_last_valid(src, lengths)
        num_frames, batch, channels = src.shape
        out_frames = (num_frames + ds - 1) // ds
        pad = out_frames * ds - num_frames
        if (
            pad or torch.onnx.is_in_onnx_export()
        ):  # exported: pad 0 or 1 frame, by the input's length
            src = torch.cat((src, src[-1:].expand(pad, batch, channels)), dim=0)
        weights = self.bias.softmax(dim=0)[None, :, None, None]
        return (src.reshape(out_frames, ds, batch, channels) * weights).sum(dim=1)


class BypassModule(nn.Module):
    """``orig + (new - orig) * scale`` with a learned per-channel ``scale``.

    In training the scale is kept in [scale_min, 1] (scale_min falls from 0.9 to 0.2 over
    20k batches, so early on each module must contribute) and is zeroed on a random
    ``skip_rate`` of sequences (layer skipping).
    """

    def __init__(self, embed_dim: int, skip_rate: FloatLike = 0.0) -> None:
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((embed_dim,), 0.5))
        self.skip_rate = skip_rate
        self.scale_min = ScheduledFloat((0.0, 0.9), (20000.0, 0.2), default=0.0)
        self.scale_max = 1.0

    def forward(self, src_orig: Tensor, src: Tensor) -> Tensor:
        scale = self.bypass_scale
        if self.training:
            scale = limit_param_value(scale, float(self.scale_min), self.scale_max)
            skip_rate = float(self.skip_rate)
            if skip_rate != 0.0:
                keep = torch.rand(src.shape[1], 1, device=src.device) > skip_rate
                scale = scale * keep.to(scale.dtype)
        return src_orig + (src - src_orig) * scale


class ZipformerLayer(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        value_head_dim: int,
        feedforward_dim: int,
        cnn_module_kernel: int,
        dropout: FloatLike = 0.1,
    ) -> None:
        super().__init__()
        self.bypass = BypassModule(embed_dim)  # skip_rate set by ZipformerStack
        self.bypass_mid = BypassModule(embed_dim)
        # skip rates of the attention-like modules and convs, high only early in training
        self.attention_skip_rate = ScheduledFloat(
            (0.0, 0.2), (4000.0, 0.05), (16000, 0.0), default=0
        )
        self.conv_skip_rate = ScheduledFloat((0.0, 0.2), (4000.0, 0.05), (16000, 0.0), default=0)
        self.const_attention_rate = ScheduledFloat((0.0, 0.25), (4000.0, 0.025), default=0)
        self.ff2_skip_rate = ScheduledFloat((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0))
        self.ff3_skip_rate = ScheduledFloat((0.0, 0.1), (4000.0, 0.01), (50000.0, 0.0))

        self.self_attn_weights = RelPositionMultiheadAttentionWeights(
            embed_dim, pos_dim, num_heads, query_head_dim, pos_head_dim
        )
        self.self_attn1 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.self_attn2 = SelfAttention(embed_dim, num_heads, value_head_dim)
        self.feed_forward1 = FeedforwardModule(embed_dim, feedforward_dim * 3 // 4, dropout)
        self.feed_forward2 = FeedforwardModule(embed_dim, feedforward_dim, dropout)
        self.feed_forward3 = FeedforwardModule(embed_dim, feedforward_dim * 5 // 4, dropout)
        self.nonlin_attention = NonlinAttention(embed_dim, hidden_channels=3 * embed_dim // 4)
        self.conv_module1 = ConvolutionModule(embed_dim, cnn_module_kernel)
        self.conv_module2 = ConvolutionModule(embed_dim, cnn_module_kernel)
        self.norm = BiasNorm(embed_dim)

        def balancer(min_pos, max_pos, min_abs, max_abs=100.0, prob=None) -> Balancer:
            return Balancer(embed_dim, -1, min_pos, max_pos, min_abs, max_abs, prob=prob)

        self.balancer1 = balancer(0.45, 0.55, 0.2, 4.0)
        self.balancer_na = balancer(
            0.3, 0.7, ScheduledFloat((0.0, 0.004), (4000.0, 0.02)), prob=0.05
        )
        self.balancer_ff2 = balancer(
            0.3, 0.7, ScheduledFloat((0.0, 0.0), (4000.0, 0.1), default=0.0), 2.0, prob=0.05
        )
        self.balancer_ff3 = balancer(
            0.3, 0.7, ScheduledFloat((0.0, 0.0), (4000.0, 0.2), default=0.0), 4.0, prob=0.05
        )
        self.whiten = Whiten(1, whitening_schedule(4.0, ratio=3.0), (0.025, 0.25), 0.01)
        self.balancer2 = balancer(0.45, 0.55, 0.1, 4.0)

    def _sequence_mask(self, x: Tensor, rate: float) -> Tensor | None:
        """(batch, 1) keep-mask for whole-sequence module dropout, None when inactive."""
        if not self.training or rate == 0.0:
            return None
        return (torch.rand(x.shape[1], 1, device=x.device) > rate).to(x.dtype)

    @staticmethod
    def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
        return x if mask is None else x * mask

    def forward(self, src: Tensor, pos_emb: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        src_orig = src
        attn_weights = self.self_attn_weights(src, pos_emb, padding_mask)  # (heads, B, T, T)

        src = src + self.feed_forward1(src)

        attn_mask = self._sequence_mask(src, float(self.attention_skip_rate))
        na_weights = attn_weights[0:1]
        if self.training and random.random() < float(self.const_attention_rate):
            # uniform weights over the unmasked keys: pushes the module toward averaging
            na_weights = (na_weights > 0.0).to(na_weights.dtype)
            na_weights = na_weights / na_weights.sum(dim=-1, keepdim=True)
        na = self.balancer_na(self.nonlin_attention(src, na_weights))
        src = src + self._masked(na, attn_mask)
        src = src + self._masked(self.self_attn1(src, attn_weights), attn_mask)

        conv_mask = self._sequence_mask(src, float(self.conv_skip_rate))
        src = src + self._masked(self.conv_module1(src, padding_mask), conv_mask)
        ff2_mask = self._sequence_mask(src, float(self.ff2_skip_rate))
        src = src + self._masked(self.balancer_ff2(self.feed_forward2(src)), ff2_mask)

        src = self.bypass_mid(src_orig, src)

        src = src + self._masked(self.self_attn2(src, attn_weights), attn_mask)
        conv_mask = self._sequence_mask(src, float(self.conv_skip_rate))
        src = src + self._masked(self.conv_module2(src, padding_mask), conv_mask)
        ff3_mask = self._sequence_mask(src, float(self.ff3_skip_rate))
        src = src + self._masked(self.balancer_ff3(self.feed_forward3(src)), ff3_mask)

        src = self.norm(self.balancer1(src))
        src = self.bypass(src_orig, src)
        return self.whiten(self.balancer2(src))


class CompactRelPositionalEncoding(nn.Module):
    """Fourier features of a compressed relative offset.

    Offsets are compressed logarithmically and then squashed by atan into a finite interval
    before the Fourier transform, so nearby offsets (|d| up to ~sqrt(dim)) are clearly
    distinguishable while 1000 vs 1001 look alike: relative attention needs the former,
    never the latter.  Returns (1, 2T - 1, dim) for offsets -(T-1) .. T-1.
    """

    def __init__(self, embed_dim: int, dropout_rate: FloatLike, length_factor: float = 1.0) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError("positional encoding dim must be even")
        self.embed_dim = embed_dim
        self.length_factor = length_factor
        self.dropout = Dropout2(dropout_rate)
        self._table: Tensor | None = None  # rows for offsets -(N-1) .. N-1

    def _extend(self, num_frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        table = self._table
        if table is not None and table.shape[0] >= 2 * num_frames - 1:
            if table.device != device or table.dtype != dtype:
                self._table = table = table.to(device=device, dtype=dtype)
            return table
        num_frames = max(num_frames, 1000)
        dim = self.embed_dim
        x = torch.arange(-(num_frames - 1), num_frames, device=device, dtype=torch.float32)[:, None]
        freqs = 1 + torch.arange(dim // 2, device=device, dtype=torch.float32)
        compression = dim**0.5
        # slope 1 at the origin, logarithmic growth for large offsets
        x_compressed = (
            compression * x.sign() * ((x.abs() + compression).log() - math.log(compression))
        )
        length_scale = self.length_factor * dim / (2.0 * math.pi)
        angle = (x_compressed / length_scale).atan() * freqs
        table = torch.empty(x.shape[0], dim, device=device)
        table[:, 0::2] = angle.cos()
        table[:, 1::2] = angle.sin()
        table[:, -1] = 1.0  # a constant feature doubles as a bias
        self._table = table = table.to(dtype)
        return table

    def forward(self, num_frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        table = self._extend(num_frames, device, dtype)
        center = table.shape[0] // 2
        return self.dropout(table[center - num_frames + 1 : center + num_frames][None])


class RelPositionMultiheadAttentionWeights(nn.Module):
    """Attention weights (heads, batch, T, T) from content and relative-position scores.

    There is no 1/sqrt(d) factor: the query/key projection starts at ``d^-0.25`` scale and
    ScaledAdam learns the rest.  Position scores are a low-dimensional (``pos_head_dim``)
    query against projected :class:`CompactRelPositionalEncoding` vectors.
    """

    def __init__(
        self,
        embed_dim: int,
        pos_dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        pos_emb_skip_rate: FloatLike | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        if pos_emb_skip_rate is None:
            pos_emb_skip_rate = ScheduledFloat((0.0, 0.5), (4000.0, 0.0))
        self.pos_emb_skip_rate = pos_emb_skip_rate
        in_proj_dim = (2 * query_head_dim + pos_head_dim) * num_heads
        self.in_proj = ScaledLinear(
            embed_dim, in_proj_dim, bias=True, initial_scale=query_head_dim**-0.25
        )
        self.whiten_keys = Whiten(num_heads, whitening_schedule(3.0), (0.025, 0.25), 0.025)
        # keys are only defined up to a constant offset; keep their mean near zero
        self.balance_keys = Balancer(
            query_head_dim * num_heads, -1, 0.4, 0.6, min_abs=0.0, max_abs=100.0, prob=0.025
        )
        self.linear_pos = ScaledLinear(
            pos_dim, num_heads * pos_head_dim, bias=False, initial_scale=0.05
        )

    def forward(self, x: Tensor, pos_emb: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        num_frames, batch, _ = x.shape
        heads, qd, pd = self.num_heads, self.query_head_dim, self.pos_head_dim
        x = self.in_proj(x)
        q = x[..., : qd * heads]
        k = self.whiten_keys(self.balance_keys(x[..., qd * heads : 2 * qd * heads]))
        p = x[..., 2 * qd * heads :]
        q = q.reshape(num_frames, batch, heads, qd).permute(2, 1, 0, 3)  # (H, B, T, qd)
        k = k.reshape(num_frames, batch, heads, qd).permute(2, 1, 3, 0)  # (H, B, qd, T)
        p = p.reshape(num_frames, batch, heads, pd).permute(2, 1, 0, 3)  # (H, B, T, pd)
        scores = q @ k

        if not self.training or random.random() >= float(self.pos_emb_skip_rate):
            pos = self.linear_pos(pos_emb)  # (1, 2T-1, H * pd)
            pos = pos.reshape(-1, 2 * num_frames - 1, heads, pd).permute(
                2, 0, 3, 1
            )  # (H, 1, pd, 2T-1)
            pos_scores = p @ pos  # (H, B, T, 2T-1), last axis: offsets -(T-1)..T-1
            # rel -> abs: element (i, j) takes offset j - i, i.e. column (T-1) - i + j
            if torch.onnx.is_in_onnx_export():
                # the same as a gather: ONNX has no strided view with a data-dependent offset
                rows = torch.arange(num_frames, device=x.device)
                index = (num_frames - 1) - rows[:, None] + rows[None, :]  # (T, T)
                pos_scores = pos_scores.gather(-1, index.expand(heads, batch, -1, -1))
            else:
                s0, s1, s2, s3 = pos_scores.stride()
                pos_scores = pos_scores.as_strided(
                    (heads, batch, num_frames, num_frames),
                    (s0, s1, s2 - s3, s3),
                    storage_offset=pos_scores.storage_offset() + s3 * (num_frames - 1),
                )
            scores = scores + pos_scores

        if self.training and random.random() < 0.1:
            scores = penalize_abs_values_gt(scores, limit=25.0, penalty=1.0e-4)
        if key_padding_mask is not None:
            # -1000, not -inf: exp underflows to exactly 0 and fully-masked rows stay finite
            scores = scores.masked_fill(key_padding_mask[None, :, None, :], -1000.0)
        return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Values weighted by precomputed attention weights (shared with other modules)."""

    def __init__(self, embed_dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, num_heads * value_head_dim)
        self.out_proj = ScaledLinear(num_heads * value_head_dim, embed_dim, initial_scale=0.05)
        self.whiten = Whiten(1, whitening_schedule(7.5, ratio=3.0), (0.025, 0.25), 0.01)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        num_frames, batch, _ = x.shape
        heads = attn_weights.shape[0]
        v = self.in_proj(x).reshape(num_frames, batch, heads, -1).permute(2, 1, 0, 3)
        out = (attn_weights @ v).permute(2, 1, 0, 3).reshape(num_frames, batch, -1)
        return self.whiten(self.out_proj(out))


class FeedforwardModule(nn.Module):
    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: FloatLike) -> None:
        super().__init__()
        self.in_proj = nn.Linear(embed_dim, feedforward_dim)
        self.hidden_balancer = Balancer(
            feedforward_dim, -1, min_positive=0.3, max_positive=1.0, min_abs=0.75, max_abs=5.0
        )
        # dropout mask shared over time (dim 0)
        self.out_proj = ActivationDropoutAndLinear(
            feedforward_dim,
            embed_dim,
            activation="SwooshL",
            dropout_p=dropout,
            dropout_shared_dim=0,
            initial_scale=0.1,
        )
        self.out_whiten = Whiten(1, whitening_schedule(7.5), (0.025, 0.25), 0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_whiten(self.out_proj(self.hidden_balancer(self.in_proj(x))))


class NonlinAttention(nn.Module):
    """Like the conv module with the convolution replaced by attention-weighted averaging:
    ``out_proj(attend(x * tanh(s)) * y)`` with x, s, y three projections of the input."""

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.in_proj = nn.Linear(channels, 3 * hidden_channels)
        # well-trained instances have large pre-tanh values; keep them away from zero
        self.balancer = Balancer(
            hidden_channels,
            -1,
            min_positive=ScheduledFloat((0.0, 0.25), (20000.0, 0.05)),
            max_positive=ScheduledFloat((0.0, 0.75), (20000.0, 0.95)),
            min_abs=0.5,
            max_abs=5.0,
        )
        self.out_proj = ScaledLinear(hidden_channels, channels, initial_scale=0.05)
        self.whiten1 = Whiten(1, whitening_schedule(5.0), (0.025, 0.25), 0.01)
        self.whiten2 = Whiten(1, whitening_schedule(5.0, ratio=3.0), (0.025, 0.25), 0.01)

    def forward(self, x: Tensor, attn_weights: Tensor) -> Tensor:
        num_frames, batch, _ = x.shape
        s, x, y = self.in_proj(x).chunk(3, dim=-1)
        x = self.whiten1(x) * torch.tanh(self.balancer(s))
        heads = attn_weights.shape[0]
        x = x.reshape(num_frames, batch, heads, -1).permute(2, 1, 0, 3)
        x = (attn_weights @ x).permute(2, 1, 0, 3).reshape(num_frames, batch, -1)
        return self.whiten2(self.out_proj(x * y))


class ConvolutionModule(nn.Module):
    """GLU-style gate, depthwise conv over time, SwooshR, projection (non-causal)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(channels, 2 * channels)
        # keeps the sigmoid input in a range where its gradient is informative
        self.balancer1 = Balancer(
            channels,
            -1,
            min_positive=ScheduledFloat((0.0, 0.05), (8000.0, 0.025)),
            max_positive=1.0,
            min_abs=1.5,
            max_abs=ScheduledFloat((0.0, 5.0), (8000.0, 10.0), default=1.0),
        )
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, groups=channels, padding=kernel_size // 2
        )
        self.balancer2 = Balancer(
            channels,
            1,
            min_positive=ScheduledFloat((0.0, 0.1), (8000.0, 0.05)),
            max_positive=1.0,
            min_abs=ScheduledFloat((0.0, 0.2), (20000.0, 0.5)),
            max_abs=10.0,
        )
        self.whiten = Whiten(1, whitening_schedule(7.5), (0.025, 0.25), 0.01)
        self.out_proj = ActivationDropoutAndLinear(
            channels, channels, activation="SwooshR", dropout_p=0.0, initial_scale=0.05
        )

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        x, s = self.in_proj(x).chunk(2, dim=-1)
        x = x * torch.sigmoid(self.balancer1(s))  # (time, batch, channels), contiguous
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.t()[:, :, None], 0.0)
        # The depthwise conv as a 2-D conv on (1, channels, time, batch): that view of the
        # time-major tensor is channels-last in memory, where oneDNN's depthwise kernels are
        # several times faster on CPU than conv1d on (batch, channels, time), and no copy is
        # needed.  The kernel spans time only, so sequences stay independent.
        conv = self.depthwise_conv
        x = nn.functional.conv2d(
            x.permute(2, 0, 1).unsqueeze(0),
            conv.weight.unsqueeze(-1),
            conv.bias,
            padding=(conv.padding[0], 0),
            groups=conv.groups,
        )
        x = self.balancer2(x)[0].permute(1, 2, 0)  # channel_dim 1 of (1, C, T, B)
        return self.out_proj(self.whiten(x))
