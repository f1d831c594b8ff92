"""Tests for bopt.acquisition.ucb: the UCB module under the `AcquisitionContract` (against
BoTorch's UpperConfidenceBound), the formula and the beta schedule."""

import math

import pytest
import torch
from acquisition_contract import AcquisitionContract
from botorch.acquisition import UpperConfidenceBound

from bopt.acquisition import UCB, ucb_beta, upper_confidence_bound

BETA = 1.3


def _points(problem, point_sampler, b, seed, q=1):
    X = point_sampler(problem.layout, b * q, torch.Generator().manual_seed(seed))
    return X.reshape(b, q, problem.layout.d)  # b x q x d


class TestUCB(AcquisitionContract):
    """The `UCB` module with beta = 1.3 against BoTorch's `UpperConfidenceBound`."""

    @pytest.fixture
    def score(self, problem):
        return UCB(problem.model, BETA)

    @pytest.fixture
    def reference(self, problem):
        # BoTorch weights the deviation by sqrt(beta); ours multiplies std by beta: pass beta**2.
        return UpperConfidenceBound(problem.model, beta=BETA**2)

    def test_sums_mean_plus_beta_std_over_q(self, problem, score, point_sampler):
        X = _points(problem, point_sampler, 5, seed=1, q=3)  # 5 x 3 x d
        mean, std = problem.model.mean_std(X)  # 5 x 3 each
        torch.testing.assert_close(score(X), (mean + BETA * std).sum(-1), atol=1e-12, rtol=0.0)


@pytest.mark.parametrize("beta", [0.0, 0.7, 2.5])
def test_ucb_equals_botorch_with_squared_beta(problem, point_sampler, beta):
    # The contract checks beta = 1.3; here the weight's convention at zero and other values.
    X = _points(problem, point_sampler, 32, seed=0)
    ours = UCB(problem.model, beta)(X)
    reference = UpperConfidenceBound(problem.model, beta=beta**2)(X)
    assert ours.shape == reference.shape == (32,)
    torch.testing.assert_close(ours, reference, atol=1e-8, rtol=0.0)


def test_upper_confidence_bound_formula_and_gradcheck(dtype):
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(4, 3, generator=g, dtype=dtype)
    std = torch.rand(4, 3, generator=g, dtype=dtype) + 0.1
    beta = torch.tensor(1.7, dtype=dtype)
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(upper_confidence_bound(mean, std, beta), mean + 1.7 * std,
                               atol=atol, rtol=0.0)
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(lambda m, s: upper_confidence_bound(m, s, beta),
                                        (mean.requires_grad_(), std.requires_grad_()))


@pytest.mark.parametrize("t, d", [(1, 1), (1, 4), (10, 3), (100, 7), (10_000, 20)])
def test_ucb_beta_matches_formula(t, d):
    # Kandasamy et al.: beta_t = 0.2 d log(2 t) in BoTorch's (variance) convention; ours is
    # its square root because it multiplies the standard deviation.
    assert ucb_beta(t, d) == pytest.approx(math.sqrt(0.2 * d * math.log(2 * t)), rel=1e-15)


def test_ucb_beta_grows_with_t_and_d_and_handles_zero():
    values = [ucb_beta(t, 3) for t in (1, 2, 5, 20, 100, 1000)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert ucb_beta(10, 2) < ucb_beta(10, 5)
    # No observations yet (or d = 0) falls back to t = 1, d = 1 instead of log(0).
    assert ucb_beta(0, 3) == ucb_beta(1, 3) > 0
    assert ucb_beta(5, 0) == ucb_beta(5, 1)
