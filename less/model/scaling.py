"""Building blocks of the Zipformer that are not plain torch: norms, activations, schedules
and the gradient-shaping modules (Balancer, Whiten) that keep activations well conditioned.

Design notes (why these exist, following Yao et al., ICLR 2024, and icefall's recipes):

* :class:`ScheduledFloat` is a number that changes with the training batch count (dropout,
  layer-skip and constraint strengths anneal during the first few thousand batches).  The
  training loop calls :func:`set_batch_count`; outside training every schedule returns its
  ``default``.
* :class:`BiasNorm` replaces LayerNorm: it normalises by the RMS of ``x - bias`` but returns
  the *un-shifted* ``x`` scaled, so the length information of a frame survives; one learned
  scalar scale.
* SwooshL/SwooshR are ``softplus(x - c) - 0.08 x - k``: non-zero slope for negative inputs so
  no unit "dies".  Their autograd functions keep a uint8-quantised derivative (stochastically
  rounded, so unbiased) instead of the float input: a quarter of the activation memory.
* :class:`Balancer` and :class:`Whiten` are identities in the forward pass.  With some
  probability in training they add a small term to the gradient that pushes per-channel
  statistics (sign balance, RMS) into a range, or pushes the feature covariance toward white.
  They never change a forward value, so eval outputs are unaffected.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)


class PiecewiseLinear:
    """A function of one float given by sorted ``(x, y)`` knots, constant outside them."""

    def __init__(self, *points: tuple[float, float]) -> None:
        if not points:
            raise ValueError("PiecewiseLinear needs at least one (x, y) point")
        self.points = [(float(x), float(y)) for x, y in points]
        xs = [x for x, _ in self.points]
        if any(b <= a for a, b in zip(xs, xs[1:])):
            raise ValueError(f"PiecewiseLinear x values must increase strictly: {xs}")

    def __call__(self, x: float) -> float:
        pts = self.points
        if x <= pts[0][0]:
            return pts[0][1]
        if x >= pts[-1][0]:
            return pts[-1][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if x0 <= x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        raise AssertionError("unreachable")


class ScheduledFloat(nn.Module):
    """A float that follows a piecewise-linear schedule in the training batch count.

    It is an ``nn.Module`` only so that ``model.modules()`` finds it (for
    :func:`set_batch_count`) and ``model.train()/eval()`` reaches it.  Use ``float(obj)``.
    ``default`` is returned in eval mode or before any batch count was set.
    """

    def __init__(self, *points: tuple[float, float], default: float = 0.0) -> None:
        super().__init__()
        self.schedule = PiecewiseLinear(*points)
        self.default = float(default)
        self.batch_count: float | None = None

    def __float__(self) -> float:
        if self.batch_count is None or not self.training:
            return self.default
        return self.schedule(float(self.batch_count))

    def extra_repr(self) -> str:
        return (
            f"points={self.schedule.points}, default={self.default}, batch_count={self.batch_count}"
        )


FloatLike = float | ScheduledFloat


def set_batch_count(model: nn.Module, batch_count: float) -> None:
    """Tell every schedule in ``model`` the current (duration-adjusted) batch count.

    icefall passes ``batch_idx * max_duration * world_size / 600`` so that the schedules,
    tuned for 600 s batches, advance with the amount of audio seen rather than batch count.
    """
    module = getattr(model, "module", model)  # unwrap DDP
    for sub in module.modules():
        if hasattr(sub, "batch_count"):
            sub.batch_count = batch_count


# ----------------------------------------------------------------------------- initialisation


def _scale_init_(module: nn.Module, initial_scale: float) -> None:
    with torch.no_grad():
        module.weight.mul_(initial_scale)
        if module.bias is not None:
            nn.init.uniform_(module.bias, -0.1 * initial_scale, 0.1 * initial_scale)


def ScaledLinear(*args, initial_scale: float = 1.0, **kwargs) -> nn.Linear:  # noqa: N802
    """``nn.Linear`` whose initial weights are multiplied by ``initial_scale``.

    Zipformer output projections start small (e.g. 0.05) so that every residual branch
    begins close to the identity; ScaledAdam then learns the parameter scale explicitly.
    """
    linear = nn.Linear(*args, **kwargs)
    _scale_init_(linear, initial_scale)
    return linear


def ScaledConv2d(*args, initial_scale: float = 1.0, **kwargs) -> nn.Conv2d:  # noqa: N802
    conv = nn.Conv2d(*args, **kwargs)
    _scale_init_(conv, initial_scale)
    return conv


# ----------------------------------------------------------------------------- BiasNorm


class _BiasNormFunction(torch.autograd.Function):
    """``x * rms(x - bias)^-1 * exp(log_scale)``, saving only one tensor of x's size."""

    @staticmethod
    def forward(ctx, x, bias, log_scale, channel_dim: int, store_output: bool):
        bias_b = bias.reshape(bias.shape + (1,) * (x.ndim - 1 - channel_dim))
        scales = ((x - bias_b) ** 2).mean(dim=channel_dim, keepdim=True).rsqrt() * log_scale.exp()
        ans = x * scales
        ctx.channel_dim = channel_dim
        ctx.store_output = store_output
        ctx.save_for_backward(ans.detach() if store_output else x, scales.detach(), bias, log_scale)
        return ans

    @staticmethod
    def backward(ctx, ans_grad):
        saved, scales, bias, log_scale = ctx.saved_tensors
        x = (saved / scales) if ctx.store_output else saved
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            bias = bias.detach().requires_grad_(True)
            log_scale = log_scale.detach().requires_grad_(True)
            bias_b = bias.reshape(bias.shape + (1,) * (x.ndim - 1 - ctx.channel_dim))
            sc = ((x - bias_b) ** 2).mean(
                dim=ctx.channel_dim, keepdim=True
            ).rsqrt() * log_scale.exp()
            grads = torch.autograd.grad(x * sc, (x, bias, log_scale), ans_grad)
        return grads[0], grads[1], grads[2], None, None


