from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparring.assess.config import load_config, parse_config
from sparring.assess.gates import parse_gate
from sparring.assess.planner import plan
from sparring.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE: dict[str, Any] = {"data": {"dataset": "digits"}, "evasion": [{"attack": "pgd", "eps": [0.1]}]}


def with_(**changes: Any) -> dict[str, Any]:
    cfg = {k: v for k, v in BASE.items()}
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("name", ["mnist.toml", "quick.toml"])
def test_examples_are_valid(name: str) -> None:
    cfg = load_config(EXAMPLES / name)
    keys = [s.key for s in plan(cfg)]
    assert "evasion.pgd-linf" in keys and "evasion.pgd-linf+adversarial_training" in keys
    assert "backdoor.badnets+activation_clustering" in keys
    assert len(keys) == len(set(keys))


#: Example configs that are not assessment configs (``sparring serve`` reads serve.toml).
NOT_ASSESSMENTS = {"serve.toml"}


ASSESSMENTS = sorted(p for p in EXAMPLES.glob("*.toml") if p.name not in NOT_ASSESSMENTS)


@pytest.mark.parametrize("path", ASSESSMENTS, ids=[p.name for p in ASSESSMENTS])
def test_every_example_loads_and_plans(path: Path) -> None:
    keys = [s.key for s in plan(load_config(path))]
    assert keys and len(keys) == len(set(keys))


def test_training_example_covers_every_training_data_family_and_defence() -> None:
    from sparring.assess.families import BY_KEY

    cfg = load_config(EXAMPLES / "training.toml")
    scenarios = plan(cfg)
    keys = [s.key for s in scenarios]
    assert len(keys) == len(set(keys))
    used = {s.defence.partition(":")[0] for s in scenarios if s.defence}
    for family in ("backdoor", "federated", "poisoning"):
        assert {n for g in BY_KEY[family].defences for n in g.all_names()} <= used, family
    entries: dict[str, list[Any]] = {f: cfg.entries(f) for f in ("backdoor", "clean_label", "poisoning", "federated")}
    for family in entries:
        assert {e.attack for e in entries[family]} == set(BY_KEY[family].attacks), family
    assert any(b.all_to_all for b in entries["backdoor"]) and any(b.learning_curve for b in entries["backdoor"])
    assert {p.victim for p in entries["poisoning"]} >= {"logistic_regression", "linear_svm", "target"}


def test_privacy_example_covers_membership_and_extraction_in_depth() -> None:
    cfg = load_config(EXAMPLES / "privacy.toml")
    keys = [s.key for s in plan(cfg)]
    assert len(keys) == len(set(keys))
    for key in ("membership.rmia+dp_sgd:4", "membership.lira-online", "membership.loss_threshold+label_only"):
        assert key in keys, key
    assert "extraction.knockoff-in_distribution+reverse_sigmoid:5" in keys
    assert "extraction.knockoff-photos-adaptive" in keys and "extraction.knockoff-noise" in keys
    from sparring.assess.families.extraction import ExtractionSpec

    first = cfg.entries("extraction")[0]
    assert isinstance(first, ExtractionSpec)
    assert max(first.budgets) == 5000 and "top_k:3" in first.access and first.transfer


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (with_(evasion=[{"attack": "pgd", "eps": [-0.1]}]), r"evasion\[0\]\.eps: eps must be >= 0"),
        (
            with_(evasion=[{"attack": "deepfool", "eps": 0.1}]),
            r"unknown evasion attack 'deepfool'; accepted: .*pgd.*autoattack, transfer",
        ),
        (with_(data={"dataset": "cifar10"}), r"data\.dataset: unknown dataset 'cifar10'"),
        (with_(backdoor=[{"poison_fraction": 1.5}]), r"backdoor\[0\]\.poison_fraction: .*less than or equal to 1"),
        (with_(poisoning=[{"fraction": [-0.2]}]), r"poison fraction must be in \[0, 1\]"),
        (with_(membership=[{"defenses": ["blur"]}]), r"unknown membership defence 'blur'"),
        (with_(colour="red"), r"colour: unknown key"),
        (with_(data={"dataset": "digits", "path": "x.npz"}), "exactly one of"),
        ({"data": {"dataset": "digits"}}, "names no attack"),
        (with_(evasion=[{"attack": "cw-l2", "eps": 1.0}]), r"evasion\[0\]: .*cw-l2 is an L2 attack"),
        (with_(evasion=[{"attack": "pgd", "eps": 0.1, "defenses": ["blur"]}]), r"unknown evasion defence 'blur'"),
        (
            with_(evasion=[{"attack": "pgd", "eps": 0.1, "defences": ["bit_depth:0"]}]),
            r"evasion\[0\]\.defences: transform 'bit_depth:0': bits must be an integer in \[1, 16\]",
        ),
        (with_(evasion=[{"attack": "transfer", "eps": 0.1, "surrogate": "vgg"}]), r"unknown surrogate architecture"),
        (with_(generalisation={"augment": "wobble:3"}), r"generalisation\.augment: "),
        (with_(model={"sklearn": "m.skops", "onnx": "m.onnx"}), r"at most one of"),
        (with_(backdoor=[{"attack": "trojannn"}]), r"unknown backdoor attack 'trojannn'; accepted: badnets"),
        (with_(backdoor=[{"defenses": ["strip", "strip"]}]), r"backdoor\[0\]\.defenses: .*listed twice"),
        (
            with_(backdoor=[{"attack": "teacher", "defenses": ["activation_clustering"]}]),
            r"teacher attacks a student .*activation_clustering.* do not apply",
        ),
        (with_(backdoor=[{"attack": "hidden_trigger", "all_to_all": True}]), "all_to_all applies to badnets"),
        (with_(backdoor=[{"learning_curve": {"betas": [0.5, 2]}}]), r"learning_curve\.betas: beta must be in"),
        (with_(poisoning=[{"attack": "gradient", "model": "target"}]), "gradient poisoning attacks a linear model"),
        (with_(poisoning=[{"model": "random_forest"}]), "unknown poisoning victim model 'random_forest'"),
        (with_(clean_label=[{"attack": "poison_frogs"}]), r"clean_label\[0\]\.attack: unknown clean-label attack"),
        (with_(clean_label=[{"target_class": 3, "base_class": 3}]), "target_class and base_class must differ"),
        (with_(federated=[{"split": "dirichlet:0"}]), r"federated\[0\]\.split: ALPHA in split 'dirichlet:0' must be"),
        (with_(federated=[{"split": "dirichlet:inf"}]), r"ALPHA in split 'dirichlet:inf' must be a finite number"),
        (with_(federated=[{"split": "random"}]), r"unknown split 'random'; valid forms: 'iid', 'dirichlet:ALPHA'"),
        (with_(federated=[{"clients": 4, "malicious": 4}]), "malicious must be fewer than clients"),
        (with_(federated=[{"defenses": ["krum"]}]), "unknown federated defence 'krum'"),
        (with_(federated=[{"defenses": ["clipping:-1"]}]), r"aggregator 'clipping:-1': noise_sigma must be a finite"),
        (with_(defences={"evasion": ["blur"]}), r"defences\.evasion: unknown evasion defence 'blur'"),
        (with_(defences={"backdoor": ["strip"]}), r"\[defences\] backdoor lists defences, but the config has no"),
        (with_(defences={"clean_label": ["strip"]}), r"defences\.clean_label: unknown key"),
        (
            with_(evasion=[{"attack": "pgd", "eps": 0.1, "defences": ["jpeg"], "defenses": ["jpeg"]}]),
            r"evasion\[0\]\.defenses: unknown key",
        ),
        (
            with_(model={"factory": "m:build"}, clean_label=[{}]),
            r"clean_label trains a zoo teacher and student",
        ),
    ],
)
def test_bad_configs_name_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config)


