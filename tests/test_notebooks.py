"""Every notebook in notebooks/ runs top to bottom in a fresh kernel without an error, is
committed without outputs, and is listed in the README.

Needs nbclient and ipykernel (the `test` extra); skipped without them. The kernel runs the
interpreter running pytest (this virtual environment), whatever kernelspecs are installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="running notebooks needs nbformat "
                               "(pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="running notebooks needs nbclient "
                               "(pip install -e '.[test]')")
ipykernel_spec = pytest.importorskip("ipykernel.kernelspec", reason="running notebooks needs "
                                     "ipykernel (pip install -e '.[test]')")

# jupyter_client comes with nbclient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 120


class _ThisPython(KernelSpecManager):
    """Answers every kernel name with an ipykernel on `sys.executable`, so a user-level
    `python3` kernelspec pointing at another interpreter cannot take over."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(resource_dir="", **ipykernel_spec.get_kernel_dict())


def test_the_kernel_is_this_interpreter():
    argv = _ThisPython().get_kernel_spec("python3").argv
    assert argv[0] == sys.executable


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_without_error(path: Path):
    nb = nbformat.read(path, as_version=4)
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: cell {i} has outputs; clear them before committing "
                "(jupyter nbconvert --clear-output --inplace)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_listed_in_the_readme(path: Path):
    readme = (ROOT / "README.md").read_text()
    assert f"`notebooks/{path.name}`" in readme, (
        f"README.md does not mention `notebooks/{path.name}`; add a line saying what it shows "
        "to the list under 'Plots and notebooks'.")