class BiasNorm(nn.Module):
    """LayerNorm replacement: RMS computed around a learned bias, scalar learned scale.

    A pre-norm Transformer can "defeat" LayerNorm by parking a huge constant in one channel;
    BiasNorm gives that degree of freedom explicitly (the bias) without discarding the
    vector length, which LayerNorm does.
    """

    def __init__(
        self,
        num_channels: int,
        channel_dim: int = -1,
        log_scale: float = 1.0,
        log_scale_min: float = -1.5,
        log_scale_max: float = 1.5,
        store_output_for_backprop: bool = False,
    ) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))
        self.bias = nn.Parameter(torch.empty(num_channels).normal_(0.0, 1e-4))
        self.log_scale_min = log_scale_min
        self.log_scale_max = log_scale_max
        self.store_output_for_backprop = store_output_for_backprop

    def forward(self, x: Tensor) -> Tensor:
        channel_dim = self.channel_dim % x.ndim
        if x.shape[channel_dim] != self.num_channels:
            raise ValueError(f"BiasNorm expects {self.num_channels} channels, got {tuple(x.shape)}")
        log_scale = limit_param_value(
            self.log_scale, self.log_scale_min, self.log_scale_max, training=self.training
        )
        return _BiasNormFunction.apply(
            x, self.bias, log_scale, channel_dim, self.store_output_for_backprop
        )


# ----------------------------------------------------------------------------- Swoosh

_SWOOSH = {
    # name: (shift inside softplus, constant offset)
    "SwooshL": (4.0, 0.035),
    "SwooshR": (1.0, 0.313261687),
}
# Both derivatives, sigmoid(x - c) - 0.08, lie in (-0.08, 0.92); the quantisation grid
# covers [-0.08, 0.925] so rounding up never overflows uint8.
_DERIV_FLOOR = -0.08
_DERIV_CEIL = 0.925


def swoosh(x: Tensor, name: str) -> Tensor:
    """Plain (autograd-differentiable) Swoosh: ``softplus(x - c) - 0.08 x - k``."""
    shift, offset = _SWOOSH[name]
    # in place on softplus's output (its backward needs only its input): 4 passes, 2 tensors
    return F.softplus(x - shift).add_(x, alpha=-0.08).sub_(offset)


