"""The toy model of unsupervised ASR (less.unsup.theory / simulation): the paper's settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from less.unsup.simulation import (
    GOOD_LM,
    INTERCHANGEABLE,
    INTERCHANGEABLE_LM,
    TRUE_EMISSIONS,
    SimulationConfig,
    blend,
    format_table,
    run_simulation,
)
from less.unsup.theory import (
    Enumeration,
    MarkovLM,
    coarticulated,
    context_likelihoods,
    evaluate,
    fit_emissions,
    identifiability_constant,
    likelihoods,
    lm_matrix_spectrum,
)
from tests.helpers import flags

ENUM = Enumeration.make(3, 4, 4)


def exact_fit(lm: MarkovLM, true_joint: np.ndarray, seed: int = 0):
    torch.set_num_threads(1)
    seq_probs = lm.sequence_probs(ENUM)
    fit = fit_emissions(true_joint.sum(axis=1), seq_probs, ENUM, np.random.default_rng(seed))
    return evaluate(true_joint, fit.emissions, TRUE_EMISSIONS, seq_probs, ENUM)


def test_c1_and_c2_hold_unpaired_audio_recovers_the_emissions():
    seq_probs = GOOD_LM.sequence_probs(ENUM)
    assert lm_matrix_spectrum(seq_probs, ENUM)[0] == 3
    assert math.isfinite(identifiability_constant(TRUE_EMISSIONS, seq_probs, ENUM))
    result = exact_fit(GOOD_LM, likelihoods(TRUE_EMISSIONS, ENUM) * seq_probs[None, :])
    assert result.marginal_l1 < 1e-5
    assert result.emission_l1 < 1e-3
    assert (
        result.error_mismatch < 1e-9
    )  # (label errors may differ by MAP ties among equally likely sequences)


def test_c2_broken_marginals_match_but_labels_swap():
    seq_probs = INTERCHANGEABLE_LM.sequence_probs(ENUM)
    rank, sigma_min = lm_matrix_spectrum(seq_probs, ENUM)
    assert rank == 2 and sigma_min < 1e-12
    assert identifiability_constant(TRUE_EMISSIONS, seq_probs, ENUM) == math.inf
    true_joint = likelihoods(TRUE_EMISSIONS, ENUM) * seq_probs[None, :]
    swapped = TRUE_EMISSIONS.copy()
    a, b = INTERCHANGEABLE
    swapped[:, [a, b]] = swapped[:, [b, a]]
    permuted = evaluate(true_joint, swapped, TRUE_EMISSIONS, seq_probs, ENUM)
    assert permuted.marginal_l1 < 1e-12  # unpaired audio cannot tell ...
    assert permuted.error_mismatch > 0.3  # ... yet every 1 is read as 2 and back
    assert permuted.model_label_error > permuted.bayes_label_error + 0.3
    learned = exact_fit(INTERCHANGEABLE_LM, true_joint)
    assert (
        learned.marginal_l1 < 1e-5 and learned.emission_l1 > 0.05
    )  # a perfect fit, the wrong emissions


@pytest.mark.slow
def test_shrinking_sigma_min_grows_the_error():
    torch.set_num_threads(1)
    rows = run_simulation(SimulationConfig(sweep=(1.0, 0.05), sample_seeds=6, coarticulation=()))
    full, near = rows[3], rows[4]
    assert near.sigma_min < 0.2 * full.sigma_min and near.kappa > 10 * full.kappa
    assert near.emission_l1 > full.emission_l1 + 0.2
    assert near.error_mismatch > full.error_mismatch + 0.1
    assert full.error_mismatch < 0.01


def test_c1_broken_leaves_an_error_floor():
    seq_probs = GOOD_LM.sequence_probs(ENUM)
    true_joint = context_likelihoods(coarticulated(TRUE_EMISSIONS, 0.3), ENUM) * seq_probs[None, :]
    assert true_joint.sum() == pytest.approx(1.0)
    result = exact_fit(GOOD_LM, true_joint)
    assert result.marginal_l1 > 0.05  # exact data, yet no emissions fit the marginal
    assert result.error_mismatch > 0.05


def test_the_derived_bounds_hold_for_any_emissions():
    rng = np.random.default_rng(3)
    for trial in range(20):
        lm = MarkovLM(rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3), size=3))
        seq_probs = lm.sequence_probs(ENUM)
        truth = rng.dirichlet(np.ones(4), size=3).T
        model = (
            rng.dirichlet(np.ones(4), size=3).T
            if trial % 2
            else truth + 0.01 * (rng.dirichlet(np.ones(4), size=3).T - truth)
        )
        result = evaluate(
            likelihoods(truth, ENUM) * seq_probs[None, :], model, truth, seq_probs, ENUM
        )
        assert 0 <= result.error_mismatch <= result.joint_l1 + 1e-12
        assert result.joint_l1 <= ENUM.length * result.emission_l1 + 1e-12
        assert result.marginal_l1 <= math.sqrt(2 * result.kl) + 1e-12


def test_blend_moves_between_the_two_lms():
    assert np.allclose(blend(1.0).trans, GOOD_LM.trans) and np.allclose(
        blend(0.0).trans, INTERCHANGEABLE_LM.trans
    )
    spectra = [
        lm_matrix_spectrum(blend(eps).sequence_probs(ENUM), ENUM)[1]
        for eps in (1.0, 0.3, 0.1, 0.01)
    ]
    assert spectra == sorted(spectra, reverse=True)


def test_simulation_table_is_deterministic_and_cli_prints_it(capsys, tmp_path):
    from less.bin import simulate_unsup

    torch.set_num_threads(1)
    cfg = SimulationConfig(sweep=(1.0,), sample_seeds=1, coarticulation=(0.3,), restarts=4)
    first, second = run_simulation(cfg), run_simulation(cfg)
    assert first == second
    assert [r.setting.split(":")[0] for r in first] == [
        "C1+C2 hold (exact)",
        "C2 broken",
        "C2 broken",
        "sigma_min",
        "C1 broken",
    ]
    assert all(r.bound_joint and r.bound_pinsker for r in first)
    assert "VIOLATED" not in format_table(first)
    simulate_unsup.main(
        [
            *flags(
                sweep="1",
                sample_seeds="1",
                coarticulation="0.3",
                restarts="4",
                out=str(tmp_path / "sim.json"),
            ),
        ]
    )
    printed = capsys.readouterr().out
    assert "C2 broken: truth, 1<->2 swapped" in printed and "holds" in printed
    assert (tmp_path / "sim.txt").read_text().strip() == format_table(first).strip()
