"""The sequence-level unsupervised loss of system U and the hypothesis sets it sums over.

Derivation (ours; the paper, arXiv 2603.02285, motivates "a single-stage sequence-level
cross-entropy loss" by its bound, but its exact form was not reachable). Unsupervised
training fits the model's marginal of the audio, ``q(x) = sum_c p_LM(c) q(x|c)``, to the
real audio by cross-entropy ``E_{x~p_r}[-log q(x)]`` (= ``KL(p_r || q)`` + const., which
by Pinsker bounds the marginal mismatch that drives the error bound). Our student is
discriminative, ``p_theta(c|x)`` (CTC); the generative model it implies on the real
audio is ``q(x|c) = p_theta(c|x) p_r(x) / p_theta(c)`` with the model's own sequence prior
``p_theta(c) = E_{x~p_r} p_theta(c|x)`` (so ``q(x|c)`` normalises over ``x``). Then

    -log q(x) = -log p_r(x) - log sum_c exp[log p_theta(c|x) - log p_theta(c) + log p_LM(c)],

and ``sum_x q(x) = sum_c p_LM(c) = 1``: ``q`` is a proper distribution. Dropping the
constant ``-log p_r(x)``, the per-cut loss is

    L(x) = -log sum_{c in H(x)} exp[log p_CTC(c|x) - beta log prior(c) + lambda log p_ngram(c)].

Deviations from the exact objective, each a choice made here:

* ``H(x)``: the teacher's N-best (``pl["nbest"]``) plus the LLM's text (``pl["llm"]["text"]``),
  deduplicated after tokenisation, instead of all label sequences. A partial sum makes
  ``L`` an upper bound of the exact loss, so minimising it still pushes the exact one down.
* ``prior(c) = prod_i pi(c_i)``: a label-unigram prior in place of the sequence prior
  ``p_theta(c)``, with ``pi`` the student's CTC posteriors averaged over the frames of the
  current unlabeled batch, blank removed and renormalised, without gradient (the
  "prior correction" of hybrid/CTC systems; stateless, so a resumed run stays exact).
* ``lambda``, ``beta``: scales of the LM and the prior as in shallow fusion; the
  derivation gives ``beta = lambda = 1``, other values trade the normalisation for control.
* ``p_ngram``: a character n-gram LM trained on text (:mod:`less.unsup.ngram`) stands in
  for ``p_LM``.

``L`` is a log-ratio (``-log q(x)/p_r(x)`` per cut), not a code length: it can be
negative. The loss needs no reference: its gradient is ``sum_c r(c|x) grad log p_CTC(c|x)`` with
``r`` the posterior over ``H(x)`` that combines the student, the LM and the prior.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from less.pseudo.record import PseudoLabelRecord


def sequence_level_loss(
    log_probs: Tensor,
    log_prob_lens: Tensor,
    hypotheses: Sequence[Sequence[Sequence[int]]],
    lm_scores: Sequence[Sequence[float]] | None = None,
    log_prior: Tensor | None = None,
    lm_weight: float = 0.0,
    prior_weight: float = 0.0,
    blank: int = 0,
) -> Tensor:
    """Per-utterance ``-log sum_{c in H} exp[log p_CTC(c|x) - beta log prior(c) + lambda log p_LM(c)]``.

    ``log_probs``: CTC log-posteriors (B, T, V); ``log_prob_lens``: (B,) valid frames;
    ``hypotheses[b]``: token-id sequences of utterance ``b`` (at least one each);
    ``lm_scores[b][j]``: ``log p_ngram`` (nats) of hypothesis ``j``; ``log_prior``: (V,)
    log label prior (needed when ``prior_weight`` is not 0). Returns (B,) losses in nats;
    +inf where no hypothesis fits the frames (CTC impossible). One ``ctc_loss`` call
    (reduction ``none``) covers every hypothesis of the batch.
    """
    batch = log_probs.shape[0]
    if len(hypotheses) != batch:
        raise ValueError(f"{batch} utterances but {len(hypotheses)} hypothesis lists")
    if any(not hyps for hyps in hypotheses):
        raise ValueError("every utterance needs at least one hypothesis")
    owners = [b for b, hyps in enumerate(hypotheses) for _ in hyps]
    flat = [list(h) for hyps in hypotheses for h in hyps]
    if any(not h for h in flat):
        raise ValueError("empty hypothesis (no tokens)")
    device = log_probs.device
    frames = log_prob_lens.cpu()
    owner = torch.tensor(owners)
    # CTC needs a frame per token and a blank between repeats; infeasible hypotheses get
    # score -inf explicitly (ctc_loss's own inf would leave NaN gradients behind)
    fits = [
        len(h) + sum(a == b for a, b in zip(h, h[1:])) <= int(frames[o])
        for h, o in zip(flat, owners)
    ]
    feasible = torch.tensor(fits, device=device)
    any_feasible = torch.tensor(
        [any(f for f, o in zip(fits, owners) if o == b) for b in range(batch)], device=device
    )
    lengths = torch.tensor([len(h) for h in flat], dtype=torch.long)
    targets = torch.tensor([t for h in flat for t in h], dtype=torch.long)
    expanded = log_probs.float().index_select(0, owner.to(device)).transpose(0, 1)  # (T, H, V)
    nll = F.ctc_loss(
        expanded,
        targets,
        frames.index_select(0, owner),
        lengths,
        blank=blank,
        reduction="none",
        zero_infinity=True,
    )
    scores = -nll
    if prior_weight:
        if log_prior is None:
            raise ValueError("prior_weight needs log_prior")
        prior = log_prior.float().to(device)
        prior_scores = torch.stack(
            [prior[torch.tensor(h, dtype=torch.long, device=device)].sum() for h in flat]
        )
        scores = scores - prior_weight * prior_scores
    if lm_weight:
        if lm_scores is None:
            raise ValueError("lm_weight needs lm_scores")
        flat_lm = [s for per_utt in lm_scores for s in per_utt]
        if len(flat_lm) != len(flat):
            raise ValueError(f"{len(flat)} hypotheses but {len(flat_lm)} LM scores")
        scores = scores + lm_weight * torch.tensor(flat_lm, dtype=scores.dtype, device=device)
    scores = torch.where(feasible, scores, torch.full_like(scores, -math.inf))
    # -log sum_j exp(score_j) per utterance, over a padded (B, max H) table
    counts = [len(hyps) for hyps in hypotheses]
    column = torch.tensor([j for c in counts for j in range(c)], device=device)
    table = scores.new_full((batch, max(counts)), -math.inf).index_put(
        (owner.to(device), column), scores
    )
    # rows without a feasible hypothesis: +inf, computed off a dummy 0 so no NaN reaches the gradient
    safe = torch.where(any_feasible[:, None], table, torch.zeros_like(table))
    return torch.where(
        any_feasible, -torch.logsumexp(safe, dim=1), torch.full_like(safe[:, 0], math.inf)
    )


def batch_label_prior(
    log_probs: Tensor, log_prob_lens: Tensor, blank: int = 0, floor: float = 1e-8
) -> Tensor:
    """``log pi``: the CTC posteriors averaged over the valid frames of a batch, blank removed
    and renormalised; no gradient (a prior estimate, not something to train)."""
    with torch.no_grad():
        probs = log_probs.float().exp()
        valid = (
            torch.arange(probs.shape[1], device=probs.device)[None, :]
            < log_prob_lens.to(probs.device)[:, None]
        )
        mean = (probs * valid[:, :, None]).sum(dim=(0, 1)) / valid.sum().clamp_min(1)
        mean[blank] = 0.0
        mean = mean.clamp_min(floor)
        mean[blank] = floor
        return (mean / mean.sum()).log()


@dataclass(frozen=True)
class Hypotheses:
    """The hypothesis set ``H(x)`` of one unlabeled cut, tokenised, with LM scores (nats)."""

    texts: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]
    lm_scores: tuple[float, ...]


def hypothesis_texts(record: PseudoLabelRecord, include_llm: bool = True) -> list[str]:
    """The teacher's N-best texts (1-best when no N-best) and the LLM's text, in that order."""
    texts = [text for text, _ in record.nbest if text]
    if not texts and record.hyp:
        texts = [record.hyp]
    if include_llm and record.llm_text:
        texts.append(record.llm_text)
    return texts


def make_hypotheses(
    texts: Sequence[str],
    encode: Callable[[str], list[int]],
    lm_score: Callable[[str], float] | None = None,
) -> Hypotheses | None:
    """Deduplicate ``texts`` by token sequence (H is a set: a duplicate would count twice);
    drop empty ones; None when nothing is left."""
    seen: dict[tuple[int, ...], str] = {}
    for text in texts:
        tokens = tuple(encode(text))
        if tokens and tokens not in seen:
            seen[tokens] = text
    if not seen:
        return None
    kept_texts = tuple(seen.values())
    scores = (
        tuple(lm_score(t) for t in kept_texts)
        if lm_score is not None
        else tuple(0.0 for _ in kept_texts)
    )
    return Hypotheses(kept_texts, tuple(seen), scores)
