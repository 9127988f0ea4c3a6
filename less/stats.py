"""Statistics for comparing two systems over several training seeds.

A single run of a semi-supervised recipe is noisy: the seed model, the pseudo-labels and
the student all move with the training seed, and on small test sets a fraction of a point
of CER is within the noise of *which sentences* happened to be in the test set. So a claim
such as "LESS (L) beats the noisy student (N)" is reported with

* the mean and sample standard deviation over seeds, and every seed's value
  (:func:`mean_std`);
* a paired bootstrap over utterances of the difference of the corpus-level metrics
  (:func:`paired_bootstrap`): the uncertainty that comes from the finite test set, for
  these trained models;
* exact sign tests (:func:`sign_test`) over seeds (does the difference keep its sign
  from seed to seed?) and over utterances.

Corpus metrics are computed from per-utterance *sufficient statistics* that add up over
utterances, so a bootstrap resample is a weight vector (how often each utterance was drawn)
and a whole batch of resamples is one matrix product ``weights @ stats``:

* CER/WER (:func:`error_rate_stats`): columns ``errors, reference units``; the corpus rate
  is total errors over total reference units (as Kaldi and icefall score, not a mean of
  per-utterance rates), in percent;
* BLEU (:func:`bleu_sentence_stats`): sacrebleu's segment statistics ``hypothesis length,
  closest reference length, matched 1..4-grams, hypothesis 1..4-grams``; their sum gives
  sacrebleu's corpus BLEU exactly (:func:`bleu_from_stats` follows ``BLEU.compute_bleu``
  with its corpus defaults: ``exp`` smoothing, no effective order).

Resampling scheme (see :func:`paired_bootstrap`): utterances are resampled *within each
seed* (stratified: every seed keeps its own number of utterances) and the statistic is the
mean over seeds of the per-seed corpus differences, i.e. exactly the mean difference the
report's table shows. When every seed decoded the same test utterances, one draw of
utterance indices serves all seeds: a test sentence is then one sampling unit, and drawing
it independently per seed would count the same sentence as fresh evidence once per seed
and narrow the interval by up to the square root of the number of seeds. Pooling all
seeds' utterances into one draw was not chosen: a resample could then over-represent one
seed, which mixes the seed-to-seed spread into what is meant to be test-set uncertainty,
and the statistic would no longer be the mean over seeds that is reported. Seed-to-seed
variance is what the sign test over seeds and the per-seed values speak to; the bootstrap
conditions on the trained models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import sacrebleu

MAX_NGRAM_ORDER = 4
BLEU_STATS_COLUMNS = 2 + 2 * MAX_NGRAM_ORDER
"""hyp length, ref length, matches for n = 1..4, hypothesis n-grams for n = 1..4."""

CorpusMetric = Callable[[np.ndarray], np.ndarray]
"""Summed sufficient statistics ``(..., k)`` -> corpus metric ``(...)``, vectorised."""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1``); the std is NaN for a single value."""
    if not values:
        raise ValueError("mean of no values")
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else float("nan")
    return float(array.mean()), std


# --- per-utterance sufficient statistics and corpus metrics -----------------------------


def error_rate_stats(errors: Sequence[int], ref_units: Sequence[int]) -> np.ndarray:
    """``(n, 2)`` statistics (errors, reference units) of ``n`` utterances for CER/WER."""
    if len(errors) != len(ref_units):
        raise ValueError(f"{len(errors)} error counts but {len(ref_units)} reference lengths")
    return np.stack(
        [np.asarray(errors, dtype=np.float64), np.asarray(ref_units, dtype=np.float64)], axis=-1
    ).reshape(len(errors), 2)


def error_rate_percent(stats: np.ndarray) -> np.ndarray:
    """Corpus error rate in percent from summed ``(..., 2)`` statistics.

    An empty reference set divides by 1, as :class:`less.metrics.ErrorRate` does.
    """
    stats = np.asarray(stats, dtype=np.float64)
    return 100.0 * stats[..., 0] / np.maximum(stats[..., 1], 1.0)


