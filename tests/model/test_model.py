"""Tests of the Zipformer CTC/AED student model and its building blocks."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from less.model import (
    CtcAedModel,
    ModelConfig,
    ScaledAdam,
    build_model,
    count_parameters,
    encoder_ctc_parameters,
    get_config,
    output_lengths,
    set_batch_count,
)
from less.model.attention_decoder import LabelSmoothingLoss
from less.model.optim import Eden
from less.model.scaling import (
    ActivationDropoutAndLinear,
    Balancer,
    BiasNorm,
    ScheduledFloat,
    SwooshL,
    SwooshR,
    Whiten,
    _dequantize_deriv,
    _quantize_deriv,
    whitening_metric,
)

# icefall LibriSpeech Zipformer figures, 500 BPE tokens (millions of parameters)
PUBLISHED = {
    "small": (22.1, 46.3),
    "medium": (64.3, 90.0),
    "large": (147.0, 174.3),
}


pytestmark = pytest.mark.usefixtures("one_thread")


# every Zipformer feature (6 stacks, all modules) at toy width, for fast tests
TINY = dict(
    encoder_dim=48,
    encoder_unmasked_dim=40,
    feedforward_dim=96,
    query_head_dim=16,
    subsampling_channels=(8, 16, 32),
    decoder_dim=48,
    decoder_num_layers=1,
    decoder_feedforward_dim=96,
    ctc_vocab_size=30,
    decoder_vocab_size=20,
)


def tiny_config(**overrides) -> ModelConfig:
    return get_config("xs", **{**TINY, **overrides})


def expected_frames(num_frames: int) -> int:
    return ((num_frames - 7) // 2 + 1) // 2


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
    with torch.device("meta"):  # no memory, no init time
        model = CtcAedModel(get_config(name))
        ctc_only = CtcAedModel(get_config(name, decoder_vocab_size=None))
    enc_ctc, with_decoder = PUBLISHED[name]
    assert encoder_ctc_parameters(model) / 1e6 == pytest.approx(enc_ctc, rel=0.05)
    assert count_parameters(ctc_only) / 1e6 == pytest.approx(enc_ctc, rel=0.05)
    assert count_parameters(model) / 1e6 == pytest.approx(with_decoder, rel=0.05)


def test_xs_is_a_few_million_parameters():
    with torch.device("meta"):
        model = CtcAedModel(get_config("xs"))
    assert 2.5e6 < encoder_ctc_parameters(model) < 4.5e6
    assert 3e6 < count_parameters(model) < 5e6


def test_config_round_trip_and_overrides():
    config = get_config("small", ctc_vocab_size=321, decoder_vocab_size=None, num_encoder_layers=3)
    assert config.ctc_vocab_size == 321 and config.decoder_vocab_size is None
    assert config.encoder.num_encoder_layers == (3,) * 6
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(ValueError, match="unknown"):
        get_config("small", not_a_field=1)
    with pytest.raises(ValueError, match="unknown model config"):
        get_config("huge")
    with pytest.raises(ValueError, match="sos_id"):
        get_config("xs", sos_id=1, eos_id=2)


# ----------------------------------------------------------------------------- shapes and padding


def test_output_frame_rate_and_lengths():
    torch.manual_seed(0)
    model = CtcAedModel(tiny_config()).eval()
    with torch.no_grad():
        for num_frames in (9, 10, 11, 12, 13, 16, 23, 54, 101, 400):
            out, lens = model.encode(torch.randn(1, num_frames, 80), torch.tensor([num_frames]))
            assert out.shape == (1, expected_frames(num_frames), model.config.encoder.output_dim)
            assert lens.tolist() == [expected_frames(num_frames)]
            assert output_lengths(torch.tensor([num_frames])).tolist() == lens.tolist()
            log_probs = model.ctc_log_probs(out)
            assert log_probs.shape[-1] == 30
            assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, out.shape[1]), atol=1e-5)
        # 4 s of 100 Hz features -> 98 frames, i.e. 25 Hz (less the front end's context)
        assert expected_frames(400) == 98
        with pytest.raises(ValueError, match="at least 9 frames"):
            model.encode(torch.randn(1, 8, 80), torch.tensor([8]))


def test_padding_does_not_change_outputs():
    torch.manual_seed(0)
    model = CtcAedModel(tiny_config()).eval()
    lengths = [9, 11, 14, 21, 38, 67, 99, 130]  # odd ones and multiples, some short
    feats = torch.randn(len(lengths), max(lengths), 80) * 3.0  # padding is noise, not zeros
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, torch.tensor(lengths))
        assert enc_lens.tolist() == [expected_frames(n) for n in lengths]
        for i, n in enumerate(lengths):
            alone, alone_lens = model.encode(feats[i : i + 1, :n], torch.tensor([n]))
            m = int(alone_lens[0])
            assert alone.shape[1] == m == int(enc_lens[i])
            torch.testing.assert_close(enc[i, :m], alone[0], atol=2e-5, rtol=1e-4)


def test_decoder_logits_do_not_depend_on_padding():
    torch.manual_seed(0)
    model = CtcAedModel(tiny_config()).eval()
    memory = torch.randn(3, 12, model.config.encoder.output_dim)
    memory_lens = torch.tensor([12, 7, 3])
    ys = torch.randint(2, 20, (3, 6))
    ys[:, 0] = model.sos_id
    ys_lens = torch.tensor([6, 4, 1])
    with torch.no_grad():
        logits = model.decoder_logits(memory, memory_lens, ys, ys_lens)
        assert logits.shape == (3, 6, 20)
        for i in range(3):
            m, u = int(memory_lens[i]), int(ys_lens[i])
            alone = model.decoder_logits(
                memory[i : i + 1, :m], memory_lens[i : i + 1], ys[i : i + 1, :u], ys_lens[i : i + 1]
            )
            torch.testing.assert_close(logits[i, :u], alone[0], atol=1e-5, rtol=1e-4)
        # causal: logits at position 1 ignore tokens at positions >= 2
        changed = ys.clone()
        changed[0, 2:] = 3
        again = model.decoder_logits(memory, memory_lens, changed, ys_lens)
        torch.testing.assert_close(again[0, :2], logits[0, :2])


# ----------------------------------------------------------------------------- training forward


@pytest.mark.parametrize("batch_count", [0.0, 3000.0, 50000.0])
def test_training_forward_backward(batch_count):
    torch.manual_seed(0)
    model = CtcAedModel(tiny_config()).train()
    set_batch_count(model, batch_count)
    feats = torch.randn(3, 90, 80)
    lens = torch.tensor([90, 71, 40])
    out = model(feats, lens, [[3, 4, 5], [6, 7], [8]], [[2, 3], [4, 5, 6], [7]])
    assert torch.isfinite(out["loss"])
    assert out["utterances"] == 3 and out["ctc_tokens"] == 6 and out["aed_tokens"] == 9
    assert out["frames"] == sum(expected_frames(n) for n in (90, 71, 40))
    expected = 0.1 * out["ctc_loss"] + 0.9 * out["aed_loss"]
    torch.testing.assert_close(out["loss"].detach(), expected)
    out["loss"].backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_bf16_autocast_training_step():
    torch.manual_seed(0)
    model = build_model("xs", **TINY)
    assert isinstance(model, CtcAedModel)
    model.train()
    set_batch_count(model, 1000.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 60, 80), torch.tensor([60, 45]), [[3, 4], [5]], [[2, 3], [4]])
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_ctc_only_model_and_bad_targets():
    torch.manual_seed(0)
    model = CtcAedModel(tiny_config(decoder_vocab_size=None)).train()
    feats, lens = torch.randn(2, 40, 80), torch.tensor([40, 30])
    out = model(feats, lens, [[3, 4], [5]])
    assert out["aed_tokens"] == 0 and float(out["aed_loss"]) == 0.0
    torch.testing.assert_close(out["loss"].detach(), out["ctc_loss"])
    with pytest.raises(ValueError, match="CTC targets"):
        model(feats, lens, [[0, 4], [5]])
    with pytest.raises(RuntimeError, match="no attention decoder"):
        model.decoder_logits(
            torch.zeros(1, 3, 48),
            torch.tensor([3]),
            torch.ones(1, 1, dtype=torch.long),
            torch.tensor([1]),
        )


def test_ctc_loss_is_inf_when_targets_do_not_fit():
    torch.manual_seed(0)
    model = CtcAedModel(tiny_config(decoder_vocab_size=None)).eval()
    out = model(
        torch.randn(1, 20, 80), torch.tensor([20]), [[3, 4, 5, 6, 7, 8, 9]]
    )  # 7 tokens, 3 frames
    assert torch.isinf(out["ctc_loss"])  # zero_infinity off: the trainer must see it


# ----------------------------------------------------------------------------- overfitting


def ctc_greedy(log_probs: torch.Tensor, num_frames: int, blank: int = 0) -> list[int]:
    best = log_probs[:num_frames].argmax(dim=-1).tolist()
    hyp, prev = [], None
    for token in best:
        if token != prev and token != blank:
            hyp.append(token)
        prev = token
    return hyp


def aed_greedy(
    model: CtcAedModel, enc: torch.Tensor, enc_lens: torch.Tensor, max_len: int = 12
) -> list[list[int]]:
    batch = enc.shape[0]
    ys = torch.full((batch, 1), model.sos_id, dtype=torch.long)
    for _ in range(max_len):
        logits = model.decoder_logits(enc, enc_lens, ys, torch.full((batch,), ys.shape[1]))
        ys = torch.cat([ys, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    hyps = []
    for row in ys[:, 1:].tolist():
        hyps.append(row[: row.index(model.eos_id)] if model.eos_id in row else row)
    return hyps


@pytest.mark.slow
@pytest.mark.parametrize("task,ctc_vocab,decoder_vocab", [("asr", 30, 30), ("ast", 30, 20)])
def test_model_overfits_a_tiny_batch(task, ctc_vocab, decoder_vocab):
    torch.manual_seed(1)
    model = CtcAedModel(tiny_config(ctc_vocab_size=ctc_vocab, decoder_vocab_size=decoder_vocab))
    lens = torch.tensor([110, 93, 80])
    feats = torch.randn(3, 110, 80)
    ctc_targets = [[int(t) for t in torch.randint(3, ctc_vocab, (n,))] for n in (7, 6, 5)]
    if task == "asr":
        aed_targets = ctc_targets
    else:  # a different "language": other tokens, other lengths, other vocabulary
        aed_targets = [[int(t) for t in torch.randint(2, decoder_vocab, (n,))] for n in (4, 7, 5)]
    optimizer = ScaledAdam(model.named_parameters(), lr=0.05)
    scheduler = Eden(optimizer, lr_batches=5000, lr_epochs=6, warmup_batches=20)
    solved = False
    for step in range(1, 401):
        model.train()
        out = model(feats, lens, ctc_targets, aed_targets)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        scheduler.step_batch()
        if step % 20 == 0:
            model.eval()
            with torch.no_grad():
                enc, enc_lens = model.encode(feats, lens)
                log_probs = model.ctc_log_probs(enc)
                ctc_hyps = [ctc_greedy(log_probs[i], int(enc_lens[i])) for i in range(3)]
                aed_hyps = aed_greedy(model, enc, enc_lens)
            if ctc_hyps == ctc_targets and aed_hyps == aed_targets:
                solved = True
                break
    assert solved, (
        f"after {step} steps: CTC {ctc_hyps} vs {ctc_targets}; AED {aed_hyps} vs {aed_targets}"
    )


# ----------------------------------------------------------------------------- building blocks


def test_scheduled_float_follows_batch_count_in_training_only():
    value = ScheduledFloat((0.0, 0.3), (100.0, 0.1), default=0.05)
    assert float(value) == 0.05  # no batch count yet
    value.batch_count = 50.0
    assert float(value) == pytest.approx(0.2)
    value.batch_count = 1e6
    assert float(value) == pytest.approx(0.1)
    value.eval()
    assert float(value) == 0.05
    with pytest.raises(ValueError):
        ScheduledFloat((1.0, 0.0), (0.0, 1.0))


@pytest.mark.parametrize(
    "module,shift,offset", [(SwooshL(), 4.0, 0.035), (SwooshR(), 1.0, 0.313261687)]
)
def test_swoosh_values_and_gradients(module, shift, offset):
    x = torch.linspace(-30, 30, 601, dtype=torch.float64).requires_grad_(True)
    reference = torch.log1p(torch.exp(x - shift)) - 0.08 * x - offset
    y = module(x)
    torch.testing.assert_close(y, reference)
    (grad,) = torch.autograd.grad(y.sum(), x)
    (ref_grad,) = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(grad, ref_grad)
    assert float(SwooshR()(torch.zeros(1))) == pytest.approx(0.0, abs=1e-6)


def test_quantized_swoosh_derivative_is_unbiased():
    """The CUDA path stores uint8 derivatives; check the code on CPU."""
    torch.manual_seed(0)
    x = torch.linspace(-8.0, 8.0, 64).repeat(4000, 1)
    for shift in (4.0, 1.0):
        true = torch.sigmoid(x - shift) - 0.08
        q = _quantize_deriv(x, shift)
        assert q.dtype == torch.uint8
        approx = _dequantize_deriv(q, torch.float32)
        assert float((approx - true).abs().max()) <= 1.005 / 255 + 1e-6  # one grid step
        assert float((approx.mean(dim=0) - true[0]).abs().max()) < 5e-4  # no rounding bias


def test_bias_norm_matches_its_definition():
    torch.manual_seed(0)
    norm = BiasNorm(16, channel_dim=1).double()
    with torch.no_grad():
        norm.bias.normal_()
    x = torch.randn(4, 16, 5, dtype=torch.float64, requires_grad=True)
    norm.eval()  # no random log-scale limiting
    torch.autograd.gradcheck(lambda t: norm(t), (x,))
    bias = norm.bias[None, :, None]
    expected = x * ((x - bias) ** 2).mean(dim=1, keepdim=True).rsqrt() * norm.log_scale.exp()
    torch.testing.assert_close(norm(x), expected)


def test_activation_dropout_linear_matches_plain_modules():
    torch.manual_seed(0)
    module = ActivationDropoutAndLinear(8, 5, activation="SwooshL", dropout_p=0.0).train()
    x = torch.randn(6, 3, 8, requires_grad=True)
    y = module(x)
    reference = F.linear(
        torch.log1p(torch.exp(x - 4)) - 0.08 * x - 0.035, module.weight, module.bias
    )
    torch.testing.assert_close(y, reference)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, module.weight, module.bias), g)
    ref_grads = torch.autograd.grad(reference, (x, module.weight, module.bias), g)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_balancer_changes_only_gradients_when_limits_are_violated():
    torch.manual_seed(0)
    balancer = Balancer(4, channel_dim=-1, min_positive=0.4, max_positive=0.6, prob=1.0).train()
    x = (torch.randn(200, 4) - 3.0).requires_grad_(True)  # almost never positive
    y = balancer(x)
    assert torch.equal(y, x)
    upstream = torch.randn(200, 4)
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert not torch.allclose(grad, upstream)
    # the extra term pushes x up: gradient descent moves against the gradient
    assert float((grad - upstream).mean()) < 0
    balancer.eval()
    (grad_eval,) = torch.autograd.grad(balancer(x), x, upstream)
    assert torch.equal(grad_eval, upstream)


def test_whiten_penalises_correlated_features():
    torch.manual_seed(0)
    base = torch.randn(500, 1)
    correlated = (base + 0.05 * torch.randn(500, 8)).requires_grad_(True)
    white = torch.randn(500, 8)
    assert whitening_metric(white, 1) < 1.5 < whitening_metric(correlated.detach(), 1)
    whiten = Whiten(num_groups=1, whitening_limit=2.0, prob=1.0, grad_scale=0.1).train()
    upstream = torch.randn(500, 8)
    (grad,) = torch.autograd.grad(whiten(correlated), correlated, upstream)
    extra = grad - upstream
    assert float(extra.norm()) == pytest.approx(0.1 * float(upstream.norm()), rel=1e-3)
    # a small step against the extra gradient makes the features whiter
    stepped = correlated.detach() - 0.5 * extra / extra.norm() * correlated.detach().norm() * 0.01
    assert whitening_metric(stepped, 1) < whitening_metric(correlated.detach(), 1)


def test_label_smoothing_loss():
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 2, -1], [0, 4, 3]])
    loss = LabelSmoothingLoss(label_smoothing=0.0)(logits, target)
    keep = target != -1
    expected = F.cross_entropy(logits[keep], target[keep], reduction="sum")
    torch.testing.assert_close(loss, expected)
    smoothed = LabelSmoothingLoss(label_smoothing=0.1)(logits, target)
    manual = F.cross_entropy(logits[keep], target[keep], reduction="sum", label_smoothing=0.1)
    torch.testing.assert_close(smoothed, manual)
