"""The toy model of unsupervised ASR, solved by exact enumeration.

Why a toy: the conditions of Yang et al. (arXiv 2603.02285) are statements about
distributions, and with a few labels, observations and positions every distribution can
be enumerated exactly, so "the model recovers the emissions" and "the bound holds" are
checked to machine precision rather than estimated.

Setting. Label sequences ``c = (c_1..c_N)`` over ``K`` labels come from a known LM
``p_LM(c)`` (a first-order Markov chain here). The audio is ``x = (x_1..x_N)`` over ``M``
discrete observations, one per label. The model assumes (C1) ``q(x|c) = prod_n e(x_n|c_n)``
and is trained on unpaired audio alone by maximising the marginal likelihood
``q(x) = sum_c p_LM(c) q(x|c)``, i.e. minimising the exact cross-entropy
``-sum_x p_r(x) log q(x)`` (EM steps, then L-BFGS gradient descent). The truth either factorises the same way (C1 holds) or lets each
observation also depend on the previous label (coarticulation: C1 broken).

The LM matrix of C2 (our reading): at position ``n``, ``P_n[h, k] = p_LM(c_{-n} = h,
c_n = k)`` — contexts by labels. If two labels are interchangeable (same contexts,
proportional probabilities) two columns are parallel, ``P_n`` loses column rank, and the
marginal only sees a mixture of their emissions: any split of it fits equally well.

Bounds (derived here; the paper's own bound, ``D_q <= N^2 ||P^+ C||_1 ||p_r - q||_1``, has
a constant ``C`` we could not read, so it is not asserted):

1. ``D_q <= sum_{x,c} |p_r(x,c) - q(x,c)|`` for the error mismatch ``D_q`` of the model's
   MAP decision against the Bayes decision (``p(x, r_p) - p(x, r_q) <= [p - q](x, r_p) +
   [q - p](x, r_q)`` because ``q(x, r_q) >= q(x, r_p)``).
2. Under C1 and a correct LM: ``sum_{x,c} |p_r(x,c) - q(x,c)| <= N sum_k pi(k) ||e_r(.|k) -
   e_q(.|k)||_1``, ``pi(k)`` the mean label occupancy (telescoping a product of N
   distributions).
3. Pinsker: ``||p_r - q||_1 <= sqrt(2 KL(p_r || q))``: the cross-entropy controls the
   marginal mismatch.
4. First order (not a strict bound): ``||e_r - e_q||_F <= kappa ||p_r - q||_2`` with
   ``kappa = 1 / sigma_min(J)``, ``J`` the Jacobian of ``e -> q(x)`` on the simplex
   tangent space at the truth, so ``D_q <~ N sqrt(M) kappa ||p_r - q||_1``. ``kappa`` is
   infinite exactly when the marginal cannot tell some emission change apart (C2 broken).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Enumeration:
    """All label sequences (``labels``: (K^N, N)) and observation sequences (``obs``: (M^N, N))."""

    num_labels: int
    num_obs: int
    length: int
    labels: np.ndarray
    obs: np.ndarray

    @classmethod
    def make(cls, num_labels: int, num_obs: int, length: int) -> Enumeration:
        if num_labels**length * num_obs**length > 5_000_000:
            raise ValueError(
                f"{num_labels}^{length} x {num_obs}^{length} joint entries: too many to enumerate"
            )
        labels = np.array(list(itertools.product(range(num_labels), repeat=length)), dtype=np.int64)
        obs = np.array(list(itertools.product(range(num_obs), repeat=length)), dtype=np.int64)
        return cls(num_labels, num_obs, length, labels, obs)


@dataclass(frozen=True)
class MarkovLM:
    """``p(c) = start[c_1] prod_n trans[c_{n-1}, c_n]``."""

    start: np.ndarray  # (K,)
    trans: np.ndarray  # (K, K), rows sum to 1

    def sequence_probs(self, enum: Enumeration) -> np.ndarray:
        labels = enum.labels
        probs = self.start[labels[:, 0]].copy()
        for n in range(1, enum.length):
            probs *= self.trans[labels[:, n - 1], labels[:, n]]
        return probs


def context_matrix(seq_probs: np.ndarray, enum: Enumeration, position: int) -> np.ndarray:
    """``P_n[h, k] = p(c_{-n} = h, c_n = k)``: the LM matrix of condition C2 at one position."""
    others = [m for m in range(enum.length) if m != position]
    context_index = np.zeros(len(seq_probs), dtype=np.int64)
    for m in others:
        context_index = context_index * enum.num_labels + enum.labels[:, m]
    matrix = np.zeros((enum.num_labels ** len(others), enum.num_labels))
    np.add.at(matrix, (context_index, enum.labels[:, position]), seq_probs)
    return matrix


def lm_matrix_spectrum(seq_probs: np.ndarray, enum: Enumeration) -> tuple[int, float]:
    """(smallest column rank, smallest singular value) of the LM matrices over all positions."""
    ranks, sigmas = [], []
    for n in range(enum.length):
        singular = np.linalg.svd(context_matrix(seq_probs, enum, n), compute_uv=False)
        ranks.append(int((singular > 1e-10 * max(singular[0], 1e-300)).sum()))
        sigmas.append(float(singular[-1]))
    return min(ranks), min(sigmas)


def likelihoods(emissions: np.ndarray, enum: Enumeration) -> np.ndarray:
    """``q(x|c)`` (M^N, K^N) of context-independent emissions ``(M, K)``."""
    out = np.ones((len(enum.obs), len(enum.labels)))
    for n in range(enum.length):
        out *= emissions[enum.obs[:, n]][:, enum.labels[:, n]]
    return out


def context_likelihoods(emissions: np.ndarray, enum: Enumeration) -> np.ndarray:
    """``p(x|c)`` for emissions ``(M, K, K + 1)`` that also depend on the previous label
    (index ``K``: none, at the first position) — a truth that breaks C1."""
    out = np.ones((len(enum.obs), len(enum.labels)))
    start = np.full(len(enum.labels), enum.num_labels)
    for n in range(enum.length):
        previous = start if n == 0 else enum.labels[:, n - 1]
        out *= emissions[enum.obs[:, n][:, None], enum.labels[:, n][None, :], previous[None, :]]
    return out


def coarticulated(emissions: np.ndarray, strength: float) -> np.ndarray:
    """``e(x | c_n, c_{n-1}) = (1 - s) e(x|c_n) + s e(x|c_{n-1})``: part of the previous
    label's sound spills into the next one (none at the first position)."""
    num_obs, num_labels = emissions.shape
    out = np.empty((num_obs, num_labels, num_labels + 1))
    for k in range(num_labels):
        for j in range(num_labels):
            out[:, k, j] = (1 - strength) * emissions[:, k] + strength * emissions[:, j]
        out[:, k, num_labels] = emissions[:, k]
    return out


