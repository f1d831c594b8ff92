"""Output warping (bopt/warp.py)."""

import pytest
import scipy.stats
import torch

from bopt.warp import (OUTLIER_FENCE_IQRS, transform_outputs, warp_standardized, yeo_johnson,
                       yeo_johnson_inverse)


def test_yeo_johnson_equals_scipy(dtype):
    y = torch.tensor([-30.0, -2.5, -0.3, 0.0, 0.4, 1.7, 12.0], dtype=dtype)
    lams = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=dtype)
    ours = yeo_johnson(y, lams)
    ref = torch.stack([torch.as_tensor(scipy.stats.yeojohnson(y.double().numpy(), lmbda=float(l)),
                                       dtype=dtype) for l in lams])
    atol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(ours, ref, atol=atol, rtol=1e-6 if dtype == torch.float32 else 0.0)


def _standardize(y):
    y = torch.as_tensor(y, dtype=torch.float64)
    return ((y - y.mean()) / y.std()).unsqueeze(-1)


def test_a_heavy_tail_of_poor_values_is_compressed():
    # Maximisation sign: many good values near 0, a few catastrophically poor ones.
    g = torch.Generator().manual_seed(0)
    y = -torch.cat([torch.rand(40, generator=g, dtype=torch.float64),
                    torch.tensor([1e3, 5e3, 2e4], dtype=torch.float64)])
    Y = _standardize(y)
    W, lam, _, _ = warp_standardized(Y)
    assert lam == 2.0  # the strongest compression on this grid: a logarithm of the poor tail
    good = slice(0, 40)
    # The informative part spreads out (3.2x measured here; a log caps how much outliers
    # 6.5 standard deviations out can be pulled in).
    assert float(W[good].std()) > 2.5 * float(Y[good].std())
    assert torch.equal(W.squeeze(-1).argsort(), Y.squeeze(-1).argsort())  # order kept
    torch.testing.assert_close(W.mean(), torch.zeros((), dtype=torch.float64), atol=1e-12,
                               rtol=0.0)
    torch.testing.assert_close(W.std(), torch.ones((), dtype=torch.float64), atol=1e-12, rtol=0.0)


def test_a_few_excellent_values_keep_their_lead():
    # Ackley-like plateau with a few much better observations: the warp may not compress them.
    g = torch.Generator().manual_seed(1)
    y = torch.cat([-20 + 0.5 * torch.rand(40, generator=g, dtype=torch.float64),
                   torch.tensor([-8.0, -5.0], dtype=torch.float64)])
    W, lam, _, _ = warp_standardized(_standardize(y))
    assert lam == 1.0  # identity: [1, 2] never shrinks the good tail
    torch.testing.assert_close(W, _standardize(y), atol=1e-12, rtol=0.0)


def test_flat_values_pass_through():
    Y = torch.zeros(5, 1, dtype=torch.float64)
    W, lam, _, _ = warp_standardized(Y)
    assert lam == 1.0 and torch.equal(W, Y)


@pytest.mark.parametrize("lam", [1.0, 1.3, 1.75, 2.0])
def test_yeo_johnson_inverse(lam):
    y = torch.tensor([-1e4, -30.0, -2.5, -0.3, 0.0, 0.4, 1.7, 12.0, 1e3], dtype=torch.float64)
    t = yeo_johnson(y, torch.tensor([lam], dtype=torch.float64))[0]
    torch.testing.assert_close(yeo_johnson_inverse(t, lam), y, rtol=1e-12, atol=1e-12)


def _values(seed: int, n: int = 30) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64).exp() * 10.0  # skewed, positive


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("jump", [0.0, 1e6, 1e300])
def test_transform_outputs_is_inverted_exactly_and_keeps_ranks(maximize, jump):
    values = _values(0)
    values[4] += jump if not maximize else -jump  # the poor direction
    Y, transform, _, num_outliers = transform_outputs(values, maximize=maximize)
    y = Y.squeeze(-1)
    assert (num_outliers >= 1) == (jump > 0)
    torch.testing.assert_close(transform.forward(values), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(transform.inverse(y), values, rtol=1e-10, atol=0)
    better = values if maximize else -values  # ranks: higher target, better value
    assert torch.equal(y.argsort(), better.argsort())
    # the targets' lower quartile is at 0 (the GP's prior mean), their spread is one
    assert abs(float(torch.quantile(y, 0.25))) < 1e-12 and abs(float(y.std()) - 1) < 1e-12


def test_a_jump_of_1e6_leaves_the_others_their_resolution():
    values = _values(1)
    spread_before = float(transform_outputs(values, maximize=False)[0].std())
    values[0] = 1e6
    Y, transform, _, num_outliers = transform_outputs(values, maximize=False)
    others = Y.squeeze(-1)[1:]
    assert num_outliers == 1 and transform.fence is not None
    assert float(others.std()) > 0.5 * spread_before  # not squashed to ~1e-6
    assert float(Y[0]) == float(Y.min())  # still the worst


def test_no_outliers_in_well_behaved_values():
    g = torch.Generator().manual_seed(2)
    values = torch.randn(200, generator=g, dtype=torch.float64)
    _, transform, warnings, num_outliers = transform_outputs(values, maximize=False)
    assert num_outliers == 0 and transform.fence is None and warnings == []
    # A value well inside the fence is left alone, one well outside is pulled in.
    q25, q75 = torch.quantile(-values, torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
    for factor, expected in ((0.8, 0), (1.5, 1)):
        poor = -(q25 - factor * OUTLIER_FENCE_IQRS * (q75 - q25))  # minimising: large is poor
        extra = torch.cat([values, torch.tensor([poor], dtype=torch.float64)])
        assert transform_outputs(extra, maximize=False)[3] == expected


def test_good_outliers_are_kept():
    values = _values(3)
    values[2] = -1e6  # far better when minimising
    _, _, _, num_outliers = transform_outputs(values, maximize=False)
    assert num_outliers == 0


def test_a_plateau_does_not_switch_outlier_compression_off():
    """Ties filling the middle half make the interquartile range 0; the smallest step
    between distinct values then sets the unit, so 1 and 2 stay apart beside 1e6."""
    plateau = torch.tensor([1.0] * 8 + [2.0, 1e6], dtype=torch.float64)
    Y, transform, _, num_outliers = transform_outputs(plateau, maximize=False)
    assert num_outliers == 1
    assert float(Y[0] - Y[8]) > 0.3  # not ~1e-6
    torch.testing.assert_close(transform.inverse(Y.squeeze(-1)), plateau, rtol=1e-10, atol=0)
