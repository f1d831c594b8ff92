"""`KernelContract`: the properties every kernel in bopt.kernels must have, as a test base.

A kernel test class inherits `KernelContract` and supplies the kernel through hooks:

- `layout` (a fixture, possibly parametrised): the `Layout` that valid points are drawn for;
- `draw_hypers(layout, generator, batch)`: one float64 hyperparameter set, a tuple of tensors
  (a `NamedTuple` keeps its type), with leading batch dims `batch`;
- `make_kernel(layout, hypers)`: a callable `(X1, X2) -> K`, `... x n x d`, `m x d` ->
  `... x n x m`, differentiable in `hypers` when `"hypers"` is in `grad_wrt`;
- `make_reference(layout, hypers)` (optional): the BoTorch/GPyTorch twin, same signature;
- `make_diag(layout, hypers)` (optional): a callable `X -> k(x, x)`, `... x n x d` -> `... x n`.

Flags say what the kernel promises: `grad_wrt` (a subset of "X1", "X2", "hypers"),
`batched_hypers` (hyperparameters with batch dims `h` broadcast to `h x n x m`),
`batched_X2` (both point sets may carry the same batch dims).

The contract checks, in both precisions unless stated:

- shapes: `n x d` against `m x d` gives `n x m`; batch dims of `X1` (one or two), of both
  inputs (`batched_X2`) and of the hyperparameters (`batched_hypers`) lead the result;
  the result keeps the input dtype and is finite;
- a batched call equals a loop of single calls (over points, and over hyperparameter sets,
  for the matrix and for the diagonal);
- `K(X, X)` is symmetric and positive semi-definite, also with duplicated points;
- float32 agrees with float64 on the same points and hyperparameters (`precisions_agree`);
- `torch.autograd.gradcheck` in float64 w.r.t. the continuous columns of `X1` / `X2` and
  w.r.t. the hyperparameters, as `grad_wrt` declares;
- the twin gives the same matrix (skipped where `make_reference` returns None);
- the diagonal callable equals the diagonal of `K(X, X)` (skipped where there is none).

Tolerances: the `atol` fixture (1e-10 in float64, 1e-5 in float32); looser ones say why.
"""

from __future__ import annotations

import warnings
from typing import Callable

import gpytorch
import pytest
import torch
from botorch.exceptions.warnings import InputDataWarning
from botorch.models import MixedSingleTaskGP
from botorch.models.kernels import CategoricalKernel as BotorchCategoricalKernel
from gpytorch.kernels import MaternKernel, ScaleKernel
from torch import Tensor

from bopt.kernels import MixedHypers
from bopt.layout import Layout

KernelFn = Callable[[Tensor, Tensor], Tensor]

N, M, B = 5, 4, 3  # rows of X1, rows of X2, batch size


def rebuild_hypers(like: tuple, values) -> tuple:
    """A hyperparameter set of `like`'s type (a NamedTuple or a tuple) holding `values`."""
    values = list(values)
    return like._make(values) if hasattr(like, "_make") else tuple(values)


def map_hypers(hypers: tuple, fn: Callable[[Tensor], Tensor]) -> tuple:
    """Apply `fn` to every tensor of a hyperparameter set, keeping its type."""
    return rebuild_hypers(hypers, (fn(t) for t in hypers))


def log_uniform(generator: torch.Generator, *shape: int, low: float, high: float) -> Tensor:
    """`shape` float64 values, log-uniform in [low, high]."""
    u = torch.rand(*shape, generator=generator, dtype=torch.float64)
    return low * (high / low) ** u


def draw_mixed_hypers(layout: Layout, generator: torch.Generator, batch=()) -> MixedHypers:
    """Random positive float64 hyperparameters of the mixed kernel with batch dims `batch`."""
    return MixedHypers(log_uniform(generator, *batch, len(layout.continuous), low=0.1, high=2.0),
                       log_uniform(generator, *batch, len(layout.categorical), low=0.1, high=3.0),
                       log_uniform(generator, *batch, 3, low=0.2, high=2.0))


def module_kernel(module: torch.nn.Module, params: dict[str, Tensor], *,
                  diag: bool = False) -> Callable:
    """A GPyTorch kernel module called with `params` in place of its parameters.

    `torch.func.functional_call` makes the module differentiable in `params`; eager kernel
    evaluation makes it compute while the parameters are swapped in.
    """
    def call(*X: Tensor) -> Tensor:
        with gpytorch.settings.lazily_evaluate_kernels(False):
            out = torch.func.functional_call(module, params, X, {"diag": diag})
        return out if diag else out.to_dense()
    return call


def _matern_factory(batch_shape, ard_num_dims, active_dims):
    return MaternKernel(nu=2.5, batch_shape=batch_shape, ard_num_dims=ard_num_dims,
                        active_dims=active_dims)


