"""Upper confidence bound, mean + beta * std, with a default beta schedule."""

from __future__ import annotations

import math

import torch
from botorch.acquisition import AcquisitionFunction
from torch import Tensor

from bopt.acquisition.common import as_batch, posterior_mean_std


def upper_confidence_bound(mean: Tensor, std: Tensor, beta: float | Tensor) -> Tensor:
    """mean + beta * std.

    Unlike BoTorch's `UpperConfidenceBound`, which weights the deviation by sqrt(beta),
    `beta` here multiplies the standard deviation directly.

    Args:
        mean: `... x q` posterior means; std: `... x q` standard deviations.
        beta: exploration weight, non-negative.

    Returns:
        `... x q` upper bounds.
    """
    return mean + beta * std


def upper_confidence_bound_slopes(mean: Tensor, std: Tensor,
                                  beta: float | Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`upper_confidence_bound` and its derivatives with respect to the means (1) and the
    standard deviations (`beta`), each `... x q`."""
    return mean + beta * std, torch.ones_like(mean), torch.full_like(std, beta)


def ucb_beta(num_observations: int, d: int) -> float:
    """The default schedule, beta_t = sqrt(0.2 d log(2 t)) (Kandasamy et al. 2017, sec. 6).

    It grows slowly with the number of observations `t`, as GP-UCB's theory asks
    (Srinivas et al. 2010), at a scale that works in practice.
    """
    t = max(num_observations, 1)
    return math.sqrt(0.2 * max(d, 1) * math.log(2 * t))


class UCB(AcquisitionFunction):
    """UCB as a BoTorch acquisition function; `beta` multiplies the std (see above)."""

    def __init__(self, model, beta: float):
        super().__init__(model)
        self.beta = beta

    def forward(self, X: Tensor) -> Tensor:
        """`b x q x d` (or `q x d`) -> `b`, summed over `q`."""
        mean, std = posterior_mean_std(self.model, as_batch(X))
        return upper_confidence_bound(mean, std, self.beta).sum(-1)
