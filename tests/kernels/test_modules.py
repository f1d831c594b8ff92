"""Tests for bopt.kernels.modules: the GPyTorch kernel classes, alone and inside models."""

import pytest
import torch
from botorch.models import SingleTaskGP
from botorch.models.kernels import CategoricalKernel as BotorchCategoricalKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

from bopt.kernels import CategoricalKernel, MixedHypers, MixedKernel, make_mixed_kernel, mixed

DTYPES = [torch.float32, torch.float64]


def _atol(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def _mixed_kernel(layout, dtype):
    kernel = make_mixed_kernel(layout).to(dtype)
    kernel.set_hypers(MixedHypers(torch.tensor([0.3, 0.8], dtype=dtype),
                                  torch.tensor([0.5, 2.0], dtype=dtype),
                                  torch.tensor([0.7, 0.4, 0.2], dtype=dtype)))
    return kernel


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_kernel_equals_botorch_with_ard(mixed_layout, point_sampler, dtype):
    g = torch.Generator().manual_seed(0)
    X1 = point_sampler(mixed_layout, 6, g, dtype=dtype)
    X2 = point_sampler(mixed_layout, 4, g, dtype=dtype)
    cols = list(mixed_layout.categorical)
    ours = CategoricalKernel(ard_num_dims=2, active_dims=cols).to(dtype)
    reference = BotorchCategoricalKernel(ard_num_dims=2, active_dims=cols).to(dtype)
    ours.lengthscale = reference.lengthscale = torch.tensor([0.4, 1.5], dtype=dtype)
    torch.testing.assert_close(ours(X1, X2).to_dense(), reference(X1, X2).to_dense(),
                               atol=_atol(dtype), rtol=0.0)
    torch.testing.assert_close(ours(X1, diag=True), torch.ones(6, dtype=dtype), atol=0.0,
                               rtol=0.0)


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


def test_categorical_kernel_shared_lengthscale_equals_botorch(mixed_layout, point_sampler):
    g = torch.Generator().manual_seed(1)
    X = point_sampler(mixed_layout, 5, g)[:, list(mixed_layout.categorical)]  # 5 x 2
    ours = CategoricalKernel().double()
    reference = BotorchCategoricalKernel().double()
    ours.lengthscale = reference.lengthscale = torch.tensor(0.7, dtype=torch.float64)
    torch.testing.assert_close(ours(X).to_dense(), reference(X).to_dense(), atol=1e-10,
                               rtol=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_kernel_forward_and_diag_equal_functional(mixed_layout, point_sampler, dtype):
    kernel = _mixed_kernel(mixed_layout, dtype)
    g = torch.Generator().manual_seed(2)
    X1 = point_sampler(mixed_layout, 7, g, dtype=dtype)
    X2 = point_sampler(mixed_layout, 3, g, dtype=dtype)
    expected = mixed(X1, X2, kernel.hypers, mixed_layout.continuous, mixed_layout.categorical)
    torch.testing.assert_close(kernel(X1, X2).to_dense(), expected, atol=_atol(dtype), rtol=0.0)
    diag = kernel(X1, diag=True)
    torch.testing.assert_close(diag, torch.diagonal(kernel(X1).to_dense()), atol=_atol(dtype),
                               rtol=0.0)


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
    with pytest.raises(ValueError, match="needs at least one continuous or categorical column"):
        MixedKernel((), ())


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
