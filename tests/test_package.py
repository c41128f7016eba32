"""The package's shape: layers that import only from layers before them, one table for the public
names (each the very object it names), the subpackages pyproject.toml ships, and docstring examples."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import maco_hub

PACKAGE = Path(maco_hub.__file__).parent
LAYERS = (  # in data-flow order: a module may import from its own layer and the ones before it
    (
        "bottom",
        (
            "maco_hub.errors",
            "maco_hub._version",
            "maco_hub._files",
            "maco_hub._numbers",
            "maco_hub._text",
            "maco_hub._image_files",
            "maco_hub._host",
            "maco_hub._hub",
        ),
    ),
    ("models", ("maco_hub.models",)),
    ("objectives", ("maco_hub.objectives",)),
    ("spectra", ("maco_hub.spectra",)),
    ("engine", ("maco_hub.engine", "maco_hub.schedules")),
    ("gallery", ("maco_hub.gallery",)),
    ("legibility", ("maco_hub.legibility",)),
    (
        "runs",
        (
            "maco_hub.choices",
            "maco_hub.guidance",
            "maco_hub.explainer",
            "maco_hub.reproduction",
            "maco_hub.distributed",
        ),
    ),
    ("command line", ("maco_hub.cli", "maco_hub.__main__")),
)


def module_names() -> list[str]:
    """Every module of the package (dotted), ``maco_hub`` itself left out (its imports are lazy)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return [name for name in names if name != "maco_hub"]


def _path(module: str) -> Path:
    base = PACKAGE.parent.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _is_module(dotted: str) -> bool:
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def imports_of(module: str, source: str | None = None) -> set[str]:
    """maco_hub modules that ``module`` imports, at module level or inside functions alike
    (``from . import x`` counts as importing the submodule ``x`` when there is one)."""
    path = _path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("maco_hub.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != "maco_hub" and not base.startswith("maco_hub."):
                continue
            submodules = {f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")}
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(base)
    return found - {"maco_hub"}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise LookupError(module)


def backward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a later layer, as 'importer (layer) -> imported (layer)'."""
    found = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            if layer_of(target) > layer_of(module):
                found.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
                )
    return found


def test_every_module_has_a_layer():
    for module in module_names():
        layer_of(module)  # raises for a module outside every layer


def test_layers_import_only_from_layers_before_them():
    graph = {module: imports_of(module) for module in module_names()}
    assert backward_imports(graph) == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [*path, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycle_inside_a_layer():
    graph = {module: imports_of(module) - {module} for module in module_names()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_layer_check_sees_module_and_function_level_imports():
    inside = "def f():\n    from ..gallery.folder import GalleryFolder\n"
    assert imports_of("maco_hub.engine.loop", inside) == {"maco_hub.gallery.folder"}
    assert imports_of("maco_hub.engine.loop", "from .. import objectives\n") == {"maco_hub.objectives"}
    assert backward_imports({"maco_hub.engine.loop": {"maco_hub.gallery.folder"}}) == [
        "maco_hub.engine.loop (engine) -> maco_hub.gallery.folder (gallery)"
    ]
    assert backward_imports({"maco_hub.gallery.folder": {"maco_hub.engine.loop"}}) == []


def test_public_names_come_from_one_table():
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    checking = next(
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
    )
    declared = {}
    for node in checking.body:
        for alias in node.names:
            declared[alias.name] = "" if node.module is None else node.module
    assert declared == maco_hub._EXPORTS
    assert sorted(maco_hub.__all__) == sorted(["__version__", *maco_hub._EXPORTS])


def test_each_public_name_is_what_it_names_even_after_every_submodule_is_imported():
    for info in pkgutil.walk_packages(maco_hub.__path__, "maco_hub."):
        if info.name not in ("maco_hub.__main__", "maco_hub.cli.__main__"):
            importlib.import_module(info.name)
    for name, module in maco_hub._EXPORTS.items():
        if module:
            assert getattr(maco_hub, name) is getattr(importlib.import_module(f"maco_hub.{module}"), name)
            assert not isinstance(getattr(maco_hub, name), type(maco_hub)), name
        else:
            assert getattr(maco_hub, name) is importlib.import_module(f"maco_hub.{name}")
    top_level = {name.rpartition(".")[2] for name in module_names() if name.count(".") == 1}
    clashes = {name for name, module in maco_hub._EXPORTS.items() if module} & top_level
    assert not clashes, f"exported names that are also submodules of maco_hub: {sorted(clashes)}"


def test_labels_stays_the_function_after_a_model_is_loaded(tiny_zoo):
    maco_hub.load_model(tiny_zoo["vit"].path)
    assert [label for _, label in maco_hub.labels(tiny_zoo["vit"].path)][:2] == [
        "tabby, tabby cat",
        "tiger cat",
    ]


def test_pyproject_ships_every_subpackage():
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(config["tool"]["setuptools"]["packages"]) - {"maco_hub._spectra"}
    folders = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert shipped == folders


def test_browsing_a_gallery_imports_no_torch(tmp_path):
    """load_gallery and `maco-hub gallery show|html|repair` never load torch (fast on a laptop)."""
    folder = tmp_path / "g"
    shutil.copytree(Path(__file__).parent / "data" / "compat-gallery", folder)
    code = (
        "import sys; import maco_hub; from maco_hub.cli import main; "
        f"g = maco_hub.load_gallery({str(folder)!r}); assert len(g) == 5; "
        f"assert all(main(['--quiet', 'gallery', verb, {str(folder)!r}]) == 0 "
        "for verb in ('show', 'html', 'repair')); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _has_runnable_example(module: str) -> bool:
    text = _path(module).read_text(encoding="utf-8")
    return any(
        ">>>" in line and "doctest: +SKIP" not in line
        for line in text.splitlines()
        if re.match(r"\s*>>>", line)
    )


@pytest.mark.parametrize("name", [m for m in module_names() if _has_runnable_example(m)])
def test_docstring_examples_run(name):
    """Every runnable docstring example, with this suite's offline caches (examples that need the
    network are marked ``# doctest: +SKIP`` and are documentation only)."""
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0
