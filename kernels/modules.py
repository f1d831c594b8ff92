"""GPyTorch kernels over bopt's encoded columns, usable in any GPyTorch or BoTorch model.

Parameters are stored as logarithms (`raw_* = log(value)`), which is also the space the
batched marginal-likelihood fit in `bopt.model` works in.
"""

from __future__ import annotations

import torch
from gpytorch.constraints import Positive
from gpytorch.kernels import Kernel
from torch import Tensor

from bopt.errors import ArgumentError
from bopt.kernels.functional import MixedHypers, mixed, mixed_diag, overlap
from bopt.layout import Layout


def _log_positive() -> Positive:
    return Positive(transform=torch.exp, inv_transform=torch.log)


class CategoricalKernel(Kernel):
    """exp(-mean_j [x1_j != x2_j] / l_j) on category index columns (see `functional.overlap`).

    Same values as `botorch.models.kernels.CategoricalKernel`, but with lengthscales stored
    in log space.
    """

    has_lengthscale = True

    def __init__(self, **kwargs):
        kwargs.setdefault("lengthscale_constraint", _log_positive())
        super().__init__(**kwargs)

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params) -> Tensor:
        ls = self.lengthscale.squeeze(-2) if self.lengthscale.dim() > 1 else self.lengthscale
        ls = ls.expand(*ls.shape[:-1], x1.shape[-1])  # one shared lengthscale without ARD
        if diag:  # exp(0) = 1 on the diagonal, with the batch dims of points and lengthscales
            batch = torch.broadcast_shapes(x1.shape[:-2], ls.shape[:-1])
            return torch.ones(*batch, x1.shape[-2], dtype=x1.dtype, device=x1.device)
        return overlap(x1, x2, ls)


class MixedKernel(Kernel):
    """Matern-5/2 ARD on continuous columns combined with an overlap kernel on categoricals.

    k = s0 k_cont + s1 k_cat + s2 k_cont k_cat (see `functional.mixed`). With only continuous
    columns this is a scaled Matern-5/2 kernel; with only categoricals a scaled overlap kernel.

    Args:
        continuous: column indices of the Matern part.
        categorical: column indices of the overlap part.
    """

    def __init__(self, continuous: tuple[int, ...], categorical: tuple[int, ...]):
        super().__init__()
        if not continuous and not categorical:
            raise ArgumentError("MixedKernel(continuous=(), categorical=()): needs at least one "
                                "column; pass the layout's continuous or categorical indices.")
        self.continuous = tuple(continuous)
        self.categorical = tuple(categorical)
        self.register_parameter("raw_cont_lengthscale",
                                torch.nn.Parameter(torch.zeros(len(self.continuous))))
        self.register_parameter("raw_cat_lengthscale",
                                torch.nn.Parameter(torch.zeros(len(self.categorical))))
        self.register_parameter("raw_scales", torch.nn.Parameter(torch.zeros(3)))

    @property
    def hypers(self) -> MixedHypers:
        """The current hyperparameters as plain tensors."""
        return MixedHypers(self.raw_cont_lengthscale.exp(), self.raw_cat_lengthscale.exp(),
                           self.raw_scales.exp())

    def set_hypers(self, hypers: MixedHypers) -> None:
        """Overwrite the parameters from values (not logs)."""
        with torch.no_grad():
            self.raw_cont_lengthscale.copy_(hypers.lengthscale.log())
            self.raw_cat_lengthscale.copy_(hypers.cat_lengthscale.log())
            self.raw_scales.copy_(hypers.scales.log())

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params) -> Tensor:
        if diag:
            return mixed_diag(x1, self.hypers, self.continuous, self.categorical)
        return mixed(x1, x2, self.hypers, self.continuous, self.categorical)


def make_mixed_kernel(layout: Layout) -> MixedKernel:
    """The kernel bopt fits for a layout: Matern on numeric columns, overlap on categoricals."""
    return MixedKernel(layout.continuous, layout.categorical)
