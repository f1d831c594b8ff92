"""Tests for bopt.acquisition.thompson: pathwise posterior samples (Matheron's rule).

The score built from a path (registry key "ts") runs under the `AcquisitionContract` in
tests/acquisition/test_registry.py."""

import math

import torch

from bopt.acquisition import draw_posterior_path
from bopt.model import NOISE_FLOOR, BoptGP, cholesky_with_jitter

NUM_PATHS = 2000
NUM_FEATURES = 1024


def _test_points(problem, point_sampler, n=6, seed=10):
    return point_sampler(problem.layout, n, torch.Generator().manual_seed(seed))  # n x d


def _draw(model, seed, **kwargs):
    return draw_posterior_path(model, generator=torch.Generator().manual_seed(seed), **kwargs)


def _variance_given_features(model, path, X):
    """Variance of the paths at `X` over weights and noise, given the drawn features.

    f(x) = u(x) w + k(x, X) A^-1 (y - e) with u(x) = phi(x) - k(x, X) A^-1 Phi(X), A = K + s^2 I,
    so Var f(x) = |u(x)|^2 + s^2 |A^-1 k(X, x)|^2.
    """
    Ks = model.kernel(X, model.train_X)  # t x n
    A_inv_Ks = torch.cholesky_solve(Ks.T, model.L)  # n x t
    u = path.features(X) - A_inv_Ks.T @ path.features(model.train_X)  # t x M
    return (u * u).sum(-1) + model.noise * (A_inv_Ks * A_inv_Ks).sum(0)  # t


def _model_on_subset(problem, k, noise=None):
    """The fitted hyperparameters on the first `k` observations (no refit)."""
    hypers = problem.model.hypers
    noise = problem.model.noise if noise is None else torch.tensor(noise, dtype=torch.float64)
    X, Y = problem.X[:k], problem.Y[:k]
    L, jitter = cholesky_with_jitter(X, hypers, noise, problem.layout)
    return BoptGP(X, Y, problem.layout, hypers, noise + jitter, L)


def test_path_moments_match_the_posterior(problem, point_sampler):
    """2000 paths at 6 test points, on both layouts, drawn as 50 independent draws of 40
    paths (256 features each): paths of one draw share its features and hence its
    O(1 / sqrt(num_features)) kernel error, which only averages out across draws. The GP
    keeps the fitted hyperparameters but only 5 observations, so that the posterior
    variance stays a sizeable fraction of the prior's and the kernel error does not swamp it.

    Each draw g gives m_g (mean of its paths) and v_g (mean squared deviation from the
    model's mean), unbiased for the posterior mean and variance and i.i.d. over draws, so
    both 50-draw averages must lie within 5 standard errors (a 5-sigma CLT band); the
    variance band must be narrower than half the variance, so the check is informative.
    """
    model = _model_on_subset(problem, 5)
    X = _test_points(problem, point_sampler)
    mean, std = model.mean_std(X)
    num_draws = 50
    F = torch.stack([_draw(model, seed=1000 + i, num_paths=NUM_PATHS // num_draws,
                           num_features=256)(X) for i in range(num_draws)])  # draws x t x 40
    m_g = F.mean(-1)  # draws x t
    v_g = ((F - mean[:, None]) ** 2).mean(-1)  # draws x t
    se_mean, se_var = m_g.std(0) / num_draws**0.5, v_g.std(0) / num_draws**0.5
    assert bool(((m_g.mean(0) - mean).abs() <= 5 * se_mean).all())
    assert bool(((v_g.mean(0) - std**2).abs() <= 5 * se_var).all())
    assert bool((5 * se_var < 0.5 * std**2).all())