def _swoosh_and_deriv(x: Tensor, name: str) -> tuple[Tensor, Tensor]:
    shift, offset = _SWOOSH[name]
    shifted = x - shift
    y = F.softplus(shifted).add_(x, alpha=-0.08).sub_(offset)
    return y, torch.sigmoid_(shifted).sub_(0.08)


def _quantize_deriv(x: Tensor, shift: float) -> Tensor:
    """uint8 code of ``sigmoid(x - shift) - 0.08`` on the [floor, ceil] grid.

    Adding U[0, 1) before truncation is stochastic rounding: unbiased in expectation.
    """
    scaled = torch.sigmoid(x - shift).mul_(255.0 / (_DERIV_CEIL - _DERIV_FLOOR))
    return scaled.add_(torch.rand_like(scaled)).to(torch.uint8)


def _dequantize_deriv(q: Tensor, dtype: torch.dtype) -> Tensor:
    return q.to(dtype).mul_((_DERIV_CEIL - _DERIV_FLOOR) / 255.0).add_(_DERIV_FLOOR)


class _SwooshFunction(torch.autograd.Function):
    """Swoosh that saves one tensor for backprop.

    On CUDA it saves the uint8-quantised derivative (1 byte per element; memory is the
    limit there).  On CPU, where there is no fused kernel and the quantisation's extra
    passes (random numbers, casts) cost more time than the memory is worth, it saves the
    input and recomputes the derivative, still a single saved tensor.
    """

    @staticmethod
    def forward(ctx, x: Tensor, name: str) -> Tensor:
        shift, offset = _SWOOSH[name]
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        y = F.softplus(xf - shift).add_(xf, alpha=-0.08).sub_(offset)
        ctx.name = name
        ctx.quantized = x.is_cuda
        ctx.save_for_backward(_quantize_deriv(xf, shift) if x.is_cuda else x)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, y_grad: Tensor):
        (saved,) = ctx.saved_tensors
        if ctx.quantized:
            deriv = _dequantize_deriv(saved, y_grad.dtype)
        else:
            deriv = torch.sigmoid(saved - _SWOOSH[ctx.name][0]).sub_(0.08)
        return deriv.mul_(y_grad), None


class SwooshL(nn.Module):
    """``softplus(x - 4) - 0.08 x - 0.035`` ("left" Swoosh: feed-forward modules, ConvNeXt)."""

    def forward(self, x: Tensor) -> Tensor:
        if not x.requires_grad:
            return swoosh(x, "SwooshL")
        return _SwooshFunction.apply(x, "SwooshL")


class SwooshR(nn.Module):
    """``softplus(x - 1) - 0.08 x - 0.313261687`` (zero at 0: conv modules, front end)."""

    def forward(self, x: Tensor) -> Tensor:
        if not x.requires_grad:
            return swoosh(x, "SwooshR")
        return _SwooshFunction.apply(x, "SwooshR")