def _cross_entropy(
    target: np.ndarray, emissions: np.ndarray, seq_probs: np.ndarray, enum: Enumeration
) -> float:
    marginal = likelihoods(emissions, enum) @ seq_probs
    support = target > 0
    return float(-(target[support] * np.log(marginal[support])).sum())


def em_steps(
    target: np.ndarray,
    emissions: np.ndarray,
    seq_probs: np.ndarray,
    enum: Enumeration,
    iterations: int,
) -> np.ndarray:
    """EM for the emissions: each step never increases the cross-entropy to ``target``."""
    obs_onehot = [np.eye(enum.num_obs)[enum.obs[:, n]] for n in range(enum.length)]
    label_onehot = [np.eye(enum.num_labels)[enum.labels[:, n]] for n in range(enum.length)]
    support = target > 0
    for _ in range(iterations):
        joint = likelihoods(emissions, enum) * seq_probs[None, :]
        marginal = joint.sum(axis=1)
        weights = joint * (np.where(support, target / np.maximum(marginal, 1e-300), 0.0))[:, None]
        counts = sum(obs_onehot[n].T @ weights @ label_onehot[n] for n in range(enum.length))
        emissions = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1e-300)
    return emissions


def lbfgs_polish(
    target: np.ndarray,
    emissions: np.ndarray,
    seq_probs: np.ndarray,
    enum: Enumeration,
    max_iterations: int,
) -> np.ndarray:
    """Gradient descent (L-BFGS, float64) on the cross-entropy over softmax-parametrised
    emissions: EM crawls along the flat directions of an ill-conditioned LM, L-BFGS does not."""
    import torch

    labels = torch.from_numpy(enum.labels)
    obs = torch.from_numpy(enum.obs)
    prior = torch.from_numpy(seq_probs)
    weight = torch.from_numpy(target)
    logits = torch.log(torch.from_numpy(emissions).clamp_min(1e-12)).requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [logits],
        lr=1.0,
        max_iter=max_iterations,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        log_e = torch.log_softmax(logits, dim=0)
        log_lik = sum(log_e[obs[:, n]][:, labels[:, n]] for n in range(enum.length))
        log_marginal = torch.logsumexp(log_lik + torch.log(prior)[None, :], dim=1)
        loss = -(weight * log_marginal).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return torch.softmax(logits.detach(), dim=0).numpy()


