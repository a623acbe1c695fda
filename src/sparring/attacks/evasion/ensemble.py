"""The worst case over several evasion attacks, and the AutoAttack suite.

AutoAttack's protocol (Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML 2020): attacks run one after another,
each only on the samples every earlier attack left robust, and a sample counts as robust
only if it survives them all. A long evaluation can checkpoint after each member and
resume where it stopped.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from sparring.attacks.evasion.apgd import APGD
from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import ConfigError, InputError, check_nonnegative
from sparring.models import Access, Classifier

_FORMAT = 1


def member_name(attack: EvasionAttack) -> str:
    """An attack's short name (its ``label`` if it has one, else its class name)."""
    label = getattr(attack, "label", None)
    return label if isinstance(label, str) else type(attack).__name__


def _describe(attack: EvasionAttack) -> str:
    """Class and public parameters: what decides an attack's output."""
    return f"{type(attack).__module__}.{attack!r}"


class WorstCaseEnsemble(EvasionAttack):
    """Per-sample worst case over ``attacks``, run in sequence on the samples still robust.

    The AutoAttack protocol (Croce & Hein, ICML 2020). All members must share one norm; the
    ensemble needs the union of their access; randomness comes from the members' seeds.
    With ``checkpoint`` (a file path), the success mask, adversarial examples and per-member
    figures are saved atomically after each member, and a later run on the same inputs with
    the same members skips the members already finished (a run on other inputs starts over).

    After :meth:`run`, ``last_report`` lists one dict per member: ``name``,
    ``robust_accuracy_after`` (share of all samples not yet broken after this member),
    ``newly_broken`` (samples this member broke), ``seconds``, ``queries`` and ``resumed``
    (True when the figures come from the checkpoint). ``EvasionResult.queries`` counts only
    the queries of this call.
    """

    def __init__(self, attacks: Sequence[EvasionAttack], checkpoint: str | Path | None = None) -> None:
        members = list(attacks)
        if not members:
            raise ConfigError("WorstCaseEnsemble needs at least one attack")
        for a in members:
            if not isinstance(a, EvasionAttack):
                raise ConfigError(f"WorstCaseEnsemble members must be evasion attacks, got {type(a).__name__}")
        names = {a.norm.name for a in members}
        if len(names) > 1:
            raise ConfigError(f"all attacks in an ensemble must share one norm, got {', '.join(sorted(names))}")
        self.attacks = members
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.last_report: list[dict[str, Any]] = []

    def run_details(self) -> dict[str, Any]:
        """The members of the last run: name, robust accuracy after, samples newly broken, seconds, queries."""
        return {"members": self.last_report}

    @property
    def norm(self) -> Norm:  # type: ignore[override]
        """The members' shared norm."""
        return self.attacks[0].norm

    @property
    def requires(self) -> Access:  # type: ignore[override]
        """The union of the members' access."""
        needed = Access.NONE
        for a in self.attacks:
            needed |= a.requires
        return needed

    def _fingerprint(self, x: Tensor, y: Tensor, target: Tensor | None) -> str:
        h = hashlib.sha256()
        for t in (x, y, target if target is not None else torch.empty(0)):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().contiguous().cpu().numpy().tobytes())
        for a in self.attacks:
            h.update(_describe(a).encode())
        return h.hexdigest()

    def _load(self, fingerprint: str) -> dict[str, Any] | None:
        if self.checkpoint is None or not self.checkpoint.is_file():
            return None
        try:
            state: dict[str, Any] = torch.load(self.checkpoint, weights_only=True)
        except Exception as exc:  # a corrupt or foreign file
            raise InputError(f"cannot read ensemble checkpoint {self.checkpoint}: {exc}") from exc
        if state.get("format") != _FORMAT or state.get("fingerprint") != fingerprint:
            return None  # another evaluation's checkpoint: start over and overwrite it
        return state

    def _save(self, state: dict[str, Any]) -> None:
        if self.checkpoint is None:
            return
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)

    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        fingerprint = self._fingerprint(x, y, target)
        state = self._load(fingerprint)
        if state is None:
            if not len(x):
                pred = y
            elif Access.LABELS in classifier.access:
                pred = classifier.predict_labels(x)
            else:
                with torch.no_grad():
                    pred = classifier.logits(x).argmax(1)
            state = {
                "format": _FORMAT,
                "fingerprint": fingerprint,
                "done": 0,
                "success": is_success(pred, y, target),
                "x_adv": x.clone(),
                "report": [],
            }
        success: Tensor = state["success"]
        x_adv: Tensor = state["x_adv"]
        report: list[dict[str, Any]] = [{**r, "resumed": True} for r in state["report"]]
        n = max(1, len(x))
        for i, attack in enumerate(self.attacks):
            if i < int(state["done"]):
                continue
            todo = torch.nonzero(~success).flatten()
            q0, t0 = classifier.queries, time.perf_counter()
            broken = 0
            if len(todo):
                result = attack.run(classifier, x[todo], y[todo], None if target is None else target[todo])
                hit = todo[result.success]
                x_adv[hit] = result.x_adv[result.success]
                success[hit] = True
                broken = len(hit)
            entry = {
                "name": member_name(attack),
                "robust_accuracy_after": 1.0 - float(success.sum()) / n,
                "newly_broken": broken,
                "seconds": time.perf_counter() - t0,
                "queries": classifier.queries - q0,
            }
            report.append({**entry, "resumed": False})
            state["report"].append(entry)
            state["done"] = i + 1
            self._save(state)
        self.last_report = report
        return x_adv, success


def autoattack(
    norm: str | Norm,
    eps: float,
    seed: int = 0,
    version: Literal["standard", "fast"] = "standard",
    batch_size: int = 256,
    checkpoint: str | Path | None = None,
) -> WorstCaseEnsemble:
    """The AutoAttack suite (Croce & Hein, ICML 2020) as a :class:`WorstCaseEnsemble`.

    APGD-CE (100 steps), APGD-T (targeted DLR, 100 steps against each of the 9 most likely
    wrong classes; 3 in the ``"fast"`` version) and the score-based Square attack (5,000
    queries; 1,000 fast). The original standard suite also runs the targeted FAB attack,
    which rarely breaks a sample the others left (Croce & Hein report it for completeness).
    """
    from sparring.attacks.evasion.square import Square

    if version not in ("standard", "fast"):
        raise ConfigError(f"version must be 'standard' or 'fast', got {version!r}")
    eps = check_nonnegative("eps", eps)
    norm = get_norm(norm)
    targets, queries = (9, 5000) if version == "standard" else (3, 1000)
    members: list[EvasionAttack] = [
        APGD(norm, eps=eps, steps=100, loss="ce", batch_size=batch_size, seed=seed),
        APGD(norm, eps=eps, steps=100, loss="dlr", targeted_classes=targets, batch_size=batch_size, seed=seed),
        Square(norm=norm.name, eps=eps, max_queries=queries, batch_size=batch_size, seed=seed),
    ]
    return WorstCaseEnsemble(members, checkpoint=checkpoint)
