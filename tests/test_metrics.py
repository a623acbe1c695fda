from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from sparring.data import Trigger
from sparring.errors import InputError
from sparring.metrics import attack_success_rate, detection_rates, paired_difference_interval, robust_accuracy, roc
from sparring.models import TorchClassifier


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


class _Switch(nn.Module):
    """Predicts class ``x[1]`` when the flag ``x[0]`` is 1, else class 0 (4 classes)."""

    def forward(self, x: Tensor) -> Tensor:
        label = torch.where(x[:, 0] > 0.5, x[:, 1].long(), torch.zeros(len(x), dtype=torch.long))
        return nn.functional.one_hot(label, 4).float()


def test_attack_success_rate_int_and_per_sample_targets() -> None:
    clf = TorchClassifier(_Switch(), (2,), 4)
    trigger = Trigger(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
    y = torch.tensor([0, 1, 2, 3])
    # The triggered model predicts x[1]: (y + 1) % 4 for the first three, 2 for the last.
    x = torch.stack([torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 2.0])], dim=1)
    all_to_all = (y + 1) % 4
    assert attack_success_rate(clf, x, y, trigger, all_to_all) == pytest.approx(0.75)
    # All-to-one: inputs of the target class itself are left out.
    assert attack_success_rate(clf, x, y, trigger, 2) == pytest.approx(2 / 3)
    assert np.isnan(attack_success_rate(clf, x, torch.zeros(4, dtype=torch.long), trigger, 0))
    with pytest.raises(InputError, match="per-sample targets"):
        attack_success_rate(clf, x, y, trigger, torch.tensor([1, 2]))


def test_paired_difference_interval_holds_the_difference_and_separates_a_clear_gain() -> None:
    even = paired_difference_interval(20, 20, 1000)
    assert even.low < 0.0 < even.high and even.method == "agresti-min"
    gain = paired_difference_interval(120, 20, 1000)  # +10 points on 1,000 paired samples
    assert 0.06 < gain.low <= 0.1 <= gain.high < 0.14
    small = paired_difference_interval(12, 2, 100)  # the same gain on 100 samples is less certain
    assert small.high - small.low > gain.high - gain.low