def test_paths_of_one_draw_have_the_matheron_variance(problem, point_sampler):
    """One draw, 2000 paths sharing its features: the sample mean is within 5 standard
    errors of the posterior mean (unbiased given the features), and the sample variance
    within 5 sigma of the variance given the features (for Gaussian samples a sample
    variance has relative sd sqrt(2 / (s - 1)) = 3.2%, so the band is 16%)."""
    model = problem.model
    X = _test_points(problem, point_sampler)
    path = _draw(model, seed=0, num_paths=NUM_PATHS, num_features=NUM_FEATURES)
    F = path(X)  # t x s
    assert F.shape == (X.shape[0], NUM_PATHS)
    mean, _ = model.mean_std(X)
    sample_mean, sample_var = F.mean(-1), F.var(-1)
    assert bool(((sample_mean - mean).abs() <= 5 * (sample_var / NUM_PATHS).sqrt()).all())
    expected = _variance_given_features(model, path, X)
    assert bool(((sample_var / expected - 1).abs() <= 5 * math.sqrt(2 / (NUM_PATHS - 1))).all())


def test_paths_interpolate_training_data_when_noise_is_tiny(problem):
    model = _model_on_subset(problem, problem.X.shape[0], noise=NOISE_FLOOR)
    F = _draw(model, seed=1, num_paths=50)(problem.X)  # n x 50
    # f(X) = Y - e - s^2 A^-1 (Y - Phi w - e) with e ~ N(0, 1e-6): within 1e-2 of the data,
    # against a prior standard deviation above 1.
    torch.testing.assert_close(F, problem.Y.expand_as(F), atol=1e-2, rtol=0.0)
    assert float(model.kernel(problem.X[:1], problem.X[:1])) > 1.0


def test_equal_seeds_equal_paths_and_global_rng_untouched(problem, point_sampler):
    X = _test_points(problem, point_sampler)
    state = torch.random.get_rng_state()
    a, b, c = (_draw(problem.model, seed, num_paths=3)(X) for seed in (4, 4, 5))
    assert torch.equal(state, torch.random.get_rng_state())
    torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)
    assert not torch.allclose(a, c)


def test_single_path_shapes(problem, point_sampler):
    # Batch-versus-loop and gradcheck of a path are the registry's "ts" score under the
    # AcquisitionContract (tests/acquisition/test_registry.py); here the unsummed shapes.
    path = _draw(problem.model, seed=6)
    X = _test_points(problem, point_sampler, n=12).reshape(4, 3, -1)  # b x q x d
    assert path(X).shape == (4, 3)
    assert path(X[0]).shape == (3,)
    assert path(X.reshape(2, 2, 3, -1)).shape == (2, 2, 3)


def test_gradients_wrt_inputs_are_finite(problem, point_sampler):
    path = _draw(problem.model, seed=7)
    X = torch.cat([_test_points(problem, point_sampler), problem.X[:2]])  # incl. data points
    X = X.unsqueeze(-2).clone().requires_grad_(True)  # b x 1 x d
    (grad,) = torch.autograd.grad(path(X).sum(), X)
    assert bool(torch.isfinite(grad).all())
    continuous = list(problem.layout.continuous)
    assert float(grad[..., continuous].abs().sum()) > 0
    # Category indices are not differentiable inputs: their gradient is exactly zero.
    assert bool((grad[..., list(problem.layout.categorical)] == 0).all())


def test_path_closed_form_gradient_equals_autograd(problem, point_sampler):
    """`PosteriorPath.value_and_grad` (features and kernel differentiated in closed form)
    against autograd through the path, on the continuous and the mixed model."""
    from bopt.acquisition import draw_posterior_path

    path = draw_posterior_path(problem.model, generator=torch.Generator().manual_seed(2),
                               num_features=64)
    X = point_sampler(problem.layout, 12, torch.Generator().manual_seed(5)).reshape(
        4, 3, problem.layout.d)  # b x q x d
    Z = X.clone().requires_grad_(True)
    value = path(Z)
    (expected,) = torch.autograd.grad(value.sum(), Z)
    ours, grad = path.value_and_grad(X)
    numeric = torch.zeros(problem.layout.d, dtype=torch.bool)
    numeric[list(problem.layout.continuous)] = True
    torch.testing.assert_close(ours, value.detach(), atol=1e-10, rtol=1e-10)
    assert expected[..., numeric].abs().max() > 1e-3
    torch.testing.assert_close(grad, expected * numeric, atol=1e-9, rtol=1e-7)
