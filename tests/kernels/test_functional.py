"""Tests for bopt.kernels.functional: each kernel function under the `KernelContract`
(against its GPyTorch or BoTorch twin), plus what is particular to it."""

import pytest
import torch
from kernel_contract import (KernelContract, OneLengthscaleSet, OverLayouts, categorical_twin,
                             draw_mixed_hypers, matern_twin, mixed_twin)

from bopt.kernels import matern52, mixed, mixed_cross, mixed_diag, overlap
from bopt.layout import Layout

CONT = Layout(d=3, continuous=(0, 1, 2))
CAT = Layout(d=2, categorical=(0, 1), categorical_sizes=(3, 4))
# Columns interleaved on purpose: the kernel must pick them by index, not by position.
MIXED = Layout(d=5, continuous=(0, 3, 4), categorical=(1, 2), categorical_sizes=(3, 2))
LAYOUTS = {"continuous": CONT, "categorical": CAT, "mixed": MIXED}


class TestMatern52(OneLengthscaleSet, KernelContract):
    """`matern52` on all columns of a continuous layout, against GPyTorch's Matern-5/2."""

    LAYOUT = CONT

    def make_kernel(self, layout, hypers):
        return lambda X1, X2: matern52(X1, X2, hypers[0])

    def make_reference(self, layout, hypers):
        return matern_twin(hypers[0])

    def test_float32_accuracy_at_short_lengthscales(self, point_sampler):
        g = torch.Generator().manual_seed(8)
        X = 0.97 + 0.02 * point_sampler(CONT, 30, g)  # clustered near the corner (1, 1, 1)
        ls = torch.full((3,), 0.025, dtype=torch.float64)
        reference = matern52(X, X, ls)  # float64
        ours = matern52(X.float(), X.float(), ls.float())
        torch.testing.assert_close(ours.double(), reference, atol=1e-5, rtol=0.0)

    def test_finite_zero_gradient_on_duplicates(self):
        # The docstring's promise: the sqrt clamp keeps gradients finite where x1 == x2.
        X = torch.tensor([[0.2, 0.4, 0.6]], dtype=torch.float64, requires_grad=True)
        ls = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
        value = matern52(X, X.detach().clone(), ls).sum()
        grad_X, grad_ls = torch.autograd.grad(value, (X, ls))
        assert bool(torch.isfinite(grad_X).all()) and bool(torch.isfinite(grad_ls).all())
        torch.testing.assert_close(grad_X, torch.zeros_like(grad_X), atol=1e-10, rtol=0.0)


class TestOverlap(OneLengthscaleSet, KernelContract):
    """`overlap` on category indices, against BoTorch's CategoricalKernel. Its inputs are
    indices (piecewise constant), so only the lengthscales are differentiable."""

    grad_wrt = ("hypers",)

    LAYOUT = CAT

    def make_kernel(self, layout, hypers):
        return lambda X1, X2: overlap(X1, X2, hypers[0])

    def make_reference(self, layout, hypers):
        return categorical_twin(hypers[0])


class TestMixed(OverLayouts, KernelContract):
    """`mixed` (with `mixed_diag`) on each kind of layout, against the kernel of BoTorch's
    MixedSingleTaskGP (a scaled Matern-5/2 on the continuous-only layout)."""

    LAYOUTS = LAYOUTS

    def make_kernel(self, layout, hypers):
        return lambda X1, X2: mixed(X1, X2, hypers, layout.continuous, layout.categorical)

    def make_reference(self, layout, hypers):
        return mixed_twin(layout, hypers)

    def make_diag(self, layout, hypers):
        return lambda X: mixed_diag(X, hypers, layout.continuous, layout.categorical)


class TestMixedCross(OverLayouts, KernelContract):
    """`mixed_cross`: the mixed kernel with a closed-form backward for `X1` only, for one
    hyperparameter set and `m x d` training points."""

    grad_wrt = ("X1",)
    batched_hypers = False
    batched_X2 = False

    LAYOUTS = LAYOUTS

    def make_kernel(self, layout, hypers):
        return lambda X1, X2: mixed_cross(X1, X2, hypers, layout.continuous, layout.categorical)

    def make_reference(self, layout, hypers):
        return mixed_twin(layout, hypers)

    def test_no_gradient_reaches_X2_or_the_hyperparameters(self, point_sampler):
        g = torch.Generator().manual_seed(9)
        X1 = point_sampler(MIXED, 4, g).requires_grad_(True)
        X2 = point_sampler(MIXED, 3, g).requires_grad_(True)
        hypers = draw_mixed_hypers(MIXED, g)
        hypers = type(hypers)(*(t.requires_grad_(True) for t in hypers))
        K = mixed_cross(X1, X2, hypers, MIXED.continuous, MIXED.categorical)
        grads = torch.autograd.grad(K.sum(), (X1, X2, *hypers), allow_unused=True)
        assert grads[0] is not None and float(grads[0].abs().sum()) > 0
        assert all(grad is None for grad in grads[1:])
        # Categorical columns get an exact zero, not a numerical estimate.
        assert bool((grads[0][:, list(MIXED.categorical)] == 0).all())

    def test_second_derivatives_raise_instead_of_vanishing(self, point_sampler):
        """The closed-form backward is not itself differentiable: asking for a Hessian
        through it must fail loudly, not return zeros."""
        g = torch.Generator().manual_seed(10)
        X1 = point_sampler(MIXED, 4, g).requires_grad_(True)
        X2 = point_sampler(MIXED, 3, g)
        K = mixed_cross(X1, X2, draw_mixed_hypers(MIXED, g), MIXED.continuous,
                        MIXED.categorical)
        (grad,) = torch.autograd.grad((K**2).sum(), X1, create_graph=True)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(grad.sum(), X1)
