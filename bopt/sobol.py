"""Initial design in the unit cube: scrambled Sobol points.

`sobol_points` is the raw draw; `bopt.space.Space.sobol` maps it to configurations.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.quasirandom import SobolEngine

from bopt.errors import SearchSpaceError


def sobol_points(n: int, d: int, seed: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> Tensor:
    """Draw `n` Owen-scrambled Sobol points in [0, 1)^d.

    Matches `botorch.utils.sampling.draw_sobol_samples(bounds, n, q=1, seed=seed)` with
    bounds [0, 1]^d exactly: both build `SobolEngine(d, scramble=True, seed=seed)` and take
    its first `n` points in `dtype` (BoTorch's unnormalize by [0, 1] is the identity). The
    scrambling uses the engine's own generator, never the global RNG.

    Args:
        n: number of points; powers of two keep the sequence balanced.
        d: dimension, 1 <= d <= `SobolEngine.MAXDIM`.
        seed: scrambling seed; equal seeds give equal points.
        dtype: floating dtype of the result.
        device: device of the result (the draw itself runs on the CPU).

    Returns:
        `n x d` points in [0, 1).

    Raises:
        SearchSpaceError: if `d` is outside what SobolEngine supports, or `n` is negative.
    """
    if not 1 <= d <= SobolEngine.MAXDIM:
        raise SearchSpaceError(
            f"sobol_points(): need 1 <= d <= {SobolEngine.MAXDIM} dimensions, got d={d!r}; "
            "declare at least one parameter (and fewer than the limit)."
        )
    if n < 0:
        raise SearchSpaceError(f"sobol_points(): need n >= 0 points, got n={n!r}.")
    if n == 0:  # SobolEngine.draw(0) fails
        return torch.empty(0, d, dtype=dtype, device=device)
    engine = SobolEngine(d, scramble=True, seed=seed)
    return engine.draw(n, dtype=dtype).to(device=device)  # n x d
