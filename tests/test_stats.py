"""less.stats: mean/std over seeds, paired bootstrap of CER/BLEU differences, sign tests."""

import math

import numpy as np
import pytest

from less.metrics import bleu, error_rate
from less.stats import (
    binomial_two_sided,
    bleu_from_stats,
    bleu_sentence_stats,
    corpus_metric,
    error_rate_percent,
    error_rate_stats,
    mean_std,
    paired_bootstrap,
    sign_test,
)

REFS_ZH = ["今天天气很好", "我们去公园", "他在北京工作", "你好", "明天下雨吗", "这本书很有意思"]
HYPS_ZH = ["今天天汽很好", "我们去公园了", "他北京工作", "", "明天下雨吗", "这书很有义思"]


def zh_stats(refs: list[str], hyps: list[str]) -> np.ndarray:
    per_utt = error_rate(refs, hyps, "zh").utterances
    return error_rate_stats([u.errors for u in per_utt], [len(u.ref) for u in per_utt])


def test_mean_and_sample_std():
    assert mean_std([30.0, 34.0, 32.0]) == (32.0, 2.0)  # sample std: sqrt(8 / 2)
    mean, std = mean_std([26.0])
    assert mean == 26.0 and math.isnan(std)


def test_cer_of_identity_and_of_a_resample_equal_direct_computation():
    stats = zh_stats(REFS_ZH, HYPS_ZH)
    direct = error_rate(REFS_ZH, HYPS_ZH, "zh").percent
    assert direct > 0
    assert corpus_metric(stats, error_rate_percent) == pytest.approx(direct)
    assert corpus_metric(stats, error_rate_percent, np.ones(len(REFS_ZH))) == pytest.approx(direct)
    draw = np.array([0, 0, 3, 5, 5, 5])
    weights = np.bincount(draw, minlength=len(REFS_ZH))
    resampled = error_rate([REFS_ZH[i] for i in draw], [HYPS_ZH[i] for i in draw], "zh").percent
    assert resampled != pytest.approx(direct)
    assert corpus_metric(stats, error_rate_percent, weights) == pytest.approx(resampled)
    # a batch of resamples is one matrix product
    batch = corpus_metric(stats, error_rate_percent, np.stack([np.ones(6), weights]))
    assert batch == pytest.approx([direct, resampled])


HYPS_EN = [
    "The cat sat on the mat.",
    "there is 2 dogs here",
    "hello world",
    "",
    "a b c d e f",
    "I like green tea very much",
]
REFS_EN = [
    ["The cat is on the mat.", "A cat sat on the mat"],
    ["There are two dogs here."],
    ["Hello, world!"],
    ["Nothing here"],
    ["a b c d e f"],
    ["I really like green tea"],
]


def test_bleu_sufficient_statistics_sum_to_sacrebleu_corpus_bleu():
    from less.data.text import normalize

    hyps = [normalize(h, "en") for h in HYPS_EN]
    refs = [[normalize(r, "en") for r in rs] for rs in REFS_EN]
    stats, sentence = bleu_sentence_stats(hyps, refs)
    expected = bleu(HYPS_EN, REFS_EN)  # normalised, multi-reference, sacrebleu corpus BLEU
    assert 0 < expected.score < 100
    assert bleu_from_stats(stats.sum(axis=0)) == pytest.approx(expected.score, abs=1e-9)
    assert stats.sum(axis=0)[2:6].tolist() == expected.counts
    assert sentence[4] == pytest.approx(100.0) and sentence[3] == 0.0
    draw = [1, 1, 2, 4, 5, 0]
    weights = np.bincount(draw, minlength=len(hyps))
    resampled = bleu([HYPS_EN[i] for i in draw], [REFS_EN[i] for i in draw]).score
    assert resampled != pytest.approx(expected.score)
    assert corpus_metric(stats, bleu_from_stats, weights) == pytest.approx(resampled, abs=1e-9)


def test_bleu_corner_cases_follow_sacrebleu():
    import sacrebleu

    compute = sacrebleu.metrics.BLEU.compute_bleu
    for correct, total, sys_len, ref_len in (
        ([1, 0, 0, 0], [3, 2, 1, 1], 3, 4),  # exp smoothing, brevity
        ([0, 0, 0, 0], [3, 2, 1, 0], 3, 3),  # no match
        ([2, 1, 0, 0], [2, 1, 0, 0], 2, 5),  # too short for 3-grams
        ([4, 3, 1, 0], [4, 3, 2, 1], 4, 3),
    ):
        expected = compute(list(correct), list(total), sys_len, ref_len, smooth_method="exp").score
        assert bleu_from_stats(np.array([sys_len, ref_len, *correct, *total])) == pytest.approx(
            expected
        )


