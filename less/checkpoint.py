"""Checkpoints, the running averaged model, and icefall-style checkpoint averaging.

Files in an experiment directory (icefall names): ``epoch-N.pt`` at the end of epoch N,
``checkpoint-<batch>.pt`` every ``--save-every-n`` batches (the last K kept),
``best-valid-loss.pt``. A checkpoint holds the model, the running averaged model, the
optimizer/scheduler/grad-scaler states, the training position (epoch, batch within the
epoch, global batch), RNG states and the full configuration, so that training resumes
exactly and decoding needs nothing else.

Averaging at decode time:

* ``--avg A`` without the averaged model: the arithmetic mean of the weights of
  ``epoch-(E-A+1).pt`` ... ``epoch-E.pt``;
* ``--use-averaged-model`` (icefall's default): the running average kept during training is
  the mean of the k = n // average_period models sampled every ``average_period`` batches up
  to batch n, so the mean of the samples taken during epochs E-A+1..E is
  ``(avg_end * k_end - avg_start * k_start) / (k_end - k_start)`` with ``start = epoch-(E-A)``.
  icefall weighs by n instead of k, which is the same when epochs hold thousands of batches;
  on small data (epochs shorter than ``average_period``) it extrapolates to a broken model.
  When the window holds fewer samples than the A epochs asked for, the epoch checkpoints are
  averaged instead (logged).
"""

from __future__ import annotations

import logging
import pickle
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from less.utils import atomic_path

log = logging.getLogger("less.checkpoint")


def save_checkpoint(path: str | Path, **state: Any) -> None:
    """``torch.save`` through a temp file + rename: a kill never leaves a truncated checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _legacy_numpy_globals() -> list:
    """What checkpoints written before the RNG states became tensors pickled: numpy's RNG
    state array.  Only these array-rebuilding functions are allowed, never arbitrary code."""
    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype("uint32"))]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``: a checkpoint is tensors, numbers, strings and
    containers; unpickling anything else (code) is refused with the file named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f"{path}: not a plain checkpoint (it pickles objects other than tensors, numbers, strings and "
            f"containers; loading it would run code). If you trust its source, load it yourself with "
            f"torch.load(..., weights_only=False) and save its tensors again. Details: {str(e)[:300]}"
        ) from e


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain numbers (loadable with ``weights_only=True``)."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    saved = state["numpy"]
    if isinstance(saved, dict):
        saved = (
            saved["kind"],
            saved["keys"].numpy().astype(np.uint32),
            saved["pos"],
            saved["has_gauss"],
            saved["cached_gaussian"],
        )
    np.random.set_state(saved)


@torch.no_grad()
def update_averaged_model(
    model_avg: torch.nn.Module, model: torch.nn.Module, average_period: int, batch_idx_train: int
) -> None:
    """``avg = avg * (1 - p) + model * p`` with ``p = average_period / batch_idx_train``."""
    weight = average_period / batch_idx_train
    avg_params = model_avg.state_dict()
    for name, value in model.state_dict().items():
        target = avg_params[name]
        if target.is_floating_point():
            target.mul_(1 - weight).add_(value.to(target.dtype), alpha=weight)
        else:
            target.copy_(value)


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Arithmetic mean of float tensors; integer buffers are taken from the last state."""
    if not states:
        raise ValueError("nothing to average")
    out: dict[str, torch.Tensor] = {}
    for name, last in states[-1].items():
        if last.is_floating_point():
            acc = torch.zeros_like(last, dtype=torch.float64)
            for state in states:
                acc += state[name].to(torch.float64)
            out[name] = (acc / len(states)).to(last.dtype)
        else:
            out[name] = last.clone()
    return out


def averaged_samples(ckpt: dict[str, Any]) -> int:
    """How many models the running average of a checkpoint holds (one per ``average_period``
    batches; the batch count itself for checkpoints whose config does not say the period)."""
    n = int(ckpt["train_state"]["batch_idx_train"])
    period = int((ckpt.get("config") or {}).get("average_period") or 1)
    return n // period


