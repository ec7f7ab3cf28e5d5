"""The package layout keeps its promises: no import cycles, layers point one way.

Imports are read from the source (module level and inside functions alike), so a cycle
hidden behind a deferred import fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kline_lake", "backtest")
# The concept subpackages of kline_lake; the top level holds only these, the package face
# (__init__.py) and errors.py.
KLINE_LAKE_SUBPACKAGES = {"core", "exchange", "download", "archive", "lake", "fake_exchange", "live", "cli"}
# Which kline_lake subpackages each one may import (besides itself and kline_lake.errors).
ALLOWED = {
    "core": set(),
    "exchange": {"core"},
    "lake": {"core"},
    "archive": {"core", "exchange", "lake", "download"},
    "download": {"core", "exchange", "lake", "archive"},
    "fake_exchange": {"core"},
    "live": {"core", "exchange", "download", "lake", "archive"},
    "cli": {"core", "exchange", "lake", "archive", "download", "fake_exchange", "live"},
}
MAX_MODULE_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _lazy_target(node: ast.AST) -> str | None:
    """The module a string names for a deferred import: ``"pkg.module:attribute"`` (the
    lazy command and source tables) or exactly a module's name (`backtest.lazy` faces)."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return None
    module, colon, attr = node.value.partition(":")
    if module in MODULES and (not colon or attr.isidentifier()):
        return module
    return None


def _imports(name: str) -> set[str]:
    """Every module of ours that `name` imports, anywhere in its source, and every one it
    names for a deferred import (`_lazy_target`)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if (lazy := _lazy_target(node)) is not None:
            targets = [lazy]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if _is_package(name) else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from pkg import submodule` depends on that submodule (the package's
            # __init__ runs first, as for any import below it, and is not counted);
            # `from module import obj` depends on the module
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES
                       else module for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_cycle_detector_finds_a_cycle() -> None:
    # the check above must be able to fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_kline_lake_never_imports_backtest() -> None:
    offenders = {m: sorted(t for t in deps if t.split(".")[0] == "backtest")
                 for m, deps in GRAPH.items() if m.split(".")[0] == "kline_lake"}
    assert {m: t for m, t in offenders.items() if t} == {}


def _subpackage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "kline_lake" and len(parts) > 1 else None


def test_layers_point_one_way() -> None:
    bad = []
    for module, deps in GRAPH.items():
        mine = _subpackage(module)
        if mine not in ALLOWED:
            continue
        for dep in deps:
            theirs = _subpackage(dep)
            if dep.split(".")[0] != "kline_lake" or theirs in (None, "errors", mine):
                continue
            if theirs not in ALLOWED[mine]:
                bad.append(f"{module} -> {dep}")
    assert bad == []


def test_top_level_is_only_the_face_errors_and_subpackages() -> None:
    top = ROOT / "kline_lake"
    modules = {p.name for p in top.glob("*.py")}
    packages = {p.name for p in top.iterdir() if (p / "__init__.py").is_file()}
    assert modules == {"__init__.py", "errors.py"}
    assert packages == KLINE_LAKE_SUBPACKAGES


@pytest.mark.parametrize("package", sorted(
    n for n in MODULES if _is_package(n) and n.count(".") == 1 and n.startswith("kline_lake.")))
def test_subpackage_says_what_it_owns(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text()))
    assert doc and "import" in doc.lower() and len(doc.split()) >= 12, package


def test_errors_live_in_errors_py() -> None:
    stray = []
    for name, path in MODULES.items():
        if name == "kline_lake.errors" or name.startswith("kline_lake.fake_exchange"):
            continue  # the fake exchange's ApiError is the server's answer, not ours to raise
        for node in ast.walk(ast.parse(path.read_text())):
            # private control-flow signals (`_Retryable`) never leave their module
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception"))
                    for b in node.bases):
                stray.append(f"{name}.{node.name}")
    assert stray == []


def test_modules_stay_small() -> None:
    big = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert {n: lines for n, lines in big.items() if lines > MAX_MODULE_LINES} == {}
