"""Output warping: tame heavy tails of poor values before the GP sees them.

Objectives that blow up (a loss that diverges, Rosenbrock's 1e6 walls) put a few huge
values beside many informative ones; after standardisation the informative region looks flat
and the GP's lengthscales and noise go astray. bopt warps the standardised values with the
Yeo-Johnson power transform (Yeo & Johnson 2000), choosing lambda by maximum likelihood of a
normal fit, as HEBO does (Cowen-Rivers et al. 2022), but only over lambda in [1, 2]: that
range can compress the tail of poor values (down to a logarithm at 2) and stretch good
ones, never the reverse, so a few excellent observations keep their resolution.
"""

from __future__ import annotations

import torch
from torch import Tensor

_LAMBDAS = (1.0, 2.0, 21)  # grid: first, last, count


def yeo_johnson(y: Tensor, lam: Tensor) -> Tensor:
    """The Yeo-Johnson transform for several lambdas at once.

    Args:
        y: `n` values.
        lam: `k` lambdas.

    Returns:
        `k x n` transformed values.
    """
    lam = lam.unsqueeze(-1)  # k x 1
    near0, near2 = lam.abs() < 1e-8, (lam - 2).abs() < 1e-8
    up = torch.where(near0, torch.ones_like(lam), lam)  # guarded exponents: no 0/0 in `where`
    down = torch.where(near2, torch.ones_like(lam), 2 - lam)
    yp, yn = y.clamp_min(0), (-y).clamp_min(0)
    pos = torch.where(near0, torch.log1p(yp), torch.expm1(up * torch.log1p(yp)) / up)
    neg = torch.where(near2, -torch.log1p(yn), -torch.expm1(down * torch.log1p(yn)) / down)
    return torch.where(y >= 0, pos, neg)


def warp_standardized(Y: Tensor) -> tuple[Tensor, float]:
    """Warp standardised values and standardise them again.

    Args:
        Y: `n x 1` standardised values (higher is better).

    Returns:
        `n x 1` warped, standardised values (same order) and the lambda chosen.
    """
    y = Y.squeeze(-1)
    first, last, count = _LAMBDAS
    lams = torch.linspace(first, last, count, dtype=y.dtype, device=y.device)
    T = yeo_johnson(y, lams)  # k x n
    var = T.var(-1, unbiased=False).clamp_min(torch.finfo(y.dtype).tiny)
    # Profile log likelihood of a normal fit, plus the log Jacobian of the transform.
    jacobian = (lams - 1) * (torch.sign(y) * torch.log1p(y.abs())).sum()
    best = int(torch.argmax(-0.5 * y.numel() * torch.log(var) + jacobian))
    t = T[best]
    std = t.std()
    if not bool(std > 1e-12):
        return Y, 1.0
    return ((t - t.mean()) / std).unsqueeze(-1), float(lams[best])