@dataclass
class Fit:
    emissions: np.ndarray
    cross_entropy: float  # -sum_x p_target(x) log q(x), nats


def fit_emissions(
    target: np.ndarray,
    seq_probs: np.ndarray,
    enum: Enumeration,
    rng: np.random.Generator,
    restarts: int = 16,
    polished: int = 2,
    em_iterations: int = 30,
    lbfgs_iterations: int = 200,
) -> Fit:
    """Emissions maximising the marginal likelihood of ``target`` (a distribution over the
    M^N observation sequences). The likelihood has poor local optima (a label whose
    emission collapses onto another's sound), so: ``restarts`` Dirichlet starts, a few EM
    steps each (cheap), the ``polished`` best of them run to convergence by L-BFGS; the
    lowest cross-entropy wins."""
    starts = []
    for _ in range(restarts):
        emissions = rng.dirichlet(np.ones(enum.num_obs), size=enum.num_labels).T
        emissions = em_steps(target, emissions, seq_probs, enum, em_iterations)
        starts.append((_cross_entropy(target, emissions, seq_probs, enum), len(starts), emissions))
    best: Fit | None = None
    for _, _, emissions in sorted(starts, key=lambda item: item[:2])[:polished]:
        if lbfgs_iterations > 0:
            emissions = lbfgs_polish(target, emissions, seq_probs, enum, lbfgs_iterations)
        cross_entropy = _cross_entropy(target, emissions, seq_probs, enum)
        if best is None or cross_entropy < best.cross_entropy:
            best = Fit(emissions, cross_entropy)
    assert best is not None
    return best


@dataclass
class Evaluation:
    """How a model's emissions do against the truth (every quantity exact)."""

    marginal_l1: float  # sum_x |p_r(x) - q(x)|
    kl: float  # KL(p_r || q), nats
    joint_l1: float  # sum_{x,c} |p_r(x,c) - q(x,c)|
    emission_l1: (
        float  # sum_k pi(k) ||e_r(.|k) - e_q(.|k)||_1 (C1 truths; else vs the base emissions)
    )
    bayes_error: float  # sequence error of the true MAP decision
    model_error: float  # sequence error of the model's MAP decision, under the truth
    error_mismatch: float  # D_q = model_error - bayes_error
    bayes_label_error: float  # fraction of positions wrong, true MAP decision
    model_label_error: float


def occupancy(seq_probs: np.ndarray, enum: Enumeration) -> np.ndarray:
    """Mean over positions of the label marginals ``pi(k)``."""
    out = np.zeros(enum.num_labels)
    for n in range(enum.length):
        np.add.at(out, enum.labels[:, n], seq_probs)
    return out / enum.length


