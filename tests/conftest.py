"""Shared fixtures: two seeded toy problems with fitted GPs, a point sampler, and the
precisions (`dtype`, with its default `atol`) numeric tests run in.

Everything is seeded through explicit generators; the global RNG is never touched. The fits
are session-scoped (one `fit_gp` each, about a second on a laptop CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from torch import Tensor

from bopt.layout import Layout
from bopt.model import BoptGP, FitReport, fit_gp

# The precisions every numeric test runs in; request the `dtype` fixture rather than
# importing this (tests/ is not a package, so `from tests.conftest import DTYPES` only
# resolves when pytest happens to run from the repository root through `python -m`).
DTYPES = (torch.float32, torch.float64)
# Default absolute tolerances per precision (STYLE.md section 6); a looser one says why.
ATOL = {torch.float32: 1e-5, torch.float64: 1e-10}

CONTINUOUS_LAYOUT = Layout(d=3, continuous=(0, 1, 2))
# Two continuous columns, then two categoricals of three choices each.
MIXED_LAYOUT = Layout(d=4, continuous=(0, 1), categorical=(2, 3), categorical_sizes=(3, 3))


@dataclass(frozen=True)
class FittedProblem:
    """Seeded training data and the GP `fit_gp` returned for it."""

    X: Tensor  # n x d
    Y: Tensor  # n x 1, standardised
    layout: Layout
    model: BoptGP
    theta: Tensor  # p log hyperparameters
    report: FitReport


def draw_points(layout: Layout, n: int, generator: torch.Generator, *,
                dtype: torch.dtype = torch.float64) -> Tensor:
    """`n x d` valid encoded points: uniform numeric columns, uniform category indices."""
    X = torch.rand(n, layout.d, generator=generator, dtype=dtype)
    for col, k in zip(layout.categorical, layout.categorical_sizes):
        X[:, col] = torch.randint(0, k, (n,), generator=generator).to(dtype)
    return X


def _standardize(y: Tensor) -> Tensor:
    return ((y - y.mean()) / y.std()).unsqueeze(-1)  # n x 1


def _fit(X: Tensor, y: Tensor, layout: Layout) -> FittedProblem:
    Y = _standardize(y)
    model, theta, report = fit_gp(X, Y, layout)
    return FittedProblem(X, Y, layout, model, theta, report)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The matrices here are tiny: one thread is fastest and avoids oversubscribing shared
    CI cores (fits ran up to 10x slower with 2 threads on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=DTYPES, ids=lambda dtype: str(dtype).removeprefix("torch."))
def dtype(request) -> torch.dtype:
    """Each precision of `DTYPES` in turn."""
    return request.param


@pytest.fixture
def atol(dtype) -> float:
    """The default absolute tolerance for `dtype`: 1e-10 in float64, 1e-5 in float32."""
    return ATOL[dtype]


@pytest.fixture(scope="session")
def continuous_layout() -> Layout:
    return CONTINUOUS_LAYOUT


@pytest.fixture(scope="session")
def mixed_layout() -> Layout:
    return MIXED_LAYOUT


@pytest.fixture(scope="session")
def point_sampler() -> Callable[..., Tensor]:
    """`draw_points(layout, n, generator, dtype=...)`, for tests that need valid inputs."""
    return draw_points


@pytest.fixture(scope="session")
def continuous_problem() -> FittedProblem:
    """A smooth function of three continuous inputs, n = 20."""
    X = draw_points(CONTINUOUS_LAYOUT, 20, torch.Generator().manual_seed(0))
    y = torch.sin(6 * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2]
    return _fit(X, y, CONTINUOUS_LAYOUT)


@pytest.fixture(scope="session")
def mixed_problem() -> FittedProblem:
    """Two continuous inputs plus two 3-level categoricals with additive effects, n = 25."""
    X = draw_points(MIXED_LAYOUT, 25, torch.Generator().manual_seed(1))
    y = (torch.cos(4 * X[:, 0]) + X[:, 1] + (X[:, 2] == 1).double()
         - 0.5 * (X[:, 3] == 2).double())
    return _fit(X, y, MIXED_LAYOUT)


@pytest.fixture(scope="session", params=["continuous", "mixed"])
def problem(request) -> FittedProblem:
    """Each fitted toy problem in turn."""
    return request.getfixturevalue(f"{request.param}_problem")
