"""Random feature maps whose inner products approximate the mixed kernel in expectation.

Used for pathwise Thompson sampling (Wilson et al. 2020, "Efficiently sampling functions
from Gaussian process posteriors"): a prior draw is `phi(x) @ w` with `w ~ N(0, I)`.

- Matern-5/2: random Fourier features (Rahimi & Recht 2007). The spectral density of the
  Matern-nu kernel is a multivariate Student-t with 2 nu = 5 degrees of freedom, scaled by
  1 / lengthscale.
- Overlap: per categorical column j, exp(-w_j [a != b]) = e^-w_j + (1 - e^-w_j) [a == b] is
  the covariance of f_j(a) = sqrt(e^-w_j) z_0 + sqrt(1 - e^-w_j) z_a with i.i.d. standard
  normal z: the one-hot feature map with random weights. A product over columns of
  independent draws has the product of the column kernels as its expectation.
- Each of the three terms of the mixed kernel gets its own independent draws; the feature
  vectors are concatenated with weights sqrt(scale / m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from bopt.kernels.functional import MixedHypers, columns, put_columns

_MATERN_DOF = 5  # 2 * nu for nu = 5/2


@dataclass(frozen=True)
class _Term:
    """One term's draws; either part may be absent."""

    scale: Tensor  # scalar weight of the term
    freqs: Tensor | None = None  # m x dc, already divided by the lengthscales
    phases: Tensor | None = None  # m
    levels: Tensor | None = None  # m x dk x L, per-level weights, pre-multiplied
    shared: Tensor | None = None  # m x dk, common weights, pre-multiplied


@dataclass(frozen=True)
class MixedFeatures:
    """A drawn feature map `phi` for one hyperparameter set (no batch dims)."""

    continuous: tuple[int, ...]
    categorical: tuple[int, ...]
    terms: tuple[_Term, ...]
    num_features: int

    def __call__(self, X: Tensor) -> Tensor:
        """Evaluate the features.

        Args:
            X: `... x d` encoded points.

        Returns:
            `... x M` features, `E[phi(x) @ phi(y)] = k(x, y)`.
        """
        out = []
        for term in self.terms:
            f = torch.sqrt(term.scale / self.num_features)
            if term.freqs is not None:  # sqrt(2) cos(w x + b) has E[f(x) f(y)] = k_cont(x, y)
                f = f * math.sqrt(2.0) * torch.cos(columns(X, self.continuous) @ term.freqs.T
                                                   + term.phases)  # ... x m
            if term.levels is not None:
                f = f * _category_products(columns(X, self.categorical), term.levels, term.shared)
            out.append(f)
        return torch.cat(out, dim=-1)  # ... x M

    def value_and_grad(self, X: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """`phi(X) @ weights` for one weight column and its gradient in `X`, in closed form.

        Args:
            X: `m x d` encoded points; weights: `M` feature weights.

        Returns:
            `m` values and their `m x d` gradients (zero on categorical columns).
        """
        value = X.new_zeros(X.shape[0])
        grad_cont = None
        m = self.num_features
        for i, term in enumerate(self.terms):
            c = torch.sqrt(term.scale / m) * weights[i * m:(i + 1) * m]  # m
            cats = (_category_products(columns(X, self.categorical), term.levels, term.shared)
                    if term.levels is not None else None)  # points x m
            if term.freqs is None:
                value = value + (cats * c).sum(-1)
                continue
            angle = columns(X, self.continuous) @ term.freqs.T + term.phases  # points x m
            c = c * math.sqrt(2.0)
            weighted = c if cats is None else cats * c
            value = value + (torch.cos(angle) * weighted).sum(-1)
            g = -(torch.sin(angle) * weighted) @ term.freqs  # points x dc
            grad_cont = g if grad_cont is None else grad_cont + g
        grad = X.new_zeros(X.shape)
        if grad_cont is not None:
            put_columns(grad, self.continuous, grad_cont)
        return value, grad


def _category_products(idx: Tensor, levels: Tensor, shared: Tensor) -> Tensor:
    """`... x dk` indices -> `... x m` products over columns of the drawn level weights."""
    idx = idx.round().long()
    prod = None
    for j in range(idx.shape[-1]):
        f_j = levels[:, j, :].T[idx[..., j]] + shared[:, j]  # ... x m
        prod = f_j if prod is None else prod * f_j
    return prod


def draw_mixed_features(hypers: MixedHypers, continuous: tuple[int, ...],
                        categorical: tuple[int, ...], levels: tuple[int, ...], *,
                        num_features: int, generator: torch.Generator) -> MixedFeatures:
    """Draw a random feature map for the mixed kernel.

    Args:
        hypers: one hyperparameter set (no batch dims).
        continuous, categorical: column indices, as for `kernels.functional.mixed`.
        levels: number of index values each categorical column can hold.
        num_features: features per kernel term, `m`.
        generator: the source of randomness (on the hyperparameters' device).

    Returns:
        The feature map; its width is `m` times the number of kernel terms.
    """
    ls, cat_ls, scales = hypers
    dtype, device = scales.dtype, scales.device

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype, device=device)

    def fourier() -> dict:
        chi2 = randn(num_features, _MATERN_DOF).pow(2).sum(-1, keepdim=True)  # m x 1
        freqs = randn(num_features, len(continuous)) / torch.sqrt(chi2 / _MATERN_DOF) / ls
        phases = 2 * math.pi * torch.rand(num_features, generator=generator, dtype=dtype,
                                          device=device)
        return {"freqs": freqs, "phases": phases}

    def overlap() -> dict:
        w = 1.0 / (len(categorical) * cat_ls)  # dk
        stay = torch.exp(-w)
        num_levels = max(levels)
        return {"levels": randn(num_features, len(categorical), num_levels)
                * torch.sqrt(1 - stay)[:, None],
                "shared": randn(num_features, len(categorical)) * torch.sqrt(stay)}

    if not categorical:
        terms = (_Term(scales[0], **fourier()),)
    elif not continuous:
        terms = (_Term(scales[1], **overlap()),)
    else:
        terms = (_Term(scales[0], **fourier()), _Term(scales[1], **overlap()),
                 _Term(scales[2], **fourier(), **overlap()))
    return MixedFeatures(continuous, categorical, terms, num_features)
