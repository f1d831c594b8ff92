"""Tests for bopt.model: the MAP fit, its objective, the Cholesky helpers and the GP class.

The model works in float64 only (`fit_gp` documents float64 inputs), so these tests do too.
"""

import math

import pytest
import torch
from torch.distributions import LogNormal

import bopt.model
from bopt.layout import Layout
from bopt.kernels import MixedHypers, mixed
from bopt.model import (NOISE_FLOOR, BoptGP, FitError, _Theta, cholesky_with_jitter, fit_gp,
                        neg_log_posterior)

F64 = torch.float64


def _spec(layout):
    return _Theta(len(layout.continuous), len(layout.categorical))


def _test_points(problem, point_sampler, seed, shape=(4, 3)):
    """`b x q x d` valid points for the problem's layout."""
    b, q = shape
    X = point_sampler(problem.layout, b * q, torch.Generator().manual_seed(seed))
    return X.reshape(b, q, problem.layout.d)


def _model_with_noise(problem, noise):
    """The fitted hyperparameters with a different noise variance (no refit)."""
    hypers = problem.model.hypers
    L, jitter = cholesky_with_jitter(problem.X, hypers, torch.tensor(noise, dtype=F64),
                                     problem.layout)
    return BoptGP(problem.X, problem.Y, problem.layout, hypers, noise + jitter, L)


def test_fit_returns_finite_hyperparameters_within_bounds(problem):
    spec = _spec(problem.layout)
    lo, hi = spec.bounds(F64, "cpu")
    theta = problem.theta
    assert theta.shape == (spec.p,) and theta.dtype == F64
    assert bool(torch.isfinite(theta).all())
    assert bool((theta >= lo).all()) and bool((theta <= hi).all())
    # Scales of absent kernel terms are not fitted: they stay at the prior mode.
    frozen = ~spec.free("cpu")
    torch.testing.assert_close(theta[frozen], spec.mode(F64, "cpu")[frozen], atol=0.0, rtol=0.0)
    # The model carries exactly these hyperparameters (noise plus any jitter).
    hypers, noise = spec.unpack(theta)
    for got, want in zip(problem.model.hypers, hypers):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(problem.model.noise, noise + problem.report.jitter, atol=1e-12,
                               rtol=1e-9)
    assert problem.report.warnings == []
    assert problem.report.neg_log_posterior == pytest.approx(
        float(neg_log_posterior(theta, problem.X, problem.Y, problem.layout)), abs=1e-12)


def test_fit_beats_the_prior_mode_and_is_a_local_optimum(problem):
    spec = _spec(problem.layout)
    nlp = lambda t: neg_log_posterior(t, problem.X, problem.Y, problem.layout)  # noqa: E731
    fitted = float(nlp(problem.theta))
    assert fitted <= float(nlp(spec.mode(F64, "cpu")))
    # No free coordinate improves by a 0.01 step either way (bounds are not active here).
    free = spec.free("cpu").nonzero().flatten()
    steps = torch.eye(spec.p, dtype=F64)[free] * 0.01  # f x p
    neighbours = torch.cat([problem.theta + steps, problem.theta - steps])  # 2f x p
    assert float(nlp(neighbours).min()) >= fitted - 1e-9


def test_warm_start_returns_the_same_optimum(problem):
    _, theta, report = fit_gp(problem.X, problem.Y, problem.layout, warm_start=problem.theta)
    # Starting at the optimum, the value cannot get worse; the hyperparameters may drift
    # along the flat directions of the posterior by up to the fit's stopping tolerance.
    assert report.neg_log_posterior <= problem.report.neg_log_posterior + 1e-9
    assert report.neg_log_posterior == pytest.approx(problem.report.neg_log_posterior, abs=1e-6)
    torch.testing.assert_close(theta, problem.theta, atol=1e-2, rtol=0.0)


