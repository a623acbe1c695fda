from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from sparring.attacks.evasion import APGD, FGSM, PGD, EvasionAttack, WorstCaseEnsemble, autoattack
from sparring.attacks.evasion.norms import Linf
from sparring.data import Dataset
from sparring.errors import ConfigError
from sparring.metrics import accuracy
from sparring.models import Access, Classifier, TorchClassifier

N = 100
EPS = 0.1


class Noise(EvasionAttack):
    """A label-only attack for the tests: one random corner of the Linf ball per sample."""

    requires = Access.LABELS

    def __init__(self, eps: float, seed: int = 0) -> None:
        self.norm = Linf()
        self.eps = eps
        self.seed = seed

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        x_adv = (x + self.eps * torch.randint(0, 2, x.shape, generator=g).mul(2).sub(1)).clamp(0, 1)
        return x_adv, classifier.predict_labels(x_adv) != y


class Counting(FGSM):
    """FGSM that counts its calls and can be told to fail once (an interrupted evaluation).

    The counter and the failure switch are not parameters: they do not change what the
    attack computes, so a checkpoint made by a failing copy resumes with a healthy one.
    """

    calls = 0
    fail_next = False

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        self.calls += 1
        if self.fail_next:
            self.fail_next = False
            raise KeyboardInterrupt
        return super()._run(classifier, x, y, target)


def counting(eps: float, fail: bool = False) -> Counting:
    attack = Counting(eps=eps)
    attack.fail_next = fail
    return attack


@pytest.fixture(scope="module")
def batch(digits_split: tuple[Dataset, Dataset]) -> tuple[Tensor, Tensor]:
    _, test = digits_split
    return test.x[:N], test.y[:N]


def test_worst_case_over_members(digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    clean = accuracy(digits_cnn, x, y)
    fgsm = FGSM(eps=EPS).run(digits_cnn, x, y)
    apgd = APGD(eps=EPS, steps=20).run(digits_cnn, x, y)
    ens = WorstCaseEnsemble([FGSM(eps=EPS), APGD(eps=EPS, steps=20)])
    result = ens.run(digits_cnn, x, y)
    assert bool((result.success | ~fgsm.success).all())  # the first member's successes are kept
    assert result.robust_accuracy <= min(fgsm.robust_accuracy, apgd.robust_accuracy) + 1 / N
    assert result.robust_accuracy < fgsm.robust_accuracy  # the second member adds breaks
    assert torch.equal(result.success, digits_cnn.predict_labels(result.x_adv) != y)
    assert bool((result.norms <= EPS + 1e-6).all())
    # per-member breakdown
    report = ens.last_report
    assert [r["name"] for r in report] == ["FGSM", "APGD-CE"]
    assert report[0]["robust_accuracy_after"] == pytest.approx(fgsm.robust_accuracy)
    assert report[1]["robust_accuracy_after"] == pytest.approx(result.robust_accuracy)
    assert sum(r["newly_broken"] for r in report) == round((clean - result.robust_accuracy) * N)
    assert sum(r["queries"] for r in report) == result.queries - N  # plus one clean pass
    assert report[1]["queries"] < apgd.queries  # the second member only sees what the first left


def test_targets_pass_through(digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    target = (y + 2) % 10
    result = WorstCaseEnsemble([FGSM(eps=0.3), PGD(eps=0.3, steps=20)]).run(digits_mlp, x, y, target=target)
    assert result.success_rate > 0.9
    assert torch.equal(result.success, digits_mlp.predict_labels(result.x_adv) == target)


def test_requires_the_union_of_access(digits_mlp: TorchClassifier, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    assert WorstCaseEnsemble([Noise(EPS)]).requires == Access.LABELS
    both = WorstCaseEnsemble([Noise(EPS), FGSM(eps=EPS)])
    assert both.requires == Access.LABELS | Access.GRADIENTS
    result = WorstCaseEnsemble([Noise(0.3)]).run(digits_mlp.restrict(Access.LABELS), x, y)
    assert result.robust_accuracy < accuracy(digits_mlp, x, y)


def test_bad_members_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="norm"):
        WorstCaseEnsemble([FGSM(eps=EPS), PGD("l2", eps=1.0)])
    with pytest.raises(ConfigError):
        WorstCaseEnsemble([])
    with pytest.raises(ConfigError):
        WorstCaseEnsemble([FGSM(eps=EPS), "pgd"])  # type: ignore[list-item]


def test_checkpoint_resumes_after_an_interruption(
    digits_cnn: TorchClassifier, batch: tuple[Tensor, Tensor], tmp_path: Path
) -> None:
    x, y = batch
    path = tmp_path / "aa.pt"
    reference = WorstCaseEnsemble([counting(0.05), counting(EPS)]).run(digits_cnn, x, y)

    first, second = counting(0.05), counting(EPS, fail=True)
    with pytest.raises(KeyboardInterrupt):
        WorstCaseEnsemble([first, second], checkpoint=path).run(digits_cnn, x, y)
    assert path.is_file() and first.calls == 1 and second.calls == 1

    first, second = counting(0.05), counting(EPS)
    ens = WorstCaseEnsemble([first, second], checkpoint=path)
    result = ens.run(digits_cnn, x, y)
    assert first.calls == 0 and second.calls == 1  # the finished member is skipped
    assert [r["resumed"] for r in ens.last_report] == [True, False]
    assert torch.equal(result.success, reference.success)
    assert torch.equal(result.x_adv, reference.x_adv)

    # other inputs or other members: the checkpoint does not apply
    first = counting(0.05)
    WorstCaseEnsemble([first, counting(EPS)], checkpoint=path).run(digits_cnn, x[:50], y[:50])
    assert first.calls == 1
    first = counting(0.06)
    WorstCaseEnsemble([first, counting(EPS)], checkpoint=path).run(digits_cnn, x[:50], y[:50])
    assert first.calls == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_autoattack_suite() -> None:
    pytest.importorskip("sparring.attacks.evasion.square")
    standard = autoattack("linf", 0.1)
    fast = autoattack("l2", 0.5, version="fast", seed=3)
    assert [type(a).__name__ for a in standard.attacks] == ["APGD", "APGD", "Square"]
    assert [getattr(a, "label", "") for a in standard.attacks[:2]] == ["APGD-CE", "APGD-T"]
    ce, t, square = standard.attacks
    assert isinstance(t, APGD) and t.targeted_classes == 9 and t.loss == "dlr" and t.steps == 100
    assert isinstance(ce, APGD) and ce.loss == "ce" and ce.eps == 0.1
    assert square.max_queries == 5000  # type: ignore[attr-defined]
    fast_t, fast_square = fast.attacks[1], fast.attacks[2]
    assert isinstance(fast_t, APGD) and fast_t.targeted_classes == 3
    assert fast_square.max_queries == 1000  # type: ignore[attr-defined]
    assert fast.norm.name == "l2" and all(vars(a)["seed"] == 3 for a in fast.attacks)
    with pytest.raises(ConfigError):
        autoattack("linf", 0.1, version="plus")  # type: ignore[arg-type]
