"""The settings of the simulation (Yang et al., arXiv 2603.02285) at toy size, as a table.

Each row fits emissions on unpaired audio alone (EM, then L-BFGS:
:func:`less.unsup.theory.fit_emissions`)
and compares the fit with the truth. The rows, and what each should show:

* ``C1+C2``: the truth factorises per label and the LM matrix has full column rank: EM on
  the exact marginal recovers the emissions; no error mismatch.
* ``C2 broken``: labels 1 and 2 are interchangeable in the LM (same contexts, same
  probabilities): the marginal only sees the mixture of their emissions. The truth with
  the two emissions swapped matches the marginal exactly yet decides 1 for 2 — a label
  permutation inside the interchangeable class, high error at zero marginal mismatch.
* ``sigma_min eps``: the LM moves from the interchangeable one (eps = 0) to the C2 one
  (eps = 1); with finite audio (sampling noise) the emission error and error mismatch
  grow as the LM matrix's smallest singular value shrinks — as ``kappa`` does.
* ``C1 broken s``: each observation also carries part of the previous label's sound; the
  context-independent model cannot fit the marginal, and an error floor remains.

The bound columns check, for every fit, the derived chain ``D_q <= ||p_r(x,c) - q(x,c)||_1``
and (C1 truths) ``<= N sum_k pi(k) ||e_r - e_q||_1``, and Pinsker's inequality.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from less.unsup.theory import (
    Enumeration,
    MarkovLM,
    coarticulated,
    context_likelihoods,
    empirical,
    evaluate,
    fit_emissions,
    identifiability_constant,
    likelihoods,
    lm_matrix_spectrum,
)

# Three labels, four observations: label 2 is the least reliable sound.
TRUE_EMISSIONS = np.array(
    [
        [0.80, 0.10, 0.05],
        [0.10, 0.80, 0.05],
        [0.05, 0.05, 0.30],
        [0.05, 0.05, 0.60],
    ]
)
GOOD_LM = MarkovLM(
    start=np.array([0.5, 0.3, 0.2]),
    trans=np.array([[0.1, 0.6, 0.3], [0.5, 0.1, 0.4], [0.3, 0.5, 0.2]]),
)
# Labels 1 and 2 interchangeable: equal chances wherever they occur, and the same future.
INTERCHANGEABLE_LM = MarkovLM(
    start=np.array([0.4, 0.3, 0.3]),
    trans=np.array([[0.2, 0.4, 0.4], [0.6, 0.2, 0.2], [0.6, 0.2, 0.2]]),
)
INTERCHANGEABLE = (1, 2)


def blend(eps: float) -> MarkovLM:
    """The interchangeable LM moved a fraction ``eps`` towards the C2 one."""
    return MarkovLM(
        start=(1 - eps) * INTERCHANGEABLE_LM.start + eps * GOOD_LM.start,
        trans=(1 - eps) * INTERCHANGEABLE_LM.trans + eps * GOOD_LM.trans,
    )


@dataclass
class SimulationConfig:
    length: int = 4  # positions N
    seed: int = 0
    restarts: int = 16  # Dirichlet starts of the fit (a few EM steps each)
    polished: int = 2  # the best starts run to convergence by L-BFGS
    em_iterations: int = 30
    lbfgs_iterations: int = 200
    num_samples: int = 3000  # unpaired audio sequences of the finite-sample rows
    sample_seeds: int = 8  # finite-sample rows average over this many draws
    sweep: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.02)
    coarticulation: tuple[float, ...] = (0.15, 0.3)


@dataclass
class Row:
    setting: str
    c1: bool
    lm_rank: int
    sigma_min: float  # smallest singular value of the LM matrices
    kappa: float  # first-order identifiability constant at the truth
    marginal_l1: float
    kl: float
    emission_l1: float
    joint_l1: float
    bayes_error: float
    model_error: float
    error_mismatch: float
    bayes_label_error: float
    model_label_error: float
    bound_joint: bool  # D_q <= joint L1
    bound_emission: bool | None  # joint L1 <= N sum pi ||de||_1 (C1 truths only)
    bound_pinsker: bool
    first_order_bound: float  # N sqrt(M) kappa ||p_r - q||_1 (not a strict bound)


def _row(
    setting: str,
    c1: bool,
    lm: MarkovLM,
    true_joint_fn,
    fits: list[tuple[np.ndarray, np.ndarray]],
    enum: Enumeration,
) -> Row:
    """One table row: the mean over ``fits`` (true joint, model emissions) of the measures."""
    seq_probs = lm.sequence_probs(enum)
    rank, sigma_min = lm_matrix_spectrum(seq_probs, enum)
    kappa = identifiability_constant(TRUE_EMISSIONS, seq_probs, enum)
    evaluations = [
        evaluate(true_joint_fn(), emissions, TRUE_EMISSIONS, seq_probs, enum)
        for _, emissions in fits
    ]
    tol = 1e-9
    bound_joint = all(e.error_mismatch <= e.joint_l1 + tol for e in evaluations)
    bound_emission = (
        all(e.joint_l1 <= enum.length * e.emission_l1 + tol for e in evaluations) if c1 else None
    )
    bound_pinsker = all(e.marginal_l1 <= math.sqrt(2 * e.kl) + tol for e in evaluations)
    mean = {
        key: float(np.mean([getattr(e, key) for e in evaluations]))
        for key in asdict(evaluations[0])
    }
    return Row(
        setting=setting,
        c1=c1,
        lm_rank=rank,
        sigma_min=sigma_min,
        kappa=kappa,
        bound_joint=bound_joint,
        bound_emission=bound_emission,
        bound_pinsker=bound_pinsker,
        first_order_bound=enum.length * math.sqrt(enum.num_obs) * kappa * mean["marginal_l1"],
        **mean,
    )


def run_simulation(cfg: SimulationConfig, show_progress: bool = False) -> list[Row]:
    """Every setting of the table, deterministic for a given ``cfg.seed``."""
    from less.utils import progress_bar

    num_obs, num_labels = TRUE_EMISSIONS.shape
    enum = Enumeration.make(num_labels, num_obs, cfg.length)
    rows = []
    progress = progress_bar(
        total=2 + len(cfg.sweep) * cfg.sample_seeds + len(cfg.coarticulation),
        desc="fits",
        unit="fit",
        disable=not show_progress,
    )

    def truth(lm: MarkovLM, emissions=TRUE_EMISSIONS):
        return lambda: likelihoods(emissions, enum) * lm.sequence_probs(enum)[None, :]

    def fit(target: np.ndarray, lm: MarkovLM, rng: np.random.Generator) -> np.ndarray:
        """The emissions fitted to ``target``, a distribution over the observation sequences."""
        return fit_emissions(
            target,
            lm.sequence_probs(enum),
            enum,
            rng,
            cfg.restarts,
            cfg.polished,
            cfg.em_iterations,
            cfg.lbfgs_iterations,
        ).emissions

    def exact_fit(lm: MarkovLM, true_joint: np.ndarray, offset: int) -> np.ndarray:
        rng = np.random.default_rng([cfg.seed, offset])
        progress.update()
        return fit(true_joint.sum(axis=1), lm, rng)

    joint = truth(GOOD_LM)()
    rows.append(
        _row(
            "C1+C2 hold (exact)",
            True,
            GOOD_LM,
            truth(GOOD_LM),
            [(joint, exact_fit(GOOD_LM, joint, 1))],
            enum,
        )
    )

    lm = INTERCHANGEABLE_LM
    joint = truth(lm)()
    rows.append(
        _row("C2 broken: EM (exact)", True, lm, truth(lm), [(joint, exact_fit(lm, joint, 2))], enum)
    )
    swapped = TRUE_EMISSIONS.copy()
    a, b = INTERCHANGEABLE
    swapped[:, [a, b]] = swapped[:, [b, a]]
    rows.append(
        _row(f"C2 broken: truth, {a}<->{b} swapped", True, lm, truth(lm), [(joint, swapped)], enum)
    )

    for i, eps in enumerate(cfg.sweep):
        lm = blend(eps)
        joint = truth(lm)()
        fits = []
        for s in range(cfg.sample_seeds):
            rng = np.random.default_rng([cfg.seed, 100 + i, s])
            sample = empirical(joint.sum(axis=1), cfg.num_samples, rng)
            fits.append((joint, fit(sample, lm, rng)))
            progress.update()
        rows.append(
            _row(f"sigma_min: eps={eps:g}, {cfg.num_samples} seqs", True, lm, truth(lm), fits, enum)
        )

    for i, strength in enumerate(cfg.coarticulation):
        true_emissions = coarticulated(TRUE_EMISSIONS, strength)

        def true_joint(true_emissions=true_emissions):
            return context_likelihoods(true_emissions, enum) * GOOD_LM.sequence_probs(enum)[None, :]

        joint = true_joint()
        rows.append(
            _row(
                f"C1 broken: coarticulation s={strength:g} (exact)",
                False,
                GOOD_LM,
                true_joint,
                [(joint, exact_fit(GOOD_LM, joint, 200 + i))],
                enum,
            )
        )
    progress.close()
    return rows


COLUMNS = (
    ("setting", "{:<40}"),
    ("lm_rank", "{:>4}"),
    ("sigma_min", "{:>9.2e}"),
    ("kappa", "{:>8.1f}"),
    ("marginal_l1", "{:>9.2e}"),
    ("emission_l1", "{:>8.4f}"),
    ("bayes_error", "{:>7.4f}"),
    ("error_mismatch", "{:>8.4f}"),
    ("bayes_label_error", "{:>7.4f}"),
    ("model_label_error", "{:>7.4f}"),
    ("joint_l1", "{:>8.4f}"),
    ("first_order_bound", "{:>9.3g}"),
)
HEADERS = (
    "setting",
    "rank",
    "sig_min",
    "kappa",
    "|p-q|_1",
    "e_err",
    "Bayes",
    "D_q",
    "lab_B",
    "lab_q",
    "|p-q|xc",
    "1st-ord",
)


def format_table(rows: list[Row]) -> str:
    """Fixed-width table, then the bound checks."""
    widths = [len(fmt.format(getattr(rows[0], key))) for key, fmt in COLUMNS]
    lines = [
        "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(HEADERS, widths)))
    ]
    for row in rows:
        lines.append("  ".join(fmt.format(getattr(row, key)) for key, fmt in COLUMNS))
    lines.append("")
    lines.append(
        "bounds (derived, see less.unsup.theory): D_q <= |p-q|xc: "
        + ("holds" if all(r.bound_joint for r in rows) else "VIOLATED")
        + "; |p-q|xc <= N sum pi |de|_1 (C1 rows): "
        + ("holds" if all(r.bound_emission for r in rows if r.c1) else "VIOLATED")
        + "; Pinsker |p-q|_1 <= sqrt(2 KL): "
        + ("holds" if all(r.bound_pinsker for r in rows) else "VIOLATED")
    )
    lines.append(
        "columns: e_err = sum_k pi(k) |e_r(.|k) - e_q(.|k)|_1; Bayes / D_q: sequence error of the true MAP "
        "decision / the model's excess; lab_B / lab_q: label (position) error of each; 1st-ord = "
        "N sqrt(M) kappa |p-q|_1 (a first-order estimate of D_q's bound, not strict)"
    )
    return "\n".join(lines)
