"""The package's shape: imports in one direction (no cycle), one table for the public names."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

import maco_hub

PACKAGE = Path(maco_hub.__file__).parent


def _imports(path: Path) -> set[str]:
    """maco_hub modules that ``path`` imports, at module level or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("maco_hub.")}
        elif isinstance(node, ast.ImportFrom):
            base = ("maco_hub" + (f".{node.module}" if node.module else "")) if node.level \
                else (node.module or "")
            if base == "maco_hub":  # `from . import objectives` names modules
                found |= {f"maco_hub.{a.name}" for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
            elif base.startswith("maco_hub."):
                found.add(base)
    return found


def _graph() -> dict[str, set[str]]:
    return {f"maco_hub.{p.stem}": _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [*path, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_are_seen():
    graph = _graph()
    assert "maco_hub.models" in graph["maco_hub.inspection"]  # module level
    assert "maco_hub.spectrum_estimation" in graph["maco_hub.spectrum_sources"]  # inside a function


def test_public_names_come_from_one_table():
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    checking = next(n for n in tree.body
                    if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    declared = {}
    for node in checking.body:
        for alias in node.names:
            declared[alias.name] = "" if node.module is None else node.module
    assert declared == maco_hub._EXPORTS
    assert sorted(maco_hub.__all__) == sorted(["__version__", *maco_hub._EXPORTS])
    for name in maco_hub._EXPORTS:
        assert getattr(maco_hub, name) is not None


@pytest.mark.parametrize("name", sorted(f"maco_hub.{p.stem}" for p in PACKAGE.glob("*.py")))
def test_docstring_examples_run(name):
    """Every module's examples, with this suite's offline caches (those needing the network are
    marked ``# doctest: +SKIP``)."""
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
