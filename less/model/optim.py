"""ScaledAdam optimiser and Eden learning-rate schedule (the Zipformer paper, section 4).

ScaledAdam, in short:

* the Adam-normalised update of each tensor is multiplied by the tensor's RMS, so every
  tensor changes by the same *relative* amount per step whatever its scale, and the
  learning rate needs no per-layer tuning;
* the tensor's overall scale is learned explicitly: the gradient w.r.t. a scalar factor on
  the tensor (``sum(p * grad)``) drives a separate Adam-like update, every
  ``size_update_period`` steps, kept within ``[param_min_rms, param_max_rms]``;
* scalar parameters get plain Adam with ``scalar_lr_scale * lr`` and are clamped to
  ``+-scalar_max``;
* gradients are clipped to ``clipping_scale`` times the median of the (RMS-weighted) global
  gradient norm over the last ``clipping_update_period`` steps, so thresholds follow the
  model instead of being a fixed constant;
* tensors of the same shape are stacked and updated as one batch (fewer, larger ops).

Momentum is kept as a parameter *change* ("delta") that all updates add into.  The state
lives in ``Optimizer.state`` (plain ints, floats, tensors), so ``state_dict()`` /
``load_state_dict()`` round-trip exactly and resumed training matches uninterrupted
training step for step.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

logger = logging.getLogger(__name__)


def _named_groups(params: Iterable[Any] | torch.nn.Module) -> list[dict[str, Any]]:
    """Normalise a module, tensors, (name, tensor) pairs or group dicts into named groups."""
    if isinstance(params, torch.nn.Module):
        params = params.named_parameters()
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    out = []
    for g, group in enumerate(groups):
        group = dict(group)
        items = list(group["params"])
        if items and isinstance(items[0], tuple):
            named = [(str(n), p) for n, p in items]
        else:
            named = [(f"group{g}.param{i}", p) for i, p in enumerate(items)]
        group["params"] = named
        out.append(group)
    return out


class ScaledAdam(Optimizer):
    """See the module docstring.  Default ``lr`` is icefall's Zipformer base_lr (0.045).

    ``params``: a module (its named parameters), parameters, ``(name, parameter)`` pairs or
    param-group dicts of either; names only appear in logs.
    """

    def __init__(
        self,
        params: Iterable[Any] | torch.nn.Module,
        lr: float = 0.045,
        clipping_scale: float | None = 2.0,
        betas: tuple[float, float] = (0.9, 0.98),
        scalar_lr_scale: float = 0.1,
        eps: float = 1.0e-8,
        param_min_rms: float = 1.0e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
    ) -> None:
        if not 0.0 < betas[0] <= betas[1] < 1.0:
            raise ValueError(f"need 0 < beta1 <= beta2 < 1, got {betas}")
        defaults = dict(
            lr=lr,
            clipping_scale=clipping_scale,
            betas=tuple(betas),
            scalar_lr_scale=scalar_lr_scale,
            eps=eps,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
            clipping_update_period=clipping_update_period,
        )
        super().__init__(_named_groups(params), defaults)
        self.last_clipping_scale = 1.0  # for logging: the factor applied at the last step

    # ------------------------------------------------------------------ batching

    def _batches(self, group: dict) -> list[tuple[list[Tensor], list[str]]]:
        """Parameters of ``group`` grouped by (dtype, shape), in a fixed order."""
        by_key: dict[tuple, list[int]] = defaultdict(list)
        for i, p in enumerate(group["params"]):
            by_key[(str(p.dtype), tuple(p.shape))].append(i)
        names = group["param_names"]
        return [
            ([group["params"][i] for i in idx], [names[i] for i in idx])
            for _, idx in sorted(by_key.items(), key=lambda kv: kv[0])
        ]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            stacked = []
            for params, _names in self._batches(group):
                state = self.state[params[0]]  # one state per batch, kept on its first param
                p = torch.stack([q.detach() for q in params])
                grad = torch.stack(
                    [torch.zeros_like(q) if q.grad is None else q.grad for q in params]
                )
                if grad.is_sparse:
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
                if len(state) == 0:
                    self._init_state(group, p, state)
                stacked.append((params, p, grad, state))
            clip = self._clipping_factor(group, stacked)
            self.last_clipping_scale = clip
            for params, p, grad, state in stacked:
                self._step_batch(group, p, grad * clip if clip != 1.0 else grad, state)
                for i, q in enumerate(params):
                    q.copy_(p[i])
        return loss

    def _init_state(self, group: dict, p: Tensor, state: dict) -> None:
        state["step"] = 0
        state["delta"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
        if p[0].numel() > 1:
            dims = list(range(1, p.ndim))
            state["param_rms"] = (p**2).mean(dim=dims, keepdim=True).sqrt()
            state["scale_exp_avg_sq"] = torch.zeros_like(state["param_rms"])
            state["scale_grads"] = torch.zeros(
                group["size_update_period"],
                *state["param_rms"].shape,
                dtype=p.dtype,
                device=p.device,
            )

    # ------------------------------------------------------------------ clipping

    def _clipping_factor(self, group: dict, stacked: list) -> float:
        """<= 1: how much to scale this step's gradients.  Statistics live in the state of
        the group's first batch (``model_norms``, ``model_norm_threshold``)."""
        scale = group["clipping_scale"]
        if scale is None or not stacked:
            return 1.0
        first = stacked[0][3]
        step = first["step"]
        if step == 0:
            return 1.0
        period = group["clipping_update_period"]
        sumsq = torch.zeros((), device=stacked[0][1].device)
        for _params, p, grad, state in stacked:
            if p[0].numel() == 1:
                sumsq += (grad**2).sum()
            else:
                sumsq += ((grad * state["param_rms"]) ** 2).sum()
        norm = sumsq.sqrt()
        if "model_norms" not in first:
            first["model_norms"] = torch.zeros(period, device=norm.device)
            first["num_clipped"] = 0
        first["model_norms"][step % period] = norm
        if step % period == 0:
            sorted_norms = first["model_norms"].sort()[0]
            quartiles = [sorted_norms[min(period - 1, (period // 4) * n)].item() for n in range(5)]
            first["model_norm_threshold"] = scale * quartiles[2]
            logger.info(
                "grad-norm quartiles %s, threshold %.3e, clipped %.1f%% of last %d steps",
                " ".join(f"{q:.3e}" for q in quartiles),
                first["model_norm_threshold"],
                100.0 * first["num_clipped"] / period,
                period,
            )
            first["num_clipped"] = 0
        if step < period or "model_norm_threshold" not in first:
            return 1.0  # no median estimated yet
        factor = min(1.0, first["model_norm_threshold"] / (norm.item() + 1e-20))
        if factor < 1.0:
            first["num_clipped"] += 1
        if factor < 0.1:
            logger.warning(
                "scaling gradients by %.3e (threshold %.3e)", factor, first["model_norm_threshold"]
            )
        return factor

    # ------------------------------------------------------------------ updates

    def _step_batch(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> None:
        step = state["step"]
        beta1 = group["betas"][0]
        state["delta"].mul_(beta1)
        if p[0].numel() > 1:
            period = group["size_update_period"]
            dims = list(range(1, p.ndim))
            state["scale_grads"][step % period] = (p * grad).sum(dim=dims, keepdim=True)
            if step % period == period - 1:
                state["param_rms"].copy_((p**2).mean(dim=dims, keepdim=True).sqrt())
                if step > 0:
                    self._size_update(group, p, state)
            self._step_tensor(group, p, grad, state)
        else:
            self._step_scalar(group, p, grad, state)
        state["step"] = step + 1

    def _size_update(self, group: dict, p: Tensor, state: dict) -> None:
        """Adam on log(scale) of each tensor, from the last ``size_update_period`` steps."""
        beta1, beta2 = group["betas"]
        scale_grads = state["scale_grads"]
        period = scale_grads.shape[0]
        size_lr = group["lr"] * group["scalar_lr_scale"]
        beta2_period = beta2**period
        exp_avg_sq = state["scale_exp_avg_sq"]
        exp_avg_sq.mul_(beta2_period).add_((scale_grads**2).mean(dim=0), alpha=1 - beta2_period)
        size_step_count = (state["step"] + 1) // period
        bias_correction2 = 1 - beta2_period**size_step_count
        scale_step = (
            -size_lr
            * bias_correction2**0.5
            * scale_grads.sum(dim=0)
            / (exp_avg_sq.sqrt() + group["eps"])
        )
        param_rms = state["param_rms"]
        scale_step.masked_fill_(param_rms < group["param_min_rms"], 0.0)  # do not shrink further
        scale_step.masked_fill_(param_rms > group["param_max_rms"], -size_lr * period)  # shrink
        state["delta"].add_(p * scale_step, alpha=1 - beta1)

    def _step_tensor(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> None:
        beta1, beta2 = group["betas"]
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (state["step"] + 1)
        if bias_correction2 < 0.99:
            exp_avg_sq = exp_avg_sq * (1.0 / bias_correction2)
        normalized = grad / (exp_avg_sq.sqrt() + group["eps"])
        alpha = -group["lr"] * (1 - beta1) * state["param_rms"].clamp(min=group["param_min_rms"])
        state["delta"].add_(normalized * alpha)
        p.add_(state["delta"])

    def _step_scalar(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> None:
        beta1, beta2 = group["betas"]
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction2 = 1 - beta2 ** (state["step"] + 1)
        denom = (exp_avg_sq / bias_correction2).sqrt() + group["eps"]
        lr = group["lr"] * group["scalar_lr_scale"]
        state["delta"].add_(grad / denom, alpha=-lr * (1 - beta1))
        p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
        p.add_(state["delta"])


class Eden:
    """Learning rate that decays with both batch and epoch:

    ``lr = base_lr * ((b^2 + lr_batches^2) / lr_batches^2)^-0.25
                   * ((e^2 + lr_epochs^2) / lr_epochs^2)^-0.25 * warmup(b)``

    with ``warmup`` rising linearly from ``warmup_start`` (0.5) to 1 over
    ``warmup_batches``.  icefall's Zipformer recipes use lr_batches=7500, lr_epochs=3.5
    (reduce lr_epochs for large data and few epochs).  Call :meth:`step_epoch` with the
    number of finished epochs at the start of an epoch and :meth:`step_batch` after each
    optimiser step (with the global batch index when resuming).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        lr_batches: float,
        lr_epochs: float,
        warmup_batches: float = 500.0,
        warmup_start: float = 0.5,
    ) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.base_lrs = [group["base_lr"] for group in optimizer.param_groups]
        self.lr_batches = float(lr_batches)
        self.lr_epochs = float(lr_epochs)
        self.warmup_batches = float(warmup_batches)
        self.warmup_start = float(warmup_start)
        self.epoch = 0.0
        self.batch = 0.0
        self._set_lrs()

    def factor(self) -> float:
        b, e = self.batch, self.epoch
        batch_factor = ((b**2 + self.lr_batches**2) / self.lr_batches**2) ** -0.25
        epoch_factor = ((e**2 + self.lr_epochs**2) / self.lr_epochs**2) ** -0.25
        if b >= self.warmup_batches:
            warmup = 1.0
        else:
            warmup = self.warmup_start + (1.0 - self.warmup_start) * (b / self.warmup_batches)
        return batch_factor * epoch_factor * warmup

    def get_lr(self) -> list[float]:
        return [base * self.factor() for base in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step_batch(self, batch: float | None = None) -> None:
        self.batch = self.batch + 1 if batch is None else batch
        self._set_lrs()

    def step_epoch(self, epoch: float | None = None) -> None:
        self.epoch = self.epoch + 1 if epoch is None else epoch
        self._set_lrs()

    def _set_lrs(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "base_lrs": list(self.base_lrs),
            "epoch": self.epoch,
            "batch": self.batch,
            "lr_batches": self.lr_batches,
            "lr_epochs": self.lr_epochs,
            "warmup_batches": self.warmup_batches,
            "warmup_start": self.warmup_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = list(state["base_lrs"])
        for key in ("epoch", "batch", "lr_batches", "lr_epochs", "warmup_batches", "warmup_start"):
            setattr(self, key, state[key])
        self._set_lrs()
