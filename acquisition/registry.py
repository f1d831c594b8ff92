"""The one table of public strategy names: "ei", "ucb", "ts", "nei" (acquisitions on the
GP) and "random", "sobol" (model-free).

Everything that names a strategy reads it from here: the optimizer, the command line, the
benchmark harness, the plots and the reports. An acquisition entry builds, from a fitted
model and what the round knows (`ScoreContext`), the score the multistart ascent maximises:
a function from `... x q x d` encoded points to `...` values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from bopt.acquisition.common import PosteriorScore
from bopt.acquisition.ei import (FantasyLogEI, log_expected_improvement,
                                 log_expected_improvement_slopes)
from bopt.acquisition.thompson import draw_posterior_path
from bopt.acquisition.ucb import ucb_beta, upper_confidence_bound, upper_confidence_bound_slopes
from bopt.errors import ArgumentError

Score = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ScoreContext:
    """What a model round knows when it builds its acquisition.

    Attributes:
        best_f: scalar incumbent, the best target on the model's scale (higher is better).
        num_observations: observations the model was fitted on.
        d: encoded width.
        generator: randomness for acquisitions that draw (Thompson sampling).
        beta: UCB's weight on the standard deviation; None follows `ucb_beta`'s schedule.
        num_pending: how many pending points the model was conditioned on (its last
            training rows, believed at their posterior mean). Log EI and noisy EI integrate
            over their outcomes instead (`FantasyLogEI`); UCB and Thompson sampling use the
            conditioned model as it is.
    """

    best_f: Tensor
    num_observations: int
    d: int
    generator: torch.Generator
    beta: float | None = None
    num_pending: int = 0


NUM_FANTASIES = 64  # Monte Carlo draws of the fantasised points' latent values
# Noisy EI's baseline: the observations with the highest posterior means (BoTorch prunes its
# baseline to points that may be best; a fixed count keeps the cost flat in n).
NUM_BASELINE = 16


def ucb_weight(beta: float | None, num_observations: int, d: int) -> float:
    """The UCB weight a round uses: `beta` when given, else the default schedule."""
    return beta if beta is not None else ucb_beta(num_observations, d)


def _log_ei_score(model, context: ScoreContext) -> Score:
    best_f, k = context.best_f, context.num_pending
    if k == 0:
        return PosteriorScore(model, lambda m, s: log_expected_improvement(m, s, best_f),
                              lambda m, s: log_expected_improvement_slopes(m, s, best_f))
    n = model.train_X.shape[0] - k
    rows = torch.arange(n, n + k, device=best_f.device)
    return _fantasy_score(model, rows, n, best_f, context)


def _log_nei_score(model, context: ScoreContext) -> Score:
    n = model.train_X.shape[0] - context.num_pending
    with torch.no_grad():  # the observations' posterior means rank the baseline
        mean = model.kernel(model.train_X[:n], model.train_X[:n]) @ torch.cholesky_solve(
            model.train_Y[:n], model.L[:n, :n])  # n x 1
    top = mean.squeeze(-1).argsort(descending=True)[:NUM_BASELINE]
    rows = torch.cat([top, torch.arange(n, model.train_X.shape[0], device=top.device)])
    return _fantasy_score(model, rows, n, None, context)


def _fantasy_score(model, rows: Tensor, n: int, best_f: Tensor | None,
                   context: ScoreContext) -> Score:
    base = torch.randn(rows.shape[0], NUM_FANTASIES, generator=context.generator,
                       dtype=model.train_X.dtype, device=model.train_X.device)
    return _Summed(FantasyLogEI(model, rows, n, best_f, base))


class _Summed:
    """A per-point acquisition as a score: `... x q x d` -> `...`, summed over `q`, with
    the acquisition's closed-form `value_and_grad` where it has one."""

    def __init__(self, acquisition):
        self.acquisition = acquisition
        if getattr(acquisition, "value_and_grad", None) is None:
            self.value_and_grad = None

    def __call__(self, Z: Tensor) -> Tensor:
        return self.acquisition(Z).sum(-1)

    def value_and_grad(self, Z: Tensor) -> tuple[Tensor, Tensor]:
        value, grad = self.acquisition.value_and_grad(Z)
        return value.sum(-1), grad


def _ucb_score(model, context: ScoreContext) -> Score:
    beta = ucb_weight(context.beta, context.num_observations, context.d)
    return PosteriorScore(model, lambda m, s: upper_confidence_bound(m, s, beta),
                          lambda m, s: upper_confidence_bound_slopes(m, s, beta))


def _thompson_score(model, context: ScoreContext) -> Score:
    return _Summed(draw_posterior_path(model, generator=context.generator))


@dataclass(frozen=True)
class AcquisitionEntry:
    """One registered acquisition: its public key, its name spelled out, its builder."""

    key: str
    name: str
    build: Callable[[object, ScoreContext], Score]


ACQUISITIONS: dict[str, AcquisitionEntry] = {
    entry.key: entry for entry in (
        AcquisitionEntry("ei", "log expected improvement", _log_ei_score),
        AcquisitionEntry("ucb", "upper confidence bound", _ucb_score),
        AcquisitionEntry("ts", "Thompson sampling", _thompson_score),
        AcquisitionEntry("nei", "log noisy expected improvement", _log_nei_score),
    )
}
MODEL_FREE = ("random", "sobol")
STRATEGIES = tuple(ACQUISITIONS) + MODEL_FREE


def is_model_based(strategy: str) -> bool:
    """Whether `strategy` proposes from a fitted GP (an acquisition key)."""
    return strategy in ACQUISITIONS


def build_score(key: str, model, context: ScoreContext) -> Score:
    """The score of acquisition `key` on a fitted model.

    Args:
        key: a key of `ACQUISITIONS`.
        model: a fitted `bopt.model.BoptGP` (Thompson sampling needs one; the others take
            any single-output BoTorch model).
        context: the round's incumbent, sizes, randomness and UCB weight.

    Returns:
        A function from `... x q x d` encoded points to `...` values, summed over `q`.

    Raises:
        ArgumentError: `key` is not a registered acquisition.
    """
    if key not in ACQUISITIONS:
        raise ArgumentError(f"build_score(): unknown acquisition {key!r}; choose from "
                            f"{tuple(ACQUISITIONS)}.")
    return ACQUISITIONS[key].build(model, context)
