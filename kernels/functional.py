"""Kernel math as pure functions of tensors.

Hyperparameters carry optional leading batch dimensions `h` (several hyperparameter sets at
once, as the batched marginal-likelihood fit uses), which broadcast against the points.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

_SQRT5 = math.sqrt(5.0)


class MixedHypers(NamedTuple):
    """Hyperparameters of the mixed kernel, each with leading batch dims `h` (possibly none).

    Attributes:
        lengthscale: `h x dc` Matern lengthscales of the continuous columns.
        cat_lengthscale: `h x dk` overlap lengthscales of the categorical columns.
        scales: `h x 3` weights of the continuous, categorical and product terms.
    """

    lengthscale: Tensor
    cat_lengthscale: Tensor
    scales: Tensor


@functools.lru_cache(maxsize=256)
def _index_tensor(cols: tuple[int, ...], device: torch.device) -> Tensor:
    return torch.tensor(cols, dtype=torch.long, device=device)


def column_index(cols: tuple[int, ...], device: torch.device) -> slice | Tensor:
    """A slice for contiguous columns (indexing makes a view), else an index tensor on
    `device`, made once: indexing with a Python list would copy the list to the device on
    every call, which a CUDA graph capture refuses."""
    cols = tuple(cols)
    if cols and cols == tuple(range(cols[0], cols[-1] + 1)):
        return slice(cols[0], cols[-1] + 1)
    return _index_tensor(cols, device)


def columns(X: Tensor, cols: tuple[int, ...]) -> Tensor:
    """`X[..., cols]`: the given columns of `... x d` points."""
    index = column_index(cols, X.device)
    return X[..., index] if isinstance(index, slice) else X.index_select(-1, index)


def put_columns(out: Tensor, cols: tuple[int, ...], values: Tensor) -> Tensor:
    """`out[..., cols] = values` in place; returns `out`."""
    index = column_index(cols, out.device)
    if isinstance(index, slice):
        out[..., index] = values
        return out
    return out.index_copy_(-1, index, values)


def scaled_sqdist(X1: Tensor, X2: Tensor, lengthscale: Tensor) -> Tensor:
    """Squared distances after dividing each column by its lengthscale.

    Args:
        X1: `... x n x dc` points.
        X2: `... x m x dc` points.
        lengthscale: `h x dc`, broadcast as `h x 1 x dc` against the points.

    Returns:
        `... x n x m` non-negative squared distances (batch dims broadcast with `h`).
    """
    ls = lengthscale.unsqueeze(-2)  # h x 1 x dc
    centre = X2.mean(-2, keepdim=True)  # centring avoids cancellation in |a|^2 + |b|^2 - 2ab
    A, B = (X1 - centre) / ls, (X2 - centre) / ls
    sq = (A * A).sum(-1, keepdim=True) + (B * B).sum(-1).unsqueeze(-2) - 2 * A @ B.transpose(-1, -2)
    return sq.clamp_min(0.0)


def matern52(X1: Tensor, X2: Tensor, lengthscale: Tensor) -> Tensor:
    """Matern-5/2 correlation with ARD lengthscales (Rasmussen & Williams 2006, eq. 4.17).

    Args:
        X1: `... x n x dc` points; X2: `... x m x dc` points; lengthscale: `h x dc`.

    Returns:
        `... x n x m` correlations in (0, 1].
    """
    # sqrt has an infinite derivative at 0; the clamp keeps gradients finite on duplicates,
    # where the true derivative of the Matern-5/2 correlation is zero anyway.
    r = scaled_sqdist(X1, X2, lengthscale).clamp_min(1e-30).sqrt()
    return (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * torch.exp(-_SQRT5 * r)


def overlap(X1: Tensor, X2: Tensor, lengthscale: Tensor) -> Tensor:
    """Exponentiated overlap (Hamming) correlation, exp(-mean_j [x1_j != x2_j] / l_j).

    The same definition as BoTorch's `CategoricalKernel`.

    Args:
        X1: `... x n x dk` category indices; X2: `... x m x dk`; lengthscale: `h x dk`.

    Returns:
        `... x n x m` correlations in (0, 1].
    """
    dk = X1.shape[-1]
    dist = 0.0
    for j in range(dk):
        differ = (X1[..., :, j].unsqueeze(-1) != X2[..., :, j].unsqueeze(-2)).to(lengthscale.dtype)
        dist = dist + differ / lengthscale[..., j, None, None]  # ... x n x m
    return torch.exp(-dist / dk)


def mixed(X1: Tensor, X2: Tensor, hypers: MixedHypers, continuous: tuple[int, ...],
          categorical: tuple[int, ...]) -> Tensor:
    """Sum-plus-product kernel of a Matern-5/2 part and an overlap part.

    k = s0 * k_cont + s1 * k_cat + s2 * k_cont * k_cat (the structure of BoTorch's
    MixedSingleTaskGP, with one lengthscale set shared by the sum and the product).
    With only one kind of column, k = s0 * k_cont or k = s1 * k_cat.

    Args:
        X1: `... x n x d` encoded points; X2: `... x m x d`.
        hypers: hyperparameters with leading batch dims `h`.
        continuous: column indices of the Matern part; categorical: of the overlap part.

    Returns:
        `... x n x m` covariances.
    """
    s = hypers.scales.unsqueeze(-1).unsqueeze(-1)  # h x 3 x 1 x 1
    if not categorical:
        return s[..., 0, :, :] * matern52(columns(X1, continuous), columns(X2, continuous),
                                          hypers.lengthscale)
    kk = overlap(columns(X1, categorical), columns(X2, categorical), hypers.cat_lengthscale)
    if not continuous:
        return s[..., 1, :, :] * kk
    kc = matern52(columns(X1, continuous), columns(X2, continuous), hypers.lengthscale)
    return s[..., 0, :, :] * kc + s[..., 1, :, :] * kk + s[..., 2, :, :] * kc * kk


def mixed_diag(X: Tensor, hypers: MixedHypers, continuous: tuple[int, ...],
               categorical: tuple[int, ...]) -> Tensor:
    """Prior variances k(x, x): `... x n` (both correlations are 1 on the diagonal)."""
    s = hypers.scales
    if not categorical:
        total = s[..., 0]
    elif not continuous:
        total = s[..., 1]
    else:
        total = s.sum(-1)
    return total.unsqueeze(-1).expand(*total.shape, X.shape[-2]) * torch.ones(
        X.shape[:-1], dtype=X.dtype, device=X.device)


class CrossSlope(NamedTuple):
    """What the closed-form gradient of a cross-covariance needs (see `CrossPlan.cross`)."""

    A: Tensor  # ... x n x dc candidates' continuous columns, centred, times sqrt5 / l
    slope: Tensor  # ... x n x m: dk / dA_j = slope * (A_j - B_j)
    shape: torch.Size  # of the candidates, `... x n x d`


class CrossPlan:
    """Cross-covariances `mixed(X1, X2)` against fixed points `X2` under one fixed set of
    hyperparameters, with their gradient in `X1` in closed form.

    In the coordinates A = sqrt5 (x - c) / l (c the training points' centre), with
    p = |A1 - A2| = sqrt5 r, the Matern-5/2 correlation is (1 + p + p^2/3) exp(-p)
    (Rasmussen & Williams 2006, eq. 4.17) and its gradient is
    d k_cont / d A1 = -(1/3) (1 + p) exp(-p) (A1 - A2); the mixed kernel scales both by
    (s0 + s2 k_cat). Categorical columns get no gradient. Everything that depends on `X2`
    and the hyperparameters alone is computed once, here, so that an ascent's evaluations
    are a few large operations each.

    Args:
        X2: `m x d` training points.
        hypers: one hyperparameter set (no batch dims), treated as constants.
        continuous: column indices of the Matern part (at least one); categorical: of the
            overlap part.
    """

    def __init__(self, X2: Tensor, hypers: MixedHypers, continuous: tuple[int, ...],
                 categorical: tuple[int, ...]):
        lengthscale, cat_lengthscale, scales = (t.detach() for t in hypers)
        self.continuous, self.categorical = tuple(continuous), tuple(categorical)
        self.X2_cat = columns(X2, categorical) if categorical else None
        self.cat_lengthscale, self.scales = cat_lengthscale, scales
        X2c = columns(X2, continuous)
        self.centre = X2c.mean(-2, keepdim=True)  # 1 x dc, as in scaled_sqdist
        self.inv_ls = _SQRT5 / lengthscale  # dc
        self.B = (X2c - self.centre) * self.inv_ls  # m x dc
        self.sqB = (self.B * self.B).sum(-1)  # m
        self.minus_2Bt = -2.0 * self.B.T  # dc x m
        self.B_scaled = self.B * self.inv_ls  # m x dc, for the pullback
        self.s0 = scales[0]
        self.everything = self.continuous == tuple(range(X2.shape[-1]))  # no categoricals
        # k(x, x): both correlations are 1 there
        self.prior_variance = scales.sum() if categorical else scales[0]

    def cross(self, X1: Tensor) -> tuple[Tensor, CrossSlope]:
        """`... x n x d` candidates -> `... x n x m` covariances, and the slope for
        `pullback`."""
        X1c = X1 if self.everything else columns(X1, self.continuous)
        A = (X1c - self.centre) * self.inv_ls  # ... x n x dc
        flat = A if A.dim() == 2 else A.reshape(-1, A.shape[-1])  # (...n) x dc
        sq = torch.addmm(self.sqB, flat, self.minus_2Bt)  # (...n) x m
        sq = (sq if A.dim() == 2 else sq.reshape(*A.shape[:-1], -1)) + (A * A).sum(-1, keepdim=True)
        p = sq.clamp_min(1e-30).sqrt()  # sqrt5 r; the clamp keeps r's gradient finite
        decay = torch.exp(-p)
        linear = 1.0 + p
        if self.categorical:
            kc = torch.add(linear, p * p, alpha=1.0 / 3.0) * decay  # ... x n x m
            kk = overlap(columns(X1, self.categorical), self.X2_cat, self.cat_lengthscale)
            s = self.scales
            K = s[0] * kc + s[1] * kk + s[2] * kc * kk
            slope = (linear * decay) * ((-1.0 / 3.0) * (s[0] + s[2] * kk))
        else:
            weighted = decay * self.s0
            K = torch.add(linear, p * p, alpha=1.0 / 3.0) * weighted  # ... x n x m
            slope = linear * weighted * (-1.0 / 3.0)
        return K, CrossSlope(A, slope, X1.shape)

    def covariance(self, X1: Tensor) -> Tensor:
        """`... x n x d` candidates -> `... x n x m` covariances, differentiable in `X1` by
        autograd through `pullback`."""
        return _PlannedCross.apply(X1, self)

    def pullback(self, state: CrossSlope, grad_K: Tensor) -> Tensor:
        """`... x n x m` gradient with respect to the covariances -> `... x n x d` gradient
        with respect to the candidates (zero on categorical columns)."""
        W = grad_K * state.slope  # ... x n x m
        grad_cont = state.A * (W.sum(-1, keepdim=True) * self.inv_ls) - W @ self.B_scaled
        if self.everything:
            return grad_cont
        return put_columns(grad_cont.new_zeros(state.shape), self.continuous, grad_cont)


class _PlannedCross(torch.autograd.Function):
    """`CrossPlan.cross` as a differentiable function of `X1`, with the plan's closed-form
    backward."""

    @staticmethod
    def forward(ctx, X1, plan):
        ctx.plan = plan
        K, ctx.state = plan.cross(X1)
        return K

    @staticmethod
    @torch.autograd.function.once_differentiable  # second derivatives raise, not zeros
    def backward(ctx, grad_K):
        return ctx.plan.pullback(ctx.state, grad_K), None


def mixed_cross(X1: Tensor, X2: Tensor, hypers: MixedHypers, continuous: tuple[int, ...],
                categorical: tuple[int, ...]) -> Tensor:
    """Cross-covariance for acquisition work: like `mixed`, differentiable in `X1` only.

    Args:
        X1: `... x n x d` candidate points; X2: `m x d` training points.
        hypers: one hyperparameter set (no batch dims), treated as constants.

    Returns:
        `... x n x m` covariances, with a cheap closed-form gradient for `X1`.
    """
    if not continuous:
        return mixed(X1, X2, hypers, continuous, categorical)
    return CrossPlan(X2, hypers, continuous, categorical).covariance(X1)
