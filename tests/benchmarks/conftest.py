"""A finished tiny benchmark, run once per session and shared by the runner and report tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import importlib
import importlib.util

import pytest

from bopt.benchmarks import references
from bopt.benchmarks.runner import run_benchmark


@dataclass(frozen=True)
class FinishedBench:
    """Where a finished benchmark lies and what it ran: every problem x method x seed."""

    out: Path
    problems: tuple[str, ...] = ("branin", "mixed_cat3")  # d = 2 (5 Sobol points), d = 6 with categoricals (10)
    methods: tuple[str, ...] = ("ei", "random", "sobol")
    num_seeds: int = 2
    budget: int = 12


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> FinishedBench:
    """A finished 2 problems x 3 methods x 2 seeds benchmark, budget 12 (read it, don't edit it)."""
    spec = FinishedBench(tmp_path_factory.mktemp("bench"))
    run_benchmark(list(spec.problems), list(spec.methods), spec.num_seeds, spec.budget, spec.out,
                  progress=False)
    return spec


@pytest.fixture
def without_optuna(monkeypatch):
    """Optuna looks uninstalled to `bopt.benchmarks.references.require`."""
    real = importlib.import_module

    def fake_import(name, *args):
        if name == "optuna":
            raise ImportError("No module named 'optuna'")
        return real(name, *args)

    monkeypatch.setattr(references.importlib, "import_module", fake_import)


def _load_script(name: str):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script():
    """`load_script(name)`: a script of the repository's benchmarks/ folder, as a module."""
    return _load_script
