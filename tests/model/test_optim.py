"""Tests of ScaledAdam and the Eden schedule."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from less.model.optim import Eden, ScaledAdam

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(torch.nn.Module):
    """Same-shaped tensors (batched together), a scalar, and assorted other shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = torch.nn.Linear(6, 16)
        self.layer2 = torch.nn.Linear(16, 16)
        self.layer3 = torch.nn.Linear(16, 16)
        self.out = torch.nn.Linear(16, 1)
        self.gain = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.layer1(x))
        x = torch.tanh(self.layer2(x)) + x
        x = torch.tanh(self.layer3(x)) + x
        return self.out(x) * self.gain


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, :1] * 1.5 - x[:, 1:2] * x[:, 2:3]).tanh()
    return x, y


def train_steps(model, optimizer, scheduler, x, y, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step_batch()
        losses.append(loss.item())
    return losses


def test_scaled_adam_decreases_the_loss():
    torch.manual_seed(0)
    model = Net()
    optimizer = ScaledAdam(model.named_parameters(), lr=0.03, clipping_update_period=20)
    scheduler = Eden(optimizer, lr_batches=500, lr_epochs=4, warmup_batches=20)
    x, y = make_data()
    losses = train_steps(model, optimizer, scheduler, x, y, 300)
    assert losses[-1] < 0.1 * losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_scaled_adam_accepts_plain_parameters_and_groups():
    model = Net()
    ScaledAdam(model.parameters())
    from_module = ScaledAdam(model)  # a module stands for its named parameters
    assert from_module.param_groups[0]["param_names"][0] == "gain"
    optimizer = ScaledAdam(
        [
            {"params": list(model.layer1.parameters()), "lr": 0.01},
            {"params": list(model.out.parameters())},
        ],
        lr=0.02,
    )
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.02]
    with pytest.raises(ValueError):
        ScaledAdam(model.parameters(), betas=(0.99, 0.9))


def test_update_is_relative_to_parameter_scale():
    """Tensors of different scales move by the same relative amount per step."""
    small = torch.nn.Parameter(torch.randn(50, 50) * 0.01)
    large = torch.nn.Parameter(torch.randn(50, 50) * 1.0)
    optimizer = ScaledAdam([small, large], lr=0.01, clipping_scale=None)
    before = [small.detach().clone(), large.detach().clone()]
    (small.sum() + large.sum()).backward()
    optimizer.step()
    rel = [((p.detach() - b).norm() / b.norm()).item() for p, b in zip((small, large), before)]
    assert rel[0] == pytest.approx(rel[1], rel=0.05)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def _second_moments(optimizer) -> torch.Tensor:
    return torch.cat([s["exp_avg_sq"].flatten() for s in optimizer.state.values()])


def test_clipping_limits_a_huge_gradient():
    torch.manual_seed(0)
    model = Net()
    optimizer = ScaledAdam(
        model.named_parameters(), lr=0.02, clipping_scale=2.0, clipping_update_period=10
    )
    x, y = make_data()
    train_steps(model, optimizer, None, x, y, 25)  # a median gradient norm is now known

    def clone(clipping_scale):
        m = copy.deepcopy(model)
        opt = ScaledAdam(m.named_parameters(), lr=0.02, clipping_update_period=10)
        opt.load_state_dict(optimizer.state_dict())
        for group in opt.param_groups:
            group["clipping_scale"] = clipping_scale
        return m, opt

    def step_change(m, opt, loss_scale: float) -> float:
        before = _flat(m)
        loss = ((m(x) - y) ** 2).mean() * loss_scale
        opt.zero_grad()
        loss.backward()
        opt.step()
        return (_flat(m) - before).norm().item()

    reference_model, reference = clone(2.0)
    normal_change = step_change(reference_model, reference, 1.0)

    results = {}
    for name, clipping_scale in (("clipped", 2.0), ("unclipped", None)):
        m, opt = clone(clipping_scale)
        moments_before = _second_moments(opt)
        huge = step_change(m, opt, 1e6)
        growth = (_second_moments(opt) / (moments_before + 1e-30)).max().item()
        after = step_change(m, opt, 1.0)  # the next ordinary step
        results[name] = (opt.last_clipping_scale, huge, growth, after)

    clip_factor, huge, growth, after = results["clipped"]
    assert clip_factor == 1.0  # the ordinary step after it is not clipped
    assert huge < 3.0 * normal_change  # the huge gradient moved parameters like a normal one
    assert growth < 10.0  # Adam statistics are not polluted ...
    assert after > 0.3 * normal_change  # ... so training goes on at its normal pace
    _, _, growth, _ = results["unclipped"]
    assert growth > 1e6  # without clipping the second moments explode (updates then stall)


