"""Transformer attention decoder (as in icefall's zipformer CTC/AED recipes).

Pre-norm layers of causal self-attention, cross-attention over the encoder output and a
Swish feed-forward; absolute sinusoidal positions; label-smoothed cross entropy summed over
tokens.  :meth:`AttentionDecoder.forward` is what decoding calls (attention rescoring, beam
search), with prefixes ``[sos, t1, ..., tk]`` as ``ys_in``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

from less.model.scaling import penalize_abs_values_gt


@dataclass
class IncrementalState:
    """What :meth:`AttentionDecoder.step` carries between positions, per row (hypothesis)."""

    memory_kv: list[tuple[Tensor, Tensor]]  # per layer: cross-attention keys, values (N, H, T, d)
    memory_mask: Tensor  # (N, 1, T), True = padding
    past: list[tuple[Tensor, Tensor] | None]  # per layer: self-attention keys, values (N, H, t, d)
    length: int  # positions fed so far
    # which memory (e.g. utterance) each row attends to, when rows share memories (the beams
    # of one utterance): a selection that keeps every row's memory leaves memory_kv as it is
    memory_owner: Tensor | None = None

    def select(self, rows: Tensor) -> IncrementalState:
        """Rows ``rows`` (hypotheses reordered or pruned by a search)."""
        pick = lambda t: t.index_select(0, rows)  # noqa: E731
        past = [None if p is None else (pick(p[0]), pick(p[1])) for p in self.past]
        owner = None if self.memory_owner is None else self.memory_owner.index_select(0, rows.cpu())
        if owner is not None and torch.equal(owner, self.memory_owner):
            # beams reordered within their utterances: the same keys/values row by row (the
            # copy of every memory at every step was most of a beam search's time)
            return IncrementalState(self.memory_kv, self.memory_mask, past, self.length, owner)
        return IncrementalState(
            [(pick(k), pick(v)) for k, v in self.memory_kv],
            pick(self.memory_mask),
            past,
            self.length,
            owner,
        )


def _pad_mask(lengths: Tensor, max_len: int) -> Tensor:
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


class LabelSmoothingLoss(nn.Module):
    """Cross entropy against ``(1 - eps) * one_hot + eps / V``; targets equal to
    ``ignore_index`` contribute nothing.  ``reduction='sum'`` (default) or ``'mean'`` per token."""

    def __init__(
        self, label_smoothing: float = 0.1, ignore_index: int = -1, reduction: str = "sum"
    ) -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.label_smoothing = label_smoothing
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        num_classes = logits.shape[-1]
        logits = logits.reshape(-1, num_classes)
        target = target.reshape(-1)
        keep = target != self.ignore_index
        log_probs = logits[keep].log_softmax(dim=-1)
        tgt = target[keep]
        nll = -log_probs.gather(1, tgt[:, None]).squeeze(1)
        uniform = -log_probs.mean(dim=-1)
        loss = ((1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform).sum()
        if self.reduction == "mean":
            loss = loss / keep.sum().clamp(min=1)
        return loss


class PositionalEncoding(nn.Module):
    """``x * sqrt(d) + sinusoid(position)``, then dropout."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)
        self._pe: Tensor | None = None

    def _table(self, length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        pe = self._pe
        if pe is None or pe.shape[0] < length:
            n = max(length, 512)
            position = torch.arange(n, dtype=torch.float32)[:, None]
            div = torch.exp(
                torch.arange(0, self.d_model, 2, dtype=torch.float32)
                * (-math.log(10000.0) / self.d_model)
            )
            pe = torch.zeros(n, self.d_model)
            pe[:, 0::2] = torch.sin(position * div)
            pe[:, 1::2] = torch.cos(position * div)
        if pe.device != device or pe.dtype != dtype:
            pe = pe.to(device=device, dtype=dtype)
        self._pe = pe
        return pe[:length]

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(
            x * math.sqrt(self.d_model) + self._table(x.shape[1], x.device, x.dtype)
        )


class MultiHeadAttention(nn.Module):
    """Plain multi-head attention on (batch, time, dim); ``mask`` True = not attended."""

    def __init__(self, embed_dim: int, num_heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
        kv_dim = kv_dim or embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.linear_q = nn.Linear(embed_dim, embed_dim)
        self.linear_k = nn.Linear(kv_dim, embed_dim)
        self.linear_v = nn.Linear(kv_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, query: Tensor, key_value: Tensor, mask: Tensor) -> Tensor:
        return self.attend(query, *self.keys_values(key_value), mask)

    def keys_values(self, key_value: Tensor) -> tuple[Tensor, Tensor]:
        """Projected keys and values, (B, H, S, d) each: computed once per memory when decoding."""
        batch, src_len, _ = key_value.shape
        h, d = self.num_heads, self.head_dim
        k = self.linear_k(key_value).reshape(batch, src_len, h, d).transpose(1, 2)
        v = self.linear_v(key_value).reshape(batch, src_len, h, d).transpose(1, 2)
        return k, v

    def attend(self, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        batch, tgt_len, _ = query.shape
        h, d = self.num_heads, self.head_dim
        q = self.linear_q(query).reshape(batch, tgt_len, h, d).transpose(1, 2)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(d)  # (B, H, tgt, src)
        if self.training and scores.requires_grad:
            scores = penalize_abs_values_gt(scores, limit=50.0, penalty=1.0e-4)
        if mask is not None:
            # a finite fill keeps a fully masked row (empty memory) from producing NaN
            scores = scores.masked_fill(mask[:, None], torch.finfo(scores.dtype).min)
        out = scores.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(batch, tgt_len, h * d))


class DecoderLayer(nn.Module):
    def __init__(
        self, d_model: int, num_heads: int, feedforward_dim: int, memory_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.norm_self_attn = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.norm_src_attn = nn.LayerNorm(d_model)
        self.src_attn = MultiHeadAttention(d_model, num_heads, kv_dim=memory_dim)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, feedforward_dim),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(feedforward_dim, d_model),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, self_mask: Tensor, memory: Tensor, memory_mask: Tensor) -> Tensor:
        y = self.norm_self_attn(x)
        x = x + self.dropout(self.self_attn(y, y, self_mask))
        x = x + self.dropout(self.src_attn(self.norm_src_attn(x), memory, memory_mask))
        return x + self.dropout(self.feed_forward(self.norm_ff(x)))

    def step(
        self,
        x: Tensor,
        past: tuple[Tensor, Tensor] | None,
        memory_kv: tuple[Tensor, Tensor],
        memory_mask: Tensor,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One new position ``x`` (N, 1, D) given the keys/values of the earlier ones (eval only)."""
        y = self.norm_self_attn(x)
        k, v = self.self_attn.keys_values(y)
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        x = x + self.self_attn.attend(y, k, v, None)  # every earlier position is visible
        x = x + self.src_attn.attend(self.norm_src_attn(x), *memory_kv, memory_mask)
        return x + self.feed_forward(self.norm_ff(x)), (k, v)


class AttentionDecoder(nn.Module):
    """Autoregressive decoder over ``vocab_size`` tokens, attending to encoder ``memory``."""

    def __init__(
        self,
        vocab_size: int,
        decoder_dim: int = 512,
        num_layers: int = 6,
        num_heads: int = 8,
        feedforward_dim: int = 2048,
        memory_dim: int = 512,
        dropout: float = 0.1,
        sos_id: int = 1,
        eos_id: int = 1,
        label_smoothing: float = 0.1,
        ignore_id: int = -1,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.sos_id, self.eos_id, self.ignore_id = sos_id, eos_id, ignore_id
        self.embed = nn.Embedding(vocab_size, decoder_dim)
        self.pos = PositionalEncoding(decoder_dim, dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(decoder_dim, num_heads, feedforward_dim, memory_dim, dropout)
            for _ in range(num_layers)
        )
        self.output_layer = nn.Linear(decoder_dim, vocab_size)
        self.loss_fn = LabelSmoothingLoss(label_smoothing, ignore_index=ignore_id, reduction="sum")

    def forward(
        self, memory: Tensor, memory_lens: Tensor, ys_in: Tensor, ys_in_lens: Tensor
    ) -> Tensor:
        """memory (B, T, D), memory_lens (B,), ys_in (B, U) padded, ys_in_lens (B,) -> logits (B, U, V).

        Position u sees ``ys_in[:, :u+1]`` only (causal) and never padded tokens or padded
        memory frames, so logits of real positions do not depend on padding.
        """
        num_tokens = ys_in.shape[1]
        causal = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=ys_in.device).triu(1)
        self_mask = causal[None] | _pad_mask(ys_in_lens, num_tokens)[:, None, :]
        memory_mask = _pad_mask(memory_lens, memory.shape[1])[:, None, :]
        x = self.pos(self.embed(ys_in))
        for layer in self.layers:
            x = layer(x, self_mask, memory, memory_mask)
        return self.output_layer(x)

    def start_incremental(self, memory: Tensor, memory_lens: Tensor) -> IncrementalState:
        """State for :meth:`step`: cross-attention keys/values of ``memory``, computed once."""
        # contiguous: the search attends to them at every step, usually without reselecting them
        memory_kv = [
            tuple(t.contiguous() for t in layer.src_attn.keys_values(memory))
            for layer in self.layers
        ]
        memory_mask = _pad_mask(memory_lens, memory.shape[1])[:, None, :]
        return IncrementalState(memory_kv, memory_mask, [None] * len(self.layers), 0)

    def step(self, state: IncrementalState, tokens: Tensor) -> tuple[Tensor, IncrementalState]:
        """Logits (N, V) of the next token after feeding ``tokens`` (N,) at position ``state.length``.

        Equal to ``forward`` on the whole prefix (last position), at the cost of one position:
        what beam search needs (every row of a step has the same prefix length).
        """
        table = self.pos._table(state.length + 1, tokens.device, self.embed.weight.dtype)
        x = self.embed(tokens)[:, None] * math.sqrt(self.pos.d_model) + table[state.length]
        past = []
        for layer, layer_past, memory_kv in zip(self.layers, state.past, state.memory_kv):
            x, kv = layer.step(x, layer_past, memory_kv, state.memory_mask)
            past.append(kv)
        logits = self.output_layer(x[:, 0])
        return logits, IncrementalState(
            state.memory_kv, state.memory_mask, past, state.length + 1, state.memory_owner
        )

    def prepare_targets(
        self, token_ids: list[list[int]], device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(ys_in, ys_in_lens, ys_out)``: sos + tokens (eos-padded), tokens + eos (-1-padded)."""
        lengths = [len(t) + 1 for t in token_ids]
        max_len = max(lengths)
        ys_in = torch.full((len(token_ids), max_len), self.eos_id, dtype=torch.long)
        ys_out = torch.full((len(token_ids), max_len), self.ignore_id, dtype=torch.long)
        for i, tokens in enumerate(token_ids):
            t = torch.as_tensor(tokens, dtype=torch.long)
            ys_in[i, 0] = self.sos_id
            ys_in[i, 1 : len(tokens) + 1] = t
            ys_out[i, : len(tokens)] = t
            ys_out[i, len(tokens)] = self.eos_id
        ys_in_lens = torch.tensor(lengths, dtype=torch.long)
        return ys_in.to(device), ys_in_lens.to(device), ys_out.to(device)

    def loss(
        self, memory: Tensor, memory_lens: Tensor, token_ids: list[list[int]]
    ) -> tuple[Tensor, int]:
        """Label-smoothed loss summed over all target tokens (eos included), and their count."""
        ys_in, ys_in_lens, ys_out = self.prepare_targets(token_ids, memory.device)
        logits = self.forward(memory, memory_lens, ys_in, ys_in_lens)
        return self.loss_fn(logits, ys_out), int(ys_in_lens.sum())
