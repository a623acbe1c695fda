"""Label-only membership (Choquette-Choo et al. 2021) and the threshold audit's ε̂ (Jagielski et al. 2020)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparring.attacks.privacy.audit import threshold_audit
from sparring.attacks.privacy.label_only import shifted, shifts
from sparring.errors import InputError


def test_shifts_move_pixels_and_fill_the_edge() -> None:
    assert sorted(shifts(1)) == [(-1, 0), (0, -1), (0, 1), (1, 0)] and len(shifts(2)) == 12
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 1.0
    moved = shifted(x, 1, -1, fill=0.5)
    assert moved[0, 0, 2, 1] == 1.0 and float(moved[0, 0, 0].sum()) == 2.0 and float(moved[0, 0, :, 3].sum()) == 2.0


def _randomised_response(eps: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of an ε-DP mechanism: a member answers 1 with probability e^ε / (1 + e^ε), a non-member 0 as often."""
    rng = np.random.default_rng(seed)
    p = math.exp(eps) / (1 + math.exp(eps))
    scores = np.r_[rng.random(n) < p, rng.random(n) >= p].astype(float)
    return scores, np.r_[np.ones(n, bool), np.zeros(n, bool)]


def test_audit_lower_bound_stays_below_a_known_epsilon_and_detects_leaks() -> None:
    for seed in range(5):
        scores, member = _randomised_response(2.0, 2000, seed)
        audit = threshold_audit(scores, member, delta=0.0, seed=seed)
        assert 0.5 < audit.epsilon <= 2.0  # a valid lower bound, and not a vacuous one
    member = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    same = threshold_audit(np.r_[np.arange(200.0), np.arange(200.0)], member, 1e-5)
    assert same.epsilon == 0.0 and same.n_members == same.n_non_members == 100
    perfect = threshold_audit(np.r_[np.ones(200), np.zeros(200)], member, 1e-5)
    assert 2.5 < perfect.epsilon < math.log(200)  # finite: 100 samples per side cannot prove more
    with pytest.raises(InputError, match="two members"):
        threshold_audit(np.zeros(3), np.array([True, False, False]), 1e-5)