def _dense_neg_log_posterior(theta, X, Y, layout):
    """0.5 y^T K^-1 y + 0.5 log det K + n/2 log 2 pi - log prior (LogNormal kernel values,
    Gamma noise), all / n, from dense solves (differentiable by autograd)."""
    spec = _spec(layout)
    n, dc, dk = X.shape[0], spec.dc, spec.dk
    values = theta.exp()
    hypers = MixedHypers(values[:dc], values[dc:dc + dk], values[dc + dk:dc + dk + 3])
    K = mixed(X, X, hypers, layout.continuous, layout.categorical) + values[-1] * torch.eye(
        n, dtype=F64)
    y = Y.squeeze(-1)
    nll = 0.5 * y @ torch.linalg.solve(K, y) + 0.5 * torch.logdet(K) + 0.5 * n * math.log(
        2 * math.pi)
    # LogNormal priors on the kernel values; the Hvarfner et al. lengthscale prior for
    # continuous columns, and only the scales of the kernel terms that exist. The noise
    # variance has a Gamma(1.1, rate 1) prior, without its normalising constant.
    num_terms = 1 if (dc == 0 or dk == 0) else 3
    used_scales = ([True, True, True] if num_terms == 3 else
                   [dk == 0, dc == 0, False])
    locs = ([math.sqrt(2) + 0.5 * math.log(max(dc, 1))] * dc + [0.0] * dk
            + [math.log(1 / num_terms) + 1.0] * 3)
    sds = [math.sqrt(3)] * dc + [1.0] * dk + [1.0] * 3
    used = torch.tensor([True] * (dc + dk) + used_scales)
    log_prior = LogNormal(torch.tensor(locs, dtype=F64), torch.tensor(sds, dtype=F64)).log_prob(
        values[:-1])[used].sum()
    log_prior = log_prior + 0.1 * torch.log(values[-1]) - 1.0 * values[-1]
    return (nll - log_prior) / n


def _random_theta(layout, seed):
    spec = _spec(layout)
    lo, hi = spec.bounds(F64, "cpu")
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(spec.p, generator=g, dtype=F64) * 0.5 + 0.25 * (hi - lo)


def test_neg_log_posterior_equals_dense_formula(problem):
    theta = _random_theta(problem.layout, 3)
    expected = _dense_neg_log_posterior(theta, problem.X, problem.Y, problem.layout)
    ours = neg_log_posterior(theta, problem.X, problem.Y, problem.layout)
    assert ours.shape == ()
    torch.testing.assert_close(ours, expected, atol=1e-10, rtol=1e-10)


def test_neg_log_posterior_gradient_equals_autograd_through_dense_solves(problem):
    """The objective's autograd gradient (through the closed-form 0.5 (K^-1 - a a')) against
    autograd of the dense formula."""
    theta = _random_theta(problem.layout, 5)
    grads = []
    for f in (neg_log_posterior, _dense_neg_log_posterior):
        t = theta.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(t, problem.X, problem.Y, problem.layout), t)
        grads.append(grad)
    assert grads[0].abs().max() > 1e-3  # not vacuous
    torch.testing.assert_close(grads[0], grads[1], atol=1e-9, rtol=1e-8)


