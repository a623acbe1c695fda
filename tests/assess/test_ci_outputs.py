"""Where reviewers and CI look (issue 17): report.md, JUnit XML, `sparring diff`, framework ids, CI examples."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml

from sparring.assess.families import FAMILIES
from sparring.assess.frameworks import ATLAS, DEFENCES, OWASP, THREATS, VERSIONS
from sparring.cli import build_parser, main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _config(tmp: Path, seed: int, epochs: int) -> Path:
    text = f"""seed = {seed}
[data]
dataset = "digits"
test_fraction = 0.3
[model]
architecture = "mlp"
epochs = {epochs}
[[evasion]]
attack = "pgd"
eps = [0.05, 0.1]
steps = 5
samples = 150
sanity_checks = false
defences = ["bit_depth:3"]
"""
    path = tmp / f"c{seed}-{epochs}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ci")
    out = {}
    for name, seed, epochs in (("a", 0, 10), ("b", 1, 10), ("weak", 0, 1)):
        out[name] = tmp / name
        junit = ["--junit", str(tmp / f"{name}.xml")] if name == "a" else []
        code = main(["assess", str(_config(tmp, seed, epochs)), "--out", str(out[name]), "--quiet", *junit])
        assert code == 0
    return out


def test_every_threat_and_defence_has_its_framework_identifiers() -> None:
    for family in FAMILIES:
        for cell, threat in family.threats.items():
            assert threat in THREATS, f"{family.key}: threat {threat!r} of cell {cell} has no framework mapping"
        for group in family.defences:
            for name in group.all_names():
                key = f"{family.key}.{name}"
                assert key in DEFENCES, f"defence {key!r} has no ATLAS mitigation in sparring.assess.frameworks"
    used = {i for m in THREATS.values() for i in m.atlas} | {i for ids in DEFENCES.values() for i in ids}
    assert used <= set(ATLAS), used - set(ATLAS)
    assert {i for m in THREATS.values() for i in m.owasp} <= set(OWASP)
    assert set(VERSIONS) == {"atlas", "owasp", "nist", "bsi"}


def test_report_md_fits_a_pull_request_comment(runs: dict[str, Path]) -> None:
    text = (runs["a"] / "report.md").read_text()
    report = json.loads((runs["a"] / "report.json").read_text())
    lines = text.splitlines()
    assert len(lines) < 60
    assert "| test-time inputs / integrity |" in text and "AML.T0015" in text and "ML01" in text
    assert "### Security evaluation" in text and "[report.html](report.html)" in text
    ci = report["matrix"][0]["interval"]
    assert f"{100 * ci['low']:.1f} %" in text  # the matrix row carries the interval
    cell = next(c for c in report["matrix"] if c["row"] == "test-time inputs" and c["column"] == "integrity")
    assert cell["frameworks"]["atlas"][0] == "AML.T0015"
    coverage = {r["id"]: r["assessed"] for r in report["frameworks"]["coverage"]}
    assert coverage["AML.T0015"] and not coverage["AML.T0024.002"]  # evasion ran, model stealing did not


def test_junit_has_a_case_per_cell_and_fails_at_the_chosen_level(runs: dict[str, Path], tmp_path: Path) -> None:
    root = ET.parse(runs["a"].parent / "a.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    for attr, count in (
        ("tests", len(cases)),
        ("failures", sum(c.find("failure") is not None for c in cases)),
        ("skipped", sum(c.find("skipped") is not None for c in cases)),
    ):
        assert int(suite.get(attr, "-1")) == count, attr
    assert all(c.get("name") and c.get("classname") and c.get("time") is not None for c in cases)
    report = json.loads((runs["a"] / "report.json").read_text())
    levels = {c["row"] + " / " + c["column"]: c.get("level") for c in report["matrix"] if c["status"] == "measured"}
    integrity = next(c for c in cases if c.get("name", "").startswith("test-time inputs / integrity"))
    assert (integrity.find("failure") is not None) == (levels["test-time inputs / integrity"] == "high")
    # at level low every measured cell fails; the gates are cases too
    out = tmp_path / "low.xml"
    args = ["assess", str(_config(runs["a"].parent, 0, 10)), "--out", str(runs["a"]), "--quiet"]
    assert main([*args, "--junit", str(out), "--junit-level", "low", "--fail-on", "model.clean_accuracy<0.5"]) == 0
    low = ET.parse(out).getroot().find("testsuite")
    assert low is not None
    failed = [c.get("name", "") for c in low.findall("testcase") if c.find("failure") is not None]
    assert len(failed) == len(levels) and any(c.get("classname") == "sparring.gates" for c in low)


def test_diff_of_two_seeds_lists_only_moves_beyond_the_intervals(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", str(runs["a"]), str(runs["b"]), "--format", "json"]) == 0
    diff: dict[str, Any] = json.loads(capsys.readouterr().out)
    old, new = (json.loads((runs[k] / "report.json").read_text())["intervals"] for k in ("a", "b"))
    for row in diff["moved"]:  # a listed move is one the intervals resolve
        a, b = old[row["figure"]], new[row["figure"]]
        assert a["high"] < b["low"] or b["high"] < a["low"]
    changed = [k for k in old if k in new and old[k] != new[k]]
    assert changed and len(diff["moved"]) < len(changed)  # seed-to-seed noise is mostly not a move


def test_diff_reports_a_weakened_model_and_exits_1(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rule = "model.clean_accuracy>0.02"
    assert main(["diff", str(runs["a"] / "report.json"), str(runs["weak"]), "--fail-on-regression", rule]) == 1
    text = capsys.readouterr().out
    assert "worse: model.clean_accuracy" in text and "Regressions beyond the allowed change" in text
    assert main(["diff", str(runs["a"]), str(runs["weak"]), "--fail-on-regression", "no_such_figure>0.1"]) == 2
    assert main(["diff", str(runs["a"]), str(runs["a"] / "missing"), "--format", "md"]) == 2


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_examples_parse_and_run_commands_that_exist(name: str) -> None:
    workflow = yaml.safe_load((EXAMPLES / "ci" / name).read_text())
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            texts.append(node)

    walk(workflow)
    commands = [t.strip() for t in texts if t.strip().startswith("sparring ")]
    assert {c.split()[1] for c in commands} >= {"assess", "diff"}
    for command in commands:
        words = shlex.split(command)
        cut = next((i for i, w in enumerate(words) if w in (">", "|")), len(words))  # the shell's redirection
        build_parser().parse_args(words[1:cut])  # every flag the example uses exists