def evaluate(
    true_joint: np.ndarray,
    model_emissions: np.ndarray,
    base_emissions: np.ndarray,
    seq_probs: np.ndarray,
    enum: Enumeration,
) -> Evaluation:
    """Compare the model (emissions + the known LM) with the true joint ``p_r(x, c)``."""
    model_joint = likelihoods(model_emissions, enum) * seq_probs[None, :]
    true_marginal, model_marginal = true_joint.sum(axis=1), model_joint.sum(axis=1)
    support = true_marginal > 0
    p, q = true_marginal[support], model_marginal[support]
    kl = float(
        (p * np.log(p / q) - p + q).sum() + model_marginal[~support].sum()
    )  # termwise >= 0: no cancellation
    rows = np.arange(len(enum.obs))
    bayes, model = true_joint.argmax(axis=1), model_joint.argmax(axis=1)
    hamming = (enum.labels[:, None, :] != enum.labels[None, :, :]).mean(axis=2)  # (K^N, K^N)
    label_error = [
        float((true_joint * hamming[decision][:, :]).sum()) for decision in (bayes, model)
    ]
    bayes_error = 1.0 - float(true_joint[rows, bayes].sum())
    model_error = 1.0 - float(true_joint[rows, model].sum())
    pi = occupancy(seq_probs, enum)
    return Evaluation(
        marginal_l1=float(np.abs(true_marginal - model_marginal).sum()),
        kl=max(kl, 0.0),
        joint_l1=float(np.abs(true_joint - model_joint).sum()),
        emission_l1=float((pi * np.abs(base_emissions - model_emissions).sum(axis=0)).sum()),
        bayes_error=bayes_error,
        model_error=model_error,
        error_mismatch=model_error - bayes_error,
        bayes_label_error=label_error[0],
        model_label_error=label_error[1],
    )


def marginal_jacobian(
    emissions: np.ndarray, seq_probs: np.ndarray, enum: Enumeration
) -> np.ndarray:
    """``d q(x) / d e(a|k)`` on the tangent space of the emission simplices: (M^N, (M-1) K)."""
    num_obs, num_labels = enum.num_obs, enum.num_labels
    per_position = [emissions[enum.obs[:, n]][:, enum.labels[:, n]] for n in range(enum.length)]
    jac = np.zeros((len(enum.obs), num_obs, num_labels))
    label_onehot = [np.eye(num_labels)[enum.labels[:, n]] for n in range(enum.length)]
    for n in range(enum.length):
        others = np.ones_like(per_position[0])
        for m in range(enum.length):
            if m != n:
                others = others * per_position[m]
        by_label = (others * seq_probs[None, :]) @ label_onehot[n]  # (M^N, K)
        jac[np.arange(len(enum.obs)), enum.obs[:, n], :] += by_label
    # orthonormal basis of {v in R^M : sum v = 0}, one copy per label column
    basis_obs = np.linalg.svd(np.eye(num_obs) - 1.0 / num_obs)[0][:, : num_obs - 1]
    return np.einsum("xak,ad->xdk", jac, basis_obs).reshape(len(enum.obs), -1)


def identifiability_constant(
    emissions: np.ndarray, seq_probs: np.ndarray, enum: Enumeration
) -> float:
    """``kappa = 1 / sigma_min(J)``: how much an emission error is magnified relative to the
    marginal error it causes, to first order (inf: some emission change is invisible)."""
    singular = np.linalg.svd(marginal_jacobian(emissions, seq_probs, enum), compute_uv=False)
    smallest = float(singular[-1])
    return math.inf if smallest < 1e-12 * float(singular[0]) else 1.0 / smallest


def empirical(distribution: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """The relative frequencies of ``num_samples`` draws (finite unpaired audio)."""
    counts = rng.multinomial(num_samples, distribution / distribution.sum())
    return counts / num_samples
