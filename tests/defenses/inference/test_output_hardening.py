from __future__ import annotations

import pytest
import torch

from sparring.data import Dataset, digits
from sparring.defenses.inference import (
    HARDENING,
    HARDENING_NAMES,
    LabelOnly,
    OutputHardening,
    ReverseSigmoid,
    RoundScores,
    TopKScores,
    harden,
)
from sparring.errors import AccessError, ConfigError
from sparring.models import Access, Classifier, TorchClassifier, build
from sparring.train import TrainConfig, fit


@pytest.fixture(scope="module")
def data() -> Dataset:
    return digits().take(400, seed=0)


@pytest.fixture(scope="module")
def clf(data: Dataset) -> TorchClassifier:
    model = build("mlp", (1, 8, 8), 10, seed=0)
    fit(model, data, TrainConfig(epochs=5, seed=0, progress=False))
    return TorchClassifier(model, (1, 8, 8), 10)


@pytest.mark.parametrize("spec", ["round:2", "round:0", "top_k:1", "top_k:3", "label_only"])
def test_hardening_keeps_labels(clf: TorchClassifier, data: Dataset, spec: str) -> None:
    hardened = harden(clf, spec)
    assert torch.equal(hardened.predict_labels(data.x), clf.predict_labels(data.x))


@pytest.mark.parametrize("spec", ["round", "top_k", "label_only"])
def test_hardening_removes_gradients_and_internals(clf: TorchClassifier, data: Dataset, spec: str) -> None:
    hardened = harden(clf, spec)
    assert Access.GRADIENTS not in hardened.access
    assert Access.INTERNALS not in hardened.access
    with pytest.raises(AccessError, match="gradients"):
        hardened.logits(data.x[:2])
    with pytest.raises(AccessError, match="internals"):
        hardened.features(data.x[:2], "penultimate")


def test_label_only_exposes_labels_only(clf: TorchClassifier, data: Dataset) -> None:
    hardened = LabelOnly().wrap(clf)
    assert hardened.access == Access.LABELS
    with pytest.raises(AccessError, match="scores"):
        hardened.predict_scores(data.x[:2])


