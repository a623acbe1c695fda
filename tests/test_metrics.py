from __future__ import annotations

import numpy as np
import pytest
import torch

from sparring.errors import InputError
from sparring.metrics import detection_rates, robust_accuracy, roc


def test_robust_accuracy_is_worst_case_per_sample() -> None:
    a = torch.tensor([True, False, False, False])
    b = torch.tensor([False, True, False, False])
    assert robust_accuracy([a]) == 0.75
    assert robust_accuracy([a, b]) == 0.5
    with pytest.raises(InputError):
        robust_accuracy([])


def test_roc_perfect_random_and_ties() -> None:
    rng = np.random.default_rng(0)
    members = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    perfect = roc(members.astype(float), members)
    assert perfect.auc == 1.0 and perfect.tpr_at_0_1_fpr == 1.0
    rand = roc(rng.random(1000), members)
    assert abs(rand.auc - 0.5) < 0.06 and rand.tpr_at_1_fpr < 0.05
    # a 0/1 score cannot buy a low FPR: TPR at 1 % FPR is 0 unless non-members never score 1
    ties = roc(np.r_[np.ones(500), np.ones(100), np.zeros(400)], members)
    assert ties.tpr_at_1_fpr == 0.0 and ties.auc == pytest.approx(0.9)


def test_roc_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="both"):
        roc(np.ones(3), np.ones(3, bool))
    with pytest.raises(InputError, match="NaN"):
        roc(np.array([np.nan, 1.0]), np.array([True, False]))


def test_detection_rates() -> None:
    r = detection_rates(torch.tensor([1, 1, 0, 1], dtype=torch.bool), torch.tensor([1, 0, 0, 1], dtype=torch.bool))
    assert r == {"recall": 1.0, "fpr": 0.5, "flagged": 3}