class _ActivationDropoutLinearFunction(torch.autograd.Function):
    """activation -> dropout -> linear without autograd's intermediate tensors.

    On CUDA it keeps only the input and recomputes the activation in backward (memory is
    the limit there: the hidden layer is the widest tensor of the model).  On CPU, where
    time is the limit and the recomputation costs as many passes over the hidden layer as
    the forward, it keeps the hidden activation and its derivative, both made in one go
    from the shared ``x - shift``.

    ``custom_fwd/custom_bwd`` run the backward under the forward's autocast state, so the
    hand-written matmuls see the same dtypes as the forward did under CUDA AMP.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, bias, activation: str, dropout_p: float, shared_dim: int | None):
        mask = None
        if dropout_p > 0.0:
            shape = list(x.shape)
            if shared_dim is not None:
                shape[shared_dim] = 1
            mask = (torch.rand(shape, device=x.device, dtype=x.dtype) > dropout_p).to(x.dtype)
            mask *= 1.0 / (1.0 - dropout_p)
        ctx.activation = activation
        ctx.recompute = x.is_cuda
        if ctx.recompute:
            hidden = swoosh(x, activation)
            ctx.save_for_backward(x, weight, bias, mask)
        else:
            hidden, deriv = _swoosh_and_deriv(x, activation)
            if mask is not None:
                hidden.mul_(mask)
                deriv.mul_(mask)
            ctx.save_for_backward(hidden, weight, bias, deriv)
        if ctx.recompute and mask is not None:
            hidden = hidden * mask
        return F.linear(hidden, weight, bias)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, out_grad):
        # compute in the dtype the forward's linear produced (bf16/fp16 under autocast);
        # autograd casts each gradient back to its input's dtype
        dtype = out_grad.dtype
        if ctx.recompute:
            x, weight, bias, mask = ctx.saved_tensors
            hidden, deriv = _swoosh_and_deriv(x.to(dtype), ctx.activation)
            if mask is not None:
                mask = mask.to(dtype)
                hidden = hidden * mask
                deriv = deriv * mask
        else:
            hidden, weight, bias, deriv = ctx.saved_tensors
            hidden, deriv = hidden.to(dtype), deriv.to(dtype)
        weight = weight.to(dtype)
        out_flat = out_grad.reshape(-1, out_grad.shape[-1])
        weight_grad = out_flat.t() @ hidden.reshape(-1, hidden.shape[-1])
        bias_grad = out_flat.sum(dim=0) if bias is not None else None
        x_grad = (out_grad @ weight).mul_(deriv)
        return x_grad, weight_grad, bias_grad, None, None, None


class ActivationDropoutAndLinear(nn.Module):
    """Swoosh activation, dropout (mask optionally shared along one dim), then a linear layer.

    Equivalent to ``Sequential(SwooshX, Dropout, ScaledLinear)`` but in training it stores
    only the module input for backprop and recomputes the activation, which roughly halves
    the memory of the feed-forward hidden layer (the widest tensor in the model).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        activation: str = "SwooshL",
        dropout_p: FloatLike = 0.0,
        dropout_shared_dim: int | None = -1,
        initial_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if activation not in _SWOOSH:
            raise ValueError(f"unknown activation {activation!r}; expected one of {list(_SWOOSH)}")
        linear = ScaledLinear(in_channels, out_channels, bias=bias, initial_scale=initial_scale)
        self.weight = linear.weight
        self.register_parameter("bias", linear.bias)
        self.activation = activation
        self.dropout_p = dropout_p
        self.dropout_shared_dim = dropout_shared_dim

    def forward(self, x: Tensor) -> Tensor:
        return swoosh_linear(
            x,
            self.weight,
            self.bias,
            self.activation,
            self.training,
            float(self.dropout_p),
            self.dropout_shared_dim,
        )


def swoosh_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    activation: str,
    training: bool,
    dropout_p: float = 0.0,
    dropout_shared_dim: int | None = None,
) -> Tensor:
    """``linear(dropout(swoosh(x)))``; in training only x is kept for backprop (see
    :class:`ActivationDropoutAndLinear`)."""
    if not training:
        return F.linear(swoosh(x, activation), weight, bias)
    return _ActivationDropoutLinearFunction.apply(
        x, weight, bias, activation, dropout_p, dropout_shared_dim
    )


# ----------------------------------------------------------------------------- dropout


class Dropout2(nn.Module):
    """Dropout with a schedulable rate."""

    def __init__(self, p: FloatLike) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, p=float(self.p), training=self.training)


class Dropout3(nn.Module):
    """Dropout with a schedulable rate and one mask shared along ``shared_dim`` (e.g. time)."""

    def __init__(self, p: FloatLike, shared_dim: int) -> None:
        super().__init__()
        self.p = p
        self.shared_dim = shared_dim

    def forward(self, x: Tensor) -> Tensor:
        p = float(self.p)
        if not self.training or p == 0.0:
            return x
        shape = list(x.shape)
        shape[self.shared_dim] = 1
        mask = (torch.rand(shape, device=x.device) > p).to(x.dtype) * (1.0 / (1.0 - p))
        return x * mask


