"""Tests for bopt.kernels.modules: the GPyTorch kernel classes under the `KernelContract`
(against their BoTorch twins), alone and inside models."""

import pytest
import torch
from botorch.models import SingleTaskGP
from botorch.models.kernels import CategoricalKernel as BotorchCategoricalKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from kernel_contract import (KernelContract, categorical_twin, draw_mixed_hypers, log_uniform,
                             mixed_twin, module_kernel)

from bopt.errors import ArgumentError
from bopt.kernels import CategoricalKernel, MixedHypers, MixedKernel, make_mixed_kernel, mixed
from bopt.layout import Layout

CONT = Layout(d=3, continuous=(0, 1, 2))
CAT = Layout(d=2, categorical=(0, 1), categorical_sizes=(3, 4))
# Columns interleaved on purpose: the kernel must pick them by index, not by position.
MIXED = Layout(d=5, continuous=(0, 3, 4), categorical=(1, 2), categorical_sizes=(3, 2))
LAYOUTS = {"continuous": CONT, "categorical": CAT, "mixed": MIXED}


def _mixed_kernel(layout, dtype):
    kernel = make_mixed_kernel(layout).to(dtype)
    kernel.set_hypers(MixedHypers(torch.tensor([0.3, 0.8], dtype=dtype),
                                  torch.tensor([0.5, 2.0], dtype=dtype),
                                  torch.tensor([0.7, 0.4, 0.2], dtype=dtype)))
    return kernel


class TestMixedKernel(KernelContract):
    """`MixedKernel` called as GPyTorch calls it, with its log parameters set from the
    hyperparameters (so it is differentiable in them), on each kind of layout."""

    @pytest.fixture(params=list(LAYOUTS))
    def layout(self, request):
        return LAYOUTS[request.param]

    def draw_hypers(self, layout, generator, batch=()):
        return draw_mixed_hypers(layout, generator, batch)

    def _call(self, layout, hypers, *, diag=False):
        module = make_mixed_kernel(layout).to(hypers.scales.dtype)
        params = {"raw_cont_lengthscale": hypers.lengthscale.log(),
                  "raw_cat_lengthscale": hypers.cat_lengthscale.log(),
                  "raw_scales": hypers.scales.log()}
        return module_kernel(module, params, diag=diag)

    def make_kernel(self, layout, hypers):
        return self._call(layout, hypers)

    def make_reference(self, layout, hypers):
        return mixed_twin(layout, hypers)

    def make_diag(self, layout, hypers):
        return self._call(layout, hypers, diag=True)


class TestCategoricalKernel(KernelContract):
    """`CategoricalKernel` with ARD, on category columns alone and picked out of a mixed
    layout by `active_dims`, against BoTorch's CategoricalKernel. Only its lengthscales are
    differentiable (the inputs are indices)."""

    grad_wrt = ("hypers",)

    @pytest.fixture(params=["categorical", "mixed"])
    def layout(self, request):
        return LAYOUTS[request.param]

    def draw_hypers(self, layout, generator, batch=()):
        return (log_uniform(generator, *batch, len(layout.categorical), low=0.1, high=3.0),)

    def _active_dims(self, layout):
        return None if layout.d == len(layout.categorical) else list(layout.categorical)

    def _call(self, layout, hypers, *, diag=False):
        (ls,) = hypers
        module = CategoricalKernel(ard_num_dims=ls.shape[-1],
                                   active_dims=self._active_dims(layout)).to(ls.dtype)
        # GPyTorch stores ARD lengthscales as `... x 1 x dk`.
        return module_kernel(module, {"raw_lengthscale": ls.log().unsqueeze(-2)}, diag=diag)

    def make_kernel(self, layout, hypers):
        return self._call(layout, hypers)

    def make_reference(self, layout, hypers):
        return categorical_twin(hypers[0], self._active_dims(layout))

    def make_diag(self, layout, hypers):
        return self._call(layout, hypers, diag=True)



def test_categorical_kernel_with_batch_shape_equals_botorch(mixed_layout, point_sampler):
    g = torch.Generator().manual_seed(4)
    X = point_sampler(mixed_layout, 5, g)[:, list(mixed_layout.categorical)]  # 5 x 2
    ours = CategoricalKernel(ard_num_dims=2, batch_shape=torch.Size([3])).double()
    reference = BotorchCategoricalKernel(ard_num_dims=2, batch_shape=torch.Size([3])).double()
    ours.lengthscale = reference.lengthscale = torch.tensor(
        [[[0.2, 0.9]], [[1.0, 1.0]], [[4.0, 0.5]]], dtype=torch.float64)  # 3 x 1 x 2
    expected = reference(X).to_dense()
    assert expected.shape == (3, 5, 5)
    torch.testing.assert_close(ours(X).to_dense(), expected, atol=1e-10, rtol=0.0)