# clipping_scale=1: about half the steps are clipped, so clipping state matters on resume
RESUME_ARGS = dict(clipping_scale=1.0, clipping_update_period=8, size_update_period=3)


def run_and_snapshot(steps_before: int, steps_after: int, resume: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model = Net()
    optimizer = ScaledAdam(model.named_parameters(), lr=0.03, **RESUME_ARGS)
    scheduler = Eden(optimizer, lr_batches=50, lr_epochs=2, warmup_batches=10)
    x, y = make_data()
    scheduler.step_epoch(0)
    train_steps(model, optimizer, scheduler, x, y, steps_before)
    if resume:  # save everything, rebuild from scratch, load: like a killed and restarted trainer
        buffer = io.BytesIO()
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            buffer,
        )
        buffer.seek(0)
        checkpoint = torch.load(buffer)
        torch.manual_seed(123)  # a different init that the checkpoint must overwrite
        model = Net()
        model.load_state_dict(checkpoint["model"])
        optimizer = ScaledAdam(model.named_parameters(), lr=0.03, **RESUME_ARGS)
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler = Eden(optimizer, lr_batches=50, lr_epochs=2, warmup_batches=10)
        scheduler.load_state_dict(checkpoint["scheduler"])
    scheduler.step_epoch(1)
    train_steps(model, optimizer, scheduler, x, y, steps_after)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_state_dict_round_trip_gives_identical_steps():
    # 21 steps: clipping statistics, size updates and warm-up are all mid-period
    uninterrupted = run_and_snapshot(21, 30, resume=False)
    resumed = run_and_snapshot(21, 30, resume=True)
    assert torch.equal(uninterrupted, resumed)


def test_eden_known_values():
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = ScaledAdam([param], lr=0.045)
    scheduler = Eden(optimizer, lr_batches=7500, lr_epochs=3.5, warmup_batches=500)

    def lr_at(batch, epoch):
        scheduler.step_epoch(epoch)
        scheduler.step_batch(batch)
        return scheduler.get_last_lr()[0]

    assert lr_at(0, 0) == pytest.approx(0.0225)  # warm-up starts at half
    assert lr_at(250, 0) == pytest.approx(0.045 * 0.75 * (1 + 250**2 / 7500**2) ** -0.25)
    assert lr_at(250, 0) == pytest.approx(0.0337406, abs=1e-6)
    assert lr_at(7500, 0) == pytest.approx(0.045 * 2**-0.25)  # 0.0378403
    assert lr_at(7500, 3.5) == pytest.approx(0.045 * 0.5**0.5)  # 0.0318198
    assert lr_at(30000, 10) == pytest.approx(0.045 * 17**-0.25 * (1 + (10 / 3.5) ** 2) ** -0.25)
    assert optimizer.param_groups[0]["lr"] == scheduler.get_last_lr()[0]

    state = scheduler.state_dict()
    other = Eden(
        ScaledAdam([torch.nn.Parameter(torch.zeros(3))], lr=0.045), lr_batches=1, lr_epochs=1
    )
    other.load_state_dict(state)
    assert other.get_last_lr() == scheduler.get_last_lr()
    assert (other.batch, other.epoch) == (30000, 10)
