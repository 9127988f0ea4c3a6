"""CTC decoding: greedy search, prefix beam search, and confidences for pseudo-labelling.

Inputs follow the model's CTC head: ``log_probs`` is a ``(B, T, V)`` log-softmax tensor,
``lens`` a ``(B,)`` tensor of valid frames, blank id 0 unless told otherwise.

Prefix beam search works per utterance in numpy float64: on a CPU the per-frame work
(a ``beam x V`` matrix, one partial sort) is far cheaper than the Python bookkeeping a
torch op would add, and float64 keeps scores exact enough to compare with a brute-force
sum over alignments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

NBest = list[tuple[list[int], float]]
"""Hypotheses of one utterance, best first: (token ids, total log-probability)."""

_NEG_INF = -np.inf


def ctc_greedy_search(
    log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0
) -> list[list[int]]:
    """Best path per frame, repeats merged, blanks removed."""
    _check_inputs(log_probs, lens)
    best_paths = log_probs.argmax(dim=-1).cpu()
    hyps: list[list[int]] = []
    for utt, num_frames in enumerate(lens.tolist()):
        path = torch.unique_consecutive(best_paths[utt, : int(num_frames)])
        hyps.append([token for token in path.tolist() if token != blank])
    return hyps


def ctc_prefix_beam_search(
    log_probs: torch.Tensor,
    lens: torch.Tensor,
    beam_size: int,
    nbest: int,
    blank: int = 0,
    prune_topk: int | None = None,
    prune_threshold: float | None = None,
) -> list[NBest]:
    """CTC prefix beam search: the ``nbest`` label sequences with the highest total probability.

    Each prefix carries two log-probabilities, of the alignments so far that end in blank
    and of those that end in its last token, so that ``a a`` (one ``a``) and ``a - a``
    (two) are told apart. A prefix's score sums all its alignments, unlike the best-path
    score of greedy search. Without pruning and with ``beam_size`` at least the number of
    live prefixes, the result is exact.

    Args:
        log_probs: ``(B, T, V)`` log-softmax output of the CTC head.
        lens: ``(B,)`` number of valid frames per utterance.
        beam_size: prefixes kept after every frame.
        nbest: hypotheses returned per utterance (at most ``beam_size``).
        blank: id of the blank symbol.
        prune_topk: if set, only the ``prune_topk`` most likely tokens of a frame may
            extend a prefix (a speed-up for large vocabularies; off by default).
        prune_threshold: if set, only tokens with a frame log-probability of at least this
            value may extend a prefix (e.g. ``math.log(1e-4)``).

    Returns:
        Per utterance, up to ``nbest`` ``(tokens, log_prob)`` pairs sorted best first;
        ``log_prob`` is the log of the summed probability of all alignments of ``tokens``.
        See :func:`nbest_posteriors` and :func:`mean_max_frame_posterior` for confidences.
    """
    _check_inputs(log_probs, lens)
    if beam_size < 1 or nbest < 1:
        raise ValueError(f"beam_size and nbest must be >= 1, got {beam_size} and {nbest}")
    if prune_topk is not None and prune_topk < 1:
        raise ValueError(f"prune_topk must be >= 1, got {prune_topk}")
    all_log_probs = log_probs.detach().to("cpu", torch.float64).numpy()
    results: list[NBest] = []
    for utt, num_frames in enumerate(lens.tolist()):
        beam = _prefix_beam_search_one(
            all_log_probs[utt, : int(num_frames)], beam_size, blank, prune_topk, prune_threshold
        )
        results.append([(list(prefix), score) for prefix, score in beam[:nbest]])
    return results


def _prefix_beam_search_one(
    log_probs: np.ndarray,
    beam_size: int,
    blank: int,
    prune_topk: int | None,
    prune_threshold: float | None,
) -> list[tuple[tuple[int, ...], float]]:
    """Prefix beam search over one utterance's ``(T, V)`` log-probabilities."""
    vocab_size = log_probs.shape[1]
    if not 0 <= blank < vocab_size:
        raise ValueError(f"blank id {blank} outside a vocabulary of {vocab_size}")
    all_tokens = np.array([token for token in range(vocab_size) if token != blank], dtype=np.int64)
    column_of = np.full(vocab_size, -1, dtype=np.int64)

    prefixes: list[tuple[int, ...]] = [()]
    blank_end = np.array([0.0])  # log P(alignments of the prefix ending in blank)
    token_end = np.array([_NEG_INF])  # log P(... ending in the prefix's last token)
    last = np.array([-1], dtype=np.int64)  # last token of each prefix, -1 when empty

    for frame in log_probs:
        candidates = _candidate_tokens(frame, all_tokens, blank, prune_topk, prune_threshold)
        column_of[:] = -1
        column_of[candidates] = np.arange(len(candidates))

        total = np.logaddexp(blank_end, token_end)
        has_last = last >= 0
        safe_last = np.where(has_last, last, 0)
        # The prefix unchanged: a blank after anything, or its last token repeated.
        stay_blank = total + frame[blank]
        stay_token = np.where(has_last, token_end + frame[safe_last], _NEG_INF)
        # The prefix extended by one token; a repeat of the last token needs a blank between.
        extended = total[:, None] + frame[candidates][None, :]
        repeat_rows = np.nonzero(has_last & (column_of[safe_last] >= 0))[0]
        if len(repeat_rows):
            repeat_cols = column_of[last[repeat_rows]]
            extended[repeat_rows, repeat_cols] = blank_end[repeat_rows] + frame[last[repeat_rows]]

        # An extension that reproduces a prefix already in the beam is merged into it.
        index_of = {prefix: row for row, prefix in enumerate(prefixes)}
        for row, prefix in enumerate(prefixes):
            if not prefix:
                continue
            parent = index_of.get(prefix[:-1])
            if parent is None:
                continue
            token = prefix[-1]
            source = blank_end[parent] if last[parent] == token else total[parent]
            stay_token[row] = np.logaddexp(stay_token[row], source + frame[token])
            column = column_of[token]
            if column >= 0:
                extended[parent, column] = _NEG_INF

        stay_total = np.logaddexp(stay_blank, stay_token)
        scores = np.concatenate([stay_total, extended.ravel()])
        chosen = _top_finite(scores, beam_size)
        num_stay = len(prefixes)
        num_columns = len(candidates)
        new_prefixes: list[tuple[int, ...]] = []
        new_blank_end = np.empty(len(chosen))
        new_token_end = np.empty(len(chosen))
        new_last = np.empty(len(chosen), dtype=np.int64)
        for slot, index in enumerate(chosen.tolist()):
            if index < num_stay:
                new_prefixes.append(prefixes[index])
                new_blank_end[slot] = stay_blank[index]
                new_token_end[slot] = stay_token[index]
                new_last[slot] = last[index]
            else:
                row, column = divmod(index - num_stay, num_columns)
                token = int(candidates[column])
                new_prefixes.append(prefixes[row] + (token,))
                new_blank_end[slot] = _NEG_INF
                new_token_end[slot] = scores[index]
                new_last[slot] = token
        prefixes, blank_end, token_end, last = new_prefixes, new_blank_end, new_token_end, new_last

    final = np.logaddexp(blank_end, token_end)
    order = np.argsort(-final, kind="stable")
    return [(prefixes[i], float(final[i])) for i in order.tolist()]


