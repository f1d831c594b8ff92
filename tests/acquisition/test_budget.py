"""Scores on a model over configuration and budget (`bopt.acquisition.budget`): the budget
column fixed, and the first rung's promotion probability, against closed forms and
autograd."""

from __future__ import annotations

import math

import pytest
import torch

from bopt.acquisition import build_score
from bopt.acquisition.budget import AtBudget, PromotionWeighted, with_budget
from bopt.acquisition.registry import ScoreContext


def _scores(problem, at: float, rung: float, threshold: float, noise: float):
    """log EI at budget position `at` on the continuous toy problem, whose last input
    column plays the budget, and the same weighted by passing `rung`."""
    model = problem.model
    context = ScoreContext(best_f=model.train_Y.max(), num_observations=model.train_X.shape[0],
                           d=model.layout.d, generator=torch.Generator().manual_seed(0))
    plain = AtBudget(build_score("ei", model, context), at)
    return plain, PromotionWeighted(plain, model, rung, threshold, noise)


def test_with_budget_appends_the_column():
    X = torch.rand(4, 2, 3, dtype=torch.float64)
    Z = with_budget(X, 0.25)
    assert Z.shape == (4, 2, 4) and torch.equal(Z[..., :3], X)
    assert torch.all(Z[..., 3] == 0.25)


def test_the_promotion_term_is_the_normal_tail_of_the_noisy_value(continuous_problem):
    model, noise = continuous_problem.model, 0.05
    _, weighted = _scores(continuous_problem, 1.0, 0.0, threshold=0.3, noise=noise)
    X = torch.rand(6, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mean, std = model.mean_std(with_budget(X, 0.0))  # 6 x 1
    expected = torch.distributions.Normal(0.0, 1.0).cdf(
        (mean - 0.3) / (std**2 + noise).sqrt()).log()
    torch.testing.assert_close(weighted.log_promotion(X), expected, atol=1e-12, rtol=1e-10)
    plain, _ = _scores(continuous_problem, 1.0, 0.0, 0.3, noise)
    torch.testing.assert_close(weighted(X), plain(X) + expected.sum(-1))


@pytest.mark.parametrize("q", [1, 2])
@pytest.mark.parametrize("threshold", [-0.5, 0.4, 8.0])  # easy, middling, far in the tail
def test_closed_form_gradients_equal_autograd(continuous_problem, q, threshold):
    generator = torch.Generator().manual_seed(2)
    X = torch.rand(5 * q, 2, dtype=torch.float64, generator=generator).reshape(5, q, 2)
    for score in _scores(continuous_problem, 0.9, 0.1, threshold, noise=0.01):
        assert score.value_and_grad is not None
        Z = X.clone().requires_grad_(True)
        value = score(Z)
        (expected,) = torch.autograd.grad(value.sum(), Z)
        ours, grad = score.value_and_grad(X)
        assert ours.shape == value.shape == (5,) and grad.shape == X.shape
        assert torch.isfinite(ours).all() and torch.isfinite(grad).all()
        torch.testing.assert_close(ours, value.detach(), atol=1e-9, rtol=1e-9)
        assert expected.abs().max() > 1e-3
        torch.testing.assert_close(grad, expected, atol=1e-8, rtol=1e-6)


def test_a_lower_threshold_weighs_less_and_the_weight_follows_the_rung_mean(continuous_problem):
    """Raising the bar lowers every candidate's weight; between two candidates, the one
    with the better predicted value at the rung loses less (equal std up to rounding)."""
    X = torch.rand(64, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _, easy = _scores(continuous_problem, 1.0, 0.0, threshold=-1.0, noise=0.0)
    _, hard = _scores(continuous_problem, 1.0, 0.0, threshold=1.0, noise=0.0)
    assert torch.all(hard.log_promotion(X) < easy.log_promotion(X))
    assert torch.all(easy.log_promotion(X) <= 0.0)
    assert float(hard.log_promotion(X).min()) > -math.inf


def test_without_a_closed_form_inside_the_weighted_score_falls_back_to_autograd(
        continuous_problem):
    inner = AtBudget(lambda Z: Z.sum((-1, -2)), 1.0)
    assert inner.value_and_grad is None
    weighted = PromotionWeighted(inner, continuous_problem.model, 0.0, 0.0, 0.0)
    assert weighted.value_and_grad is None
    assert weighted(torch.rand(3, 1, 2, dtype=torch.float64)).shape == (3,)
