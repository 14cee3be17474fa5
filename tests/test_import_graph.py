"""The import graph of ``src/polyinr``: no circle, and no import that climbs from a lower layer to a higher one.

Every module is parsed with :mod:`ast` (nothing is imported); every ``import polyinr…`` / ``from polyinr… import``
counts, including relative imports and imports inside functions. The layers are DESIGN.md's, lowest first; a
module may import its own layer and lower ones. A new top-level module or package must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "polyinr"

LAYERS = [
    {
        "errors",
        "progress",
        "atomic",
        "small_files",
        "device",
        "interrupt",
        "terminal",
        "_version",
        "downloads",
        "registry",
    },
    {"grid"},
    {"image_io"},
    {"models"},
    {"sampling"},
    {"checkpoint"},
    {"importers", "discriminators", "data", "pretrained"},
    {"training"},
    {"metrics"},
    {"tools"},
    {"serve"},
    {"cli", "__main__"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
PACKAGE_LAYER = len(LAYERS)  # polyinr/__init__.py, the public facade, may import anything


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over every module of the package."""
    paths = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                # ``from a import b`` imports the module a.b when there is one, else a name from a
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base for alias in node.names]
            else:
                continue
            for name in names:
                while name not in paths and "." in name:
                    name = name.rpartition(".")[0]
                if name in paths and name != module:
                    targets.setdefault(name, node.lineno)
        graph[module] = targets
    return graph


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return PACKAGE_LAYER
    if parts[1] not in LAYER_OF:
        pytest.fail(f"{module} is in no layer: add {parts[1]!r} to LAYERS in {Path(__file__).name}")
    return LAYER_OF[parts[1]]


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert graph["polyinr.checkpoint"].keys() >= {"polyinr.errors", "polyinr.models.registry"}
    assert "polyinr.importers.unpickle" in graph["polyinr.importers.poly_inr"]  # absolute ``from a.b import c``
    assert len(graph) > 60


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_no_import_climbs_a_layer():
    upward = []
    for module, targets in import_graph().items():
        for target, line in targets.items():
            if layer(target) > layer(module):
                upward.append(f"{module}:{line} imports {target}")
    assert upward == []


def test_cycles_and_layers_are_detected():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert layer("polyinr.sampling") > layer("polyinr.models.generator") > layer("polyinr.grid")
    assert layer("polyinr") == PACKAGE_LAYER
