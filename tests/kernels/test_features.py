"""Tests for bopt.kernels.features: random features whose inner products approximate the
mixed kernel. The approximate kernel phi(X1) phi(X2)' of one draw is itself a kernel and
runs under the `KernelContract`."""

import pytest
import torch
from kernel_contract import KernelContract, OverLayouts

from bopt.kernels import MixedHypers, draw_mixed_features, mixed
from bopt.layout import Layout

CONT = Layout(d=2, continuous=(0, 1))
CAT = Layout(d=2, categorical=(0, 1), categorical_sizes=(3, 2))
MIXED = Layout(d=4, continuous=(0, 3), categorical=(1, 2), categorical_sizes=(3, 2))
LAYOUTS = {"continuous": CONT, "categorical": CAT, "mixed": MIXED}
HYPERS = MixedHypers(torch.tensor([0.3, 0.7]), torch.tensor([0.4, 1.5]),
                     torch.tensor([0.8, 0.5, 0.3]))
NUM_TERMS = {"continuous": 1, "categorical": 1, "mixed": 3}


def _hypers(dtype):
    return MixedHypers(*(t.to(dtype) for t in HYPERS))


def _draw(layout, num_features, seed, dtype=torch.float64):
    return draw_mixed_features(_hypers(dtype), layout.continuous, layout.categorical,
                               layout.categorical_levels or (1,), num_features=num_features,
                               generator=torch.Generator().manual_seed(seed))


def _points(layout, point_sampler):
    X = point_sampler(layout, 6, torch.Generator().manual_seed(0))
    # A near-duplicate (continuous columns moved by 0.01, same categories) makes sure
    # correlations close to the prior variance are checked too.
    near = X[:1].clone()
    near[:, list(layout.continuous)] += 0.01
    return torch.cat([X, near])


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_feature_inner_products_approximate_the_kernel(kind, point_sampler, dtype):
    """One draw with m features: phi(x) @ phi(y) is a sum over terms of means of m i.i.d.
    per-feature products, so its standard error is estimated from their sample variance.
    We require |estimate - k| <= 5 standard errors for every pair (a 5-sigma band under the
    CLT, m = 8192), and that the standard errors are small, so the band is informative.
    float32 adds 1e-4 for rounding in the sums of 8192 terms."""
    layout, m = LAYOUTS[kind], 8192
    X = _points(layout, point_sampler)  # n x d
    n = X.shape[0]
    phi = _draw(layout, m, seed=1, dtype=dtype)(X.to(dtype)).double()  # n x M
    assert phi.shape == (n, NUM_TERMS[kind] * m)
    products = phi[:, None, :] * phi[None, :, :]  # n x n x M
    per_term = products.reshape(n, n, NUM_TERMS[kind], m)  # n x n x terms x m
    estimate = products.sum(-1)  # n x n
    stderr = (m * per_term.var(-1)).sum(-1).sqrt()  # n x n
    exact = mixed(X, X, _hypers(torch.float64), layout.continuous, layout.categorical)
    assert float(stderr.max()) < 0.03
    slack = 1e-12 if dtype == torch.float64 else 1e-4
    assert bool(((estimate - exact).abs() <= 5 * stderr + slack).all()), (
        f"max |error| / stderr = {float(((estimate - exact).abs() / stderr).max()):.2f}")


def test_equal_seeds_equal_features_and_global_rng_untouched(point_sampler):
    X = _points(MIXED, point_sampler)
    state = torch.random.get_rng_state()
    a, b, c = (_draw(MIXED, 128, seed)(X) for seed in (5, 5, 6))
    assert torch.equal(state, torch.random.get_rng_state())
    torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)
    assert not torch.equal(a, c)


class TestFeatureKernel(OverLayouts, KernelContract):
    """phi(X1) phi(X2)' for one seeded draw of 64 features per term. The draw is a fixed
    function of the hyperparameters (same seed each time), so even they are differentiable."""

    batched_hypers = False  # `draw_mixed_features` takes one hyperparameter set
    # The draws come from the generator in the hyperparameters' dtype, and float32 and
    # float64 streams differ, so the two precisions draw different features;
    # test_feature_inner_products_approximate_the_kernel bounds both against the exact kernel.
    precisions_agree = False

    LAYOUTS = LAYOUTS

    def make_kernel(self, layout, hypers):
        features = draw_mixed_features(MixedHypers(*hypers), layout.continuous,
                                       layout.categorical, layout.categorical_levels or (1,),
                                       num_features=64,
                                       generator=torch.Generator().manual_seed(3))
        return lambda X1, X2: features(X1) @ features(X2).transpose(-1, -2)

    def make_reference(self, layout, hypers):
        pytest.skip("features only approximate the kernel: "
                    "test_feature_inner_products_approximate_the_kernel bounds the error")
