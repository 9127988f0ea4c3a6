"""Checkpoint averaging: --avg is the arithmetic mean; --use-averaged-model the mean over batches."""

import copy

import pytest
import torch

from less.checkpoint import (
    average_state_dicts,
    averaged_model_state,
    batch_checkpoints,
    latest_checkpoint,
    remove_old_checkpoints,
    save_checkpoint,
    update_averaged_model,
)


def toy_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    model[1].num_batches_tracked += seed  # an integer buffer
    return model


def test_average_is_arithmetic_mean_of_epochs(tmp_path):
    models = [toy_model(s) for s in range(1, 5)]
    for epoch, model in enumerate(models, 1):
        save_checkpoint(
            tmp_path / f"epoch-{epoch}.pt",
            model=model.state_dict(),
            model_avg=None,
            train_state={"batch_idx_train": epoch * 10},
            config={"x": epoch},
        )
    state, config = averaged_model_state(tmp_path, epoch=4, avg=3, use_averaged_model=False)
    for name in ("0.weight", "0.bias", "1.running_mean"):
        expected = sum(m.state_dict()[name] for m in models[1:]) / 3
        torch.testing.assert_close(state[name], expected)
    assert int(state["1.num_batches_tracked"]) == int(models[-1][1].num_batches_tracked)
    assert config == {"x": 4}
    single, _ = averaged_model_state(tmp_path, epoch=2, avg=1, use_averaged_model=False)
    torch.testing.assert_close(single["0.weight"], models[1].state_dict()["0.weight"])
    with pytest.raises(ValueError, match="epoch-0.pt cannot exist"):
        averaged_model_state(tmp_path, epoch=2, avg=3, use_averaged_model=False)


def simulate_training(
    tmp_path, average_period: int, batches_per_epoch: int, epochs: int
) -> tuple[list, list]:
    """Epoch checkpoints of a random walk with the running average; returns the models sampled
    into the average (with their batch) and the model at the end of every epoch."""
    model = toy_model(0)
    model_avg = copy.deepcopy(model).to(torch.float64)
    sampled, at_epoch_end, batch = [], [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(batches_per_epoch):
            batch += 1
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p))
            if batch % average_period == 0:
                update_averaged_model(model_avg, model, average_period, batch)
                sampled.append((batch, model.state_dict()["0.weight"].clone()))
        at_epoch_end.append(model.state_dict()["0.weight"].clone())
        save_checkpoint(
            tmp_path / f"epoch-{epoch}.pt",
            model=model.state_dict(),
            model_avg=model_avg.state_dict(),
            train_state={"batch_idx_train": batch},
            config={"average_period": average_period},
        )
    return sampled, at_epoch_end


def test_averaged_model_gives_mean_over_batches_between_epochs(tmp_path):
    """Simulated training: the running average turns into the mean of the models sampled
    every average_period batches between the two epoch checkpoints."""
    sampled, _ = simulate_training(tmp_path, average_period=2, batches_per_epoch=6, epochs=3)
    state, _ = averaged_model_state(tmp_path, epoch=3, avg=2, use_averaged_model=True)
    # epochs 2..3 are batches 7..18: the sampled models at batches 8, 10, ..., 18
    expected = torch.stack([w for _, w in sampled[3:]]).mean(0)
    torch.testing.assert_close(state["0.weight"].float(), expected, rtol=1e-5, atol=1e-5)
    # with nothing before epoch 1, the running average itself is the mean since the start
    state, _ = averaged_model_state(tmp_path, epoch=3, avg=3, use_averaged_model=True)
    expected = torch.stack([w for _, w in sampled]).mean(0)
    torch.testing.assert_close(state["0.weight"].float(), expected, rtol=1e-5, atol=1e-5)


