"""What every acquisition shares: the posterior at candidate points."""

from __future__ import annotations

from torch import Tensor


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