def mixed_twin(layout: Layout, hypers: MixedHypers) -> KernelFn:
    """The BoTorch/GPyTorch kernel equal to `bopt.kernels.mixed` under `hypers`.

    Continuous only: ScaleKernel(MaternKernel(nu=2.5), ARD) with outputscale s0. Otherwise the
    covariance module of `MixedSingleTaskGP`: with categoricals only ScaleKernel(Cat) with
    outputscale s1; with both
    ScaleKernel(o1, Matern + ScaleKernel(o2, Cat)) + ScaleKernel(o3, Matern * Cat)
    = o1 k_cont + o1 o2 k_cat + o3 k_cont k_cat, so o1 = s0, o2 = s1 / s0, o3 = s2.
    """
    dtype = hypers.scales.dtype
    s0, s1, s2 = hypers.scales
    if not layout.categorical:
        kernel = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=len(layout.continuous),
                                          active_dims=list(layout.continuous))).to(dtype)
        kernel.outputscale = s0
        kernel.base_kernel.lengthscale = hypers.lengthscale
        return lambda X1, X2: kernel(X1, X2).to_dense()
    with warnings.catch_warnings():  # the dummy training data is not standardised
        warnings.simplefilter("ignore", InputDataWarning)
        gp = MixedSingleTaskGP(torch.zeros(2, layout.d, dtype=dtype),
                               torch.zeros(2, 1, dtype=dtype),
                               cat_dims=list(layout.categorical),
                               cont_kernel_factory=_matern_factory)
    kernel = gp.covar_module
    if not layout.continuous:
        kernel.outputscale = s1
        kernel.base_kernel.lengthscale = hypers.cat_lengthscale
    else:
        sum_kernel, prod_kernel = kernel.kernels
        sum_kernel.outputscale = s0
        cont_a, scaled_cat = sum_kernel.base_kernel.kernels
        cont_a.lengthscale = hypers.lengthscale
        scaled_cat.outputscale = s1 / s0
        scaled_cat.base_kernel.lengthscale = hypers.cat_lengthscale
        prod_kernel.outputscale = s2
        cont_b, cat_b = prod_kernel.base_kernel.kernels
        cont_b.lengthscale = hypers.lengthscale
        cat_b.lengthscale = hypers.cat_lengthscale
    return lambda X1, X2: kernel(X1, X2).to_dense()


def categorical_twin(lengthscale: Tensor, active_dims=None) -> KernelFn:
    """BoTorch's `CategoricalKernel` with ARD lengthscales `dk`."""
    kernel = BotorchCategoricalKernel(ard_num_dims=lengthscale.shape[-1],
                                      active_dims=active_dims).to(lengthscale.dtype)
    kernel.lengthscale = lengthscale
    return lambda X1, X2: kernel(X1, X2).to_dense()


def matern_twin(lengthscale: Tensor) -> KernelFn:
    """GPyTorch's `MaternKernel(nu=2.5)` with ARD lengthscales `dc`."""
    kernel = MaternKernel(nu=2.5, ard_num_dims=lengthscale.shape[-1]).to(lengthscale.dtype)
    kernel.lengthscale = lengthscale
    return lambda X1, X2: kernel(X1, X2).to_dense()


