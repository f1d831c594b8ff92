"""Kernel math as pure functions of tensors.

Hyperparameters carry optional leading batch dimensions `h` (several hyperparameter sets at
once, as the batched marginal-likelihood fit uses), which broadcast against the points.
"""

from __future__ import annotations

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


def column_index(cols: tuple[int, ...]) -> slice | list[int]:
    """A slice for contiguous columns (indexing makes a view, with no index tensor to copy
    to the device on every call), else the list."""
    cols = tuple(cols)
    if cols and cols == tuple(range(cols[0], cols[-1] + 1)):
        return slice(cols[0], cols[-1] + 1)
    return list(cols)


def columns(X: Tensor, cols: tuple[int, ...]) -> Tensor:
    """`X[..., cols]`: the given columns of `... x d` points."""
    return X[..., column_index(cols)]


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


class _MixedCross(torch.autograd.Function):
    """`mixed(X1, X2)` with a closed-form backward for `X1` only (hyperparameters fixed).

    d k_cont / d x1_j = -(5/3) (1 + sqrt5 r) exp(-sqrt5 r) (x1_j - x2_j) / l_j^2
    (Rasmussen & Williams 2006, eq. 4.17 differentiated), and the mixed kernel scales it by
    (s0 + s2 k_cat). Categorical columns get no gradient.
    """

    @staticmethod
    def forward(ctx, X1, X2, lengthscale, cat_lengthscale, scales, continuous, categorical):
        X1c, X2c = columns(X1, continuous), columns(X2, continuous)
        centre = X2c.mean(-2, keepdim=True)  # as in scaled_sqdist
        A = (X1c - centre) / lengthscale  # ... x n x dc
        B = (X2c - centre) / lengthscale  # m x dc
        sq = ((A * A).sum(-1, keepdim=True) + (B * B).sum(-1) - 2 * A @ B.T).clamp_min(0.0)
        r = sq.clamp_min(1e-30).sqrt()
        decay = torch.exp(-_SQRT5 * r)
        kc = (1.0 + _SQRT5 * r + (5.0 / 3.0) * sq) * decay  # ... x n x m
        slope = -(5.0 / 3.0) * (1.0 + _SQRT5 * r) * decay
        if categorical:
            kk = overlap(columns(X1, categorical), columns(X2, categorical), cat_lengthscale)
            K = scales[0] * kc + scales[1] * kk + scales[2] * kc * kk
            slope = slope * (scales[0] + scales[2] * kk)
        else:
            K = scales[0] * kc
            slope = slope * scales[0]
        ctx.save_for_backward(A, B, slope, lengthscale)
        ctx.continuous, ctx.shape = continuous, X1.shape
        return K

    @staticmethod
    def backward(ctx, grad_K):
        A, B, slope, lengthscale = ctx.saved_tensors
        W = grad_K * slope  # ... x n x m
        grad_cont = (A * W.sum(-1, keepdim=True) - W @ B) / lengthscale  # ... x n x dc
        grad_X1 = grad_cont.new_zeros(ctx.shape)
        grad_X1[..., column_index(ctx.continuous)] = grad_cont
        return grad_X1, None, None, None, None, None, None


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
    ls, cat_ls, scales = (t.detach() for t in hypers)
    return _MixedCross.apply(X1, X2, ls, cat_ls, scales, list(continuous), list(categorical))
