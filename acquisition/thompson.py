"""Thompson sampling with pathwise posterior samples.

A posterior sample is a function, drawn once and then maximised by gradient ascent like any
acquisition (Wilson et al. 2020, "Efficiently Sampling Functions from Gaussian Process
Posteriors", eq. 13, Matheron's rule):

    f(x) = phi(x) w + k(x, X) (K + s^2 I)^-1 (y - phi(X) w - e),  w ~ N(0, I), e ~ N(0, s^2 I)

The prior draw `phi(x) w` uses random features; the update uses the exact kernel, so the
sample is exact at the data and its error elsewhere shrinks as 1/sqrt(num_features).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bopt.kernels import CrossPlan, MixedFeatures, draw_mixed_features, mixed_cross


@dataclass(frozen=True)
class PosteriorPath:
    """One drawn posterior sample path, callable on encoded points."""

    features: MixedFeatures
    weights: Tensor  # M x s
    train_X: Tensor  # n x d
    update: Tensor  # n x s
    hypers: tuple
    continuous: tuple[int, ...]
    categorical: tuple[int, ...]

    def __call__(self, X: Tensor) -> Tensor:
        """Evaluate the path(s).

        Args:
            X: `... x q x d` encoded points.

        Returns:
            `... x q` values when one path was drawn, else `... x q x s`.
        """
        prior = self.features(X) @ self.weights  # ... x q x s
        Kx = mixed_cross(X, self.train_X, self.hypers, self.continuous, self.categorical)
        values = prior + Kx @ self.update  # ... x q x s
        return values.squeeze(-1) if self.weights.shape[-1] == 1 else values

    def __post_init__(self):
        if self.weights.shape[-1] != 1 or not self.continuous:  # the ascent uses autograd
            object.__setattr__(self, "value_and_grad", None)
        else:
            object.__setattr__(self, "_plan", CrossPlan(self.train_X, self.hypers,
                                                        self.continuous, self.categorical))

    def value_and_grad(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """One path at `... x q x d` points: `... x q` values and their `... x q x d`
        gradients, in closed form (the prior draw's features differentiated directly, the
        update through the kernel's `CrossPlan`)."""
        with torch.no_grad():
            flat = X.reshape(-1, X.shape[-1])  # m x d
            prior, grad = self.features.value_and_grad(flat, self.weights[:, 0])
            Kx, slope = self._plan.cross(flat)  # m x n
            update = self.update[:, 0]  # n
            value = prior + Kx @ update
            grad = grad + self._plan.pullback(slope, update.expand_as(Kx))
            return value.reshape(X.shape[:-1]), grad.reshape(X.shape)


def draw_posterior_path(model, *, generator: torch.Generator, num_paths: int = 1,
                        num_features: int = 1024) -> PosteriorPath:
    """Draw posterior sample paths from a fitted bopt GP.

    Args:
        model: a `bopt.model.BoptGP` (needs `hypers`, `noise`, `layout`, `train_X`,
            `train_Y` and its Cholesky factor `L`).
        generator: randomness, on the model's device.
        num_paths: independent paths `s` drawn together.
        num_features: random features per kernel term.

    Returns:
        The drawn path(s).
    """
    layout, X, Y = model.layout, model.train_X, model.train_Y
    features = draw_mixed_features(model.hypers, layout.continuous, layout.categorical,
                                   layout.categorical_levels or (1,),
                                   num_features=num_features, generator=generator)
    phi_X = features(X)  # n x M
    weights = torch.randn(phi_X.shape[-1], num_paths, generator=generator, dtype=X.dtype,
                          device=X.device)
    variance = model.noise if getattr(model, "known_noise", None) is None else (
        model.noise + model.known_noise).unsqueeze(-1)  # n x 1: known errors on top
    noise = torch.randn(X.shape[0], num_paths, generator=generator, dtype=X.dtype,
                        device=X.device) * variance.sqrt()
    update = torch.cholesky_solve(Y - phi_X @ weights - noise, model.L)  # n x s
    return PosteriorPath(features, weights, X, update, model.hypers, layout.continuous,
                         layout.categorical)
