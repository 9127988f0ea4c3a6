"""BEST-RQ / BiRQ pretraining (less.ssl, less.bin.ssl_pretrain) and fine-tuning from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lhotse import CutSet
from lhotse.dataset.collation import collate_features

from less.bin import ssl_pretrain
from less.bin import train as train_cli
from less.checkpoint import load_checkpoint
from less.model import ScaledAdam, output_lengths, set_batch_count
from less.ssl import trainer as ssl_trainer
from less.ssl.masking import expected_mask_fraction, mask_input, span_mask
from less.ssl.model import SslModel, SslObjectiveConfig
from less.ssl.quantizer import (
    RandomProjectionQuantizer,
    code_perplexity,
    normalize_features,
    stack_input_frames,
    valid_mask,
)
from less.ssl.trainer import collapse_warning
from tests.helpers import SMALL_ZIPFORMER as SMALL
from tests.helpers import flags, ssl_args


def load_batch(mini_data: Path, split: str, count: int, max_seconds: float = 6.0):
    cuts = CutSet.from_file(mini_data / "fbank" / f"mini-asr_cuts_{split}.jsonl.gz")
    chosen = [c for c in cuts if c.duration <= max_seconds][:count]
    return collate_features(CutSet.from_cuts(chosen))


def test_anchor_labels_are_deterministic_for_a_seed():
    x = torch.randn(2, 30, 320)
    a, b, other = (RandomProjectionQuantizer(320, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.codes(x), b.codes(x))
    assert float((a.codes(x) != other.codes(x)).float().mean()) > 0.9
    # frozen: buffers (saved, restored), never parameters
    assert not list(a.parameters()) and {"projection", "codebook"} <= set(a.state_dict())
    assert torch.allclose(a.codebook.norm(dim=-1), torch.ones(1, 8192))
    model = SslModel(SslObjectiveConfig(quantizer_seed=7), "xs", SMALL)
    again = SslModel(SslObjectiveConfig(quantizer_seed=7), "xs", SMALL)
    feats, lens = torch.randn(2, 200, 80), torch.tensor([200, 150])
    n = int(output_lengths(lens).max())
    assert torch.equal(model.anchor_codes(feats, lens, n), again.anchor_codes(feats, lens, n))


def test_normalisation_spreads_the_labels_over_the_codebook(mini_data: Path):
    feats, lens = load_batch(mini_data, "train_sup", 8)
    quantizer = RandomProjectionQuantizer(320, seed=0)
    num = int(output_lengths(lens).max())
    real = valid_mask(output_lengths(lens), num)
    perplexity = {}
    for mode in ("utterance", "batch", "none"):
        codes = quantizer.codes(stack_input_frames(normalize_features(feats, lens, mode), num))
        perplexity[mode] = code_perplexity(codes, real, 8192)
    frames = int(real.sum())
    # hundreds of codes over a few hundred frames vs a collapsed handful
    assert perplexity["utterance"] > 0.15 * frames and perplexity["batch"] > 0.15 * frames, (
        perplexity,
        frames,
    )
    assert perplexity["none"] < 30 and perplexity["utterance"] > 5 * perplexity["none"], perplexity


@pytest.mark.parametrize("prob, span", [(0.04, 10), (0.1, 3), (0.01, 40)])
def test_masked_fraction_matches_the_flags(prob: float, span: int):
    gen = torch.Generator().manual_seed(0)
    lens = torch.full((64,), 2000)
    mask = span_mask(lens, 2000, prob, span, gen)
    assert float(mask.float().mean()) == pytest.approx(
        expected_mask_fraction(prob, span), abs=0.015
    )
    # spans: every masked run is at least `span` long, except one cut by the end
    runs = torch.diff(torch.nn.functional.pad(mask.int(), (1, 1)), dim=1)
    starts, ends = (runs == 1).nonzero(), (runs == -1).nonzero()
    inside = ends[:, 1] < 2000
    assert bool(((ends[:, 1] - starts[:, 1])[inside] >= span).all())


def test_masked_input_frames_become_quiet_noise():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 403, 80) * 2 + 7
    lens = torch.tensor([403, 300])
    label_lens = output_lengths(lens)
    mask = span_mask(label_lens, int(label_lens.max()), 0.1, 5, gen)
    out = mask_input(feats, lens, mask, 0.1, gen)
    changed = (out != feats).any(dim=-1)
    expected = torch.zeros_like(changed)
    for b in range(2):
        for j in mask[b].nonzero().flatten().tolist():
            expected[b, 4 * j + 3 : 4 * j + 7] = True
    expected &= valid_mask(lens, 403)
    assert torch.equal(changed, expected)
    utterance_mean = feats[0, :403].mean(dim=0)
    assert float((out[0][expected[0]] - utterance_mean).abs().mean()) < 0.5


def test_enhanced_labels_pass_gradients_into_the_lower_stacks():
    torch.manual_seed(0)
    feats, lens = torch.randn(2, 300, 80), torch.tensor([300, 260])
    n = int(output_lengths(lens).max())
    model = SslModel(
        SslObjectiveConfig(
            method="birq", enhanced_stack=2, codebook_size=64, enhanced_codebook_size=64
        ),
        "xs",
        SMALL,
    )
    # the enhanced loss through the labels alone: a fixed prediction, the labels as the only variable
    stacked = model.enhanced_features(feats, lens, n)
    codes, one_hot = model.enhanced_quantizer.gumbel_select(
        stacked, 0.5, torch.Generator().manual_seed(0)
    )
    fixed_log_probs = torch.randn(64).log_softmax(-1)
    (-(one_hot * fixed_log_probs).sum()).backward()
    lower = model.encoder.encoders[0].layers[0].feed_forward1.in_proj.weight
    assert lower.grad is not None and float(lower.grad.abs().sum()) > 0
    assert float(model.encoder_embed.out.weight.grad.abs().sum()) > 0
    assert all(
        p.grad is None for p in model.encoder.encoders[3].parameters()
    )  # above the label stack
    assert torch.equal(
        codes[0], model.enhanced_quantizer.codes(stacked.detach())[0]
    )  # hard labels = nearest

    # the whole objective with the anchoring term off: the label path changes the lower-stack gradient
    grads = {}
    for label_grad in (True, False):
        model.zero_grad()
        model.objective.enhanced_label_grad = label_grad
        model.objective.anchor_weight = 0.0
        torch.manual_seed(1)
        out = model(
            feats, lens, torch.Generator().manual_seed(2), batch_count=1e4
        )  # past the warm-up
        out["loss"].backward()
        grads[label_grad] = lower.grad.clone()
    assert not torch.allclose(grads[True], grads[False])
    # anchoring labels are plain integers computed without gradient
    assert not model.anchor_codes(feats, lens, n).requires_grad


def test_enhanced_labels_start_after_a_best_rq_phase():
    objective = SslObjectiveConfig(
        method="birq",
        enhanced_start_batches=100,
        enhanced_warmup_batches=50,
        codebook_size=64,
        enhanced_codebook_size=64,
    )
    assert [objective.enhanced_scale(b) for b in (0, 99, 125, 150, 1000)] == [
        0.0,
        0.0,
        0.5,
        1.0,
        1.0,
    ]
    assert objective.gumbel_temperature(0) == 1.0 and objective.gumbel_temperature(
        1e9
    ) == pytest.approx(0.5)
    model = SslModel(objective, "xs", SMALL)
    feats, lens = torch.randn(2, 200, 80), torch.tensor([200, 180])
    before = model(feats, lens, torch.Generator().manual_seed(0), batch_count=50)
    after = model(feats, lens, torch.Generator().manual_seed(0), batch_count=125)
    assert "enhanced_loss" not in before and torch.equal(before["loss"], before["anchor_loss"])
    assert float(after["loss"]) == pytest.approx(
        float(after["anchor_loss"] + 0.5 * after["enhanced_loss"]), rel=1e-5
    )
    # a penalty schedule: the anchor weight grows geometrically once the enhanced labels start
    grows = SslObjectiveConfig(
        method="birq",
        enhanced_start_batches=100,
        anchor_weight=1.0,
        anchor_weight_end=16.0,
        anchor_weight_batches=400,
    )
    assert [grows.anchor_scale(b) for b in (0, 100, 200, 300, 500, 10**6)] == pytest.approx(
        [1, 1, 2, 4, 16, 16]
    )
    assert objective.anchor_scale(10**6) == 1.0  # constant without it
    with pytest.raises(ValueError, match="anchor_weight > 0"):
        SslObjectiveConfig(method="birq", anchor_weight=0.0, anchor_weight_end=4.0)


def test_momentum_labels_get_no_gradient_and_follow_the_encoder():
    torch.manual_seed(0)
    objective = SslObjectiveConfig(
        method="birq",
        codebook_size=64,
        enhanced_codebook_size=64,
        anchor_weight=0.0,
        enhanced_label_source="ema",
        ema_decay=0.75,
        enhanced_start_batches=10,
    )
    model = SslModel(objective, "xs", SMALL)
    generator = model.label_generator_parameters()
    assert generator and not any(p.requires_grad for p in generator)
    assert not any(
        k.startswith("ema_") for k in model.encoder_state()
    )  # fine-tuning takes the online encoder
    feats, lens = torch.randn(2, 300, 80), torch.tensor([300, 260])
    out = model(feats, lens, torch.Generator().manual_seed(2), batch_count=1e4)
    assert not model.enhanced_features(feats, lens, int(output_lengths(lens).max())).requires_grad
    out["loss"].backward()
    assert all(p.grad is None for p in generator)
    online = model.encoder.encoders[0].layers[0].feed_forward1.in_proj.weight
    assert float(online.grad.abs().sum()) > 0  # the online encoder learns through its predictions
    ema = model.ema_encoder.encoders[0].layers[0].feed_forward1.in_proj.weight
    with torch.no_grad():
        online.add_(1.0)
    model.update_label_generator(batch_count=5)  # before the enhanced labels start: a plain copy
    assert torch.equal(ema, online)
    with torch.no_grad():
        online.add_(1.0)
    before = ema.clone()
    model.update_label_generator(batch_count=10)  # from then on a moving average
    assert torch.allclose(ema, 0.75 * before + 0.25 * online)
    with pytest.raises(ValueError, match="enhanced label source"):
        SslObjectiveConfig(method="birq", enhanced_label_source="teacher")


def enhanced_perplexity_curve(
    feats, lens, anchor_weight: float, seed: int, steps: int, **objective_args
) -> list[float]:
    torch.manual_seed(seed)
    objective = SslObjectiveConfig(
        method="birq",
        codebook_size=256,
        enhanced_codebook_size=256,
        anchor_weight=anchor_weight,
        gumbel_temp_start=0.1,
        gumbel_temp_end=0.1,
        enhanced_start_batches=0,
        **objective_args,
    )
    model = SslModel(objective, "xs", SMALL)
    optimizer = ScaledAdam(
        [(n, p) for n, p in model.named_parameters() if p.requires_grad], lr=0.045
    )
    num = int(output_lengths(lens).max())
    real = valid_mask(output_lengths(lens), num)
    curve = []
    for step in range(steps):
        model.train()
        set_batch_count(model, 10000.0)  # past the layer-skip warm-up: every layer is used
        model(feats, lens, torch.Generator().manual_seed(step), batch_count=1e4)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        model.update_label_generator(1e4)
        with torch.no_grad():
            codes = model.enhanced_quantizer.codes(model.enhanced_features(feats, lens, num))
        curve.append(code_perplexity(codes, real, 256))
    return curve


@pytest.mark.slow
def test_anchoring_slows_the_collapse_of_enhanced_labels(mini_data: Path):
    """Labels the model makes for itself are easiest to predict when they are constant: with a
    low Gumbel temperature (strong gradient through the labels) they collapse within a few
    steps.  The anchoring (BEST-RQ) loss keeps the lower stacks informative and slows that."""
    torch.set_num_threads(1)
    feats, lens = load_batch(mini_data, "unsup_wild", 6, max_seconds=5.0)
    late_free, late_anchored = [], []
    for seed in (0, 1, 2):
        free = enhanced_perplexity_curve(feats, lens, 0.0, seed, 16)
        anchored = enhanced_perplexity_curve(feats, lens, 10.0, seed, 16)
        assert free[-1] < 0.5 * free[0], free  # collapse happens
        late_free.append(sum(free[8:]) / 8)
        late_anchored.append(sum(anchored[8:]) / 8)
        assert late_anchored[-1] > late_free[-1], (seed, free, anchored)
    # over the three seeds, the anchored labels keep well over 1.5x the codes in the late steps
    assert sum(late_anchored) > 1.5 * sum(late_free), (late_free, late_anchored)
    # momentum labels, no anchoring: the encoder moves as fast (a fast momentum of 0.9), but nothing
    # pulls the labels towards predictability, and they stay spread where the online ones collapsed
    momentum = enhanced_perplexity_curve(
        feats, lens, 0.0, 0, 16, enhanced_label_source="ema", ema_decay=0.9
    )
    assert min(momentum) > 0.5 * momentum[0], momentum
    assert sum(momentum[8:]) / 8 > 2 * late_free[0], (momentum, late_free[0])


def test_collapse_warning_names_the_perplexities_and_the_remedies():
    assert (
        collapse_warning({"anchor_ppl": 380.0}) is None
    )  # BEST-RQ, or BiRQ before its enhanced labels
    assert collapse_warning({"anchor_ppl": 380.0, "enhanced_ppl": 160.0}) is None
    assert collapse_warning({"anchor_ppl": 380.0, "enhanced_ppl": 40.0}) is None  # just above 0.1 x
    message = collapse_warning({"anchor_ppl": 380.0, "enhanced_ppl": 2.9})
    assert message is not None and "2.9" in message and "380.0" in message
    assert "--anchor-weight" in message and "--label-grad-scale" in message
    assert collapse_warning({"anchor_ppl": 380.0, "enhanced_ppl": 40.0}, ratio=0.2) is not None


def pretrain_args(data: Path, exp_dir: Path, *extra: str) -> list[str]:
    return [
        *ssl_args(
            "birq",
            exp_dir,
            train_cuts=str(data / "fbank" / "mini-asr_cuts_unsup_wild.jsonl.gz"),
            max_duration="6",
            max_cut_duration="10",
            codebook_size="128",
            enhanced_codebook_size="128",
            log_interval="1",
            seed="3",
            enhanced_start_batches="0",
            enhanced_warmup_batches="2",
        ),
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["online", "ema"])
def test_pretraining_resumes_exactly(mini_data: Path, tmp_path: Path, monkeypatch, labels: str):
    torch.set_num_threads(1)
    monkeypatch.setattr(
        ssl_trainer, "COLLAPSE_RATIO", 1e6
    )  # every window "collapses": the warning is wired
    straight = tmp_path / "straight"
    args = (
        *flags(
            num_epochs="2",
            max_batches_per_epoch="3",
            save_every_n="2",
            enhanced_label_source=labels,
        ),
    )
    ssl_pretrain.main(pretrain_args(mini_data, straight, *args))
    final = load_checkpoint(straight / "epoch-2.pt")
    assert final["train_state"]["batch_idx_train"] == 6
    for kept in ("checkpoint-2.pt", "epoch-1.pt", "checkpoint-4.pt"):
        resumed = tmp_path / f"resumed-{kept}"
        resumed.mkdir()
        shutil.copy(straight / kept, resumed / kept)
        ssl_pretrain.main(pretrain_args(mini_data, resumed, *args))
        again = load_checkpoint(resumed / "epoch-2.pt")["model"]
        assert all(torch.equal(again[k], final["model"][k]) for k in final["model"]), kept
    ema_keys = [k for k in final["model"] if k.startswith("ema_")]
    assert bool(ema_keys) == (
        labels == "ema"
    )  # the label generator is in the checkpoint, resumed with it
    if labels == "ema":  # and it moved away from its initial copy
        start = load_checkpoint(straight / "checkpoint-2.pt")["model"]
        assert any(not torch.equal(start[k], final["model"][k]) for k in ema_keys)
    log_text = next((straight / "log").glob("log-ssl-*.txt")).read_text()
    assert "anchor_ppl" in log_text and "enhanced_ppl" in log_text
    assert log_text.count("enhanced labels are collapsing") == 2  # once per epoch, not per window
    assert (straight / "tensorboard").is_dir()


@pytest.mark.slow
def test_pretrained_encoder_initialises_training(mini_data: Path, tmp_path: Path):
    """ssl_pretrain -> train --init-encoder-from loads exactly the encoder tensors."""
    from less.training import Trainer

    torch.set_num_threads(1)
    ssl_dir = tmp_path / "ssl"
    ssl_pretrain.main(
        pretrain_args(mini_data, ssl_dir, "--num-epochs", "1", "--max-batches-per-epoch", "2")
    )
    pretrained = load_checkpoint(ssl_dir / "epoch-1.pt")["model"]
    train_args = [
        *flags(
            task="asr",
            lang_dir=str(mini_data / "lang_char"),
            train_cuts=str(mini_data / "fbank" / "mini-asr_cuts_train_sup.jsonl.gz"),
            model="xs",
            model_overrides=json.dumps(SMALL),
            max_duration="20",
            num_workers="0",
            seed="5",
            num_epochs="1",
            max_batches_per_epoch="1",
            init_encoder_from=str(ssl_dir / "epoch-1.pt"),
        ),
    ]
    trainer = Trainer(
        train_cli.config_from_args(
            train_cli.get_parser().parse_args(
                [*train_args, "--exp-dir", str(tmp_path / "setup-only")]
            )
        )
    )
    trainer.setup()
    state = trainer.model.state_dict()
    encoder_keys = {k for k in state if k.startswith(("encoder_embed.", "encoder."))}
    assert encoder_keys == {k for k in pretrained if k.startswith(("encoder_embed.", "encoder."))}
    assert all(torch.equal(state[k], pretrained[k]) for k in encoder_keys)
    # everything else is the fresh initialisation of that seed
    fresh = Trainer(trainer.cfg)
    torch.manual_seed(trainer.cfg.seed)
    fresh_state = fresh.build_model().state_dict()
    others = set(state) - encoder_keys
    assert others and all(torch.equal(state[k], fresh_state[k]) for k in others)
    assert not any(
        torch.equal(state[k], fresh_state[k]) for k in encoder_keys if state[k].numel() > 100
    )

    train_cli.main([*train_args, "--exp-dir", str(tmp_path / "asr")])
    assert load_checkpoint(tmp_path / "asr" / "epoch-1.pt")["train_state"]["batch_idx_train"] == 1