def average_with_averaged_model(
    start: dict[str, Any] | None, end: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Mean of the models sampled into the running average between two checkpoints (``start``
    None: since the first batch)."""
    k_start = averaged_samples(start) if start is not None else 0
    k_end = averaged_samples(end)
    if k_end <= k_start:
        n_start = start["train_state"]["batch_idx_train"] if start is not None else 0
        raise ValueError(
            f"no model was sampled into the running average between batch {n_start} and "
            f"batch {end['train_state']['batch_idx_train']}"
        )
    out: dict[str, torch.Tensor] = {}
    for name, avg_end in end["model_avg"].items():
        if avg_end.is_floating_point():
            value = avg_end.double() * k_end
            if k_start:
                value -= start["model_avg"][name].double() * k_start
            out[name] = (value / (k_end - k_start)).to(avg_end.dtype)
        else:
            out[name] = avg_end.clone()
    return out


def epoch_path(exp_dir: Path, epoch: int) -> Path:
    return Path(exp_dir) / f"epoch-{epoch}.pt"


def add_model_selection_arguments(p, required: bool = False) -> None:
    """``--exp-dir``, ``--epoch``, ``--avg``, ``--use-averaged-model``: icefall's choice of a
    trained model, the one :func:`averaged_model_state` loads.  ``required``: the experiment
    dir and the epoch must be given (otherwise the tool has another source, e.g. one file)."""
    from less.utils import str2bool

    p.add_argument("--exp-dir", type=Path, required=required, help="training directory")
    p.add_argument(
        "--epoch", type=int, required=required, help="epoch-E.pt, the last of the average"
    )
    p.add_argument("--avg", type=int, default=1, help="number of epochs to average")
    p.add_argument(
        "--use-averaged-model",
        type=str2bool,
        default=True,
        help="average with the running averaged model (icefall's default)",
    )


def add_inference_arguments(p, max_duration: float = 300.0, device: str = "auto") -> None:
    """``--max-duration``, ``--device``, ``--num-threads``: how a tool runs a model over cut
    sets (:func:`inference_device` reads them)."""
    p.add_argument(
        "--max-duration", type=float, default=max_duration, help="seconds of audio per batch"
    )
    p.add_argument("--device", default=device, help="cpu, cuda, cuda:1...; auto: cuda if present")
    p.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: all cores)")


def inference_device(args) -> torch.device:
    """Set torch's CPU threads to ``--num-threads`` (when > 0) and return ``--device``."""
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(args.device)


_NO_MODEL = "give --checkpoint, or --exp-dir with --epoch (and --avg)"


def check_model_selection(args, error: str = _NO_MODEL) -> None:
    """Stop with ``error`` unless ``args`` name a model: ``--checkpoint``, or ``--exp-dir`` and
    ``--epoch`` (for tools that check their arguments before they start work)."""
    if args.checkpoint is None and (args.exp_dir is None or args.epoch is None):
        raise SystemExit(error)


def selected_model_state(
    args, error: str = _NO_MODEL
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and training config of the model a tool's ``--checkpoint`` (one file) names, or
    else its :func:`add_model_selection_arguments`; ``error`` when neither is given."""
    check_model_selection(args, error)
    if args.checkpoint is not None:
        ckpt = load_checkpoint(args.checkpoint)
        return ckpt["model"], ckpt["config"]
    return averaged_model_state(args.exp_dir, args.epoch, args.avg, args.use_averaged_model)


def averaged_model_state(
    exp_dir: str | Path, epoch: int, avg: int, use_averaged_model: bool
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Model weights for decoding ``--epoch E --avg A`` and the config of the last checkpoint."""
    exp_dir = Path(exp_dir)
    end = load_checkpoint(epoch_path(exp_dir, epoch))
    if avg <= 1 and not use_averaged_model:
        return end["model"], end["config"]
    if use_averaged_model:
        start_epoch = epoch - avg
        # icefall needs epoch-0 when start_epoch is 0; from the first epoch on, the running
        # average *is* the mean since batch 0.
        start = load_checkpoint(epoch_path(exp_dir, start_epoch)) if start_epoch >= 1 else None
        first = max(start_epoch, 0) + 1
        samples = averaged_samples(end) - (averaged_samples(start) if start is not None else 0)
        if samples >= epoch - first + 1:
            log.info("averaged model over epochs %d..%d (%d sampled models)", first, epoch, samples)
            return average_with_averaged_model(start, end), end["config"]
        log.info(
            "the running average holds %d sampled models over epochs %d..%d (epochs shorter than "
            "average_period); averaging the epoch checkpoints instead",
            samples,
            first,
            epoch,
        )
        avg = epoch - first + 1
    first = epoch - avg + 1
    if first < 1:
        raise ValueError(
            f"--avg {avg} needs epochs {first}..{epoch}; epoch-{first}.pt cannot exist"
        )
    states = [load_checkpoint(epoch_path(exp_dir, e))["model"] for e in range(first, epoch + 1)]
    log.info("averaged epochs %d..%d", first, epoch)
    return average_state_dicts(states), end["config"]


_BATCH_CHECKPOINT = re.compile(r"^checkpoint-(\d+)\.pt$")


def batch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """``checkpoint-<batch>.pt`` files, oldest first."""
    found = []
    for path in Path(exp_dir).glob("checkpoint-*.pt"):
        match = _BATCH_CHECKPOINT.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def remove_old_checkpoints(exp_dir: str | Path, keep_last_k: int) -> None:
    if keep_last_k <= 0:
        return
    for path in batch_checkpoints(exp_dir)[:-keep_last_k]:
        path.unlink(missing_ok=True)


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    """The checkpoint a resumed run starts from: the one with the highest global batch."""
    candidates = batch_checkpoints(exp_dir)
    candidates += list(Path(exp_dir).glob("epoch-*.pt"))
    best: tuple[int, Path] | None = None
    for path in candidates:
        try:
            n = load_checkpoint(path)["train_state"]["batch_idx_train"]
        except Exception as e:  # an unreadable checkpoint is reported, never silently used
            log.warning("ignoring unreadable checkpoint %s: %s", path, e)
            continue
        if best is None or n > best[0]:
            best = (n, path)
    return None if best is None else best[1]
