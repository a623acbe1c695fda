"""Conformance of every registered family: it plans, runs, resumes, renders, rates, gates and is listed.

One assessment runs every family's ``smoke`` fragment together on digits (one target model
for all), then each family is checked on its own results.
"""

from __future__ import annotations

import fnmatch
from typing import Any, ClassVar

import pytest

from sparring.assess import assess, parse_config
from sparring.assess.context import Context
from sparring.assess.families import FAMILIES, REQUIRED, problems
from sparring.assess.family import LEVELS, SCOPE, TEST_INTEGRITY, Family, Rating, Rule, Scenario, ScenarioResult
from sparring.assess.gates import parse_gate
from sparring.assess.planner import plan
from sparring.assess.spec import BaseConfig, Strict
from sparring.cli import main

BASE: dict[str, Any] = {"data": {"dataset": "digits"}, "model": {"epochs": 3}}


def smoke_config() -> dict[str, Any]:
    config = dict(BASE)
    for family in FAMILIES:
        config.update(family.smoke)
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = parse_config(smoke_config())
    out = tmp_path_factory.mktemp("families") / "report"
    first: list[str] = []
    report, failed = assess(cfg, out, log=first.append)
    assert not failed
    again: list[str] = []
    rerun, _ = assess(cfg, out, log=again.append)
    return {"config": cfg, "report": report, "rerun": rerun, "log": again, "page": (out / "report.html").read_text()}


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_family_has_every_part(family: Family[Any, Any]) -> None:
    assert problems(family) == [], "\n".join(problems(family))


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_family_plans_runs_rates_and_gates(family: Family[Any, Any], runs: dict[str, Any]) -> None:
    cfg: BaseConfig = runs["config"]
    report = runs["report"]
    scenarios = [s for s in plan(cfg) if s.family == family.key]
    keys = [s.key for s in scenarios]
    assert keys and any("+" in k for k in keys) == bool(family.defences), keys
    assert set(keys) <= set(report["scenarios"]), f"{family.key}: a planned scenario did not run"
    for key in keys:
        result = family.load(report["scenarios"][key])
        assert isinstance(result, family.result)
        assert family.load(result.to_json()) == result, f"{key}: the stored JSON does not round-trip"
        rating = family.rate(result)
        assert isinstance(rating, Rating) and rating.level in LEVELS and rating.text
        figures = family.figures(key, result)
        assert figures and all(k.startswith(key + ".") and k in report["figures"] for k in figures), key
        expected = family.expected_figures(next(s for s in scenarios if s.key == key))
        unforeseen = [k for k in figures if not any(fnmatch.fnmatchcase(k, e) for e in expected)]
        assert not unforeseen, f"{key}: expected_figures misses {unforeseen} (--fail-on is checked against it)"
        for k, ci in family.intervals(key, result).items():  # an interval belongs to a figure and holds it
            assert k in figures and ci.low - 1e-9 <= figures[k] <= ci.high + 1e-9 and ci.n > 0, (k, ci)
            assert report["intervals"][k]["n"] == ci.n
        name = next(iter(figures))
        assert parse_gate(f"{name}>=-1").check(report["figures"])["failed"]  # --fail-on can gate it
        assert not parse_gate(f"{name}<-1").check(report["figures"])["failed"]
        if family.rated_in_matrix:
            cell = next(c for c in report["matrix"] if (c["row"], c["column"]) == family.cell(result))
            assert cell["status"] == "measured", f"{key}: its cell {family.cell(result)} was not rated"
    costs = {c["scenario"] for c in report["defence_costs"]}
    assert {k for k in keys if "+" in k} <= costs, f"{family.key}: a defence has no cost row"
    extras = [k for k in family.extras({k: family.load(report["scenarios"][k]) for k in keys}).figures]
    patterns = family.expected_extras(scenarios)
    assert all(any(fnmatch.fnmatchcase(k, e) for e in patterns) for k in extras), (extras, patterns)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_family_resumes_from_the_store_and_renders(family: Family[Any, Any], runs: dict[str, Any]) -> None:
    keys = [k for k in runs["report"]["scenarios"] if k.startswith(family.key + ".")]
    for key in keys:
        assert any(line.endswith(f"{key}: reusing stored result") for line in runs["log"]), key
        assert runs["rerun"]["scenarios"][key] == runs["report"]["scenarios"][key]
    mine = {k: runs["report"]["scenarios"][k] for k in keys}
    assert family.html(mine, runs["report"]), f"{family.key}: html() rendered nothing for its results"
    assert family.section in runs["page"]


def test_every_family_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    for family in FAMILIES:
        assert f"[[{family.key}]]" in listing
        assert all(a in listing for a in family.attacks), family.key
        assert all(n in listing for g in family.defences for n in g.all_names()), family.key


class _Spec(Strict):
    attack: str = "x"


class _Incomplete(Family[_Spec, ScenarioResult]):
    """A family that forgot its threats, rules and smoke config."""

    key = "incomplete"
    title = "incomplete"
    section = "Nowhere"
    order = 99
    spec = _Spec
    result = ScenarioResult

    def label(self, entry: _Spec) -> str:
        return entry.attack

    def run(self, ctx: Context, sc: Scenario) -> ScenarioResult:
        raise NotImplementedError

    def rate(self, result: ScenarioResult) -> Rating:
        raise NotImplementedError

    def figures(self, key: str, result: ScenarioResult) -> dict[str, float]:
        return {}

    def html(self, results: Any, report: Any) -> str:
        return ""


def test_a_family_missing_a_part_is_named_clearly() -> None:
    found = problems(_Incomplete())
    assert found == [
        f"_Incomplete lacks `threats`: {REQUIRED['threats']}",
        f"_Incomplete lacks `rules`: {REQUIRED['rules']}",
        f"_Incomplete lacks `smoke`: {REQUIRED['smoke']}",
    ]

    class WrongCell(_Incomplete):
        threats: ClassVar[dict[tuple[str, str], str]] = {TEST_INTEGRITY: "model stealing"}
        rules: ClassVar[dict[tuple[str, str], Rule]] = {TEST_INTEGRITY: Rule("x", 0.1, 0.5)}
        smoke: ClassVar[dict[str, Any]] = {"incomplete": [{}]}

    assert problems(WrongCell()) == [
        f"WrongCell.threats: 'model stealing' is not a threat of cell {TEST_INTEGRITY} (SCOPE: {SCOPE[TEST_INTEGRITY]})"
    ]
