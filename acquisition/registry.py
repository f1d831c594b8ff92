"""The one table of public strategy names: "ei", "ucb", "ts" (acquisitions on the GP) and
"random", "sobol" (model-free).

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

from bopt.acquisition.common import posterior_mean_std
from bopt.acquisition.ei import log_expected_improvement
from bopt.acquisition.thompson import draw_posterior_path
from bopt.acquisition.ucb import ucb_beta, upper_confidence_bound
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
    """

    best_f: Tensor
    num_observations: int
    d: int
    generator: torch.Generator
    beta: float | None = None


def ucb_weight(beta: float | None, num_observations: int, d: int) -> float:
    """The UCB weight a round uses: `beta` when given, else the default schedule."""
    return beta if beta is not None else ucb_beta(num_observations, d)


def _log_ei_score(model, context: ScoreContext) -> Score:
    best_f = context.best_f
    return lambda Z: log_expected_improvement(*posterior_mean_std(model, Z), best_f).sum(-1)


def _ucb_score(model, context: ScoreContext) -> Score:
    beta = ucb_weight(context.beta, context.num_observations, context.d)
    return lambda Z: upper_confidence_bound(*posterior_mean_std(model, Z), beta).sum(-1)


def _thompson_score(model, context: ScoreContext) -> Score:
    path = draw_posterior_path(model, generator=context.generator)
    return lambda Z: path(Z).sum(-1)


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
