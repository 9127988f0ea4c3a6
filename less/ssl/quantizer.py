"""Random-projection quantisation (BEST-RQ, Chiu et al., ICML 2022) and its helpers.

A frozen, seeded random projection maps stacked input frames to a few dimensions; the
label of a frame is the nearest entry (by cosine) of a frozen random codebook whose rows
are L2-normalised.  Nothing here is trained: projection and codebook are buffers, saved
with the model so that a resumed or re-loaded run produces the same labels.

Why the input is normalised first: log-mel frames share a large common offset, so without
mean/variance normalisation every projected frame points roughly the same way and the
labels collapse onto a handful of codes (``tests/ssl/test_ssl.py`` checks both cases).

Frame rates: the encoder emits one frame per 4 input frames (25 Hz).  Label frame ``j``
stacks input frames ``4j + 3 .. 4j + 6``: the conv front end and the final x2 downsampling
centre encoder frame ``j`` on input frame ~``4j + 4``, and ``4j + 6`` is always inside the
utterance for every ``j`` below the encoder's output length.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

LABEL_STACK = 4  # input frames per encoder frame (100 Hz -> 25 Hz)
LABEL_OFFSET = 3  # first input frame of label frame 0
NORM_MODES = ("utterance", "batch", "none")


def valid_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(batch, max_len) bool, True on real (non-padded) frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def normalize_features(
    feats: Tensor, lengths: Tensor, mode: str = "utterance", eps: float = 1e-5
) -> Tensor:
    """Zero mean / unit variance per feature dimension over each utterance's real frames
    (``utterance``), over all real frames of the batch (``batch``), or unchanged (``none``).
    Padded frames come out as zeros."""
    if mode not in NORM_MODES:
        raise ValueError(f"unknown normalisation {mode!r}; choose from {NORM_MODES}")
    mask = valid_mask(lengths, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
    if mode == "none":
        return feats * mask
    dims = (1,) if mode == "utterance" else (0, 1)
    count = mask.sum(dim=dims, keepdim=True).clamp(min=1.0)
    mean = (feats * mask).sum(dim=dims, keepdim=True) / count
    var = (((feats - mean) * mask) ** 2).sum(dim=dims, keepdim=True) / count
    return (feats - mean) / (var + eps).sqrt() * mask


def stack_input_frames(feats: Tensor, num_label_frames: int) -> Tensor:
    """(B, T, F) input frames -> (B, num_label_frames, 4F): label frame j = frames 4j+3..4j+6."""
    need = LABEL_OFFSET + LABEL_STACK * num_label_frames
    if feats.shape[1] < need:
        feats = F.pad(feats, (0, 0, 0, need - feats.shape[1]))
    window = feats[:, LABEL_OFFSET:need]
    return window.reshape(feats.shape[0], num_label_frames, LABEL_STACK * feats.shape[2])


def stack_pairs(x: Tensor, num_label_frames: int) -> Tensor:
    """(B, T50, D) at 50 Hz -> (B, num_label_frames, 2D): frames 2j and 2j+1, the two frames
    the encoder's final downsampling merges into output frame j (last frame repeated)."""
    need = 2 * num_label_frames
    if x.shape[1] < need:
        x = torch.cat([x, x[:, -1:].expand(-1, need - x.shape[1], -1)], dim=1)
    return x[:, :need].reshape(x.shape[0], num_label_frames, 2 * x.shape[2])


