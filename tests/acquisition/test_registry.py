"""Tests for bopt.acquisition.registry: the strategy table, and every acquisition's score
under the `AcquisitionContract`."""

import pytest
import torch
from acquisition_contract import AcquisitionContract, candidate_sets
from botorch.acquisition import LogExpectedImprovement, UpperConfidenceBound

from bopt.acquisition import FantasyLogEI, draw_posterior_path, log_expected_improvement
from bopt.acquisition import ucb_beta, upper_confidence_bound
from bopt.acquisition.registry import (ACQUISITIONS, MODEL_FREE, STRATEGIES, ScoreContext,
                                       build_score, is_model_based, ucb_weight)
from bopt.errors import ArgumentError


def _context(problem, *, seed=0, beta=None, best_f=None, num_observations=None):
    return ScoreContext(
        best_f=problem.Y.max() if best_f is None else best_f,
        num_observations=problem.X.shape[0] if num_observations is None else num_observations,
        d=problem.layout.d, generator=torch.Generator().manual_seed(seed), beta=beta)


class _RegistryScore(AcquisitionContract):
    """`build_score(key, model, ScoreContext(...))` on each fitted toy problem."""

    key: str
    # The registry's scores map `... x q x d` to `...` (its docstring), so `q x d` gives a
    # 0-dim value, not BoTorch's `1` (the LogEI and UCB modules promote `q x d` first).
    single_shape = ()

    @pytest.fixture
    def score(self, problem):
        return build_score(self.key, problem.model, _context(problem))


class TestEIScore(_RegistryScore):
    key = "ei"
    reference_atol, reference_rtol = 1e-5, 1e-6  # as for the LogEI module (test_ei.py)

    @pytest.fixture
    def reference(self, problem):
        return LogExpectedImprovement(problem.model, best_f=problem.Y.max())


class TestUCBScore(_RegistryScore):
    key = "ucb"

    @pytest.fixture
    def reference(self, problem):
        beta = ucb_beta(problem.X.shape[0], problem.layout.d)  # the context leaves beta None
        # BoTorch weights the deviation by sqrt(beta); ours multiplies std by beta: pass beta**2.
        return UpperConfidenceBound(problem.model, beta=beta**2)


class TestThompsonScore(_RegistryScore):
    key = "ts"

    @pytest.fixture
    def reference(self, problem):
        pytest.skip("Thompson sampling has no BoTorch twin; the score is the drawn path "
                    "(test_thompson_score_is_the_drawn_posterior_path), whose moments "
                    "test_thompson.py checks against the posterior")


class TestNoisyEIScore(_RegistryScore):
    key = "nei"

    @pytest.fixture
    def reference(self, problem):
        pytest.skip("the registry's noisy EI draws 64 fantasies, too few for a value check "
                    "against BoTorch's Monte Carlo qNEI; test_noisy_ei_agrees_with_botorch"
                    "_qnei compares the two with 4,096 draws each")


def test_every_acquisition_runs_under_the_contract():
    classes = (TestEIScore, TestNoisyEIScore, TestUCBScore, TestThompsonScore)
    assert {cls.key for cls in classes} == set(ACQUISITIONS)


def test_noisy_ei_agrees_with_botorch_qnei(continuous_problem, point_sampler):
    """E[max(f(x) - max f(baseline), 0)], latent f: ours with closed-form f(x) given 4,096
    fantasies of the baseline, BoTorch's qNoisyExpectedImprovement with 4,096 joint
    quasi-MC samples; they agree within the Monte Carlo error (5%)."""
    from botorch.acquisition import qNoisyExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler

    p = continuous_problem
    n = p.X.shape[0]
    g = torch.Generator().manual_seed(21)
    base = torch.randn(n, 4096, generator=g, dtype=torch.float64)
    ours = FantasyLogEI(p.model, torch.arange(n), n, None, base)
    reference = qNoisyExpectedImprovement(
        p.model, X_baseline=p.X, sampler=SobolQMCNormalSampler(torch.Size([4096]), seed=0),
        prune_baseline=False, cache_root=False)
    X = p.X[p.Y.squeeze(-1).argsort(descending=True)[:4]] + 0.03  # near the best: EI not tiny
    with torch.no_grad():
        values = ours(X.unsqueeze(-2)).squeeze(-1).exp()  # 4
        expected = torch.stack([reference(x.reshape(1, 1, -1)).squeeze() for x in X])
    torch.testing.assert_close(values, expected, rtol=0.05, atol=1e-6)


