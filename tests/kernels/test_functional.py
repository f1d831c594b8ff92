"""Tests for bopt.kernels.functional against GPyTorch and BoTorch kernels."""

import pytest
import torch
from botorch.models import MixedSingleTaskGP
from botorch.models.kernels import CategoricalKernel as BotorchCategoricalKernel
from gpytorch.kernels import MaternKernel, ScaleKernel

from bopt.kernels import MixedHypers, matern52, mixed, mixed_diag, overlap
from bopt.layout import Layout

DTYPES = [torch.float32, torch.float64]

CONT = Layout(d=3, continuous=(0, 1, 2))
CAT = Layout(d=2, categorical=(0, 1), categorical_sizes=(3, 4))
# Columns interleaved on purpose: the kernel must pick them by index, not by position.
MIXED = Layout(d=5, continuous=(0, 3, 4), categorical=(1, 2), categorical_sizes=(3, 2))
LAYOUTS = {"continuous": CONT, "categorical": CAT, "mixed": MIXED}


def _atol(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def _hypers(layout, generator, dtype, *, batch=()):
    """Random positive hyperparameters with leading batch dims `batch`."""
    def positive(*shape, low, high):
        u = torch.rand(*batch, *shape, generator=generator, dtype=dtype)
        return low * (high / low) ** u  # log-uniform in [low, high]
    return MixedHypers(positive(len(layout.continuous), low=0.1, high=2.0),
                       positive(len(layout.categorical), low=0.1, high=3.0),
                       positive(3, low=0.2, high=2.0))


def _matern_factory(batch_shape, ard_num_dims, active_dims):
    return MaternKernel(nu=2.5, batch_shape=batch_shape, ard_num_dims=ard_num_dims,
                        active_dims=active_dims)


@pytest.mark.parametrize("dtype", DTYPES)
def test_overlap_equals_botorch_categorical_kernel(point_sampler, dtype):
    g = torch.Generator().manual_seed(0)
    X1 = point_sampler(CAT, 7, g, dtype=dtype)
    X2 = point_sampler(CAT, 5, g, dtype=dtype)
    ls = torch.tensor([0.3, 1.7], dtype=dtype)
    reference_kernel = BotorchCategoricalKernel(ard_num_dims=2).to(dtype)
    reference_kernel.lengthscale = ls
    reference = reference_kernel(X1, X2).to_dense()
    torch.testing.assert_close(overlap(X1, X2, ls), reference, atol=_atol(dtype), rtol=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matern52_equals_gpytorch_matern(point_sampler, dtype):
    g = torch.Generator().manual_seed(1)
    X1 = point_sampler(CONT, 8, g, dtype=dtype)
    X2 = point_sampler(CONT, 6, g, dtype=dtype)
    ls = torch.tensor([0.2, 0.9, 3.0], dtype=dtype)
    reference_kernel = MaternKernel(nu=2.5, ard_num_dims=3).to(dtype)
    reference_kernel.lengthscale = ls
    reference = reference_kernel(X1, X2).to_dense()
    torch.testing.assert_close(matern52(X1, X2, ls), reference, atol=_atol(dtype), rtol=0.0)


def test_matern52_float32_accuracy_at_short_lengthscales(point_sampler):
    g = torch.Generator().manual_seed(8)
    X = 0.97 + 0.02 * point_sampler(CONT, 30, g)  # clustered near the corner (1, 1, 1)
    ls = torch.full((3,), 0.025, dtype=torch.float64)
    reference = matern52(X, X, ls)  # float64
    ours = matern52(X.float(), X.float(), ls.float())
    torch.testing.assert_close(ours.double(), reference, atol=1e-5, rtol=0.0)


def test_matern52_has_finite_zero_gradient_on_duplicates():
    # The docstring's promise: the sqrt clamp keeps gradients finite where x1 == x2.
    X = torch.tensor([[0.2, 0.4, 0.6]], dtype=torch.float64, requires_grad=True)
    ls = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    value = matern52(X, X.detach().clone(), ls).sum()
    grad_X, grad_ls = torch.autograd.grad(value, (X, ls))
    assert bool(torch.isfinite(grad_X).all()) and bool(torch.isfinite(grad_ls).all())
    torch.testing.assert_close(grad_X, torch.zeros_like(grad_X), atol=1e-10, rtol=0.0)


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.InputDataWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_equals_botorch_mixed_single_task_gp_kernel(point_sampler, dtype):
    # BoTorch: ScaleKernel(o1, Matern + ScaleKernel(o2, Cat)) + ScaleKernel(o3, Matern * Cat)
    #        = o1 k_cont + o1 o2 k_cat + o3 k_cont k_cat, so o1 = s0, o2 = s1 / s0, o3 = s2.
    g = torch.Generator().manual_seed(2)
    train_X = point_sampler(MIXED, 6, g, dtype=dtype)
    gp = MixedSingleTaskGP(train_X, torch.zeros(6, 1, dtype=dtype),
                           cat_dims=list(MIXED.categorical),
                           cont_kernel_factory=_matern_factory)
    hypers = _hypers(MIXED, g, dtype)
    s0, s1, s2 = hypers.scales
    sum_kernel, prod_kernel = gp.covar_module.kernels
    sum_kernel.outputscale = s0
    cont_a, scaled_cat = sum_kernel.base_kernel.kernels
    cont_a.lengthscale = hypers.lengthscale
    scaled_cat.outputscale = s1 / s0
    scaled_cat.base_kernel.lengthscale = hypers.cat_lengthscale
    prod_kernel.outputscale = s2
    cont_b, cat_b = prod_kernel.base_kernel.kernels
    cont_b.lengthscale = hypers.lengthscale
    cat_b.lengthscale = hypers.cat_lengthscale

    X1 = point_sampler(MIXED, 9, g, dtype=dtype)
    X2 = point_sampler(MIXED, 4, g, dtype=dtype)
    reference = gp.covar_module(X1, X2).to_dense()
    ours = mixed(X1, X2, hypers, MIXED.continuous, MIXED.categorical)
    torch.testing.assert_close(ours, reference, atol=_atol(dtype), rtol=0.0)


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.InputDataWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_single_kind_layouts_are_one_scaled_kernel(point_sampler, dtype):
    g = torch.Generator().manual_seed(3)
    hypers_cont, hypers_cat = _hypers(CONT, g, dtype), _hypers(CAT, g, dtype)
    Xc, Xk = point_sampler(CONT, 6, g, dtype=dtype), point_sampler(CAT, 6, g, dtype=dtype)

    matern = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=3)).to(dtype)
    matern.outputscale = hypers_cont.scales[0]
    matern.base_kernel.lengthscale = hypers_cont.lengthscale
    torch.testing.assert_close(mixed(Xc, Xc, hypers_cont, CONT.continuous, ()),
                               matern(Xc).to_dense(), atol=_atol(dtype), rtol=0.0)

    cat_gp = MixedSingleTaskGP(Xk, torch.zeros(6, 1, dtype=dtype), cat_dims=[0, 1])
    cat_gp.covar_module.outputscale = hypers_cat.scales[1]
    cat_gp.covar_module.base_kernel.lengthscale = hypers_cat.cat_lengthscale
    torch.testing.assert_close(mixed(Xk, Xk, hypers_cat, (), CAT.categorical),
                               cat_gp.covar_module(Xk).to_dense(), atol=_atol(dtype), rtol=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_kernel_matrix_is_symmetric_psd(point_sampler, kind, dtype):
    layout = LAYOUTS[kind]
    g = torch.Generator().manual_seed(4)
    X = point_sampler(layout, 30, g, dtype=dtype)
    X = torch.cat([X, X[:3]])  # duplicates make K singular: the eigenvalue bound is tight
    K = mixed(X, X, _hypers(layout, g, dtype), layout.continuous, layout.categorical)
    torch.testing.assert_close(K, K.T, atol=_atol(dtype), rtol=0.0)
    # float32 rounding alone perturbs eigenvalues of an O(1)-entry 33 x 33 matrix by ~1e-6.
    floor = -1e-10 if dtype == torch.float64 else -1e-5
    assert float(torch.linalg.eigvalsh(K.double()).min()) >= floor


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_batched_hypers_equal_loop_of_single_calls(point_sampler, kind, dtype):
    layout = LAYOUTS[kind]
    g = torch.Generator().manual_seed(5)
    X1, X2 = point_sampler(layout, 7, g, dtype=dtype), point_sampler(layout, 5, g, dtype=dtype)
    batched = _hypers(layout, g, dtype, batch=(4,))
    K = mixed(X1, X2, batched, layout.continuous, layout.categorical)  # 4 x 7 x 5
    diag = mixed_diag(X1, batched, layout.continuous, layout.categorical)  # 4 x 7
    assert K.shape == (4, 7, 5) and diag.shape == (4, 7)
    for i in range(4):
        single = MixedHypers(*(t[i] for t in batched))
        torch.testing.assert_close(K[i], mixed(X1, X2, single, layout.continuous,
                                               layout.categorical), atol=_atol(dtype), rtol=0.0)
        torch.testing.assert_close(diag[i], mixed_diag(X1, single, layout.continuous,
                                                       layout.categorical),
                                   atol=_atol(dtype), rtol=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_batched_points_equal_loop_of_single_calls(point_sampler, kind, dtype):
    layout = LAYOUTS[kind]
    g = torch.Generator().manual_seed(6)
    hypers = _hypers(layout, g, dtype)
    X1 = point_sampler(layout, 3 * 4, g, dtype=dtype).reshape(3, 4, layout.d)  # b x q x d
    X2 = point_sampler(layout, 5, g, dtype=dtype)
    K = mixed(X1, X2, hypers, layout.continuous, layout.categorical)  # 3 x 4 x 5
    for i in range(3):
        torch.testing.assert_close(K[i], mixed(X1[i], X2, hypers, layout.continuous,
                                               layout.categorical), atol=_atol(dtype), rtol=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_mixed_diag_equals_diagonal(point_sampler, kind, dtype):
    layout = LAYOUTS[kind]
    g = torch.Generator().manual_seed(7)
    hypers = _hypers(layout, g, dtype)
    X = point_sampler(layout, 2 * 6, g, dtype=dtype).reshape(2, 6, layout.d)  # b x n x d
    K = mixed(X, X, hypers, layout.continuous, layout.categorical)  # 2 x 6 x 6
    diag = mixed_diag(X, hypers, layout.continuous, layout.categorical)
    assert diag.shape == (2, 6)
    torch.testing.assert_close(diag, torch.diagonal(K, dim1=-2, dim2=-1), atol=_atol(dtype),
                               rtol=0.0)