class RandomProjectionQuantizer(nn.Module):
    """``num_codebooks`` frozen (projection, codebook) pairs drawn from ``seed``.

    ``projection``: (num_codebooks, input_dim, code_dim), Xavier-uniform; ``codebook``:
    (num_codebooks, codebook_size, code_dim), standard normal rows scaled to unit norm.
    """

    def __init__(
        self,
        input_dim: int,
        code_dim: int = 16,
        codebook_size: int = 8192,
        num_codebooks: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.code_dim = code_dim
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        generator = torch.Generator().manual_seed(seed)
        bound = math.sqrt(6.0 / (input_dim + code_dim))  # Xavier (Glorot) uniform
        projection = (
            torch.rand(num_codebooks, input_dim, code_dim, generator=generator) * 2 - 1
        ) * bound
        codebook = F.normalize(
            torch.randn(num_codebooks, codebook_size, code_dim, generator=generator), dim=-1
        )
        self.register_buffer("projection", projection)
        self.register_buffer("codebook", codebook)

    def similarities(self, x: Tensor) -> Tensor:
        """(B, T, input_dim) -> cosine similarity to every code, (num_codebooks, B, T, codebook_size)."""
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"quantizer expects {self.input_dim}-dim input, got {x.shape[-1]}")
        # in fp32 (or wider) whatever the autocast: in bf16 near-ties of 8192 cosines pick
        # other codes, so the labels would depend on --dtype
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        with torch.autocast(x.device.type, enabled=False):
            projected = torch.einsum("btd,ndc->nbtc", x, self.projection.to(x.dtype))
            return torch.einsum(
                "nbtc,nkc->nbtk", F.normalize(projected, dim=-1), self.codebook.to(x.dtype)
            )

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Nearest code by cosine: (num_codebooks, B, T) long."""
        return self.similarities(x).argmax(dim=-1)

    def gumbel_select(
        self,
        x: Tensor,
        temperature: float,
        generator: torch.Generator | None = None,
        noise_in_forward: bool = False,
        grad_scale: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Differentiable code selection (straight-through Gumbel-softmax).

        Returns ``(codes, one_hot)``: ``one_hot`` has the value of the one-hot of ``codes``
        and the gradient of ``softmax((cos / temperature) + gumbel_noise)``, so a loss that
        uses it as a target sends gradients back into ``x`` (and whatever produced it).
        ``noise_in_forward=False`` takes the hard code from the noise-free similarities (the
        nearest code, as BEST-RQ); ``True`` is the textbook estimator (argmax of the noisy
        logits).  ``grad_scale`` scales the gradient that flows back through the selection,
        not its value.
        """
        if temperature <= 0:
            raise ValueError(f"Gumbel temperature must be > 0, got {temperature}")
        logits = self.similarities(x) / temperature
        uniform = torch.rand(
            logits.shape, generator=generator, dtype=logits.dtype, device="cpu"
        ).to(logits.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
        soft = (logits + gumbel).softmax(dim=-1)
        codes = (
            (logits + gumbel).argmax(dim=-1) if noise_in_forward else logits.detach().argmax(dim=-1)
        )
        hard = F.one_hot(codes, self.codebook_size).to(soft.dtype)
        if grad_scale != 1.0:
            soft = soft * grad_scale + (soft * (1.0 - grad_scale)).detach()
        return codes, hard - soft.detach() + soft

    def diversity_penalty(self, x: Tensor, temperature: float) -> Tensor:
        """``1 - exp(H(mean code distribution)) / codebook_size`` over the frames of ``x``
        (wav2vec 2.0's diversity loss): 0 when the soft assignments use every code equally,
        near 1 when they pile onto one; differentiable."""
        probs = (
            (self.similarities(x) / temperature).softmax(dim=-1).flatten(1, -2).mean(dim=1)
        )  # (N, K)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1)
        return (1.0 - entropy.exp() / self.codebook_size).mean()


def code_perplexity(codes: Tensor, mask: Tensor, codebook_size: int) -> float:
    """exp(entropy) of the code histogram over the frames where ``mask`` is True: the number
    of equally used codes that would give the same spread (1 = collapsed).  With several
    codebooks (leading dim), the mean over codebooks."""
    if codes.ndim == mask.ndim:
        codes = codes.unsqueeze(0)
    values = []
    for book in codes:
        selected = book[mask]
        if selected.numel() == 0:
            return float("nan")
        counts = torch.bincount(selected.flatten(), minlength=codebook_size).double()
        probs = counts[counts > 0] / counts.sum()
        values.append(float(torch.exp(-(probs * probs.log()).sum())))
    return sum(values) / len(values)