def bleu_sentence_stats(
    hyps: Sequence[str], refs: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """sacrebleu's per-segment BLEU statistics and sentence BLEU scores.

    Args:
        hyps: one hypothesis per segment, already normalised the way the corpus score was
            (sacrebleu's 13a tokeniser is applied here, as in :func:`less.metrics.bleu`).
        refs: per segment, its reference(s).

    Returns:
        ``(stats, sentence_bleu)``: stats ``(n, 10)`` whose column sums give sacrebleu's
        corpus BLEU through :func:`bleu_from_stats`, and each segment's smoothed sentence
        BLEU (``exp`` smoothing, effective order: sacrebleu's recommended sentence BLEU),
        which orders utterances for the per-utterance sign test.
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
    # effective_order only changes the sentence score, not the counts.
    scorer = sacrebleu.metrics.BLEU(effective_order=True)
    stats = np.zeros((len(hyps), BLEU_STATS_COLUMNS), dtype=np.float64)
    sentence = np.zeros(len(hyps), dtype=np.float64)
    for index, (hyp, segment_refs) in enumerate(zip(hyps, refs)):
        segment_refs = [segment_refs] if isinstance(segment_refs, str) else list(segment_refs)
        if not segment_refs:
            raise ValueError(f"segment {index} has no reference")
        score = scorer.sentence_score(hyp, segment_refs)
        stats[index] = [score.sys_len, score.ref_len, *score.counts, *score.totals]
        sentence[index] = score.score
    return stats, sentence


def bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-100) from summed ``(..., 10)`` statistics, vectorised.

    Same arithmetic as sacrebleu's ``BLEU.compute_bleu`` for corpus scores: brevity
    penalty ``exp(1 - ref/hyp)`` when the hypotheses are shorter; an n-gram order without
    a match gets precision ``100 / (2^k * total)`` for its k-th such order (``exp``
    smoothing); no match at all, or an order with no hypothesis n-grams, scores 0.
    """
    stats = np.asarray(stats, dtype=np.float64)
    if stats.shape[-1] != BLEU_STATS_COLUMNS:
        raise ValueError(
            f"BLEU statistics need {BLEU_STATS_COLUMNS} columns, got {stats.shape[-1]}"
        )
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct = stats[..., 2 : 2 + MAX_NGRAM_ORDER]
    total = stats[..., 2 + MAX_NGRAM_ORDER :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        brevity = np.where(
            sys_len >= ref_len, 1.0, np.where(sys_len > 0, np.exp(1.0 - ref_len / sys_len), 0.0)
        )
        unmatched = correct == 0
        smoothing = 2.0 ** np.cumsum(unmatched, axis=-1)
        precision = np.where(unmatched, 100.0 / (smoothing * total), 100.0 * correct / total)
        score = brevity * np.exp(np.log(precision).mean(axis=-1))
    defined = np.all(total > 0, axis=-1) & np.any(correct > 0, axis=-1)
    return np.where(defined, score, 0.0)


CORPUS_METRICS: dict[str, CorpusMetric] = {
    "CER": error_rate_percent,
    "WER": error_rate_percent,
    "BLEU": bleu_from_stats,
}
"""Metric name (as in ``results-*.json``) -> corpus metric of summed statistics."""


def higher_is_better(metric: str) -> bool:
    return metric.upper() == "BLEU"


def corpus_metric(
    stats: np.ndarray, metric: CorpusMetric, weights: np.ndarray | None = None
) -> np.ndarray:
    """Corpus metric of ``(n, k)`` per-utterance statistics under resampling weights.

    ``weights`` ``(n,)`` or ``(B, n)`` count how often each utterance was drawn; ``None`` is
    the identity resample (every utterance once), i.e. the metric of the test set itself.
    """
    stats = np.asarray(stats, dtype=np.float64)
    summed = stats.sum(axis=0) if weights is None else np.asarray(weights, dtype=np.float64) @ stats
    return metric(summed)


# --- paired bootstrap ---------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of ``metric(A) - metric(B)``, averaged over seeds."""

    difference: float
    """Observed mean over seeds of the per-seed corpus difference A - B."""
    low: float
    """2.5th percentile of the resampled differences."""
    high: float
    """97.5th percentile."""
    p_value: float
    """Two-sided: ``min(1, 2 x fraction of resamples on the far side of 0)``; 0 means
    fewer than one in ``num_resamples``."""
    num_resamples: int
    shared_utterances: bool
    """True when one draw of utterances served every seed."""


def _resample_weights(rng: np.random.Generator, num: int, size: int) -> np.ndarray:
    """``(num, size)`` counts of ``size`` draws with replacement from ``size`` utterances."""
    draws = rng.integers(0, size, size=(num, size))
    offsets = (np.arange(num) * size)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=num * size).reshape(num, size)


def paired_bootstrap(
    system_a: Sequence[np.ndarray],
    system_b: Sequence[np.ndarray],
    metric: CorpusMetric,
    *,
    num_resamples: int = 1000,
    seed: int = 0,
    shared_utterances: bool = False,
    chunk_cells: int = 4_000_000,
) -> BootstrapResult:
    """Paired bootstrap over utterances of the corpus-metric difference A - B.

    Args:
        system_a, system_b: per training seed, ``(n_s, k)`` per-utterance statistics of the
            two systems on the same ``n_s`` utterances in the same order (paired).
        metric: corpus metric of summed statistics, e.g. :func:`error_rate_percent`.
        num_resamples: bootstrap resamples.
        seed: seed of the RNG, so that a report is reproducible to the last digit.
        shared_utterances: every seed decoded the same utterances (same ids and references,
            same order): draw one set of indices per resample and use it for every seed
            (the utterance is the sampling unit). Otherwise each seed is resampled on its
            own. See the module docstring for why seeds are not pooled into one draw.
        chunk_cells: resamples are drawn in chunks of about this many weights, to bound
            memory on large test sets; the chunking does not depend on the machine.

    Returns:
        The observed difference, the 95 % percentile interval and the two-sided p-value
        (the fraction of resamples where the difference has the other sign or is 0, doubled).
        Identical systems give difference 0, interval [0, 0] and p = 1.
    """
    if len(system_a) != len(system_b) or not system_a:
        raise ValueError(
            f"need the same, non-zero number of seeds: {len(system_a)} vs {len(system_b)}"
        )
    a = [np.asarray(x, dtype=np.float64) for x in system_a]
    b = [np.asarray(x, dtype=np.float64) for x in system_b]
    for index, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape or x.ndim != 2 or not len(x):
            raise ValueError(
                f"seed {index}: statistics of shapes {x.shape} and {y.shape} are not paired"
            )
    sizes = [len(x) for x in a]
    if shared_utterances and len(set(sizes)) != 1:
        raise ValueError(f"shared utterances but seeds have {sizes} utterances")
    observed = float(
        np.mean([corpus_metric(x, metric) - corpus_metric(y, metric) for x, y in zip(a, b)])
    )
    rng = np.random.default_rng(seed)
    chunk = max(1, chunk_cells // max(sizes))
    differences = np.empty(num_resamples, dtype=np.float64)
    for start in range(0, num_resamples, chunk):
        num = min(chunk, num_resamples - start)
        total = np.zeros(num, dtype=np.float64)
        weights = None
        for x, y in zip(a, b):
            if weights is None or not shared_utterances:
                weights = _resample_weights(rng, num, len(x))
            total += corpus_metric(x, metric, weights) - corpus_metric(y, metric, weights)
        differences[start : start + num] = total / len(a)
    low, high = np.percentile(differences, [2.5, 97.5])
    far_side = min(np.mean(differences <= 0), np.mean(differences >= 0))
    return BootstrapResult(
        difference=observed,
        low=float(low),
        high=float(high),
        p_value=float(min(1.0, 2.0 * far_side)),
        num_resamples=num_resamples,
        shared_utterances=shared_utterances,
    )


# --- sign test --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignTest:
    """Exact two-sided sign test of paired differences; zeros (ties) are dropped."""

    positive: int
    negative: int
    ties: int
    p_value: float


def binomial_two_sided(successes: int, trials: int) -> float:
    """Exact two-sided p-value of ``successes`` in ``trials`` fair coin flips.

    ``min(1, 2 * P(X <= min(k, n - k)))`` for ``X ~ Binomial(n, 1/2)``; 1 for no trials.
    """
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes in {trials} trials")
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(min(successes, trials - successes) + 1))
    return min(1.0, 2.0 * tail / 2.0**trials)


def sign_test(differences: Iterable[float]) -> SignTest:
    """Sign test of paired differences A - B (per seed, or per utterance).

    With ``n`` non-zero differences the smallest possible p-value is ``2 / 2^n``: three
    seeds can never give p < 0.25, which is why the per-utterance test is reported too.
    """
    values = np.asarray(list(differences), dtype=np.float64)
    positive, negative = int(np.sum(values > 0)), int(np.sum(values < 0))
    return SignTest(
        positive,
        negative,
        len(values) - positive - negative,
        binomial_two_sided(positive, positive + negative),
    )


__all__ = [
    "BLEU_STATS_COLUMNS",
    "CORPUS_METRICS",
    "BootstrapResult",
    "SignTest",
    "binomial_two_sided",
    "bleu_from_stats",
    "bleu_sentence_stats",
    "corpus_metric",
    "error_rate_percent",
    "error_rate_stats",
    "higher_is_better",
    "mean_std",
    "paired_bootstrap",
    "sign_test",
]