# ----------------------------------------------------------------------------- gradient tools


class _LimitParamValue(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, low: float, high: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        # flip gradient components that would push x further outside [low, high]
        flip = ((grad > 0) & (x < ctx.low)) | ((grad < 0) & (x > ctx.high))
        return torch.where(flip, -grad, grad), None, None


def limit_param_value(
    x: Tensor, low: float, high: float, prob: float = 0.6, training: bool = True
) -> Tensor:
    """Keep a parameter (mostly) in ``[low, high]`` by reversing outward gradients.

    Applied on a random 60% of batches in training; a no-op otherwise.
    """
    if training and random.random() < prob:
        return _LimitParamValue.apply(x, low, high)
    return x


class _WithLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, aux: Tensor) -> Tensor:
        ctx.aux_shape = aux.shape
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, torch.ones(ctx.aux_shape, dtype=grad.dtype, device=grad.device)


def penalize_abs_values_gt(x: Tensor, limit: float, penalty: float) -> Tensor:
    """Return x; in backprop add the gradient of ``penalty * relu(|x| - limit).sum()``.

    A failsafe against implausibly large attention scores, independent of the loss value.
    """
    over = (x.abs() > limit).to(torch.int8) * x.sign().to(torch.int8)
    return _WithLoss.apply(x, penalty * (over * x))


class _ScaleGradFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.alpha, None


