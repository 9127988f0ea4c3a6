"""The sequence-level unsupervised loss (less.unsup.loss) and its hypothesis sets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from less.pseudo.record import PseudoLabelRecord
from less.unsup.loss import (
    batch_label_prior,
    hypothesis_texts,
    make_hypotheses,
    sequence_level_loss,
)


def random_log_probs(
    batch: int = 3, frames: int = 14, vocab: int = 7, seed: int = 0
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, frames, vocab, generator=generator, dtype=torch.float64)
        .log_softmax(-1)
        .float()
    )


def test_one_hypothesis_without_lm_and_prior_is_the_ctc_loss():
    log_probs = random_log_probs().requires_grad_(True)
    lens = torch.tensor([14, 11, 9])
    targets = [[1, 2, 3], [4, 4, 5], [6]]
    ours = sequence_level_loss(log_probs, lens, [[t] for t in targets])
    reference = F.ctc_loss(
        log_probs.transpose(0, 1),
        torch.tensor([x for t in targets for x in t]),
        lens,
        torch.tensor([len(t) for t in targets]),
        reduction="none",
    )
    assert torch.allclose(ours, reference, atol=1e-5)
    (grad_ours,) = torch.autograd.grad(ours.sum(), log_probs)
    (grad_reference,) = torch.autograd.grad(reference.sum(), log_probs)
    assert torch.allclose(grad_ours, grad_reference, atol=1e-5)


def test_the_loss_is_the_log_sum_over_hypotheses_and_ignores_their_order():
    log_probs = random_log_probs()
    lens = torch.tensor([14, 12, 10])
    hyps = [[[1, 2], [2, 1], [1, 2, 3]], [[5]], [[3, 3], [6, 5, 4], [2]]]
    lm = [[-3.0, -5.0, -4.0], [-2.0], [-7.0, -1.5, -2.5]]
    log_prior = batch_label_prior(log_probs, lens)
    loss = sequence_level_loss(
        log_probs, lens, hyps, lm, log_prior, lm_weight=0.7, prior_weight=0.4
    )
    # by hand: -log sum_j exp(-ctc_j - 0.4 log prior(c_j) + 0.7 lm_j)
    for b in range(3):
        terms = []
        for h, s in zip(hyps[b], lm[b]):
            ctc = F.ctc_loss(
                log_probs[b : b + 1].transpose(0, 1),
                torch.tensor(h),
                lens[b : b + 1],
                torch.tensor([len(h)]),
                reduction="sum",
            )
            terms.append(-ctc - 0.4 * log_prior[h].sum() + 0.7 * s)
        assert float(loss[b]) == pytest.approx(
            float(-torch.logsumexp(torch.stack(terms), 0)), abs=1e-4
        )
    # reversed hypotheses (and their scores) in every utterance: the same losses
    reversed_loss = sequence_level_loss(
        log_probs,
        lens,
        [h[::-1] for h in hyps],
        [s[::-1] for s in lm],
        log_prior,
        lm_weight=0.7,
        prior_weight=0.4,
    )
    assert torch.allclose(loss, reversed_loss, atol=1e-5)
    # more hypotheses never raise the loss (a partial sum bounds the full one from above)
    fewer = sequence_level_loss(
        log_probs,
        lens,
        [h[:1] for h in hyps],
        [s[:1] for s in lm],
        log_prior,
        lm_weight=0.7,
        prior_weight=0.4,
    )
    assert bool((loss <= fewer + 1e-6).all())


def test_hypotheses_that_cannot_fit_are_left_out_without_nan_gradients():
    log_probs = random_log_probs(batch=2, frames=4).requires_grad_(True)
    lens = torch.tensor([4, 3])
    # [1,1,1] needs 5 frames (blanks between repeats); utterance 1 has nothing that fits
    loss = sequence_level_loss(log_probs, lens, [[[1, 2], [1, 1, 1]], [[1, 2, 3, 4]]])
    alone = sequence_level_loss(log_probs[:1], lens[:1], [[[1, 2]]])
    assert float(loss[0].detach()) == pytest.approx(float(alone[0].detach()), abs=1e-5)
    assert loss[1] == math.inf
    (grad,) = torch.autograd.grad(loss[:1].sum(), log_probs)
    assert torch.isfinite(grad).all() and float(grad[1].abs().sum()) == 0.0


def test_hypothesis_sets_are_deduplicated_and_include_the_llm_text():
    pl = {
        "hyp": "你好",
        "nbest": [["你好", -1.0], ["你号", -2.0], ["你 好", -3.0]],
        "llm": {"text": "你好"},
    }
    texts = hypothesis_texts(PseudoLabelRecord.from_custom(pl))
    assert texts == ["你好", "你号", "你 好", "你好"]
    encode = {"你": 3, "好": 4, "号": 5}

    def tokenize(text: str) -> list[int]:
        return [encode[ch] for ch in text if ch != " "]

    hyps = make_hypotheses(texts, tokenize, lm_score=lambda t: -float(len(t)))
    assert hyps.tokens == ((3, 4), (3, 5))  # "你 好" and the LLM text are the 1-best again
    assert hyps.lm_scores == (-2.0, -2.0)
    record = PseudoLabelRecord.from_custom({"hyp": "一", "nbest": [], "llm": {"text": "二"}})
    assert hypothesis_texts(record, include_llm=False) == ["一"]
    assert make_hypotheses(["", " "], tokenize) is None


def test_batch_prior_is_a_distribution_over_labels():
    log_probs = random_log_probs()
    prior = batch_label_prior(log_probs, torch.tensor([14, 3, 7])).exp()
    assert float(prior.sum()) == pytest.approx(1.0, abs=1e-6) and float(prior[0]) < 1e-6
    # only valid frames count
    padded = log_probs.clone()
    padded[1, 3:] = torch.tensor([0.0] + [-30.0] * 6)
    assert torch.allclose(batch_label_prior(padded, torch.tensor([14, 3, 7])).exp(), prior)
