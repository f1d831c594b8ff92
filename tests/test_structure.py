"""The shape of the code: imports run one way, with no circles, and no file or function
grows past what a reader holds in mind.

Every module of `bopt`, `bopt.kernels` (kernels/) and `bopt.acquisition` (acquisition/) is
parsed, not imported; every `import` counts, at module level or inside a function, under
`TYPE_CHECKING` or not, because each is a dependency a reader must follow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"bopt": ROOT / "bopt", "bopt.kernels": ROOT / "kernels",
            "bopt.acquisition": ROOT / "acquisition"}
# Leaves import nothing of bopt: anything may depend on them.
LEAVES = {"bopt.errors", "bopt.layout", "bopt.trial", "bopt.cuda_graphs"}
# What each part may import of bopt, beyond its own package.
ALLOWED = {
    "bopt.optim": {"bopt.cuda_graphs"},
    "bopt.kernels": {"bopt.errors", "bopt.layout"},
    "bopt.acquisition": {"bopt.kernels", "bopt.errors", "bopt.layout", "bopt.optim"},
    "bopt.storage": {"bopt.errors"},
    "bopt.model": {"bopt.kernels", "bopt.errors", "bopt.layout", "bopt.optim", "bopt.cuda_graphs"},
    "bopt.warp": set(),
    "bopt.sobol": {"bopt.errors"},
    "bopt.validation": {"bopt.errors"},
    "bopt.runtime": {"bopt.errors", "bopt.validation"},
    "bopt.schedulers": {"bopt.errors", "bopt.validation"},
    # adapters over the public API: the modules that define bopt's public names
    "bopt.integrations": {"bopt.engine", "bopt.space", "bopt.errors", "bopt.trial",
                          "bopt.schedulers"},
}
# The loop's own modules never reach out to its consumers.
CONSUMERS = ("bopt.benchmarks", "bopt.plot", "bopt.cli", "bopt.__main__", "bopt.integrations")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 60


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package] + parts)
            if package == "bopt" and (name.startswith("bopt.kernels")
                                      or name.startswith("bopt.acquisition")):
                continue  # a symlink or build copy; the folders above are the source
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The bopt modules `path` imports (a `from m import name` naming a submodule counts
    as that submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "bopt"}
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] == "bopt"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in MODULES else node.module)
    return out


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _part(module: str) -> str:
    """The part of the code a module belongs to, as named in ALLOWED."""
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return module


def _within(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def test_every_source_file_is_parsed():
    assert {"bopt.engine", "bopt.kernels.functional", "bopt.acquisition.registry",
            "bopt.proposal", "bopt.ledger"} <= set(MODULES)


def test_leaves_import_nothing_of_bopt():
    for leaf in LEAVES:
        assert GRAPH[leaf] == set(), f"{leaf} imports {sorted(GRAPH[leaf])}"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_what_it_may(part):
    for module, imported in GRAPH.items():
        if _part(module) != part:
            continue
        bad = sorted(m for m in imported if not _within(m, ALLOWED[part] | {part}))
        assert not bad, f"{module} imports {bad}; {part} may import only {sorted(ALLOWED[part])}"


def test_the_loop_never_imports_its_consumers():
    for module, imported in GRAPH.items():
        if module.startswith(CONSUMERS) or module == "bopt":
            continue
        bad = sorted(m for m in imported if m.startswith(CONSUMERS))
        assert not bad, f"{module} imports {bad}"


def test_no_module_imports_the_lazy_package_root():
    """`from bopt import X` inside the library would run the lazy loader; name the module."""
    for module, imported in GRAPH.items():
        assert "bopt" not in imported, f"{module} imports from the package root `bopt`"


def test_there_are_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(GRAPH.get(module, ())):
            if state.get(nxt) == 1:
                circle = path[path.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(circle))
            if nxt in GRAPH and state.get(nxt) is None:
                visit(nxt)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if state.get(module) is None:
            visit(module)


def test_the_checks_catch_a_circle_and_a_forbidden_import(tmp_path):
    """The parser sees through function-level and TYPE_CHECKING imports."""
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from bopt.engine import Optimizer\n"
                      "def f():\n    import bopt.storage\n")
    assert _imports(source) == {"bopt.engine", "bopt.storage"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_files_and_functions_stay_small(module):
    path = MODULES[module]
    text = path.read_text()
    assert text.count("\n") <= MAX_FILE_LINES, f"{path} has {text.count(chr(10))} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, (
                f"{path}:{node.lineno} {node.name} is {length} lines")


def _python(code: str) -> str:
    """What `code` prints in a fresh interpreter (nothing imported yet)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()


def test_importing_the_kernels_stays_light():
    loaded = _python("import sys, bopt.kernels, bopt.errors, bopt.layout; "
                     "print(sorted(m for m in ('bopt.engine', 'bopt.storage', 'bopt.space', "
                     "'bopt.acquisition', 'botorch') if m in sys.modules))")
    assert loaded == "[]"


def test_the_public_names_load_lazily():
    out = _python("import sys, bopt; before = 'bopt.engine' in sys.modules; "
                  "from bopt import Optimizer, StorageError, FitError; "
                  "print(before, 'bopt.engine' in sys.modules, Optimizer.__module__)")
    assert out.split() == ["False", "True", "bopt.engine"]
