"""Adaptive evaluation of input-transformation defences: BPDA and EOT.

Athalye, Carlini & Wagner ("Obfuscated Gradients Give a False Sense of Security:
Circumventing Defenses to Adversarial Examples", ICML 2018) showed that quantising or
randomising the input only hides the gradient. Backward Pass Differentiable Approximation
(BPDA) runs the real transform forwards and the identity backwards; Expectation over
Transformation (EOT) averages a randomized transform over several draws. :class:`BPDA`
wraps any gradient attack and runs it that way against every
:class:`~sparring.models.TransformedClassifier` in the classifier's wrapper chain, then
judges success on the real defended classifier. :class:`SqueezingAwarePGD` is the adaptive
attack on a feature-squeezing detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack

import torch
from torch import Tensor

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.gradient import cross_entropy_step, default_step_size
from sparring.attacks.evasion.loop import Step, gradient_loop
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import ConfigError, check_nonnegative, check_positive_int, check_seed
from sparring.models import Access, Classifier, ClassifierWrapper, InputTransform, TransformedClassifier


def transformed_layers(classifier: Classifier) -> list[TransformedClassifier]:
    """Every :class:`TransformedClassifier` in ``classifier``'s chain of wrappers, outermost first."""
    found: list[TransformedClassifier] = []
    current: Classifier = classifier
    while isinstance(current, ClassifierWrapper):
        if isinstance(current, TransformedClassifier):
            found.append(current)
        current = current.inner
    return found


class BPDA(EvasionAttack):
    """Run ``attack`` with straight-through gradients for the input transforms (Athalye et al., ICML 2018).

    The classifier must be, or wrap, a :class:`~sparring.models.TransformedClassifier`.
    During the attack each transform's forward pass is the real one and its backward pass
    is the identity; a randomized transform is averaged over ``eot_samples`` draws per
    gradient (EOT; each draw is a counted query, a deterministic transform uses one). The
    result's ``success`` is then measured on the real defended classifier (one fresh draw
    for a randomized transform); ``queries`` include that final check. For randomized
    transforms, an inner attack with ``early_stop=False`` (or a margin) is stronger, since
    an input that just crosses the averaged boundary flips back on about half the draws.
    BPDA changes how the classifier differentiates, not the attack, so it wraps any
    gradient attack (PGD, APGD, CW).
    """

    requires = Access.GRADIENTS

    def __init__(self, attack: EvasionAttack, eot_samples: int = 1) -> None:
        if not isinstance(attack, EvasionAttack):
            raise ConfigError(f"BPDA wraps an evasion attack, got {type(attack).__name__}")
        self.attack = attack
        self.eot_samples = check_positive_int("eot_samples", eot_samples)

    @property
    def norm(self) -> Norm:  # type: ignore[override]
        """The wrapped attack's norm."""
        return self.attack.norm

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        layers = transformed_layers(classifier)
        if not layers:
            raise ConfigError(
                f"BPDA needs a classifier that is or wraps a TransformedClassifier, got {type(classifier).__name__}"
            )
        with ExitStack() as stack:
            for layer in layers:
                k = self.eot_samples if layer.transform.randomized else 1
                stack.enter_context(layer.straight_through(k))
            inner = self.attack.run(classifier, x, y, target)
        x_adv = inner.x_adv
        if len(x_adv) == 0:
            return x_adv, torch.zeros(0, dtype=torch.bool)
        if Access.LABELS in classifier.access:
            pred = classifier.predict_labels(x_adv)
        else:
            with torch.no_grad():
                pred = classifier.logits(x_adv).argmax(1)
        return x_adv, is_success(pred, y, target)


class EOT(BPDA):
    """:class:`BPDA` with expectation over ``eot_samples`` (default 10) draws of a randomized transform."""

    def __init__(self, attack: EvasionAttack, eot_samples: int = 10) -> None:
        super().__init__(attack, eot_samples)


class SqueezingAwarePGD(EvasionAttack):
    """PGD that fools the model and evades a feature-squeezing detector at once.

    The adaptive attack on feature squeezing (Xu et al., NDSS 2018) in the spirit of He et
    al. ("Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong", WOOT
    2017), with BPDA gradients through the squeezers (Athalye et al., ICML 2018): PGD's loop
    with another loss and criterion. A sample succeeds only when it is misclassified (or
    reaches its target) *and* the detector's score (largest L1 distance between the softmax
    on ``x`` and on each squeezed ``x``) is at most ``threshold``; until then it keeps
    ascending ``CE(f(x), y) - weight * score(x)``, which drives it past the decision boundary
    into confident regions that squeezing no longer flips. ``squeezers`` are the detector's
    transforms and ``threshold`` its fitted threshold (``FeatureSqueezing.threshold``). On
    digits the score term did not help over plain cross-entropy ascent (weights 0.05 to 5
    found fewer undetected examples than 0), so ``weight`` defaults to 0: the detector-aware
    stopping rule is what defeats it. One random start, early stop.
    """

    def __init__(
        self,
        squeezers: Sequence[InputTransform],
        threshold: float,
        norm: str | Norm = "linf",
        eps: float = 0.3,
        steps: int = 100,
        step_size: float | None = None,
        weight: float = 0.0,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        if not squeezers or not all(isinstance(s, InputTransform) for s in squeezers):
            raise ConfigError("squeezers must be a non-empty list of InputTransform objects")
        self.squeezers = list(squeezers)
        self.threshold = check_nonnegative("threshold", threshold)
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.steps = check_positive_int("steps", steps)
        self.step_size = None if step_size is None else check_nonnegative("step_size", step_size)
        self.weight = check_nonnegative("weight", weight)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        views = [TransformedClassifier(classifier, s, seed=self.seed) for s in self.squeezers]
        g = torch.Generator().manual_seed(self.seed)

        def objective(xa: Tensor, idx: Tensor, _step: int) -> Step:
            logits = classifier.logits(xa)
            base = cross_entropy_step(logits, y[idx], None if target is None else target[idx])
            p = torch.softmax(logits, dim=1)
            score = torch.stack([(p - torch.softmax(v.logits(xa), 1)).abs().sum(1) for v in views]).amax(0)
            return Step(base.loss - self.weight * score, base.success & (score.detach() <= self.threshold))

        start = self.norm.random(x, self.eps, g) if self.eps > 0 else None
        with ExitStack() as stack:
            for view in views:
                stack.enter_context(view.straight_through())
            r = gradient_loop(
                x,
                objective,
                self.norm,
                self.eps,
                self.steps,
                default_step_size(self.eps, self.steps, self.step_size),
                classifier.bounds,
                start=start,
                batch_size=self.batch_size,
            )
        return r.x, r.success
