"""Output warping: tame heavy tails of poor values before the GP sees them.

Objectives that blow up (a loss that diverges, Rosenbrock's 1e6 walls) put a few huge
values beside many informative ones; after standardisation the informative region looks flat
and the GP's lengthscales and noise go astray. bopt warps the standardised values with the
Yeo-Johnson power transform (Yeo & Johnson 2000), choosing lambda by maximum likelihood of a
normal fit, as HEBO does (Cowen-Rivers et al. 2022), but only over lambda in [1, 2]: that
range can compress the tail of poor values (down to a logarithm at 2) and stretch good
ones, never the reverse, so a few excellent observations keep their resolution.

The warped targets are then shifted so that their lower quartile sits at 0: the GP has a
zero prior mean, so far from the data it predicts a poor value, not the average. With the
average, the unexplored boundary of the box looks like a typical point with a wide band and
log EI spends evaluations there: on Levy4 (seed 6) 12 of 45 model-based proposals had two
or more coordinates at a bound, worth 64-202 where the others had a median of 15. A
pessimistic constant prior mean is what De Ath, Fieldsend & Everson (2020, "What do you
mean? The role of the mean function in Bayesian optimisation") found most reliable; they
put it at the worst observation. The
quartile is the robust form of that: with the minimum, one poor outlier below a plateau
(chance-level accuracy in most of an SVM's box) makes the plateau look good, and the search
crawled along it for ten rounds. `benchmarks/results/prior_mean/` has the measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def warp_standardized(Y: Tensor) -> tuple[Tensor, float, float, float]:
    """Warp standardised values with the likeliest lambda, then standardise them again.

    Args:
        Y: `n x 1` standardised values (higher is better).

    Returns:
        `n x 1` warped, standardised values (same order), the lambda chosen, and the mean
        and standard deviation the second standardisation divided out.
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
    std = t.std() if t.numel() > 1 else torch.zeros((), dtype=t.dtype, device=t.device)
    if not bool(std > 1e-12):
        return Y, 1.0, 0.0, 1.0
    mean = t.mean()
    return ((t - mean) / std).unsqueeze(-1), float(lams[best]), float(mean), float(std)


def yeo_johnson_inverse(t: Tensor, lam: float) -> Tensor:
    """The inverse of `yeo_johnson` for one lambda in [1, 2].

    Args:
        t: `...` transformed values.
        lam: the lambda they were transformed with.

    Returns:
        `...` original values.
    """
    up, down = lam, 2.0 - lam
    tp, tn = t.clamp_min(0), t.clamp_max(0)
    pos = torch.expm1(torch.log1p(up * tp) / up)
    if down < 1e-8:
        neg = -torch.expm1(-tn)
    else:
        neg = -torch.expm1(torch.log1p(-down * tn) / down)
    return torch.where(t >= 0, pos, neg)


# Poor values beyond this many interquartile ranges below the lower quartile count as
# outliers: Tukey's "far out" fence is 3 (Tukey 1977, Exploratory Data Analysis, ch. 2).
OUTLIER_FENCE_IQRS = 5.0
_MIN_FOR_OUTLIERS = 5  # quartiles of fewer values say too little
PRIOR_MEAN_QUANTILE = 0.25  # of the targets, put at 0: the GP's prior mean (module docstring)


