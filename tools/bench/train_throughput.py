#!/usr/bin/env python3
"""Training-step throughput: today's Zipformer vs. its previous implementation and vs. a
Conformer of equal size, measured in one run.

Three models on the same random batches (default 18 x 3.3 s, the mini corpus' 60 s
batches), steps interleaved so that load from other processes hits all alike; the tables
give seconds of audio per second (median over steps) and the ratios:

* ``zipformer:xs`` — the model as ``less.model`` builds it now;
* ``zipformer:xs@<rev>`` — the same configuration built by ``less/model`` as it was at git
  revision ``--baseline-rev`` (default: the commit before the CPU speed work), extracted
  with ``git show`` into a temporary package: the previous implementation, kept reachable
  here only;
* ``conformer:xs`` — a plain Conformer CTC model sized to the same parameter count
  (within 5%) with the same total subsampling (x4, 100 Hz -> 25 Hz).

Two measurements:

* ``encoder+CTC``: forward + CTC loss + backward (no decoder, no optimiser), for all three
  models (the Conformer has no attention decoder);
* ``full step``: what ``less.bin.train`` does per batch: CTC + attention-decoder losses,
  backward, ScaledAdam + Eden step, Zipformer old vs new only.

Each runs in fp32 and, on a CPU with native bf16 (``--dtype auto`` of training picks it
there), under bf16 autocast.  The Zipformer runs in training mode with its schedules at
``--batch-count`` (default 8000: the mini recipe's schedules mid-way through a seed's
training; Balancer/Whiten active part of the time, dropout on).

The Conformer (written plainly here, as a reference): conv2d subsampling (two 3x3 stride-2
convs, ReLU), sinusoidal absolute positions, blocks of macaron FF (x0.5) -> MHSA (torch's
``scaled_dot_product_attention``) -> conv module (pointwise+GLU, depthwise 31, BatchNorm,
SiLU, pointwise) -> FF (x0.5) -> LayerNorm, dropout 0.1.

Usage: python tools/bench/train_throughput.py [--batch-size 18] [--seconds 3.3]
       [--steps 4] [--threads 1] [--baseline-rev REV] [--dtypes fp32,bf16]
"""

from __future__ import annotations

import importlib
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import less.model as current_model
from less.utils import cli_parser, native_bf16_cpu

REPO = Path(__file__).resolve().parents[2]
# the last commit before the CPU speed work of issue 11 (channels-last front end, closed-form
# Balancer/Whiten gradients, depthwise convs on channels-last views, saved activations)
BASELINE_REV = "3011e1141d24a4e940176544212fb14d400bd59b"