def test_strategies_are_the_acquisitions_then_the_model_free():
    assert tuple(ACQUISITIONS) == ("ei", "ucb", "ts", "nei")
    assert MODEL_FREE == ("random", "sobol")
    assert STRATEGIES == tuple(ACQUISITIONS) + MODEL_FREE
    assert len(set(STRATEGIES)) == len(STRATEGIES)
    for key, entry in ACQUISITIONS.items():
        assert entry.key == key and entry.name and is_model_based(key)
    assert not any(is_model_based(key) for key in (*MODEL_FREE, "EI", "unknown"))


def test_ei_score_is_log_ei_summed_over_q(problem, point_sampler):
    X = candidate_sets(problem, point_sampler, (6, 2), seed=10)  # 6 x 2 x d
    best_f = problem.Y.max() + 0.5  # not the best Y: the score must take the context's
    score = build_score("ei", problem.model, _context(problem, best_f=best_f))
    mean, std = problem.model.mean_std(X)  # 6 x 2 each
    expected = log_expected_improvement(mean, std, best_f).sum(-1)  # 6
    with torch.no_grad():
        values = score(X)
    torch.testing.assert_close(values, expected, atol=1e-12, rtol=1e-10)
    other = log_expected_improvement(mean, std, problem.Y.max()).sum(-1)
    assert not torch.allclose(values, other)


def test_ucb_score_uses_ucb_beta_unless_beta_is_given(problem, point_sampler):
    X = candidate_sets(problem, point_sampler, (6, 2), seed=11)  # 6 x 2 x d
    mean, std = problem.model.mean_std(X)  # 6 x 2 each
    # Sizes from the context, not the model: 50 observations, the layout's width.
    scheduled = build_score("ucb", problem.model, _context(problem, num_observations=50))
    beta = ucb_beta(50, problem.layout.d)
    torch.testing.assert_close(scheduled(X), upper_confidence_bound(mean, std, beta).sum(-1),
                               atol=1e-12, rtol=0.0)
    given = build_score("ucb", problem.model, _context(problem, num_observations=50, beta=0.3))
    torch.testing.assert_close(given(X), upper_confidence_bound(mean, std, 0.3).sum(-1),
                               atol=1e-12, rtol=0.0)
    assert bool((scheduled(X) > given(X)).all())  # beta = 1.6 or more against 0.3, std > 0


def test_equal_generators_give_equal_thompson_scores(problem, point_sampler):
    X = candidate_sets(problem, point_sampler, (6, 2), seed=12)  # 6 x 2 x d
    state = torch.random.get_rng_state()
    a, b, c = (build_score("ts", problem.model, _context(problem, seed=seed))(X)
               for seed in (5, 5, 6))
    assert torch.equal(state, torch.random.get_rng_state())
    torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)
    assert not torch.allclose(a, c)


def test_thompson_score_is_the_drawn_posterior_path(problem, point_sampler):
    X = candidate_sets(problem, point_sampler, (6, 2), seed=13)  # 6 x 2 x d
    score = build_score("ts", problem.model, _context(problem, seed=3))
    path = draw_posterior_path(problem.model, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(score(X), path(X).sum(-1), atol=0.0, rtol=0.0)


def test_thompson_scores_average_to_the_posterior_mean(problem, point_sampler):
    """64 independent scores at 6 single points: their average is within 5 standard errors
    of the posterior mean (a 5-sigma CLT band; each draw is unbiased), and the band is
    narrower than a quarter of the spread of the posterior means, so the check is not
    vacuous. The variance is checked with many more paths in test_thompson.py."""
    X = candidate_sets(problem, point_sampler, (6, 1), seed=14)  # 6 x 1 x d
    with torch.no_grad():
        F = torch.stack([build_score("ts", problem.model, _context(problem, seed=100 + i))(X)
                         for i in range(64)])  # 64 x 6
        mean, _ = problem.model.mean_std(X.squeeze(-2))  # 6
    se = F.std(0) / 64**0.5
    assert bool(((F.mean(0) - mean).abs() <= 5 * se).all())
    assert float(5 * se.max()) < 0.25 * float(mean.max() - mean.min())


def test_ucb_weight():
    assert ucb_weight(0.7, 10, 3) == 0.7
    assert ucb_weight(0.0, 10, 3) == 0.0  # an explicit zero is honoured, not the schedule
    assert ucb_weight(None, 10, 3) == ucb_beta(10, 3)
    assert ucb_weight(None, 0, 0) == ucb_beta(1, 1) > 0


def test_an_unknown_key_names_itself_and_the_choices(continuous_problem):
    context = ScoreContext(best_f=torch.tensor(0.0, dtype=torch.float64), num_observations=3,
                           d=3, generator=torch.Generator())
    with pytest.raises(ArgumentError, match=r"unknown acquisition 'pi'; choose from "
                                            r"\('ei', 'ucb', 'ts', 'nei'\)"):
        build_score("pi", continuous_problem.model, context)