class KernelContract:
    """Inherit, provide the hooks, and every property above is tested (see module doc)."""

    grad_wrt: tuple[str, ...] = ("X1", "X2", "hypers")
    batched_hypers: bool = True
    batched_X2: bool = True
    precisions_agree: bool = True

    # --- hooks ----------------------------------------------------------------------------

    @pytest.fixture
    def layout(self) -> Layout:
        raise NotImplementedError("a KernelContract subclass defines the `layout` fixture")

    def draw_hypers(self, layout: Layout, generator: torch.Generator, batch=()) -> tuple:
        raise NotImplementedError

    def make_kernel(self, layout: Layout, hypers: tuple) -> KernelFn:
        raise NotImplementedError

    def make_reference(self, layout: Layout, hypers: tuple) -> KernelFn | None:
        return None

    def make_diag(self, layout: Layout, hypers: tuple) -> Callable[[Tensor], Tensor] | None:
        return None

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _points(layout, point_sampler, shape, seed, dtype=torch.float64) -> Tensor:
        """`*shape x d` valid points, drawn in float64 so that every precision sees the same."""
        n = 1
        for size in shape:
            n *= size
        X = point_sampler(layout, n, torch.Generator().manual_seed(seed))
        return X.reshape(*shape, layout.d).to(dtype)

    def _hypers(self, layout, seed, dtype=torch.float64, batch=()) -> tuple:
        hypers = self.draw_hypers(layout, torch.Generator().manual_seed(seed), batch)
        return map_hypers(hypers, lambda t: t.to(dtype))

    def _gradcheck_points(self, layout, point_sampler, which):
        """Float64 `X1` (`2 x 3 x d`) and `X2` (`M x d`), and `(fn, Xc)` for gradcheck of `K`
        w.r.t. the continuous columns of `which`, the other columns held fixed."""
        if which not in self.grad_wrt:
            pytest.skip(f"{type(self).__name__} does not promise gradients w.r.t. {which}")
        cols = list(layout.continuous)
        if not cols:
            pytest.skip("no continuous column: the kernel is piecewise constant in its inputs")
        X1 = self._points(layout, point_sampler, (2, 3), seed=40)
        X2 = self._points(layout, point_sampler, (M,), seed=41)
        kernel = self.make_kernel(layout, self._hypers(layout, seed=42))
        idx = torch.tensor(cols)
        X = X1 if which == "X1" else X2
        Xc = X[..., cols].clone().requires_grad_(True)

        def fn(Xc):
            Z = X.index_copy(-1, idx, Xc)
            return kernel(Z, X2) if which == "X1" else kernel(X1, Z)
        return fn, Xc

    # --- the contract ---------------------------------------------------------------------

    def test_output_shapes(self, layout, point_sampler, dtype):
        kernel = self.make_kernel(layout, self._hypers(layout, seed=10, dtype=dtype))
        X1 = self._points(layout, point_sampler, (2, B, N), seed=11, dtype=dtype)
        X2 = self._points(layout, point_sampler, (B, M), seed=12, dtype=dtype)
        K = kernel(X1[0, 0], X2[0])
        assert K.shape == (N, M) and K.dtype == dtype and bool(torch.isfinite(K).all())
        assert kernel(X1[0], X2[0]).shape == (B, N, M)
        assert kernel(X1, X2[0]).shape == (2, B, N, M)
        if self.batched_X2:
            assert kernel(X1[0], X2).shape == (B, N, M)
        if self.batched_hypers:
            batched = self.make_kernel(layout, self._hypers(layout, 13, dtype, batch=(4,)))
            assert batched(X1[0, 0], X2[0]).shape == (4, N, M)

    def test_batched_points_equal_loop_of_single_calls(self, layout, point_sampler, dtype, atol):
        kernel = self.make_kernel(layout, self._hypers(layout, seed=20, dtype=dtype))
        X1 = self._points(layout, point_sampler, (B, N), seed=21, dtype=dtype)
        X2 = self._points(layout, point_sampler, (B, M), seed=22, dtype=dtype)
        K = kernel(X1, X2[0])  # B x N x M
        for i in range(B):
            torch.testing.assert_close(K[i], kernel(X1[i], X2[0]), atol=atol, rtol=0.0)
        if self.batched_X2:
            K = kernel(X1, X2)  # B x N x M
            for i in range(B):
                torch.testing.assert_close(K[i], kernel(X1[i], X2[i]), atol=atol, rtol=0.0)

    def _batched_hypers_case(self, layout, point_sampler, dtype):
        if not self.batched_hypers:
            pytest.skip(f"{type(self).__name__} takes one hyperparameter set, no batch dims")
        hypers = self._hypers(layout, seed=30, dtype=dtype, batch=(4,))
        X1 = self._points(layout, point_sampler, (N,), seed=31, dtype=dtype)
        X2 = self._points(layout, point_sampler, (M,), seed=32, dtype=dtype)
        singles = [map_hypers(hypers, lambda t: t[i]) for i in range(4)]
        return hypers, singles, X1, X2

    def test_batched_hypers_equal_loop_of_single_calls(self, layout, point_sampler, dtype,
                                                        atol):
        hypers, singles, X1, X2 = self._batched_hypers_case(layout, point_sampler, dtype)
        K = self.make_kernel(layout, hypers)(X1, X2)  # 4 x N x M
        for i, single in enumerate(singles):
            torch.testing.assert_close(K[i], self.make_kernel(layout, single)(X1, X2),
                                       atol=atol, rtol=0.0)

    def test_batched_hypers_diag_equal_loop_of_single_calls(self, layout, point_sampler,
                                                             dtype, atol):
        hypers, singles, X1, _ = self._batched_hypers_case(layout, point_sampler, dtype)
        diag = self.make_diag(layout, hypers)
        if diag is None:
            pytest.skip(f"{type(self).__name__} has no diagonal-only path")
        values = diag(X1)
        assert values.shape == (4, N)  # like the diagonal of the `4 x N x N` matrix
        for i, single in enumerate(singles):
            torch.testing.assert_close(values[i], self.make_diag(layout, single)(X1),
                                       atol=atol, rtol=0.0)

    def test_matrix_is_symmetric_psd(self, layout, point_sampler, dtype, atol):
        kernel = self.make_kernel(layout, self._hypers(layout, seed=50, dtype=dtype))
        X = self._points(layout, point_sampler, (30,), seed=51, dtype=dtype)
        X = torch.cat([X, X[:3]])  # duplicates make K singular: the eigenvalue bound is tight
        K = kernel(X, X)
        torch.testing.assert_close(K, K.transpose(-1, -2), atol=atol, rtol=0.0)
        # float32 rounding alone perturbs eigenvalues of an O(1)-entry 33 x 33 matrix by ~1e-6.
        assert float(torch.linalg.eigvalsh(K.double()).min()) >= -atol

    def test_float32_agrees_with_float64(self, layout, point_sampler):
        if not self.precisions_agree:
            pytest.skip(f"{type(self).__name__}: see its precisions_agree comment")
        X1 = self._points(layout, point_sampler, (B, N), seed=60)
        X2 = self._points(layout, point_sampler, (M,), seed=61)
        hypers = self._hypers(layout, seed=62)
        K64 = self.make_kernel(layout, hypers)(X1, X2)
        K32 = self.make_kernel(layout, map_hypers(hypers, torch.Tensor.float))(X1.float(),
                                                                              X2.float())
        assert K32.dtype == torch.float32
        torch.testing.assert_close(K32.double(), K64, atol=1e-5, rtol=0.0)

    def test_gradcheck_wrt_X1(self, layout, point_sampler):
        fn, Xc = self._gradcheck_points(layout, point_sampler, "X1")
        assert torch.autograd.gradcheck(fn, (Xc,))

    def test_gradcheck_wrt_X2(self, layout, point_sampler):
        fn, Xc = self._gradcheck_points(layout, point_sampler, "X2")
        assert torch.autograd.gradcheck(fn, (Xc,))

    def test_gradcheck_wrt_hypers(self, layout, point_sampler):
        if "hypers" not in self.grad_wrt:
            pytest.skip(f"{type(self).__name__} treats its hyperparameters as constants")
        hypers = self._hypers(layout, seed=70)
        X1 = self._points(layout, point_sampler, (N,), seed=71)
        X2 = self._points(layout, point_sampler, (M,), seed=72)
        used = [i for i, t in enumerate(hypers) if t.numel() > 0]  # an absent part is empty

        def fn(*tensors):
            values = list(hypers)
            for i, t in zip(used, tensors):
                values[i] = t
            return self.make_kernel(layout, rebuild_hypers(hypers, values))(X1, X2)
        inputs = tuple(hypers[i].clone().requires_grad_(True) for i in used)
        assert torch.autograd.gradcheck(fn, inputs)

    def test_equals_reference(self, layout, point_sampler, dtype, atol):
        hypers = self._hypers(layout, seed=80, dtype=dtype)
        reference = self.make_reference(layout, hypers)
        if reference is None:
            pytest.skip(f"{type(self).__name__} has no BoTorch/GPyTorch twin")
        X1 = self._points(layout, point_sampler, (2, N), seed=81, dtype=dtype)
        X2 = self._points(layout, point_sampler, (M,), seed=82, dtype=dtype)
        kernel = self.make_kernel(layout, hypers)
        torch.testing.assert_close(kernel(X1[0], X2), reference(X1[0], X2), atol=atol, rtol=0.0)
        torch.testing.assert_close(kernel(X1, X2), reference(X1, X2), atol=atol, rtol=0.0)

    def test_diag_equals_diagonal(self, layout, point_sampler, dtype, atol):
        hypers = self._hypers(layout, seed=90, dtype=dtype)
        diag = self.make_diag(layout, hypers)
        if diag is None:
            pytest.skip(f"{type(self).__name__} has no diagonal-only path")
        X = self._points(layout, point_sampler, (2, N), seed=91, dtype=dtype)  # 2 x N x d
        values = diag(X)
        assert values.shape == (2, N)
        kernel = self.make_kernel(layout, hypers)
        K = torch.stack([kernel(x, x) for x in X])  # 2 x N x N
        torch.testing.assert_close(values, torch.diagonal(K, dim1=-2, dim2=-1), atol=atol,
                                   rtol=0.0)


class OverLayouts:
    """Mixin: the contract runs once per layout of the test module's `LAYOUTS`, with mixed
    hyperparameters drawn for it."""

    LAYOUTS: dict[str, Layout] = {}

    @pytest.fixture(params=["continuous", "categorical", "mixed"])
    def layout(self, request):
        return self.LAYOUTS[request.param]

    def draw_hypers(self, layout, generator, batch=()):
        return draw_mixed_hypers(layout, generator, batch)


class OneLengthscaleSet:
    """Mixin: one lengthscale per column of the fixed `LAYOUT`, log-uniform in [0.1, 3]."""

    LAYOUT: Layout

    @pytest.fixture
    def layout(self):
        return self.LAYOUT

    def draw_hypers(self, layout, generator, batch=()):
        return (log_uniform(generator, *batch, layout.d, low=0.1, high=3.0),)