def _candidate_tokens(
    frame: np.ndarray,
    all_tokens: np.ndarray,
    blank: int,
    prune_topk: int | None,
    prune_threshold: float | None,
) -> np.ndarray:
    """Non-blank tokens allowed to extend a prefix at this frame (ascending ids)."""
    candidates = all_tokens
    if prune_threshold is not None:
        candidates = candidates[frame[candidates] >= prune_threshold]
    if prune_topk is not None and prune_topk < len(candidates):
        best = np.argpartition(-frame[candidates], prune_topk - 1)[:prune_topk]
        candidates = np.sort(candidates[best])
    return candidates


def _top_finite(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest finite scores, best first (stable among ties)."""
    finite = np.nonzero(np.isfinite(scores))[0]
    if len(finite) > k:
        keep = np.argpartition(-scores[finite], k - 1)[:k]
        finite = np.sort(finite[keep])
    return finite[np.argsort(-scores[finite], kind="stable")]


def nbest_posteriors(nbest: NBest) -> list[float]:
    """Posterior of each hypothesis within its N-best list: softmax over the total log-probs.

    This is the confidence stored in ``custom["pl"]["confidence"]`` for CTC teachers: the
    share of the N-best probability mass that the 1-best holds. It is near 1 when the
    alternatives are far less likely and near ``1/N`` when the model cannot choose. It is
    relative to the list, so it overstates confidence when the beam is small.
    """
    if not nbest:
        return []
    scores = np.array([score for _, score in nbest], dtype=np.float64)
    if not np.isfinite(scores).any():
        return [1.0 / len(scores)] * len(scores)
    shifted = np.exp(scores - scores.max())
    return (shifted / shifted.sum()).tolist()


def mean_max_frame_posterior(log_probs: torch.Tensor, lens: torch.Tensor) -> list[float]:
    """Per utterance, the mean over valid frames of the largest frame posterior.

    A decoder-free confidence: 1 when every frame is certain (blank or a token), lower
    when frames hesitate. Blank-dominated frames count too, so it is best used to rank
    utterances of similar speaking rate; 0 for an utterance without frames.
    """
    _check_inputs(log_probs, lens)
    max_posteriors = log_probs.detach().max(dim=-1).values.exp().cpu().double()
    result = []
    for utt, num_frames in enumerate(lens.tolist()):
        num_frames = int(num_frames)
        result.append(float(max_posteriors[utt, :num_frames].mean()) if num_frames > 0 else 0.0)
    return result


def hypothesis_confidence(nbest: NBest) -> float:
    """Confidence of the 1-best of one utterance (``nbest_posteriors(nbest)[0]``; 0 if empty)."""
    posteriors = nbest_posteriors(nbest)
    return posteriors[0] if posteriors else 0.0


def _check_inputs(log_probs: torch.Tensor, lens: torch.Tensor | Sequence[int]) -> None:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    num_utts, max_frames, _ = log_probs.shape
    if len(lens) != num_utts:
        raise ValueError(f"{len(lens)} lengths for a batch of {num_utts} utterances")
    lengths = lens.tolist() if isinstance(lens, torch.Tensor) else list(lens)
    if any(n < 0 or n > max_frames for n in lengths):
        raise ValueError(f"lengths {lengths} outside [0, {max_frames}]")


__all__ = [
    "NBest",
    "ctc_greedy_search",
    "ctc_prefix_beam_search",
    "hypothesis_confidence",
    "mean_max_frame_posterior",
    "nbest_posteriors",
]