def load_baseline(rev: str, workdir: Path):
    """``less.model`` as it was at ``rev``, importable as its own package (``git show``)."""
    name = f"less_model_{rev[:10]}"
    target = workdir / name
    target.mkdir(parents=True)
    listing = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", rev, "less/model/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if not listing:
        raise SystemExit(f"git revision {rev} has no less/model/")
    for path in listing:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (target / Path(path).name).write_text(source.replace("less.model", name))
    sys.path.insert(0, str(workdir))
    return importlib.import_module(name)


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


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def make_batch(batch_size: int, seconds: float, vocab: int, seed: int = 0):
    """Features with lengths spread over the last 10 % (bucketed batches are near-equal) and
    ~4 tokens per second of speech (Mandarin characters)."""
    g = torch.Generator().manual_seed(seed)
    frames = int(round(seconds * 100))
    feats = torch.randn(batch_size, frames, 80, generator=g)
    lens = frames - torch.randint(0, max(1, frames // 10), (batch_size,), generator=g)
    lens[0] = frames
    tokens_per_utt = max(1, int(seconds * 4))
    targets = [
        torch.randint(3, vocab, (tokens_per_utt,), generator=g).tolist() for _ in range(batch_size)
    ]
    return feats, lens, targets


class Runner:
    """One model and how to take a step with it."""

    def __init__(
        self, label: str, model: nn.Module, full: bool, package=None, batch_count: float = 0.0
    ):
        self.label, self.model, self.full, self.package = label, model, full, package
        self.batch_count = batch_count
        self.optimizer = self.scheduler = None
        if full:
            self.optimizer = package.ScaledAdam(model, lr=0.045, clipping_scale=2.0)
            self.scheduler = package.Eden(self.optimizer, 2000, 8, warmup_batches=200)
        self.times: list[float] = []
        self.batch_idx = 100

    def step(self, feats, lens, targets, dtype: str) -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()
        random.seed(self.batch_idx)
        start = time.perf_counter()
        if self.package is not None:
            self.package.set_batch_count(self.model, self.batch_count)
        with autocast:
            if self.full:
                loss = self.model(feats, lens, targets, targets)["loss"]
            else:
                enc, enc_lens = self.model.encode(feats, lens)
                log_probs = self.model.ctc_log_probs(enc)
                loss = F.ctc_loss(
                    log_probs.transpose(0, 1).float(),
                    torch.tensor([t for ts in targets for t in ts]),
                    enc_lens,
                    torch.tensor([len(t) for t in targets]),
                    reduction="sum",
                )
        loss.backward()
        if self.full:
            self.scheduler.step_batch(self.batch_idx)
            self.optimizer.step()
        self.model.zero_grad(set_to_none=True)
        self.times.append(time.perf_counter() - start)
        self.batch_idx += 1


def build_zipformer(package, name: str, vocab: int, full: bool) -> nn.Module:
    torch.manual_seed(0)
    config = package.get_config(
        name,
        ctc_vocab_size=vocab,
        decoder_vocab_size=vocab if full else None,
        ctc_scale=0.3,
        aed_scale=0.7,
    )
    return package.CtcAedModel(config).train()


def build_conformer(name: str, vocab: int) -> nn.Module:
    config = current_model.get_config(name, ctc_vocab_size=vocab, decoder_vocab_size=None)
    with torch.device("meta"):
        target = count_parameters(current_model.CtcAedModel(config))
    torch.manual_seed(0)
    return sized_conformer(target, vocab).train()


def measure(runners: list[Runner], batch, steps: int, dtype: str) -> None:
    for i in range(steps + 1):  # interleaved; step 0 is warm-up
        for runner in runners:
            runner.step(*batch, dtype)
            if i == 0:
                runner.times.clear()


def main() -> None:
    parser = cli_parser(__doc__)
    parser.add_argument(
        "--batch-size", type=int, default=18, help="utterances per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=3.3, help="seconds per utterance (default: %(default)s)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=4,
        help="timed steps per model after one warm-up (default: %(default)s)",
    )
    parser.add_argument(
        "--config", default="xs", help="Zipformer configuration (default: %(default)s)"
    )
    parser.add_argument(
        "--vocab",
        type=int,
        default=2000,
        help="vocabulary size (default: %(default)s: Mandarin characters of the mini corpus)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: %(default)s, as "
        "each of the mini recipe's two side-by-side jobs)",
    )
    parser.add_argument(
        "--batch-count",
        type=float,
        default=8000.0,
        help="Zipformer schedule position (default: %(default)s)",
    )
    parser.add_argument(
        "--baseline-rev",
        default=BASELINE_REV,
        help="git revision of the previous implementation (default: %(default)s)",
    )
    parser.add_argument(
        "--dtypes",
        default=None,
        help="comma-separated fp32,bf16 (default: fp32, plus bf16 on a CPU with native bf16)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtypes = (
        args.dtypes.split(",")
        if args.dtypes
        else ["fp32"] + (["bf16"] if native_bf16_cpu() else [])
    )
    begin = time.time()
    with tempfile.TemporaryDirectory() as workdir:
        baseline = load_baseline(args.baseline_rev, Path(workdir))
        batch = make_batch(args.batch_size, args.seconds, args.vocab)
        audio = float(batch[1].sum()) / 100.0
        rev = args.baseline_rev[:10]
        print(
            f"threads={torch.get_num_threads()} batch={args.batch_size}x~{args.seconds:g}s ({audio:.1f} s of "
            f"audio) steps={args.steps} batch_count={args.batch_count:g} baseline=git {rev}"
        )
        results: dict[tuple[str, str, str], float] = {}
        for dtype in dtypes:
            for full in (False, True):
                mode = "full step" if full else "encoder+CTC"
                runners = [
                    Runner(
                        f"zipformer:{args.config}",
                        build_zipformer(current_model, args.config, args.vocab, full),
                        full,
                        current_model,
                        args.batch_count,
                    ),
                    Runner(
                        f"zipformer:{args.config}@{rev}",
                        build_zipformer(baseline, args.config, args.vocab, full),
                        full,
                        baseline,
                        args.batch_count,
                    ),
                ]
                if not full:
                    runners.append(
                        Runner(
                            f"conformer:{args.config}",
                            build_conformer(args.config, args.vocab),
                            False,
                        )
                    )
                measure(runners, batch, args.steps, dtype)
                for runner in runners:
                    results[(dtype, mode, runner.label)] = audio / statistics.median(runner.times)
                    extra = ""
                    if isinstance(runner.model, ConformerCtc):
                        extra = f" (d={runner.model.d}, {len(runner.model.blocks)} layers)"
                    print(
                        f"  {dtype:<5} {mode:<12} {runner.label + extra:<40} "
                        f"{count_parameters(runner.model) / 1e6:6.2f}M  {results[(dtype, mode, runner.label)]:7.1f} "
                        f"s audio/s"
                    )
        new, old, conf = (
            f"zipformer:{args.config}",
            f"zipformer:{args.config}@{rev}",
            f"conformer:{args.config}",
        )
        print("\nratios (throughput, higher is better):")

        def ratio(a: tuple[str, str, str], b: tuple[str, str, str]) -> str:
            return f"x{results[a] / results[b]:.2f}"

        for dtype in dtypes:
            for mode in ("encoder+CTC", "full step"):
                print(
                    f"  {dtype:<5} {mode:<12} new / previous implementation  "
                    f"{ratio((dtype, mode, new), (dtype, mode, old))}"
                )
            print(
                f"  {dtype:<5} {'encoder+CTC':<12} new / Conformer (same size)   "
                f"{ratio((dtype, 'encoder+CTC', new), (dtype, 'encoder+CTC', conf))}"
            )
        if "bf16" in dtypes and "fp32" in dtypes:
            print(
                "  training default (--dtype auto: bf16 here) / previous default (fp32), full step: "
                f"{ratio(('bf16', 'full step', new), ('fp32', 'full step', old))}"
            )
        print(f"(benchmark took {time.time() - begin:.0f} s)")


if __name__ == "__main__":
    main()