def test_averaged_model_when_epochs_do_not_end_on_the_period(tmp_path):
    """Epoch ends between two samples: the mean is over the samples inside the window (icefall's
    weighting by batch count would mix in the samples before it with a negative weight)."""
    sampled, _ = simulate_training(tmp_path, average_period=4, batches_per_epoch=7, epochs=5)
    state, _ = averaged_model_state(tmp_path, epoch=5, avg=3, use_averaged_model=True)
    inside = [w for batch, w in sampled if 14 < batch <= 35]  # epochs 3..5: batches 15..35
    assert len(inside) == 5
    torch.testing.assert_close(
        state["0.weight"].float(), torch.stack(inside).mean(0), rtol=1e-5, atol=1e-5
    )


def test_epochs_shorter_than_the_period_average_the_epoch_checkpoints(tmp_path):
    """A student fine-tuned for a few short epochs: 41 batches per epoch, one sample every 200
    batches. The running average holds 1 model over the last 5 epochs, so the decoder
    averages the 5 epoch checkpoints (the batch-weighted formula gave 1.6 x model - 0.6 x init)."""
    sampled, at_epoch_end = simulate_training(
        tmp_path, average_period=200, batches_per_epoch=41, epochs=8
    )
    assert len(sampled) == 1
    state, _ = averaged_model_state(tmp_path, epoch=8, avg=5, use_averaged_model=True)
    torch.testing.assert_close(state["0.weight"], torch.stack(at_epoch_end[3:]).mean(0))
    # no sample at all yet (the average is still the initial model): the epochs again
    state, _ = averaged_model_state(tmp_path, epoch=4, avg=5, use_averaged_model=True)
    torch.testing.assert_close(state["0.weight"], torch.stack(at_epoch_end[:4]).mean(0))


def test_average_state_dicts_rejects_empty():
    with pytest.raises(ValueError):
        average_state_dicts([])


def test_keep_last_k_and_latest(tmp_path):
    for n in (10, 20, 30, 40):
        save_checkpoint(tmp_path / f"checkpoint-{n}.pt", train_state={"batch_idx_train": n})
    save_checkpoint(tmp_path / "epoch-1.pt", train_state={"batch_idx_train": 35})
    (tmp_path / "checkpoint-x.pt").write_text("not ours")
    remove_old_checkpoints(tmp_path, keep_last_k=2)
    assert [p.name for p in batch_checkpoints(tmp_path)] == ["checkpoint-30.pt", "checkpoint-40.pt"]
    assert latest_checkpoint(tmp_path).name == "checkpoint-40.pt"
    (tmp_path / "checkpoint-40.pt").write_bytes(b"truncated")
    assert latest_checkpoint(tmp_path).name == "epoch-1.pt"


class _Payload:
    """Unpickling this would run code: a checkpoint must never be allowed to carry it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_checkpoints_load_weights_only_and_refuse_pickled_objects(tmp_path):
    import pickle
    import random

    import numpy as np
    import torch

    from less.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

    # RNG states are tensors and plain numbers now: a round trip restores every generator
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    save_checkpoint(tmp_path / "new.pt", model={"w": torch.ones(2)}, rng=rng_state())
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(load_checkpoint(tmp_path / "new.pt")["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected

    # checkpoints written before (numpy's state pickled as an array) still load
    torch.save(
        {"model": {"w": torch.ones(2)}, "rng": {"numpy": np.random.get_state()}},
        tmp_path / "old.pt",
    )
    assert load_checkpoint(tmp_path / "old.pt")["rng"]["numpy"][0] == "MT19937"

    torch.save({"model": {"w": torch.ones(2)}, "extra": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")


def test_inference_arguments_set_threads_and_resolve_auto():
    import argparse

    from less.checkpoint import add_inference_arguments, inference_device

    p = argparse.ArgumentParser()
    add_inference_arguments(p, max_duration=200.0, device="cpu")
    args = p.parse_args([])
    assert (args.max_duration, args.device, args.num_threads) == (200.0, "cpu", 0)
    before = torch.get_num_threads()
    try:
        args = p.parse_args(["--device", "auto", "--num-threads", "1"])
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert inference_device(args).type == expected and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
