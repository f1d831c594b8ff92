"""Tests for bopt.acquisition.common: batch promotion and the one posterior helper."""

import pytest
import torch
from acquisition_contract import candidate_sets
from botorch.models import SingleTaskGP

from bopt.acquisition import as_batch, posterior_mean_std
from bopt.kernels import make_mixed_kernel, mixed


def test_as_batch_promotes_q_x_d_only():
    X = torch.arange(6.0).reshape(2, 3)  # q x d
    promoted = as_batch(X)
    assert promoted.shape == (1, 2, 3)
    assert torch.equal(promoted[0], X)
    for shape in ((4, 2, 3), (5, 4, 2, 3)):  # b x q x d, and two batch dims
        Z = torch.zeros(shape)
        assert as_batch(Z) is Z


class _FastPathOnly:
    """A model with `mean_std` whose `posterior` must not be used."""

    def mean_std(self, X):
        return X.sum(-1), X.prod(-1)

    def posterior(self, X):
        raise AssertionError("posterior_mean_std went through posterior despite mean_std")


def test_posterior_mean_std_prefers_the_models_mean_std():
    X = torch.rand(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, std = posterior_mean_std(_FastPathOnly(), X)
    torch.testing.assert_close(mean, X.sum(-1), atol=0.0, rtol=0.0)
    torch.testing.assert_close(std, X.prod(-1), atol=0.0, rtol=0.0)


def test_fast_path_agrees_with_the_botorch_posterior(problem, point_sampler):
    # bopt's GP answers through its cached mean_std; BoTorch's generic path must agree.
    X = candidate_sets(problem, point_sampler, (5, 2), seed=1)  # 5 x 2 x d
    mean, std = posterior_mean_std(problem.model, X)
    assert mean.shape == std.shape == (5, 2)
    with torch.no_grad():
        posterior = problem.model.posterior(X)
    torch.testing.assert_close(mean, posterior.mean.squeeze(-1), atol=1e-8, rtol=0.0)
    # Variances rather than deviations: where the variance is ~1e-10 the square root turns
    # the paths' rounding differences into ~1e-5.
    torch.testing.assert_close(std**2, posterior.variance.squeeze(-1), atol=1e-8, rtol=0.0)


@pytest.mark.parametrize("shape", [(3,), (5, 3), (2, 5, 3)])
def test_plain_single_task_gp_answers_through_its_posterior(mixed_problem, point_sampler,
                                                            shape):
    """`q`, `b x q` and `2 x b x q` candidate shapes, from a model without `mean_std`."""
    gp = SingleTaskGP(mixed_problem.X, mixed_problem.Y, outcome_transform=None,
                      covar_module=make_mixed_kernel(mixed_problem.layout).double())
    gp.eval()
    assert not hasattr(gp, "mean_std")
    X = candidate_sets(mixed_problem, point_sampler, shape, seed=2)  # ... x q x d
    mean, std = posterior_mean_std(gp, X)
    assert mean.shape == std.shape == shape
    with torch.no_grad():
        posterior = gp.posterior(X)
    torch.testing.assert_close(mean, posterior.mean.squeeze(-1), atol=1e-12, rtol=0.0)
    torch.testing.assert_close(std, posterior.variance.sqrt().squeeze(-1), atol=1e-12, rtol=0.0)
    assert bool((std > 0).all())


def test_plain_single_task_gp_gives_the_latent_posterior(mixed_problem, point_sampler):
    """The dense textbook GP formulas (Rasmussen & Williams 2006, eq. 2.23-2.24): the
    deviation is the latent function's, without the observation noise."""
    layout = mixed_problem.layout
    kernel = make_mixed_kernel(layout).double()
    gp = SingleTaskGP(mixed_problem.X, mixed_problem.Y, outcome_transform=None,
                      covar_module=kernel)
    gp.likelihood.noise = torch.tensor([0.05], dtype=torch.float64)
    gp.eval()
    X = candidate_sets(mixed_problem, point_sampler, (4, 2), seed=3)  # 4 x 2 x d
    mean, std = posterior_mean_std(gp, X)
    with torch.no_grad():
        cols = (layout.continuous, layout.categorical)
        train_X, train_Y, c = mixed_problem.X, mixed_problem.Y, gp.mean_module.constant
        A = mixed(train_X, train_X, kernel.hypers, *cols) + 0.05 * torch.eye(
            train_X.shape[0], dtype=torch.float64)
        Ks = mixed(X, train_X, kernel.hypers, *cols)  # 4 x 2 x n
        expected_mean = c + (Ks @ torch.linalg.solve(A, train_Y - c)).squeeze(-1)  # 4 x 2
        solved = torch.linalg.solve(A, Ks.transpose(-1, -2))  # 4 x n x 2
        expected_var = kernel.hypers.scales.sum() - (Ks * solved.transpose(-1, -2)).sum(-1)
    torch.testing.assert_close(mean, expected_mean, atol=1e-8, rtol=0.0)
    torch.testing.assert_close(std**2, expected_var, atol=1e-8, rtol=0.0)


def _closed_form_scores(model):
    """log EI and UCB as the registry builds them, each with its closed-form gradient."""
    from bopt.acquisition import build_score
    from bopt.acquisition.registry import ScoreContext

    context = ScoreContext(best_f=model.train_Y.max(), num_observations=model.train_X.shape[0],
                           d=model.layout.d, generator=torch.Generator().manual_seed(0))
    return {key: build_score(key, model, context) for key in ("ei", "ucb")}


@pytest.mark.parametrize("q", [1, 3])
def test_closed_form_value_and_grad_equals_autograd(problem, point_sampler, q):
    """`PosteriorScore.value_and_grad` (no autograd graph) against autograd through the
    score, near the data (where the posterior std is small) and far from it."""
    X = point_sampler(problem.layout, 8 * q, torch.Generator().manual_seed(3))
    X = torch.cat([X, problem.X[:4 * q] + 1e-3]).reshape(-1, q, problem.layout.d)  # b x q x d
    for key, score in _closed_form_scores(problem.model).items():
        assert score.value_and_grad is not None, key
        Z = X.clone().requires_grad_(True)
        value = score(Z)
        (expected,) = torch.autograd.grad(value.sum(), Z)
        ours, grad = score.value_and_grad(X)
        assert ours.shape == value.shape and grad.shape == X.shape
        torch.testing.assert_close(ours, value.detach(), atol=1e-9, rtol=1e-9)
        numeric = torch.zeros(problem.layout.d, dtype=torch.bool)
        numeric[list(problem.layout.continuous)] = True  # categorical columns: no gradient
        assert expected[..., numeric].abs().max() > 1e-3
        torch.testing.assert_close(grad[..., numeric], expected[..., numeric], atol=1e-8,
                                   rtol=1e-6)
        assert torch.equal(grad[..., ~numeric], torch.zeros_like(grad[..., ~numeric]))


def test_closed_form_is_off_for_models_without_the_fast_path(continuous_problem):
    """A BoTorch model has no `mean_std_pullback`: the score falls back to autograd."""
    from bopt.acquisition.common import PosteriorScore

    p = continuous_problem
    gp = SingleTaskGP(p.X, p.Y)
    score = PosteriorScore(gp, lambda m, s: m + s, lambda m, s: (m + s, m * 0 + 1, s * 0 + 1))
    assert score.value_and_grad is None
    assert score(p.X[:3].unsqueeze(1)).shape == (3,)