class ScaleGrad(nn.Module):
    """Identity whose gradient is multiplied by ``alpha`` (used right after the first conv)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not x.requires_grad:
            return x
        return _ScaleGradFunction.apply(x, self.alpha)


def _abs_to_rms(mean_abs: float) -> float:
    # for Gaussian data E|x| * sqrt(pi / 2) = rms
    return math.sqrt(math.pi / 2.0) * mean_abs


def _proportion_positive_to_mean(p: float) -> float:
    """mean/stddev that gives P(x > 0) = p for Gaussian data (crude erfinv via atanh)."""
    z = 2.0 * p - 1.0
    eps = 1e-10
    atanh = 0.5 * (math.log(1.0 + z + eps) - math.log(1.0 - z + eps))
    return 0.8139535143 * atanh


def balancer_penalty_direction(
    x: Tensor, limits: tuple[float, float, float, float], channel_dims: list[int]
) -> Tensor:
    """Gradient of the Balancer's penalty, normalised to unit RMS per channel.

    Per channel, with m = mean(x), q = mean(x^2), sd = sqrt(q - m^2), rms = sqrt(q), the
    penalty is ``|m/sd - clamp(m/sd)| + |log(clamp(rms)/rms)|`` (clamped to the limits).  Its
    gradient in x is affine per channel, ``a + b x`` (both terms depend on x only through m
    and q), so it costs two reductions and one pass over x instead of a second autograd
    graph; the 1/N factors cancel in the RMS normalisation.  Returns (a, b) broadcastable
    against x (float32), already divided by the RMS of ``a + b x``.
    """
    min_mean, max_mean, min_rms, max_rms = limits
    dims = [d for d in range(x.ndim) if d not in channel_dims]
    xf = x.float()
    mean = xf.mean(dim=dims, keepdim=True).double()
    mean_sq = (xf * xf).mean(dim=dims, keepdim=True).double()
    var = mean_sq - mean * mean
    var_ok = var > 1e-20  # clamped variance: no gradient through it (as autograd's clamp)
    sd = var.clamp(min=1e-20).sqrt()
    rms_ok = mean_sq > 1e-20
    rms = mean_sq.clamp(min=1e-20).sqrt()
    ratio = mean / sd
    # d|ratio - clamp(ratio)| / d ratio and d|log(clamp(rms) / rms)| / d rms
    mean_slope = (ratio > max_mean).double() - (ratio < min_mean).double()
    rms_slope = ((rms > max_rms).double() - (rms < min_rms).double()) / rms * rms_ok
    # d ratio / dx_i = (1/sd + m^2/sd^3 [if var_ok]) - (m/sd^3 [if var_ok]) x_i   (times 1/N)
    # d rms / dx_i = x_i / rms                                                   (times 1/N)
    inv_sd3 = var_ok / (sd * sd * sd)
    a = mean_slope * (1.0 / sd + mean * mean * inv_sd3)
    b = rms_slope - mean_slope * mean * inv_sd3
    # RMS over the non-channel dims of a + b x: sqrt(a^2 + 2ab m + b^2 q)
    norm = (a * a + 2.0 * a * b * mean + b * b * mean_sq).clamp(min=0.0).sqrt().clamp(min=1e-20)
    return (a / norm).float(), (b / norm).float()


class _BalancerFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        limits: tuple[float, float, float, float],
        grad_scale: float,
        channel_dim: int,
    ):
        ctx.save_for_backward(x)
        ctx.limits, ctx.grad_scale, ctx.channel_dim = limits, grad_scale, channel_dim
        return x.view_as(x)

    @staticmethod
    def backward(ctx, x_grad: Tensor):
        (x,) = ctx.saved_tensors
        a, b = balancer_penalty_direction(x, ctx.limits, [ctx.channel_dim])
        a, b = a * ctx.grad_scale, b * ctx.grad_scale
        grad_f = x_grad.float()
        # scale the correction by |grad| so it is proportionate to each element's gradient
        correction = torch.addcmul(a, x.float(), b).mul_(grad_f.abs())
        return correction.add_(grad_f).to(x_grad.dtype), None, None, None


class Balancer(nn.Module):
    """Identity forward; in backprop nudges each channel's statistics into a range.

    Constraints are on the proportion of positive values (``min/max_positive``) and on the
    mean absolute value (``min/max_abs``), converted to limits on mean/stddev and RMS.  It
    acts with probability ``prob`` per call in training (default 0.5 -> 0.125 over 8k batches).
    """

    def __init__(
        self,
        num_channels: int,
        channel_dim: int,
        min_positive: FloatLike = 0.05,
        max_positive: FloatLike = 0.95,
        min_abs: FloatLike = 0.2,
        max_abs: FloatLike = 100.0,
        grad_scale: FloatLike = 0.04,
        prob: FloatLike | None = None,
    ) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.channel_dim = channel_dim
        self.min_positive, self.max_positive = min_positive, max_positive
        self.min_abs, self.max_abs = min_abs, max_abs
        self.grad_scale = grad_scale
        self.prob = (
            prob if prob is not None else ScheduledFloat((0.0, 0.5), (8000.0, 0.125), default=0.4)
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not x.requires_grad or random.random() >= float(self.prob):
            return x
        channel_dim = self.channel_dim % x.ndim
        assert x.shape[channel_dim] == self.num_channels, (x.shape, self.num_channels)
        limits = (
            _proportion_positive_to_mean(float(self.min_positive)),
            _proportion_positive_to_mean(float(self.max_positive)),
            _abs_to_rms(float(self.min_abs)),
            _abs_to_rms(float(self.max_abs)),
        )
        return _BalancerFunction.apply(x, limits, float(self.grad_scale), channel_dim)


def _group_covariances(x: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Frame-centred x as (groups, frames, per_group) and its covariances (groups, d, d)."""
    x = x.reshape(-1, x.shape[-1])
    frames, channels = x.shape
    per_group = channels // num_groups
    x = x.reshape(frames, num_groups, per_group).transpose(0, 1)
    x = x - x.mean(dim=1, keepdim=True)
    return x, x.transpose(1, 2) @ x


def whitening_metric(x: Tensor, num_groups: int) -> Tensor:
    """>= 1, equal to 1 iff each group's centred covariance is a multiple of I (same for all).

    Computed as mean(diag(C^2)) / mean(diag(C))^2 over groups, C the centred covariance.
    """
    _, covar = _group_covariances(x, num_groups)
    size = covar.shape[0] * covar.shape[1]
    mean_diag = torch.diagonal(covar, dim1=1, dim2=2).sum() / size
    mean_diag_sq = (covar**2).sum() / size
    return mean_diag_sq / (mean_diag**2 + 1e-20)