def test_bootstrap_one_system_always_better():
    rng = np.random.default_rng(3)
    ref_units = rng.integers(5, 15, size=40)
    errors_n = rng.integers(1, 5, size=40)
    seeds_l = [error_rate_stats(errors_n - 1, ref_units) for _ in range(3)]
    seeds_n = [error_rate_stats(errors_n, ref_units) for _ in range(3)]
    result = paired_bootstrap(
        seeds_l, seeds_n, error_rate_percent, num_resamples=500, seed=0, shared_utterances=True
    )
    assert result.difference == pytest.approx(-100 * 40 / ref_units.sum())
    assert result.low <= result.difference <= result.high < 0
    assert result.p_value == 0.0
    # and the other way round: the sign of the difference flips, the p-value does not
    flipped = paired_bootstrap(
        seeds_n, seeds_l, error_rate_percent, num_resamples=500, seed=0, shared_utterances=True
    )
    assert flipped.difference == pytest.approx(-result.difference)
    assert 0 < flipped.low and flipped.p_value == 0.0


def test_bootstrap_identical_systems_and_determinism():
    stats = zh_stats(REFS_ZH, HYPS_ZH)
    same = paired_bootstrap([stats, stats], [stats, stats], error_rate_percent, num_resamples=200)
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    rng = np.random.default_rng(0)
    a = error_rate_stats(rng.integers(0, 4, 60), np.full(60, 10))
    b = error_rate_stats(rng.integers(0, 4, 60), np.full(60, 10))
    first = paired_bootstrap([a], [b], error_rate_percent, num_resamples=300, seed=7)
    assert first == paired_bootstrap([a], [b], error_rate_percent, num_resamples=300, seed=7)
    assert first != paired_bootstrap([a], [b], error_rate_percent, num_resamples=300, seed=8)
    assert 0 < first.p_value <= 1 and first.low < first.difference < first.high
    # chunking (a memory bound) does not change the draws' statistics
    chunked = paired_bootstrap(
        [a], [b], error_rate_percent, num_resamples=300, seed=7, chunk_cells=600
    )
    assert chunked.low == pytest.approx(first.low, abs=0.5) and chunked.high == pytest.approx(
        first.high, abs=0.5
    )


def test_shared_utterances_are_one_sampling_unit_across_seeds():
    """Three seeds with the same results: shared draws give one seed's interval, independent
    draws would narrow it by about sqrt(3) (the same sentences counted three times)."""
    rng = np.random.default_rng(1)
    a = error_rate_stats(rng.integers(0, 5, 200), np.full(200, 10))
    b = error_rate_stats(rng.integers(0, 5, 200), np.full(200, 10))
    one = paired_bootstrap([a], [b], error_rate_percent, num_resamples=2000, seed=0)
    shared = paired_bootstrap(
        [a] * 3, [b] * 3, error_rate_percent, num_resamples=2000, seed=0, shared_utterances=True
    )
    independent = paired_bootstrap([a] * 3, [b] * 3, error_rate_percent, num_resamples=2000, seed=0)
    assert shared.difference == independent.difference == one.difference
    assert (shared.low, shared.high) == (one.low, one.high)
    ratio = (shared.high - shared.low) / (independent.high - independent.low)
    assert 1.5 < ratio < 2.0  # sqrt(3) = 1.73
    with pytest.raises(ValueError, match="shared utterances"):
        paired_bootstrap([a, a[:10]], [b, b[:10]], error_rate_percent, shared_utterances=True)
    with pytest.raises(ValueError, match="not paired"):
        paired_bootstrap([a], [b[:10]], error_rate_percent)


def test_sign_test_exact_binomial():
    # 9 wins, 1 loss, 2 ties: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    result = sign_test([1.0] * 9 + [-0.5] + [0.0, 0.0])
    assert (result.positive, result.negative, result.ties) == (9, 1, 2)
    assert result.p_value == pytest.approx(22 / 1024)
    assert binomial_two_sided(3, 3) == 0.25  # three seeds, all one way
    assert binomial_two_sided(2, 4) == 1.0
    assert binomial_two_sided(0, 0) == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in ((0, 5), (4, 17), (12, 20), (30, 31)):
        assert binomial_two_sided(k, n) == pytest.approx(scipy_stats.binomtest(k, n).pvalue)


def test_bootstrap_p_value_and_interval_on_a_hand_computed_distribution():
    """Two utterances of 10 units, A - B errors +1 and -3: a resample draws (1,1) with
    probability 1/4 (CER difference +10), (2,2) 1/4 (-30), one of each 1/2 (-10).
    Two-sided p = 2 x P(difference >= 0) = 0.5; the 95 % interval is [-30, +10]."""
    a = error_rate_stats([1, 0], [10, 10])
    b = error_rate_stats([0, 3], [10, 10])
    result = paired_bootstrap([a], [b], error_rate_percent, num_resamples=20000, seed=0)
    assert result.difference == pytest.approx(-10.0)
    assert result.p_value == pytest.approx(0.5, abs=0.03)
    assert (result.low, result.high) == pytest.approx((-30.0, 10.0))
