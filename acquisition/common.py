"""What every acquisition shares: the posterior at candidate points."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

# value(mean, std) -> `... x q` values; slopes(mean, std) -> the values, their derivatives
# with respect to the means and to the standard deviations, each `... x q`
Value = Callable[[Tensor, Tensor], Tensor]
Slopes = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


def as_batch(X: Tensor) -> Tensor:
    """Promote `q x d` to `1 x q x d`; leave `... x q x d` alone."""
    return X.unsqueeze(0) if X.dim() == 2 else X


def posterior_mean_std(model, X: Tensor) -> tuple[Tensor, Tensor]:
    """Posterior mean and standard deviation of the latent function at `X`.

    Uses the model's cached fast path (`model.mean_std`) when it has one, as bopt's GP does;
    any other single-output BoTorch model answers through `model.posterior`.

    Args:
        model: a `bopt.model.BoptGP` or a single-output BoTorch `Model`.
        X: `... x q x d` encoded points.

    Returns:
        `... x q` means and `... x q` standard deviations.
    """
    if hasattr(model, "mean_std"):
        return model.mean_std(X)
    posterior = model.posterior(X)
    return posterior.mean.squeeze(-1), posterior.variance.clamp_min(1e-24).sqrt().squeeze(-1)


class PosteriorScore:
    """A score that depends on the candidates only through the posterior mean and standard
    deviation at each point, summed over `q` (log EI, UCB).

    Calling it goes through `posterior_mean_std` (any model, differentiable by autograd).
    On a model with `mean_std_pullback` (bopt's GP, with continuous columns)
    `value_and_grad` is available: the value and its gradient in closed form, the slopes
    pulled back through the posterior and the kernel, with no autograd graph.

    Args:
        model: a `bopt.model.BoptGP` or a single-output BoTorch `Model`.
        value: `value(mean, std)` -> `... x q` values.
        slopes: `slopes(mean, std)` -> the same values and their derivatives with respect
            to the means and to the standard deviations.
    """

    def __init__(self, model, value: Value, slopes: Slopes):
        self.model, self.value, self.slopes = model, value, slopes
        if not (hasattr(model, "mean_std_pullback") and model.layout.continuous):
            self.value_and_grad = None

    def __call__(self, X: Tensor) -> Tensor:
        """`... x q x d` -> `...` scores."""
        return self.value(*posterior_mean_std(self.model, X)).sum(-1)

    def value_and_grad(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """`... x q x d` -> `...` scores and their `... x q x d` gradients."""
        with torch.no_grad():
            mean, std, pullback = self.model.mean_std_pullback(X.reshape(-1, X.shape[-1]))
            value, d_mean, d_std = self.slopes(mean, std)  # (...q) each
            value = value.reshape(X.shape[:-1])  # ... x q
            return value.squeeze(-1) if X.shape[-2] == 1 else value.sum(-1), \
                pullback(d_mean, d_std).reshape(X.shape)
