"""Every attack and defence is rebuilt from its parameters; registries name them and parse their specs."""

from __future__ import annotations

from typing import Any

import pytest

from sparring.attacks.evasion import BPDA, EVASION_ATTACKS, PGD, Square
from sparring.attacks.poisoning import BACKDOOR_ATTACKS, CLEAN_LABEL_ATTACKS, FEDERATED_ATTACKS, POISONING_ATTACKS
from sparring.attacks.privacy import MEMBERSHIP_ATTACKS
from sparring.data import Trigger
from sparring.defenses.data import DATA_DEFENCES
from sparring.defenses.inference import DETECTORS, HARDENING, TRANSFORMS
from sparring.defenses.training import AGGREGATORS
from sparring.errors import ConfigError
from sparring.params import Params, Registry

REGISTRIES: list[Registry[Any]] = [
    EVASION_ATTACKS,
    BACKDOOR_ATTACKS,
    POISONING_ATTACKS,
    CLEAN_LABEL_ATTACKS,
    FEDERATED_ATTACKS,
    MEMBERSHIP_ATTACKS,
    TRANSFORMS,
    HARDENING,
    DETECTORS,
    DATA_DEFENCES,
    AGGREGATORS,
]
#: What the few classes without a default for every parameter need.
CONTEXT: dict[str, Any] = {"trigger": Trigger(*[__import__("torch").zeros(1, 4, 4)] * 2)}
ENTRIES = [(r, e.name) for r in REGISTRIES for e in r.entries()]


@pytest.mark.parametrize(("registry", "name"), ENTRIES, ids=[f"{r.kind}:{n}" for r, n in ENTRIES])
def test_every_registered_class_is_rebuilt_from_its_parameters(registry: Registry[Any], name: str) -> None:
    obj = registry.build(name, **CONTEXT)
    assert isinstance(obj, Params), f"{type(obj).__name__} does not take its parameters from its signature"
    params = obj.get_params()
    assert set(params) == set(type(obj).param_names())
    copy = obj.clone()
    assert copy is not obj and type(copy) is type(obj) and copy.get_params().keys() == params.keys()
    assert repr(copy) == repr(obj) and repr(obj).startswith(type(obj).__name__ + "(")


def test_clone_changes_and_nests() -> None:
    pgd = PGD(eps=0.1, steps=10)
    wider = pgd.clone(eps=0.3)
    assert (wider.eps, wider.steps, pgd.eps) == (0.3, 10, 0.1)
    bpda = BPDA(pgd, eot_samples=3)
    twin = bpda.clone()
    assert twin.attack is not pgd and twin.attack.get_params() == pgd.get_params() and twin.eot_samples == 3
    assert twin.norm.name == "linf"
    with pytest.raises(ConfigError, match="has no parameter colour"):
        pgd.clone(colour="red")


def test_registry_builds_with_the_context_its_classes_take() -> None:
    square = EVASION_ATTACKS.build("square", eps=0.2, steps=99, max_queries=50)  # Square takes no steps
    assert isinstance(square, Square) and (square.eps, square.max_queries) == (0.2, 50)
    assert TRANSFORMS.build("noise:0.2", seed=5).get_params() == {"sigma": 0.2, "seed": 5}
    assert TRANSFORMS.build("jpeg", seed=5).get_params() == {"quality": 75}
    with pytest.raises(ConfigError, match="unknown evasion attack 'deepfool'; valid forms: 'fgsm', 'pgd'"):
        EVASION_ATTACKS.build("deepfool")
    with pytest.raises(ConfigError, match=r"transform 'jpeg:101': JPEG quality must be an integer in \[1, 100\]"):
        TRANSFORMS.build("jpeg:101")
    with pytest.raises(ConfigError, match=r"QUALITY in transform 'jpeg:x' must be an integer"):
        TRANSFORMS.build("jpeg:x")
    assert TRANSFORMS.usage() == "'bit_depth[:BITS]', 'median[:SIZE]', 'jpeg[:QUALITY]', 'noise[:SIGMA]'"
