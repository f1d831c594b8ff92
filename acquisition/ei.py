"""Expected improvement, in the numerically stable log form.

Ament et al. 2023, "Unexpected Improvements to Expected Improvement for Bayesian
Optimization" (NeurIPS), eq. (9): log EI = log h(z) + log sigma with h(z) = phi(z) + z Phi(z),
evaluated through erfcx for z < -1 so that values and gradients stay finite far into the tail.
"""

from __future__ import annotations

import math

import torch
from botorch.acquisition import AcquisitionFunction
from torch import Tensor

from bopt.acquisition.common import as_batch, posterior_mean_std

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_HALF_PI = math.sqrt(math.pi / 2)
_SQRT2 = math.sqrt(2.0)


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0 (Maechler 2012, the two-branch form)."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)),
                       torch.log1p(-torch.exp(x)))


def _log_h_value(z: Tensor) -> Tensor:
    upper = z.clamp_min(-1.0)  # clamps keep both branches finite so `where` has clean grads
    direct = torch.log(torch.exp(-0.5 * upper**2 - _LOG_SQRT_2PI)
                       + upper * torch.special.ndtr(upper))
    # z < -1: h(z) = phi(z) (1 - |z| sqrt(pi/2) erfcx(|z| / sqrt 2)).
    lower = z.clamp_max(-1.0)
    eps_bound = -1e6 if z.dtype == torch.float64 else -1e3
    mid = lower.clamp_min(eps_bound)
    w = torch.log(-mid * _SQRT_HALF_PI * torch.special.erfcx(-mid / _SQRT2))
    tail = -0.5 * lower**2 - _LOG_SQRT_2PI + torch.where(
        lower > eps_bound, _log1mexp(w), -2 * torch.log(-lower))  # 1 - ... ~ 1/z^2 as z -> -inf
    return torch.where(z > -1.0, direct, tail)


class _LogH(torch.autograd.Function):
    """log h with its closed-form derivative, d/dz log h(z) = Phi(z) / h(z)."""

    @staticmethod
    def forward(ctx, z):
        out = _log_h_value(z)
        ctx.save_for_backward(z, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        z, out = ctx.saved_tensors
        return grad * torch.exp(torch.special.log_ndtr(z) - out)


def log_h(z: Tensor) -> Tensor:
    """log(phi(z) + z Phi(z)), accurate for every finite z in float64.

    Args:
        z: `...` standardised improvements.

    Returns:
        `...` log values, with a closed-form gradient.
    """
    return _LogH.apply(z)


def log_expected_improvement(mean: Tensor, std: Tensor, best_f: Tensor | float) -> Tensor:
    """log E[max(f - best_f, 0)] for a Gaussian f (maximisation).

    Args:
        mean: `... x q` posterior means.
        std: `... x q` posterior standard deviations, strictly positive.
        best_f: scalar incumbent, on the same scale.

    Returns:
        `... x q` log expected improvements.
    """
    return log_h((mean - best_f) / std) + torch.log(std)


def expected_improvement(mean: Tensor, std: Tensor, best_f: Tensor | float) -> Tensor:
    """Closed-form EI for maximisation; `... x q` like `log_expected_improvement`."""
    z = (mean - best_f) / std
    pdf = torch.exp(-0.5 * z**2 - _LOG_SQRT_2PI)
    return std * (z * torch.special.ndtr(z) + pdf)


class LogEI(AcquisitionFunction):
    """Log expected improvement as a BoTorch acquisition function (q = 1).

    Args:
        model: a bopt GP or any single-output BoTorch model.
        best_f: incumbent on the model's (standardised) scale.
    """

    def __init__(self, model, best_f: Tensor | float):
        super().__init__(model)
        self.best_f = best_f

    def forward(self, X: Tensor) -> Tensor:
        """`b x q x d` (or `q x d`) -> `b`, summed over `q`."""
        mean, std = posterior_mean_std(self.model, as_batch(X))
        return log_expected_improvement(mean, std, self.best_f).sum(-1)