def test_categorical_kernel_with_batch_shape_diag_equals_botorch(mixed_layout, point_sampler):
    g = torch.Generator().manual_seed(5)
    X = point_sampler(mixed_layout, 5, g)[:, list(mixed_layout.categorical)]  # 5 x 2
    ours = CategoricalKernel(ard_num_dims=2, batch_shape=torch.Size([3])).double()
    reference = BotorchCategoricalKernel(ard_num_dims=2, batch_shape=torch.Size([3])).double()
    expected = reference(X, diag=True)
    assert expected.shape == (3, 5)
    torch.testing.assert_close(ours(X, diag=True), expected, atol=0.0, rtol=0.0)


def test_categorical_kernel_shared_lengthscale_equals_botorch(mixed_layout, point_sampler):
    g = torch.Generator().manual_seed(1)
    X = point_sampler(mixed_layout, 5, g)[:, list(mixed_layout.categorical)]  # 5 x 2
    ours = CategoricalKernel().double()
    reference = BotorchCategoricalKernel().double()
    ours.lengthscale = reference.lengthscale = torch.tensor(0.7, dtype=torch.float64)
    torch.testing.assert_close(ours(X).to_dense(), reference(X).to_dense(), atol=1e-10,
                               rtol=0.0)


def test_mixed_kernel_forward_and_diag_equal_functional(mixed_layout, point_sampler, dtype,
                                                        atol):
    # The default lazy GPyTorch path, with hyperparameters set through `set_hypers`.
    kernel = _mixed_kernel(mixed_layout, dtype)
    g = torch.Generator().manual_seed(2)
    X1 = point_sampler(mixed_layout, 7, g, dtype=dtype)
    X2 = point_sampler(mixed_layout, 3, g, dtype=dtype)
    expected = mixed(X1, X2, kernel.hypers, mixed_layout.continuous, mixed_layout.categorical)
    torch.testing.assert_close(kernel(X1, X2).to_dense(), expected, atol=atol, rtol=0.0)
    diag = kernel(X1, diag=True)
    torch.testing.assert_close(diag, torch.diagonal(kernel(X1).to_dense()), atol=atol, rtol=0.0)


def test_set_hypers_round_trips_and_stores_logs(mixed_layout):
    kernel = make_mixed_kernel(mixed_layout).double()
    hypers = MixedHypers(torch.tensor([0.3, 0.8], dtype=torch.float64),
                         torch.tensor([0.5, 2.0], dtype=torch.float64),
                         torch.tensor([0.7, 0.4, 0.2], dtype=torch.float64))
    kernel.set_hypers(hypers)
    for got, want in zip(kernel.hypers, hypers):
        torch.testing.assert_close(got, want, atol=1e-14, rtol=0.0)
    torch.testing.assert_close(kernel.raw_scales.detach(), hypers.scales.log(), atol=1e-14,
                               rtol=0.0)
    assert (kernel.continuous, kernel.categorical) == ((0, 1), (2, 3))


def test_mixed_kernel_needs_a_column():
    with pytest.raises(ArgumentError, match=r"MixedKernel\(continuous=\(\), categorical=\(\)\): "
                                            r"needs at least one column"):
        MixedKernel((), ())
    assert issubclass(ArgumentError, ValueError)  # callers catching ValueError still do


def test_mixed_kernel_inside_single_task_gp(mixed_layout, point_sampler):
    """A BoTorch model runs with the kernel: posterior equals the dense GP formulas and the
    marginal likelihood backpropagates into every raw parameter."""
    g = torch.Generator().manual_seed(3)
    train_X = point_sampler(mixed_layout, 12, g)
    train_Y = torch.sin(5 * train_X[:, :1]) + train_X[:, 2:3]  # 12 x 1
    kernel = _mixed_kernel(mixed_layout, torch.float64)
    gp = SingleTaskGP(train_X, train_Y, covar_module=kernel, outcome_transform=None)
    gp.likelihood.noise = torch.tensor([1e-3], dtype=torch.float64)

    gp.train()
    mll = ExactMarginalLogLikelihood(gp.likelihood, gp)
    loss = -mll(gp(train_X), train_Y.squeeze(-1))
    loss.backward()
    for name in ("raw_cont_lengthscale", "raw_cat_lengthscale", "raw_scales"):
        grad = getattr(kernel, name).grad
        assert grad is not None and bool(torch.isfinite(grad).all()), name
    gp.eval()

    test_X = point_sampler(mixed_layout, 5, g)
    with torch.no_grad():
        posterior = gp.posterior(test_X)
        mean_const = gp.mean_module.constant
        hyp = kernel.hypers
        cols = (mixed_layout.continuous, mixed_layout.categorical)
        A = mixed(train_X, train_X, hyp, *cols) + 1e-3 * torch.eye(12, dtype=torch.float64)
        Ks = mixed(test_X, train_X, hyp, *cols)  # 5 x 12
        mean = mean_const + Ks @ torch.linalg.solve(A, train_Y - mean_const)
        cov = mixed(test_X, test_X, hyp, *cols) - Ks @ torch.linalg.solve(A, Ks.T)
    torch.testing.assert_close(posterior.mean, mean, atol=1e-8, rtol=0.0)
    torch.testing.assert_close(posterior.variance.squeeze(-1), torch.diagonal(cov), atol=1e-8,
                               rtol=0.0)
