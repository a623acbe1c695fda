"""Transfer attacks: craft on a surrogate the attacker owns, replay on the target.

Adversarial examples found on one model often fool another trained for the same task
(Papernot, McDaniel & Goodfellow, "Transferability in Machine Learning", arXiv 2016;
Papernot et al., "Practical Black-Box Attacks against Machine Learning", AsiaCCS 2017).
In transfer learning the surrogate can be the public teacher itself, whose first layers
the student shares (Wang et al., USENIX Security 2018). The target is only asked for
labels, once per sample.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.norms import Norm
from sparring.errors import ConfigError, InputError
from sparring.models import Access, Classifier


class Transfer(EvasionAttack):
    """Run ``attack`` white-box on ``surrogate``, then query the target once per sample (labels only).

    ``success`` is measured on the target: its label for ``x_adv`` differs from ``y`` (or,
    targeted, equals ``target``); a sample the target already misclassifies counts only if
    its ``x_adv`` is still misclassified. ``queries`` counts target queries alone. After a
    run, ``last_surrogate_success_rate`` holds the attack's success on the surrogate and
    ``last_surrogate_seconds`` the time spent crafting, so a report can show how much of
    the white-box success transfers.
    """

    requires: ClassVar[Access] = Access.LABELS

    def __init__(self, surrogate: Classifier, attack: EvasionAttack) -> None:
        if not isinstance(surrogate, Classifier):
            raise ConfigError(f"surrogate must be a sparring Classifier, got {type(surrogate).__name__}")
        if not isinstance(attack, EvasionAttack):
            raise ConfigError(f"attack must be a sparring EvasionAttack, got {type(attack).__name__}")
        self.surrogate = surrogate
        self.attack = attack
        self.last_surrogate_success_rate: float | None = None
        self.last_surrogate_seconds: float | None = None

    def run_details(self) -> dict[str, Any]:
        """The crafting attack's success on the surrogate in the last run."""
        return {"surrogate_success_rate": self.last_surrogate_success_rate}

    @property
    def norm(self) -> Norm:  # type: ignore[override]
        """The crafting attack's norm: the perturbation budget is its."""
        return self.attack.norm

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        s = self.surrogate
        if s.input_shape != classifier.input_shape or s.num_classes != classifier.num_classes:
            raise InputError(
                f"surrogate takes {s.input_shape} inputs and {s.num_classes} classes, but the target "
                f"{classifier.input_shape} and {classifier.num_classes}"
            )
        if s.bounds != classifier.bounds:
            raise InputError(f"surrogate bounds {s.bounds} differ from the target's {classifier.bounds}")
        crafted = self.attack.run(s, x, y, target)
        self.last_surrogate_success_rate = crafted.success_rate
        self.last_surrogate_seconds = crafted.seconds
        pred = classifier.predict_labels(crafted.x_adv) if len(x) else y
        return crafted.x_adv, is_success(pred, y, target)