def test_round_scores_are_rounded(clf: TorchClassifier, data: Dataset) -> None:
    raw = clf.predict_scores(data.x)
    rounded = RoundScores(decimals=2).wrap(clf).predict_scores(data.x)
    assert rounded.shape == raw.shape
    assert torch.allclose(rounded * 100, (rounded * 100).round(), atol=1e-4)
    assert (rounded - raw).abs().max() <= 0.005 + 1e-6
    assert not torch.equal(rounded, raw)
    zero_decimals = RoundScores(decimals=0).wrap(clf).predict_scores(data.x)
    assert set(zero_decimals.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("k", [1, 3])
def test_top_k_keeps_k_probabilities_without_renormalising(clf: TorchClassifier, data: Dataset, k: int) -> None:
    raw = clf.predict_scores(data.x)
    masked = TopKScores(k=k).wrap(clf).predict_scores(data.x)
    assert bool(((masked > 0).sum(dim=1) == k).all())
    top = raw.topk(k, dim=1).values
    assert torch.allclose(masked.topk(k, dim=1).values, top)
    assert torch.allclose(masked.sum(dim=1), top.sum(dim=1))
    assert bool((masked.sum(dim=1) < 1.0).any())  # not renormalised
    assert torch.equal(masked.argmax(dim=1), clf.predict_labels(data.x))


def test_score_wrappers_need_inner_scores(clf: TorchClassifier) -> None:
    labels_only = clf.restrict(Access.LABELS)
    with pytest.raises(AccessError, match="RoundScores needs scores"):
        RoundScores().wrap(labels_only)
    with pytest.raises(AccessError, match="TopKScores needs scores"):
        TopKScores().wrap(labels_only)
    with pytest.raises(AccessError, match="LabelOnly needs labels"):
        LabelOnly().wrap(clf.restrict(Access.SCORES))


def test_score_wrapper_labels_from_scores_when_inner_has_no_labels(clf: TorchClassifier, data: Dataset) -> None:
    hardened = RoundScores().wrap(clf.restrict(Access.SCORES))
    assert torch.equal(hardened.predict_labels(data.x), clf.predict_labels(data.x))


def test_wrappers_and_inner_both_count_queries(clf: TorchClassifier, data: Dataset) -> None:
    hardened = harden(clf, "round:1")
    before = clf.queries
    hardened.predict_scores(data.x[:7])
    hardened.predict_labels(data.x[:5])
    assert hardened.queries == 12
    assert clf.queries - before == 12


def test_wrappers_compose(clf: TorchClassifier, data: Dataset) -> None:
    hardened = harden(harden(clf, "top_k:2"), "round:1")
    scores = hardened.predict_scores(data.x)
    assert bool(((scores > 0).sum(dim=1) <= 2).all())
    assert torch.equal(hardened.predict_labels(data.x), clf.predict_labels(data.x))


def test_registry_builds_hardenings_from_specs(clf: TorchClassifier) -> None:
    r = HARDENING.build("round")
    assert isinstance(r, RoundScores) and r.decimals == 2
    r3 = HARDENING.build(" round:3 ")
    assert isinstance(r3, RoundScores) and r3.decimals == 3
    t = HARDENING.build("top_k")
    assert isinstance(t, TopKScores) and t.k == 1
    t3 = HARDENING.build("top_k:3")
    assert isinstance(t3, TopKScores) and t3.k == 3
    assert isinstance(HARDENING.build("label_only"), LabelOnly)
    assert HARDENING_NAMES == ("round", "top_k", "label_only", "reverse_sigmoid")
    rs = HARDENING.build("reverse_sigmoid:5")
    assert isinstance(rs, ReverseSigmoid) and rs.beta == 5.0 and rs.gamma == 0.1
    for name in HARDENING_NAMES:
        defence = HARDENING.build(name)
        assert isinstance(defence, OutputHardening) and isinstance(defence.wrap(clf), Classifier)
        assert defence.clone().get_params() == defence.get_params()


@pytest.mark.parametrize(
    "spec", ["", "blur", "round:", "round:x", "round:-1", "round:1.5", "top_k:0", "top_k:11", "label_only:1", "Round"]
)
def test_bad_specs_raise_config_error(clf: TorchClassifier, spec: str) -> None:
    with pytest.raises(ConfigError, match=r"round|top_k|k must|decimals"):
        harden(clf, spec)


def test_specs_are_checked_without_a_classifier() -> None:
    assert HARDENING.parse("round") == ("round", {"decimals": 2})
    assert HARDENING.parse("round:0") == ("round", {"decimals": 0})
    assert HARDENING.parse("top_k") == ("top_k", {"k": 1})
    assert HARDENING.parse("top_k:5") == ("top_k", {"k": 5})
    assert HARDENING.parse("label_only") == ("label_only", {})
    for bad in ("round:-1", "top_k:0", "top_k:two", "label_only:1", "jpeg"):
        with pytest.raises(ConfigError):
            HARDENING.check(bad)


def test_unknown_spec_message_names_valid_forms(clf: TorchClassifier) -> None:
    with pytest.raises(ConfigError) as err:
        harden(clf, "blur:3")
    for form in ("round[:DECIMALS]", "top_k[:K]", "label_only"):
        assert form in str(err.value)


def test_constructor_arguments_are_validated(clf: TorchClassifier) -> None:
    with pytest.raises(ConfigError, match="decimals"):
        RoundScores(decimals=-1)
    with pytest.raises(ConfigError, match="k must"):
        TopKScores(k=0)
    with pytest.raises(ConfigError, match="k must"):
        TopKScores(k=11).wrap(clf)