@dataclass(frozen=True)
class OutputTransform:
    """What turned observed objective values into the GP's targets, invertible.

    The steps, in order: sign (so that higher is better), division by the largest magnitude
    (so 1e300 neither overflows nor underflows), logarithmic compression of far-out poor
    values (below `fence`), standardisation, and the Yeo-Johnson warp with its own
    re-standardisation and the shift that puts the targets' lower quartile at 0 (the
    re-standardisation in `warped_mean` and `warped_std`, the shift in `warped_mean`).
    Every step is monotone increasing, so ranks survive.
    """

    sign: float
    scale: float
    fence: float | None  # on the scaled values; None: nothing compressed
    spread: float  # the interquartile range that sets the compression's unit
    mean: float
    std: float
    lam: float
    warped_mean: float
    warped_std: float

    def forward(self, values: Tensor) -> Tensor:
        """`...` objective values to `...` model targets."""
        y = self.sign * values / self.scale
        if self.fence is not None:
            y = _compress_below(y, self.fence, self.spread)
        z = (y - self.mean) / self.std
        t = yeo_johnson(z.reshape(-1), torch.tensor([self.lam], dtype=z.dtype, device=z.device))
        return ((t[0] - self.warped_mean) / self.warped_std).reshape(values.shape)

    def inverse(self, Y: Tensor) -> Tensor:
        """`...` model targets (e.g. posterior quantiles) to `...` objective values."""
        z = yeo_johnson_inverse(Y * self.warped_std + self.warped_mean, self.lam)
        y = z * self.std + self.mean
        if self.fence is not None:
            below = y < self.fence
            u = ((self.fence - y) / self.spread).clamp_max(700.0)  # expm1 overflows past ~709
            y = torch.where(below, self.fence - self.spread * torch.expm1(u), y)
        return self.sign * y * self.scale


def _compress_below(y: Tensor, fence: float, spread: float) -> Tensor:
    """Values below `fence` pulled in logarithmically: continuous, slope 1 at the fence."""
    u = ((fence - y) / spread).clamp_min(0)
    return torch.where(y < fence, fence - spread * torch.log1p(u), y)


def transform_outputs(values: Tensor, *, maximize: bool
                      ) -> tuple[Tensor, OutputTransform, list[str], int]:
    """Model targets from observed values.

    Args:
        values: `n` finite objective values.
        maximize: whether higher values are better.

    Returns:
        `n x 1` targets (higher is better; warped, unit standard deviation, the lower
        quartile at 0: the GP's prior mean), the transform, warnings
        and how many poor values were compressed as outliers (counted, not warned about:
        a skewed objective produces them routinely).
    """
    warnings = []
    sign = 1.0 if maximize else -1.0
    y = sign * values
    # Scale by the largest magnitude first, so values near 1e300 or 1e-300 neither overflow
    # nor underflow; "flat" is then a purely relative judgement.
    scale = float(y.abs().max().clamp_min(torch.finfo(y.dtype).tiny))
    y = y / scale
    fence, spread, num_outliers = None, 1.0, 0
    if y.numel() >= _MIN_FOR_OUTLIERS:
        q25, q75 = torch.quantile(y, torch.tensor([0.25, 0.75], dtype=y.dtype, device=y.device)).tolist()
        spread = q75 - q25
        if spread <= 0:  # ties fill the middle half (a plateau): the smallest step between
            steps = torch.diff(torch.unique(y))  # distinct values sets the unit instead
            spread = float(steps.min()) if steps.numel() else 0.0
        if spread > 0:
            fence = q25 - OUTLIER_FENCE_IQRS * spread
            num_outliers = int((y < fence).sum())
            if num_outliers:  # routine (a skewed objective), so counted, not warned about
                y = _compress_below(y, fence, spread)
            else:
                fence = None
    mean = float(y.mean())
    # The spread is measured relative to the largest deviation, not through squares of the
    # values, which underflow when compression left them near 1e-298 (a jump of 1e300).
    deviation = float((y - mean).abs().max())
    if y.numel() > 1 and deviation > 1e-12 * float(y.abs().max()):
        std = deviation * float(((y - mean) / deviation).std())
    else:
        warnings.append("all observed values are equal; the model sees a flat objective")
        std = 1.0
    Z = ((y - mean) / std).unsqueeze(-1)  # n x 1
    Y, lam, warped_mean, warped_std = warp_standardized(Z)
    floor = torch.quantile(Y.squeeze(-1), PRIOR_MEAN_QUANTILE)
    Y = Y - floor  # the lower quartile at 0, where the GP's prior mean is
    warped_mean += warped_std * float(floor)
    transform = OutputTransform(sign, scale, fence, spread if fence is not None else 1.0,
                                mean, std, lam, warped_mean, warped_std)
    return Y, transform, warnings, num_outliers
