"""Scores of configurations on a model over configuration and training budget.

Under a training-budget schedule the GP's inputs are a configuration and the budget's
position in [0, 1] as one more column (`bopt.fidelity`); the ascent moves configurations
only. `AtBudget` fixes the budget column; `PromotionWeighted` adds the log probability that
a new trial's value at its first rung beats what that rung lets through, so that a
full-budget acquisition does not chase configurations the schedule will stop there.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from bopt.acquisition.common import posterior_mean_std

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def with_budget(X: Tensor, at: float) -> Tensor:
    """`... x d` configurations -> `... x (d + 1)` inputs, the budget column at `at`."""
    return torch.cat([X, X.new_full((*X.shape[:-1], 1), at)], dim=-1)  # ... x (d + 1)


class AtBudget:
    """A score of `... x q x (d + 1)` inputs as a score of `... x q x d` configurations at
    one budget position, with the inner score's closed-form `value_and_grad` where it has
    one."""

    def __init__(self, score: Callable[[Tensor], Tensor], at: float):
        self.score, self.at = score, at
        if getattr(score, "value_and_grad", None) is None:
            self.value_and_grad = None

    def __call__(self, X: Tensor) -> Tensor:
        return self.score(with_budget(X, self.at))

    def value_and_grad(self, X: Tensor) -> tuple[Tensor, Tensor]:
        value, grad = self.score.value_and_grad(with_budget(X, self.at))
        return value, grad[..., :-1]  # ... x q x d


class PromotionWeighted:
    """`score(x) + sum_q log P(y(x, rung) beats threshold)`: a score at the full budget
    weighted by the probability that the trial gets past its first rung.

    `y(x, rung)` is the noisy value the rung decides on, `N(mean, std^2 + noise)` under the
    posterior at the rung's budget position; higher is better, as for every score.

    Args:
        score: a score of `... x q x d` configurations (an `AtBudget`).
        model: the GP over configuration and budget (a `bopt.model.BoptGP` or any model
            `posterior_mean_std` accepts).
        rung: the first rung's budget position.
        threshold: the value to beat there, on the model's target scale.
        noise: the observation noise variance on that scale.
    """

    def __init__(self, score: Callable[[Tensor], Tensor], model, rung: float,
                 threshold: float, noise: float):
        self.score, self.model = score, model
        self.rung, self.threshold, self.noise = rung, threshold, noise
        if getattr(score, "value_and_grad", None) is None or not hasattr(
                model, "mean_std_pullback"):
            self.value_and_grad = None

    def log_promotion(self, X: Tensor) -> Tensor:
        """`... x q x d` -> `... x q` log probabilities of passing the rung."""
        mean, std = posterior_mean_std(self.model, with_budget(X, self.rung))  # ... x q
        return torch.special.log_ndtr((mean - self.threshold) / (std**2 + self.noise).sqrt())

    def __call__(self, X: Tensor) -> Tensor:
        return self.score(X) + self.log_promotion(X).sum(-1)

    def value_and_grad(self, X: Tensor) -> tuple[Tensor, Tensor]:
        value, grad = self.score.value_and_grad(X)
        with torch.no_grad():
            flat = with_budget(X.reshape(-1, X.shape[-1]), self.rung)  # m x (d + 1)
            mean, std, pullback = self.model.mean_std_pullback(flat)  # m each
            total = (std**2 + self.noise).sqrt()
            z = (mean - self.threshold) / total
            log_p = torch.special.log_ndtr(z)
            ratio = torch.exp(-0.5 * z**2 - _LOG_SQRT_2PI - log_p)  # d log Phi / dz
            # dz/dmean = 1 / total; dz/dstd = -z std / total^2
            slope = pullback(ratio / total, -ratio * z * std / total**2)[:, :-1]  # m x d
            log_p = log_p.reshape(X.shape[:-1]).sum(-1)  # ...
            return value + log_p, grad + slope.reshape(X.shape)
