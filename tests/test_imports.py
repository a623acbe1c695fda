"""The package's import graph: no circles, and the layers of DESIGN.md import one way."""

from __future__ import annotations

import ast
from pathlib import Path

import sparring

ROOT = Path(sparring.__file__).resolve().parent


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every sparring module ``name`` imports, anywhere in the file (type-checking and lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_walker_finds_a_planted_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    g = graph()
    assert "sparring.attacks.evasion.gradient" in g["sparring.attacks.evasion.adaptive"]  # it sees real edges


def test_no_import_circle_in_sparring() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_layers_import_one_way() -> None:
    """Attacks never import defences; nothing imports assess or serve except the command line."""
    for name, deps in graph().items():
        if name.startswith("sparring.attacks"):
            assert not [d for d in deps if d.startswith("sparring.defenses")], name
        if not name.startswith(("sparring.assess", "sparring.serve", "sparring.cli")):
            assert not [d for d in deps if d.startswith(("sparring.assess", "sparring.serve"))], name
        if name.startswith("sparring.models"):
            assert not [d for d in deps if d.startswith(("sparring.train", "sparring.transfer"))], name