def whitening_metric_and_direction(x: Tensor, num_groups: int) -> tuple[float, Tensor]:
    """The whitening metric and the direction of its gradient in x (unnormalised).

    With S = sum ||C_g||^2 and T = sum tr(C_g) the metric is proportional to S / T^2, whose
    gradient in the centred features is proportional to ``x_g (C_g - (S/T) I)`` (positive
    factor 4 G d / T^2, irrelevant once the caller rescales it).  The centring adds nothing:
    that product already has zero mean over frames.
    """
    centred, covar = _group_covariances(x, num_groups)
    size = covar.shape[0] * covar.shape[1]
    trace = torch.diagonal(covar, dim1=1, dim2=2).sum()
    sum_sq = (covar**2).sum()
    metric = float(sum_sq / size) / (float(trace / size) ** 2 + 1e-20)
    eye = torch.eye(covar.shape[1], dtype=covar.dtype, device=covar.device)
    direction = centred @ (covar - (sum_sq / trace.clamp(min=1e-20)) * eye)  # (G, frames, d)
    return metric, direction.transpose(0, 1).reshape(x.shape)


class _WhitenFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, module: Whiten) -> Tensor:
        ctx.save_for_backward(x)
        ctx.module = module
        return x.view_as(x)

    @staticmethod
    def backward(ctx, x_grad: Tensor):
        (x,) = ctx.saved_tensors
        w: Whiten = ctx.module
        metric, penalty_grad = whitening_metric_and_direction(x.detach().float(), w.num_groups)
        if metric < float(w.whitening_limit):
            w.prob.fill_(w.min_prob)  # satisfied: check less often
            return x_grad, None
        w.prob.fill_(w.max_prob)
        scale = float(w.grad_scale) * x_grad.float().norm() / (penalty_grad.norm() + 1e-20)
        return x_grad + (penalty_grad * scale).to(x_grad.dtype), None


class Whiten(nn.Module):
    """Identity forward; in backprop, when the whitening metric exceeds ``whitening_limit``,
    adds a gradient (``grad_scale`` of the incoming gradient's norm) that whitens x.

    Checked with probability ``max_prob`` while violated, ``min_prob`` while satisfied.
    """

    def __init__(
        self,
        num_groups: int,
        whitening_limit: FloatLike,
        prob: float | tuple[float, float],
        grad_scale: FloatLike,
    ) -> None:
        super().__init__()
        self.num_groups = num_groups
        self.whitening_limit = whitening_limit
        self.grad_scale = grad_scale
        self.min_prob, self.max_prob = (prob, prob) if isinstance(prob, float) else prob
        # Adapts while training (see _WhitenFunction): a buffer, so checkpoints carry it and a
        # resumed run continues exactly where an uninterrupted one would be.
        self.register_buffer("prob", torch.tensor(float(self.max_prob)))

    def forward(self, x: Tensor) -> Tensor:
        if (
            not self.training
            or not x.requires_grad
            or float(self.grad_scale) == 0.0
            or random.random() > float(self.prob)
        ):
            return x
        return _WhitenFunction.apply(x, self)


def whitening_schedule(start: float, ratio: float = 2.0) -> ScheduledFloat:
    """Whitening limit that relaxes from ``start`` to ``ratio * start`` over 20k batches."""
    return ScheduledFloat((0.0, start), (20000.0, ratio * start), default=start)


def convert_num_channels(x: Tensor, num_channels: int) -> Tensor:
    """Truncate or zero-pad the last dim to ``num_channels`` (stacks differ in width)."""
    if num_channels <= x.shape[-1]:
        return x[..., :num_channels]
    pad = torch.zeros(*x.shape[:-1], num_channels - x.shape[-1], dtype=x.dtype, device=x.device)
    return torch.cat((x, pad), dim=-1)


def to_tuple(value: int | Sequence[int], length: int) -> tuple[int, ...]:
    """An int, or a sequence of 1 or ``length`` ints, as a tuple of ``length`` ints."""
    if isinstance(value, int):
        return (value,) * length
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * length
    if len(value) != length:
        raise ValueError(f"expected 1 or {length} values, got {value}")
    return value
