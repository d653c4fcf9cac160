"""The layout's rules (docs/architecture.md): no import cycle, no TensorFlow where none belongs, small modules.

These are the first tests of the suite so that they stay true: each reads the source with ``ast``
(imports inside functions count), so it fails on a cycle that a lazy import would hide at run time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dlrecipe

PACKAGE = Path(dlrecipe.__file__).resolve().parent
MAX_LINES = 400
MAX_CLI_LINES = 200


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Every dlrecipe module that ``module`` imports, anywhere in its source (functions included)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            # ``from pkg import mod`` imports the submodule pkg.mod when there is one.
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # ``import dlrecipe.data.loading`` or a name inside a module
                name = name.rpartition(".")[0]
            if name.startswith("dlrecipe") and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {m: imports_of(m, p, known) for m, p in mods.items()}
    # Importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` first: a package that imports from
    # its own submodules would be in a cycle with them, which these edges make visible.
    for m in list(graph):
        parts = m.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in graph and parent != "dlrecipe":
                graph[m].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep == "dlrecipe":  # the package's own __init__ holds no imports of submodules
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_dlrecipe_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "dlrecipe"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    known = {"dlrecipe", "dlrecipe.a", "dlrecipe.sub", "dlrecipe.sub.b"}
    graph = {"dlrecipe.a": imports_of("dlrecipe.a", pkg / "a.py", known),
             "dlrecipe.sub.b": imports_of("dlrecipe.sub.b", pkg / "sub" / "b.py", known)}
    assert graph == {"dlrecipe.a": {"dlrecipe.sub.b"}, "dlrecipe.sub.b": {"dlrecipe.a"}}
    assert find_cycle(graph) == ["dlrecipe.a", "dlrecipe.sub.b", "dlrecipe.a"]


# Imports point down: a package imports only from packages of a lower rank (docs/architecture.md).
RANK = {
    "__main__": 11, "cli": 10,
    "api": 9,
    "console": 8,
    "compare": 7.5,
    "tune": 7, "inspect": 7, "export": 7,
    "train": 6,
    "evaluate": 5,
    "data": 4,
    "build": 3, "runs": 3, "distributed": 3,
    "layers": 2, "tasks": 2, "recipe": 2,
    "io": 1, "backend": 1,
    "errors": 0,
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dlrecipe"


def test_imports_point_down():
    wrong = []
    for module, deps in import_graph().items():
        for dep in deps:
            a, b = _package(module), _package(dep)
            if a != b and b != "dlrecipe" and RANK[a] <= RANK[b]:
                wrong.append(f"{module} -> {dep} ({a} {RANK[a]} imports {b} {RANK[b]})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(sorted(wrong))


def test_every_package_has_a_rank():
    assert {_package(m) for m in _modules()} - {"dlrecipe"} <= set(RANK)


NO_TENSORFLOW = ["dlrecipe.cli.main", "dlrecipe.recipe.loader", "dlrecipe.recipe.schema", "dlrecipe.recipe.spaces",
                 "dlrecipe.recipe.yamlio"]


def test_cli_and_recipe_import_no_tensorflow():
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {NO_TENSORFLOW!r}]; "
            "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_is_small(module):
    path = _modules()[module]
    lines = len(path.read_text().splitlines())
    limit = MAX_CLI_LINES if module.startswith("dlrecipe.cli") else MAX_LINES
    assert lines <= limit, f"{path.relative_to(PACKAGE.parent)} has {lines} lines (at most {limit}): split it"
