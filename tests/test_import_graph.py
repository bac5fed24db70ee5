"""The import graph follows the layers the README draws (parsed from the code, not grepped).

    schemas  <-  parallelner  <-  annotation  <-  flows  <-  parallelner_cli
                 parallelner  <-  training (never flows)  <-  parallelner_cli

Inside ``parallelner`` the floors are: the records and their vocabulary; readers,
writers, the store, the LLM layer; the pure logic (``align``, ``quality``); the stages;
the run. Every ``import`` statement counts, those inside functions too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "parallelner", "annotation", "flows", "training", "parallelner_cli")

# what each top-level package may import (itself always)
ALLOWED = {
    "schemas": set(),
    "parallelner": {"schemas"},
    "annotation": {"parallelner", "schemas"},
    "flows": {"parallelner", "annotation", "schemas", "training"},
    "training": {"parallelner", "schemas"},
    "parallelner_cli": {"parallelner", "annotation", "flows", "training", "schemas"},
}

# floors inside parallelner, lowest first: a module may import its own floor and below
FLOORS = [
    {"errors", "reasons", "languages", "records", "detok", "progress", "prompts", "redaction"},
    {"settings", "version", "readers", "writers", "storage", "shards", "store"},
    {"llm"},
    {"align", "quality"},
    {"stages"},
    {"jobs", "pipeline", "batchrun", "shardprocs", "testing"},
]


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Every module named by an import statement in ``path`` (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                out.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.append(node.module)
    return out


def _graph() -> dict[str, list[tuple[str, Path]]]:
    edges: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    for package in PACKAGES:
        for path in _modules(package):
            for name in _imports(path):
                edges[_module_name(path)].append((name, path))
    return edges


def _floor(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "parallelner" or len(parts) < 2:
        return None
    for i, floor in enumerate(FLOORS):
        if parts[1] in floor:
            return i
    raise AssertionError(f"{module}: on no floor of parallelner (add it to FLOORS)")


def test_every_package_is_parsed():
    assert all(_modules(p) for p in PACKAGES)
    graph = _graph()
    assert any(name.startswith("prefect") for edges in graph.values() for name, _ in edges)


def test_only_flows_imports_prefect():
    wrong = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for module, edges in _graph().items()
        for name, path in edges
        if name.split(".")[0] == "prefect" or name.startswith("prefect_")
        if module.split(".")[0] != "flows"
    )
    assert not wrong, "\n".join(wrong)


def test_no_package_imports_a_higher_one():
    wrong = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for module, edges in _graph().items()
        for name, path in edges
        if name.split(".")[0] in PACKAGES
        and name.split(".")[0] != module.split(".")[0]
        and name.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )
    assert not wrong, "\n".join(wrong)


def test_no_floor_of_parallelner_imports_a_higher_one():
    wrong = []
    for module, edges in _graph().items():
        mine = _floor(module)
        if mine is None:
            continue
        for name, path in edges:
            theirs = _floor(name)
            if theirs is not None and theirs > mine:
                wrong.append(f"{path.relative_to(ROOT)} (floor {mine}) imports {name} ({theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def _cycles(nodes: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in nodes.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(nodes):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("depth", [1, 2], ids=["packages", "subpackages"])
def test_no_import_cycle_between_packages(depth):
    """Top-level packages, and the subpackages of parallelner (``parallelner.llm``...)."""
    nodes: dict[str, set[str]] = defaultdict(set)
    for module, edges in _graph().items():
        a = ".".join(module.split(".")[:depth])
        for name, _ in edges:
            if name.split(".")[0] not in PACKAGES:
                continue
            b = ".".join(name.split(".")[:depth])
            if a != b:
                nodes[a].add(b)
    assert _cycles(nodes) == []


def test_no_import_cycle_inside_the_llm_layer():
    """The modules of ``parallelner.llm`` import each other in one direction only (every
    import counts, those under ``TYPE_CHECKING`` and inside functions too)."""
    nodes: dict[str, set[str]] = defaultdict(set)
    for module, edges in _graph().items():
        if not module.startswith("parallelner.llm."):
            continue
        for name, _ in edges:
            if name.startswith("parallelner.llm.") and name != module:
                nodes[module].add(name)
    assert _cycles(nodes) == []
