"""Output warping (bopt/warp.py)."""

import pytest
import scipy.stats
import torch

from bopt.warp import warp_standardized, yeo_johnson


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
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
    W, lam = warp_standardized(Y)
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
    W, lam = warp_standardized(_standardize(y))
    assert lam == 1.0  # identity: [1, 2] never shrinks the good tail
    torch.testing.assert_close(W, _standardize(y), atol=1e-12, rtol=0.0)


def test_flat_values_pass_through():
    Y = torch.zeros(5, 1, dtype=torch.float64)
    W, lam = warp_standardized(Y)
    assert lam == 1.0 and torch.equal(W, Y)