def test_malformed_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\ndataset = 'digits'")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_defenses_spelling_is_accepted_and_reported_as_defences() -> None:
    cfg = parse_config(with_(evasion=[{"attack": "pgd", "eps": 0.1, "defenses": ["jpeg:50"]}]))
    assert [s.key for s in plan(cfg)] == ["evasion.pgd-linf", "evasion.pgd-linf+jpeg:50"]
    assert cfg.model_dump()["evasion"][0]["defences"] == ["jpeg:50"]


def test_family_wide_defences_run_against_every_entry_once() -> None:
    cfg = parse_config(
        with_(
            evasion=[{"attack": "pgd", "eps": 0.1, "defences": ["jpeg:75"]}, {"attack": "square", "eps": 0.1}],
            defences={"evasion": ["adversarial_training", "jpeg:75"]},
        )
    )
    assert [s.key for s in plan(cfg)] == [
        "evasion.pgd-linf",
        "evasion.pgd-linf+jpeg:75",
        "evasion.pgd-linf+adversarial_training",
        "evasion.square-linf",
        "evasion.square-linf+adversarial_training",
        "evasion.square-linf+jpeg:75",
    ]


def test_duplicate_entries_get_distinct_keys() -> None:
    cfg = parse_config(with_(evasion=[{"attack": "pgd", "eps": 0.1}, {"attack": "pgd", "eps": 0.2}]))
    assert [s.key for s in plan(cfg)] == ["evasion.pgd-linf#1", "evasion.pgd-linf#2"]


def test_gate_parsing_and_matching() -> None:
    gate = parse_gate("robust_accuracy@0.1<0.5")
    figures = {"evasion.pgd-linf.robust_accuracy@0.1": 0.4, "evasion.pgd-linf.robust_accuracy@0.2": 0.1}
    assert gate.check(figures)["failed"]
    assert not parse_gate("robust_accuracy@0.1<0.3").check(figures)["failed"]
    assert parse_gate("evasion.*@0.2>=0.1").check(figures)["failed"]
    with pytest.raises(ConfigError, match="not of the form"):
        parse_gate("robust_accuracy")
    with pytest.raises(ConfigError, match="matches no figure"):
        parse_gate("asr>0.5").check(figures)


def test_relative_paths_resolve_against_the_config_and_absolute_ones_stay(tmp_path: Path) -> None:
    absolute = str(tmp_path / "model.onnx")
    cfg = parse_config(
        with_(data={"dataset": "digits"}, model={"onnx": absolute}), base_dir=tmp_path / "configs"
    )
    assert cfg.model.onnx == absolute
    cfg = parse_config(with_(model={"onnx": "m.onnx"}), base_dir=tmp_path)
    assert cfg.model.onnx == str(tmp_path / "m.onnx")
