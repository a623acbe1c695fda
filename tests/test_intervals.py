"""Statistics on verdicts (issue 10, item 5): intervals, ratings that say when they are unsure, paired tests."""

from __future__ import annotations

import math

import pytest

from sparring.assess.family import Rule, rated
from sparring.attacks.evasion.sanity import curve_flags
from sparring.errors import InputError
from sparring.metrics import auc_interval, clopper_pearson, paired_p_value, rate_interval


def test_clopper_pearson_matches_the_closed_forms_at_the_edges() -> None:
    # k = 0: the upper bound solves (1 - p)^n = alpha / 2; k = n mirrors it
    n = 54
    ci = clopper_pearson(0, n)
    assert ci.low == 0.0 and math.isclose(ci.high, 1 - 0.025 ** (1 / n), rel_tol=1e-6)
    full = clopper_pearson(n, n)
    assert full.high == 1.0 and math.isclose(full.low, 0.025 ** (1 / n), rel_tol=1e-6)


def test_intervals_contain_the_estimate_and_narrow_with_more_samples() -> None:
    small, large = rate_interval(0.6, 50), rate_interval(0.6, 5000)
    for ci in (small, large):
        assert ci.low < 0.6 < ci.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    a_small, a_large = auc_interval(0.7, 30, 30), auc_interval(0.7, 3000, 3000)
    assert a_small.low < 0.7 < a_small.high and (a_large.high - a_large.low) < (a_small.high - a_small.low) / 5
    with pytest.raises(InputError):
        clopper_pearson(5, 3)


def test_a_rating_whose_interval_spans_two_levels_says_so() -> None:
    rule = Rule("share lost", medium=0.2, high=0.5)
    firm = rated(rule, 0.8, "loss", rate_interval(0.8, 2000))
    assert firm.level == "high" and "spans" not in firm.text
    unsure = rated(rule, 0.45, "loss", rate_interval(0.45, 40))
    assert unsure.level == "medium" and "spans medium to high" in unsure.text


def test_the_exact_paired_test_separates_a_real_difference_from_noise() -> None:
    assert paired_p_value(3, 1) > 0.3
    assert paired_p_value(30, 2) < 1e-5
    assert paired_p_value(0, 0) == 1.0


def _flags(bb_broken: set[int], wb_broken: set[int], n: int = 100) -> list[str]:
    acc = {"wb": 1 - len(wb_broken) / n, "bb": 1 - len(bb_broken) / n}
    curves = {k: [(0.1, a)] for k, a in acc.items()}
    broken = {"wb": {0.1: wb_broken}, "bb": {0.1: bb_broken}}
    return [f.code for f in curve_flags(1.0, curves, black_box={"bb"}, broken=broken)]


def test_black_box_beating_white_box_is_an_error_only_when_significant() -> None:
    common = set(range(40))
    # a few more samples broken by the black-box attack: not significant, a warning asking for more steps
    assert _flags(common | {40, 41, 42}, common) == ["black-box-stronger-not-significant"]
    # thirty more: gradient masking is flagged
    assert _flags(common | set(range(40, 70)), common) == ["black-box-stronger"]
    # without per-sample data the old rule applies
    assert [f.code for f in curve_flags(1.0, {"wb": [(0.1, 0.6)], "bb": [(0.1, 0.5)]}, black_box={"bb"})] == [
        "black-box-stronger"
    ]