@pytest.mark.parametrize("known,penalty", [(False, 0.0), (True, 0.0), (False, 0.1)])
def test_objective_value_and_grad_equals_autograd(problem, known, penalty, monkeypatch):
    """The fit's closed-form value and gradient in theta (no autograd) against autograd of
    the objective, for several hyperparameter sets at once, with a jitter, with known
    per-observation noise and with the (optional) short-lengthscale penalty."""
    monkeypatch.setattr(bopt.model, "SHORT_LENGTHSCALE_PENALTY", penalty)
    n = problem.X.shape[0]
    known_noise = 0.01 + 0.05 * torch.rand(n, generator=torch.Generator().manual_seed(1),
                                           dtype=F64) if known else None
    objective = bopt.model._Objective(problem.X, problem.Y, problem.layout, jitter=1e-6,
                                      known_noise=known_noise)
    theta = torch.stack([_random_theta(problem.layout, seed) for seed in (5, 6, 7)])
    t = theta.clone().requires_grad_(True)
    value = objective(t)
    (expected,) = torch.autograd.grad(value.sum(), t)
    ours, grad = objective.value_and_grad(theta)
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(ours, value.detach(), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(grad, expected, atol=1e-10, rtol=1e-8)


def test_gaussian_nll_without_a_factor_is_inf_with_no_gradient():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=g, dtype=F64)
    K = torch.stack([A @ A.T + torch.eye(5, dtype=F64), -torch.eye(5, dtype=F64)])
    y = torch.randn(5, 1, generator=g, dtype=F64)
    K.requires_grad_(True)
    value = bopt.model._GaussianNLL.apply(K, y)
    assert math.isfinite(float(value[0].detach())) and float(value[1].detach()) == math.inf
    (grad,) = torch.autograd.grad(value.sum(), K)  # inf, but a gradient all the same
    Kd = K[0].detach().clone().requires_grad_(True)
    dense = 0.5 * y[:, 0] @ torch.linalg.solve(Kd, y[:, 0]) + 0.5 * torch.logdet(Kd)
    (ref,) = torch.autograd.grad(dense, Kd)
    torch.testing.assert_close(value[0], dense.detach(), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(grad[0], ref, atol=1e-12, rtol=1e-10)
    assert torch.equal(grad[1], torch.zeros(5, 5, dtype=F64))


def test_neg_log_posterior_batched_equals_loop(problem):
    spec = _spec(problem.layout)
    g = torch.Generator().manual_seed(4)
    theta = spec.mode(F64, "cpu") + 0.5 * torch.randn(2, 3, spec.p, generator=g, dtype=F64)
    batched = neg_log_posterior(theta, problem.X, problem.Y, problem.layout)
    assert batched.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            single = neg_log_posterior(theta[i, j], problem.X, problem.Y, problem.layout)
            torch.testing.assert_close(batched[i, j], single, atol=1e-12, rtol=1e-12)


def test_mean_std_equals_botorch_posterior(problem, point_sampler):
    X = _test_points(problem, point_sampler, seed=5)  # b x q x d
    mean, std = problem.model.mean_std(X)
    assert mean.shape == std.shape == X.shape[:-1]
    posterior = problem.model.posterior(X)
    torch.testing.assert_close(mean, posterior.mean.squeeze(-1), atol=1e-8, rtol=0.0)
    torch.testing.assert_close(std, posterior.variance.sqrt().squeeze(-1), atol=1e-8, rtol=0.0)


def test_mean_std_batched_equals_loop(problem, point_sampler):
    X = _test_points(problem, point_sampler, seed=6)  # b x q x d
    mean, std = problem.model.mean_std(X)
    for i in range(X.shape[0]):
        m_i, s_i = problem.model.mean_std(X[i])
        torch.testing.assert_close(mean[i], m_i, atol=1e-12, rtol=0.0)
        torch.testing.assert_close(std[i], s_i, atol=1e-12, rtol=0.0)


def test_cholesky_with_jitter_on_rank_deficient_covariance(continuous_layout):
    # 30 rows but only 3 distinct points, long lengthscales, zero noise: K has rank <= 3.
    g = torch.Generator().manual_seed(7)
    X = torch.rand(3, 3, generator=g, dtype=F64).repeat(10, 1)  # 30 x 3
    hypers = MixedHypers(torch.full((3,), 50.0, dtype=F64), torch.ones(0, dtype=F64),
                         torch.tensor([1.0, 1.0, 1.0], dtype=F64))
    noise = torch.tensor(0.0, dtype=F64)
    L, jitter = cholesky_with_jitter(X, hypers, noise, continuous_layout)
    assert jitter > 0 and jitter in bopt.model._JITTERS
    assert bool(torch.isfinite(L).all())
    K = mixed(X, X, hypers, continuous_layout.continuous, ())
    torch.testing.assert_close(L @ L.T, K + jitter * torch.eye(30, dtype=F64), atol=1e-10,
                               rtol=0.0)


def test_fit_error_when_even_the_largest_jitter_fails(continuous_layout, monkeypatch):
    g = torch.Generator().manual_seed(8)
    X = torch.rand(3, 3, generator=g, dtype=F64).repeat(10, 1)
    hypers = MixedHypers(torch.full((3,), 50.0, dtype=F64), torch.ones(0, dtype=F64),
                         torch.ones(3, dtype=F64))
    monkeypatch.setattr(bopt.model, "_JITTERS", (0.0,))
    with pytest.raises(FitError, match="not positive definite even with jitter 0"):
        cholesky_with_jitter(X, hypers, torch.tensor(0.0, dtype=F64), continuous_layout)


def test_fit_error_on_nan_inputs(continuous_problem):
    X = continuous_problem.X.clone()
    X[3, 1] = float("nan")
    with pytest.raises(FitError, match=r"not positive definite even with jitter 0\.01"):
        fit_gp(X, continuous_problem.Y, continuous_problem.layout, max_iter=2)


def test_condition_on_equals_gp_on_the_joint_data(problem, point_sampler):
    model = _model_with_noise(problem, NOISE_FLOOR)
    g = torch.Generator().manual_seed(9)
    new_X = point_sampler(problem.layout, 3, g)  # 3 x d
    new_Y = torch.randn(3, 1, generator=g, dtype=F64)
    conditioned = model.condition_on(new_X, new_Y)

    # Refitting-free: the hyperparameters and noise stay, the data grows.
    for got, want in zip(conditioned.hypers, model.hypers):
        torch.testing.assert_close(got, want, atol=0.0, rtol=0.0)
    assert conditioned.train_X.shape[0] == problem.X.shape[0] + 3
    assert model.train_X.shape[0] == problem.X.shape[0]  # the original is untouched

    # The same GP as one built on the joint data, checked with the dense formulas.
    joint_X, joint_Y = torch.cat([problem.X, new_X]), torch.cat([problem.Y, new_Y])
    test_X = point_sampler(problem.layout, 5, g)
    cols = (problem.layout.continuous, problem.layout.categorical)
    A = mixed(joint_X, joint_X, model.hypers, *cols) + conditioned.noise * torch.eye(
        joint_X.shape[0], dtype=F64)
    Ks = mixed(test_X, joint_X, model.hypers, *cols)
    mean = (Ks @ torch.linalg.solve(A, joint_Y)).squeeze(-1)
    var = torch.diagonal(mixed(test_X, test_X, model.hypers, *cols)) - (
        Ks * torch.linalg.solve(A, Ks.T).T).sum(-1)
    got_mean, got_std = conditioned.mean_std(test_X)
    torch.testing.assert_close(got_mean, mean, atol=1e-8, rtol=0.0)
    torch.testing.assert_close(got_std, var.sqrt(), atol=1e-8, rtol=0.0)

    # With noise 1e-6 (prior variance ~1), the mean at the added points moves to their Y:
    # the residual is noise * [(K + noise I)^-1 Y]_i, which the conditioning of K amplifies to
    # ~1e-3 here; 1e-2 is still far below the O(1) spread of the new Y. The latent variance
    # at an observed point can never exceed the noise variance.
    mean_new, std_new = conditioned.mean_std(new_X)
    torch.testing.assert_close(mean_new, new_Y.squeeze(-1), atol=1e-2, rtol=0.0)
    assert float(std_new.max()) <= math.sqrt(float(conditioned.noise)) * (1 + 1e-6)


def test_fit_leaves_global_rng_untouched(problem):
    state = torch.random.get_rng_state()
    fit_gp(problem.X, problem.Y, problem.layout, max_iter=3)
    assert torch.equal(state, torch.random.get_rng_state())


def _toy_2d(*, seed: int, n: int, f):
    """`n x 2` seeded uniform inputs, targets `f(X)` summed over columns, and their layout."""
    X = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return X, f(X).sum(-1, keepdim=True), Layout(d=2, continuous=(0, 1))


def test_fit_with_no_iterations_keeps_the_warm_start_alone():
    # The fallback to last round's hyperparameters must not silently pick the prior mode.
    X, Y, layout = _toy_2d(seed=3, n=12, f=lambda X: torch.sin(5 * X))
    _, theta, _ = fit_gp(X, Y, layout)
    far = theta + 0.7  # a warm start well away from the optimum and the prior mode
    _, kept, report = fit_gp(X, Y, layout, warm_start=far, max_iter=0)
    assert report.num_starts == 1
    torch.testing.assert_close(kept, far, atol=1e-12, rtol=0.0)


def test_fit_reports_the_plain_log_marginal_likelihood():
    X, Y, layout = _toy_2d(seed=4, n=10, f=lambda X: torch.cos(4 * X))
    model, _, report = fit_gp(X, Y, layout)
    K = model.kernel(X, X) + model.noise * torch.eye(10, dtype=torch.float64)
    dense = torch.distributions.MultivariateNormal(torch.zeros(10, dtype=torch.float64), K)
    assert abs(report.log_marginal_likelihood - float(dense.log_prob(Y.squeeze(-1)))) < 1e-8


def test_known_noise_enters_the_covariance_of_its_observation(continuous_problem):
    """With per-observation variances the factor is that of K + (noise + jitter) I +
    diag(known); the posterior equals the dense formula, and a point with a huge known
    variance barely pulls the mean."""
    p = continuous_problem
    n = p.X.shape[0]
    known = torch.zeros(n, dtype=torch.float64)
    known[0] = 1e4
    model, _, _ = fit_gp(p.X, p.Y, p.layout, warm_start=p.theta, max_iter=0, known_noise=known)
    K = model.kernel(p.X, p.X) + model.noise * torch.eye(n, dtype=torch.float64) + torch.diag(known)
    x = p.X[:1].unsqueeze(-2)
    mean, std = model.mean_std(x)
    ks = model.kernel(p.X[:1], p.X)  # 1 x n
    dense_mean = ks @ torch.linalg.solve(K, p.Y)
    dense_var = model.kernel(p.X[:1], p.X[:1]) - ks @ torch.linalg.solve(K, ks.T)
    torch.testing.assert_close(mean, dense_mean.reshape(1, 1), atol=1e-9, rtol=0.0)
    torch.testing.assert_close(std, dense_var.sqrt().reshape(1, 1), atol=1e-9, rtol=0.0)
    plain, _, _ = fit_gp(p.X, p.Y, p.layout, warm_start=p.theta, max_iter=0)
    here = float(plain.mean_std(x)[0])
    assert abs(here - float(p.Y[0])) < abs(float(mean) - float(p.Y[0]))  # the noisy one pulls less
    # BoTorch's posterior (through GPyTorch) sees the known variances too.
    torch.testing.assert_close(model.posterior(p.X[:1]).mean.reshape(1, 1), mean, atol=1e-8,
                               rtol=0.0)
    grown = model.condition_on(p.X[1:2] + 0.01, p.Y[1:2])
    assert grown.known_noise.shape == (n + 1,) and float(grown.known_noise[-1]) == 0.0


def test_the_short_lengthscale_penalty_adds_c_over_l_squared(continuous_problem, monkeypatch):
    import bopt.model as model

    p = continuous_problem
    theta = p.theta.unsqueeze(0)
    plain = model.neg_log_posterior(theta, p.X, p.Y, p.layout)
    monkeypatch.setattr(model, "SHORT_LENGTHSCALE_PENALTY", 0.1)
    penalised = model.neg_log_posterior(theta, p.X, p.Y, p.layout)
    lengthscales = p.theta[:len(p.layout.continuous)].exp()
    expected = 0.1 * (1.0 / lengthscales**2).sum() / p.X.shape[0]
    torch.testing.assert_close(penalised - plain, expected.reshape(1), atol=1e-12, rtol=1e-10)
