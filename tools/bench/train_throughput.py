#!/usr/bin/env python3
"""Training-step throughput and peak memory: Zipformer vs. a Conformer of equal size.

For each Zipformer configuration (default ``xs`` and ``small``, encoder + CTC head, no
attention decoder) a plain Conformer CTC model is sized to the same parameter count
(within 5%) with the same total subsampling (x4, 100 Hz -> 25 Hz).  Both run
forward + CTC loss + backward on the same random batches (default 8 x 10 s), steps
interleaved so that load from other processes hits both alike; the table gives seconds of
audio per second (median over steps) and the ratio Zipformer / Conformer.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before the
step; on CPU, in a fresh subprocess per model, the peak RSS over two training steps minus
the RSS after building model and batch (the kernel's peak mark is reset at that point).

The Conformer (written plainly here, as a reference): conv2d subsampling (two 3x3 stride-2
convs, ReLU), sinusoidal absolute positions, blocks of macaron FF (x0.5) -> MHSA (torch's
``scaled_dot_product_attention``) -> conv module (pointwise+GLU, depthwise 31, BatchNorm,
SiLU, pointwise) -> FF (x0.5) -> LayerNorm, dropout 0.1.  The Zipformer runs in training
mode with its schedules at batch 30000 (steady state: Balancer/Whiten active part of the
time, dropout 0.1).

Usage: python tools/bench/train_throughput.py [--device cpu] [--batch-size 8]
       [--seconds 10] [--steps 3] [--configs xs,small]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from less.model import CtcAedModel, count_parameters, get_config, set_batch_count

STEADY_STATE_BATCH = 30000.0


# ----------------------------------------------------------------------------- Conformer


class ConvSubsampling4(nn.Module):
    """(B, T, F) -> (B, ((T - 1) // 2 - 1) // 2, d): two 3x3 stride-2 convolutions."""

    def __init__(self, feature_dim: int, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, d_model, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(d_model, d_model, 3, stride=2),
            nn.ReLU(),
        )
        freq = ((feature_dim - 1) // 2 - 1) // 2
        self.out = nn.Linear(d_model * freq, d_model)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))
        b, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(b, t, c * f)), ((lens - 1) // 2 - 1) // 2


class FeedForward(nn.Module):
    def __init__(self, d: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d),
            nn.Linear(d, hidden),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, d),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.heads = heads
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self.qkv(self.norm(x))
            .reshape(b, t, 3, self.heads, d // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=~pad[:, None, None, :])
        return self.dropout(self.out(y.transpose(1, 2).reshape(b, t, d)))


class ConvModule(nn.Module):
    def __init__(self, d: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise1 = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.batch_norm = nn.BatchNorm1d(d)
        self.pointwise2 = nn.Conv1d(d, d, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pointwise1(self.norm(x).transpose(1, 2)), dim=1)
        y = y.masked_fill(pad[:, None, :], 0.0)
        y = self.pointwise2(F.silu(self.batch_norm(self.depthwise(y))))
        return self.dropout(y.transpose(1, 2))


class ConformerBlock(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1 = FeedForward(d, ff, dropout)
        self.attn = SelfAttention(d, heads, dropout)
        self.conv = ConvModule(d, kernel, dropout)
        self.ff2 = FeedForward(d, ff, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, pad)
        x = x + self.conv(x, pad)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class ConformerCtc(nn.Module):
    def __init__(
        self, d: int, layers: int, heads: int, vocab: int, feature_dim: int = 80, kernel: int = 31
    ) -> None:
        super().__init__()
        self.embed = ConvSubsampling4(feature_dim, d)
        self.blocks = nn.ModuleList(
            ConformerBlock(d, heads, 4 * d, kernel, 0.1) for _ in range(layers)
        )
        self.ctc = nn.Linear(d, vocab)
        self.d = d

    def encode(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lens = self.embed(feats, lens)
        t = x.shape[1]
        pos = torch.arange(t, device=x.device, dtype=torch.float32)[:, None]
        freq = torch.exp(
            torch.arange(0, self.d, 2, device=x.device, dtype=torch.float32)
            * (-math.log(1e4) / self.d)
        )
        pe = torch.zeros(t, self.d, device=x.device)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        x = x * math.sqrt(self.d) + pe
        pad = torch.arange(t, device=x.device)[None, :] >= lens[:, None]
        for block in self.blocks:
            x = block(x, pad)
        return x, lens

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        return self.ctc(enc).log_softmax(dim=-1)


def sized_conformer(target: int, vocab: int) -> ConformerCtc:
    """Conformer (16 layers from 10M parameters up, 12 below) whose width gives ``target``."""
    layers = 16 if target >= 10_000_000 else 12
    best = None
    for d in range(64, 1025, 8):
        heads = 4 if d <= 256 else 8
        if d % heads:
            continue
        with torch.device("meta"):
            n = count_parameters(ConformerCtc(d, layers, heads, vocab))
        if best is None or abs(n - target) < abs(best[0] - target):
            best = (n, d, heads)
    n, d, heads = best
    if abs(n - target) > 0.05 * target:
        raise RuntimeError(f"no Conformer within 5% of {target} parameters (best {n})")
    return ConformerCtc(d, layers, heads, vocab)


# ----------------------------------------------------------------------------- measuring


def make_batch(batch_size: int, seconds: float, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = int(round(seconds * 100))
    feats = torch.randn(batch_size, frames, 80, generator=g)
    lens = torch.full((batch_size,), frames, dtype=torch.long)
    tokens_per_utt = max(1, int(seconds * 2.5))  # ~2.5 BPE tokens per second of speech
    targets = [
        torch.randint(1, vocab, (tokens_per_utt,), generator=g).tolist() for _ in range(batch_size)
    ]
    return feats, lens, targets


def build(spec: str, vocab: int, device: torch.device) -> nn.Module:
    """``zipformer:<config>`` or ``conformer:<config>`` (the Conformer sized like it)."""
    kind, name = spec.split(":")
    config = get_config(name, ctc_vocab_size=vocab, decoder_vocab_size=None)
    torch.manual_seed(0)
    if kind == "zipformer":
        model: nn.Module = CtcAedModel(config)
        set_batch_count(model, STEADY_STATE_BATCH)
    elif kind == "conformer":
        with torch.device("meta"):
            target = count_parameters(CtcAedModel(config))
        model = sized_conformer(target, vocab)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    return model.to(device).train()


def train_step(model: nn.Module, feats, lens, targets) -> float:
    """forward + CTC loss + backward; returns wall seconds (synchronised on CUDA)."""
    if feats.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    enc, enc_lens = model.encode(feats, lens)
    log_probs = model.ctc_log_probs(enc)
    loss = F.ctc_loss(
        log_probs.transpose(0, 1),
        torch.tensor([t for ts in targets for t in ts]),
        enc_lens.cpu(),
        torch.tensor([len(t) for t in targets]),
        reduction="sum",
    )
    loss.backward()
    model.zero_grad(set_to_none=True)
    if feats.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Return freed heap to the OS and reset the kernel's peak-RSS mark (Linux >= 4.0)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> None:
    """Subprocess: peak RSS during training steps minus RSS before them (MB), as JSON.

    Model, optimiser-free gradients and the batch exist before the baseline, so the figure
    is the activation (and gradient) memory of a step.  Where the peak mark cannot be
    reset, falls back to ``ru_maxrss`` growth (an underestimate if set-up peaked higher).
    """
    device = torch.device(args.device)
    feats, lens, targets = make_batch(args.batch_size, args.seconds, args.vocab)
    model = build(args.worker, args.vocab, device)
    reset = _reset_peak_rss()
    base_kb = _status_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        train_step(model, feats.to(device), lens.to(device), targets)
    peak_kb = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": (peak_kb - base_kb) / 1024.0}))


def cpu_peak_memory_mb(spec: str, args: argparse.Namespace) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        spec,
        "--device",
        "cpu",
        "--batch-size",
        str(args.batch_size),
        "--seconds",
        str(args.seconds),
        "--vocab",
        str(args.vocab),
        "--threads",
        str(args.threads),
    ]
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]


def cuda_peak_memory_mb(model: nn.Module, feats, lens, targets) -> float:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    train_step(model, feats, lens, targets)
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="utterances per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="seconds of audio per utterance (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=3,
        help="timed steps per model, after one warm-up (default: %(default)s)",
    )
    parser.add_argument(
        "--configs",
        default="xs,small",
        help="Zipformer configs, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--vocab", type=int, default=500, help="CTC vocabulary size (default: %(default)s)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads, 0 = torch's default (default: %(default)s)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
        return

    device = torch.device(args.device)
    feats, lens, targets = make_batch(args.batch_size, args.seconds, args.vocab)
    feats, lens = feats.to(device), lens.to(device)
    audio_seconds = args.batch_size * args.seconds
    print(
        f"device={device} threads={torch.get_num_threads()} batch={args.batch_size}x{args.seconds:g}s "
        f"steps={args.steps} (forward + CTC loss + backward, training mode)"
    )
    rows = []
    for name in args.configs.split(","):
        specs = [f"zipformer:{name}", f"conformer:{name}"]
        models = {spec: build(spec, args.vocab, device) for spec in specs}
        times: dict[str, list[float]] = {spec: [] for spec in specs}
        for step in range(args.steps + 1):  # interleaved; step 0 is warm-up
            for spec in specs:
                elapsed = train_step(models[spec], feats, lens, targets)
                if step > 0:
                    times[spec].append(elapsed)
        for spec in specs:
            model = models[spec]
            if device.type == "cuda":
                memory = cuda_peak_memory_mb(model, feats, lens, targets)
            else:
                memory = cpu_peak_memory_mb(spec, args)
            shape = (
                ""
                if spec.startswith("zipformer")
                else f" (d={model.d}, {len(model.blocks)} layers)"
            )
            rows.append(
                (
                    spec + shape,
                    count_parameters(model),
                    audio_seconds / statistics.median(times[spec]),
                    audio_seconds / min(times[spec]),
                    memory,
                )
            )
        del models

    print(f"\n{'model':<40} {'params':>8} {'audio s/s':>10} {'best s/s':>9} {'peak MB':>9}")
    for spec, params, median_rate, best_rate, memory in rows:
        print(
            f"{spec:<40} {params / 1e6:>7.2f}M {median_rate:>10.1f} {best_rate:>9.1f} {memory:>9.0f}"
        )
    print("\nratio Zipformer / Conformer (same parameter count):")
    for i in range(0, len(rows), 2):
        z, c = rows[i], rows[i + 1]
        memory_ratio = f"x{z[4] / c[4]:.2f}" if c[4] > 0 else "n/a"
        print(
            f"  {z[0].split(':')[1]:<8} throughput x{z[2] / c[2]:.2f}   peak memory {memory_ratio}"
        )


if __name__ == "__main__":
    main()
