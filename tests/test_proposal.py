"""Tests for bopt.proposal: one model round from tensors to a proposal, and its fallbacks.

Most faults are injected into the real loop (a failing fit, a broken or NaN acquisition
optimizer, an out-of-memory device) by patching the functions `bopt.proposal` calls; the
others call `propose` and `fit_surrogate` directly on seeded tensors.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from support import (FAST, GP_ACQUISITIONS, assert_valid, continuous_space, key, mixed_space,
                     objective, run_loop)

import bopt.proposal as proposal
from bopt import FitError, Optimizer
from bopt.proposal import RoundData, RoundSettings, WarmStart, fit_surrogate, propose


def _failing_fit(*args, **kwargs):
    raise FitError("injected failure")


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_fit_failure_falls_back_to_random(monkeypatch, acquisition, caplog):
    space = continuous_space()
    monkeypatch.setattr(proposal, "fit_gp", _failing_fit)
    opt = Optimizer(space, acquisition, **FAST)
    trials = run_loop(opt, 5)
    assert len({key(space, t.params) for t in trials}) == 5
    for trial, r in zip(trials[3:], opt.diagnostics[3:]):
        assert_valid(space, trial.params)
        assert r.fallback == "random" and trial.source == "fallback-random"
        assert any("GP fit failed (injected failure)" in w for w in r.warnings)
    assert any(r.levelno == logging.WARNING and "no usable GP" in r.getMessage()
               for r in caplog.records)


def test_fit_failure_with_last_good_hyperparameters(monkeypatch):
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 4)  # one good GP round stores theta
    real_fit, calls = proposal.fit_gp, []

    def flaky_fit(*args, max_iter=None, **kwargs):
        calls.append(max_iter)
        if max_iter != 0:
            raise FitError("injected failure")
        return real_fit(*args, max_iter=max_iter, **kwargs)

    monkeypatch.setattr(proposal, "fit_gp", flaky_fit)
    trial = opt.suggest()
    assert calls == [None, 0]
    info = opt.diagnostics[-1]
    assert info.fallback == "last-good-hyperparameters"
    assert any("GP fit failed" in w for w in info.warnings)
    assert info.noise > 0 and set(info.lengthscales) == {"x", "y"}
    assert_valid(space, trial.params)
    assert key(space, trial.params) not in {key(space, t.params) for t in opt.history[:-1]}


def test_fit_and_fallback_failure_falls_back_to_random(monkeypatch):
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 4)
    monkeypatch.setattr(proposal, "fit_gp", _failing_fit)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert info.fallback == "random" and trial.source == "fallback-random"
    assert any("last good hyperparameters failed too" in w for w in info.warnings)



def test_kept_hyperparameters_that_fail_are_re_estimated(monkeypatch):
    opt = Optimizer(continuous_space(), refit_growth=0.5, **FAST)
    run_loop(opt, 5)  # fits at n = 3 and 4; at n = 5 the estimate would be kept
    real_fit, calls = proposal.fit_gp, []

    def flaky_fit(*args, max_iter=None, warm_start=None, **kwargs):
        calls.append((max_iter, warm_start is not None))
        if max_iter == 0:
            raise FitError("injected failure")
        return real_fit(*args, max_iter=max_iter, warm_start=warm_start, **kwargs)

    monkeypatch.setattr(proposal, "fit_gp", flaky_fit)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert calls == [(0, True), (None, False)]  # kept, then re-estimated from the prior
    assert info.refit and info.fallback is None and trial.source == "ei"
    assert any("kept hyperparameters failed on the new data (injected failure)" in w
               for w in info.warnings)
    opt.observe(trial, objective(trial.params))
    opt.suggest()
    assert calls[2] == (0, True)  # the next round tries to keep the fresh estimate


def test_kept_hyperparameters_that_need_jitter_are_re_estimated(monkeypatch):
    opt = Optimizer(continuous_space(), refit_growth=0.5, **FAST)
    run_loop(opt, 5)
    real_fit, calls = proposal.fit_gp, []

    def jittery_fit(*args, max_iter=None, **kwargs):
        calls.append(max_iter)
        model, theta, report = real_fit(*args, max_iter=max_iter, **kwargs)
        if max_iter == 0:
            report.jitter = 1e-4
        return model, theta, report

    monkeypatch.setattr(proposal, "fit_gp", jittery_fit)
    opt.suggest()
    info = opt.diagnostics[-1]
    assert calls == [0, None] and info.refit
    assert any("kept hyperparameters failed on the new data (the covariance needed jitter "
               "0.0001)" in w for w in info.warnings)


def test_an_estimate_from_more_data_than_there_is_is_not_kept(continuous_problem):
    """E.g. a study reopened with model state that another worker fitted on more data."""
    p = continuous_problem
    n = p.X.shape[0]
    warm = WarmStart(p.theta, n + 5)
    assert not warm.keeps(n, 0.5) and WarmStart(p.theta, n - 1).keeps(n, 0.5)
    surrogate = fit_surrogate(p.X, p.Y.squeeze(-1), p.layout, maximize=True, warm_start=warm,
                              refit_growth=0.5)
    assert surrogate.refit and surrogate.warm_start.num_observations == n


# --------------------------------------------------------------------------- injected faults


def test_acquisition_optimizer_failure_falls_back_to_random(monkeypatch):
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 3)

    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("injected optimizer failure")

    monkeypatch.setattr(proposal, "multistart_maximize", broken)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert trial.source == "fallback-random" and info.fallback == "random"
    assert any("injected optimizer failure" in w for w in info.warnings)
    assert_valid(space, trial.params)


def test_non_finite_candidates_are_dropped_not_decoded(monkeypatch):
    space = mixed_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 3)
    real = proposal.multistart_maximize

    def half_nan(*args, **kwargs):
        cands, values = real(*args, **kwargs)
        cands, values = cands.clone(), values.clone()
        cands[0, 0, 0] = math.nan  # the best start broke
        values[1] = math.nan
        return cands, values

    monkeypatch.setattr(proposal, "multistart_maximize", half_nan)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert trial.source == "ei" and info.fallback is None
    assert any("returned 2 of 4 candidates with non-finite" in w for w in info.warnings)
    assert_valid(space, trial.params)


def test_nan_gradients_in_the_fit_degrade_gracefully(monkeypatch):
    """The marginal likelihood turns NaN (value and gradient) for every start: the round still
    returns a valid, unseen configuration and says what happened."""
    import bopt.model

    space = continuous_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 3)
    real_call, real_both = bopt.model._Objective.__call__, bopt.model._Objective.value_and_grad
    monkeypatch.setattr(bopt.model._Objective, "__call__",
                        lambda self, theta: real_call(self, theta) * math.nan)
    monkeypatch.setattr(bopt.model._Objective, "value_and_grad",
                        lambda self, theta: tuple(t * math.nan for t in real_both(self, theta)))
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert_valid(space, trial.params)
    assert key(space, trial.params) not in {key(space, t.params) for t in opt.history[:-1]}
    assert info.warnings, "a NaN likelihood must leave a trace in the diagnostics"


def test_out_of_memory_on_the_device_reruns_the_round_on_the_cpu(monkeypatch):
    """The dispatch: an out-of-memory error on a non-CPU device reruns the round on the CPU.
    (No GPU here: the optimizer is told it has one and the device round is made to fail.)"""
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 3)
    opt.device = torch.device("cuda")
    real, devices = proposal._propose_on, []

    def oom_on_cuda(device, **run):
        devices.append(device.type)
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(device, **run)

    monkeypatch.setattr(proposal, "_propose_on", oom_on_cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no empty_cache here
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert devices == ["cuda", "cpu"]
    assert trial.source == "ei" and info.fallback == "cpu" and info.device == "cpu"
    assert any("out of memory on cuda" in w for w in info.warnings)


def test_a_round_refitted_before_running_out_of_memory_says_so(monkeypatch):
    """The device attempt re-estimated the hyperparameters, then ran out of memory in the
    acquisition; the CPU rerun starts from the same warm start, and the round reads refit."""
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 4)
    opt.device = torch.device("cuda")
    real_proposal, real_maximize = proposal._propose_on, proposal.multistart_maximize
    calls = []

    def device_attempt(device, **run):  # the "GPU" round runs on the CPU
        return real_proposal(torch.device("cpu"), **run)

    def maximize_once_oom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_maximize(*args, **kwargs)

    monkeypatch.setattr(proposal, "_propose_on", device_attempt)
    monkeypatch.setattr(proposal, "multistart_maximize", maximize_once_oom)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert len(calls) == 2 and info.fallback == "cpu" and trial.source == "ei"
    assert info.refit


def test_out_of_memory_on_the_cpu_falls_back_to_random(monkeypatch):
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 3)

    def oom(device, **run):
        raise torch.cuda.OutOfMemoryError("out of memory (injected)")

    monkeypatch.setattr(proposal, "_propose_on", oom)
    assert opt.suggest().source == "fallback-random"
    assert opt.diagnostics[-1].fallback == "random"



def test_value_jumping_by_1e6_is_compressed_and_recorded():
    """A diverged run reporting 1e6 beside values of order 1: the model's view of the
    others keeps its resolution, and the diagnostics say one value was compressed."""
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    values = iter([0.5, 0.2, 0.9, 1e6, 0.4, 0.3])
    for _ in range(6):
        trial = opt.suggest()
        opt.observe(trial, next(values))
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert info.num_outliers == 1 and trial.source == "ei" and info.warnings == []
    assert key(space, trial.params) not in {key(space, t.params) for t in opt.history[:-1]}
    # Without compression the five ordinary values would span ~1e-6 of the target range.
    done = [t for t in opt.history if t.status == "complete"]
    values = torch.tensor([t.value for t in done], dtype=torch.float64)
    X = space.encode([t.params for t in done])
    surrogate = fit_surrogate(X, values, space.layout, maximize=False, warm_start=WarmStart())
    Y = surrogate.targets
    ordinary = torch.cat([Y[:3], Y[4:]])
    assert float(ordinary.max() - ordinary.min()) > 0.3
    torch.testing.assert_close(surrogate.transform.inverse(Y.squeeze(-1)), values, rtol=1e-9,
                               atol=0)


# --------------------------------------------------------------------------- the pure round


def _round(space, n: int = 6, seed: int = 0) -> RoundData:
    configs = space.sample(n + 2, seed=seed)
    X = space.encode(configs)
    values = torch.tensor([objective(c) for c in configs[:n]], dtype=torch.float64)
    return RoundData(train_X=X[:n], values=values, pending_X=X[n:])


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_propose_is_a_pure_function_of_its_inputs(acquisition):
    space = mixed_space()
    data = _round(space)
    before = (data.train_X.clone(), data.values.clone(), data.pending_X.clone())
    settings = RoundSettings(acquisition, maximize=False, num_restarts=2, num_raw_samples=32)
    seen = {space.key(c) for c in space.decode(data.train_X)}
    runs = [propose(space, data, settings, warm_start=WarmStart(), seed=7, round_id=6,
                    seen=seen, device=torch.device("cpu")) for _ in range(2)]
    assert runs[0].params == runs[1].params and runs[0].params is not None
    assert space.key(runs[0].params) not in seen
    assert runs[0].info.refit and runs[0].warm_start.num_observations == 6
    assert runs[0].info.num_observations == 6 and runs[0].info.trial_id == 6
    for tensor, copy in zip((data.train_X, data.values, data.pending_X), before):
        assert torch.equal(tensor, copy)


def test_kept_hyperparameters_are_used_as_they_are(continuous_problem):
    p = continuous_problem
    n = p.X.shape[0]
    warm = WarmStart(p.theta, n)
    surrogate = fit_surrogate(p.X, p.Y.squeeze(-1), p.layout, maximize=True, warm_start=warm)
    assert not surrogate.refit and surrogate.warm_start is warm
    torch.testing.assert_close(surrogate.model.noise, p.model.noise, rtol=1e-12, atol=0)


@pytest.mark.parametrize("where, error", [
    ("multistart_maximize", TypeError("a bug, not numerical trouble")),
    ("fit_gp", RuntimeError("mat1 and mat2 shapes cannot be multiplied")),
])
def test_a_programming_error_in_the_round_propagates(monkeypatch, where, error):
    """Only numerical trouble degrades to a random proposal; a bug (a TypeError, or a plain
    RuntimeError such as a shape mismatch) must surface, and nothing is recorded."""
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 3)

    def buggy(*args, **kwargs):
        raise error

    monkeypatch.setattr(proposal, where, buggy)
    with pytest.raises(type(error), match=str(error)):
        opt.suggest()
    assert len(opt.history) == 3


def test_warm_start_state_round_trips_through_json():
    theta = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    warm = WarmStart(theta, 12)
    back = WarmStart.from_state(warm.to_state(), torch.device("cpu"))
    assert torch.equal(back.theta, theta) and back.num_observations == 12
    assert WarmStart().to_state() is None
    assert WarmStart.from_state(None, torch.device("cpu")).theta is None


# --------------------------------------------------------------------------- batches, seen points


def _min_distance(space, trials) -> float:
    X = space.encode([t.params for t in trials])
    d = torch.cdist(X, X) + torch.eye(len(trials), dtype=X.dtype) * 1e9
    return float(d.min())


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_batch_members_and_other_workers_points_are_spread_out(acquisition):
    space = continuous_space()
    opt = Optimizer(space, acquisition, **FAST)
    run_loop(opt, 8)
    for _ in range(2):
        batch = opt.suggest(4)
        assert _min_distance(space, batch) >= proposal.MIN_DISTANCE
        for trial in batch:
            opt.observe(trial, objective(trial.params))
    first = opt.suggest()  # another worker's pending trial
    second = opt.suggest()
    assert _min_distance(space, [first, second]) >= proposal.MIN_DISTANCE


def test_log_ei_batches_integrate_over_the_pending_outcomes(monkeypatch):
    """With pending points the EI score is the fantasy form; without, the closed form."""
    calls = []
    real = proposal.build_score

    def spy(key, model, context):
        calls.append(context.num_pending)
        return real(key, model, context)

    monkeypatch.setattr(proposal, "build_score", spy)
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 4)
    opt.suggest(3)
    assert calls == [0, 0, 1, 2]  # round 4 sequential; then a batch: 0, 1, 2 pending


def _scripted_maximize(points):
    """A multistart optimizer that returns `points` (`b x d`), best first."""
    def maximize(score, layout, **kwargs):
        X = points.unsqueeze(1)  # b x 1 x d
        return X, torch.linspace(1.0, 0.0, X.shape[0], dtype=X.dtype)
    return maximize


def test_a_candidate_next_to_a_pending_point_is_skipped(monkeypatch):
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 4)
    pending = opt.suggest()
    near = space.encode([pending.params]) + 1e-5
    far = space.encode([{"x": 0.123, "y": -1.5}])
    monkeypatch.setattr(proposal, "multistart_maximize", _scripted_maximize(torch.cat([near, far])))
    trial = opt.suggest()
    assert trial.params == pytest.approx({"x": 0.123, "y": -1.5})
    assert opt.diagnostics[-1].fallback is None


def test_seen_candidates_give_their_best_unseen_neighbour(monkeypatch, caplog):
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    done = run_loop(opt, 4)
    seen = space.encode([t.params for t in done])
    monkeypatch.setattr(proposal, "multistart_maximize", _scripted_maximize(seen))
    with caplog.at_level(logging.INFO, logger="bopt"):
        trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert trial.source == "ei" and info.fallback == "neighbour"
    assert_valid(space, trial.params)
    assert key(space, trial.params) not in {key(space, t.params) for t in done}
    X = space.encode([trial.params])
    assert float(torch.cdist(X, seen).min()) < 0.5  # a neighbour, not a random point
    assert any("already seen" in r.getMessage() for r in caplog.records)


def test_log_ei_takes_its_noisy_form_only_when_the_fitted_noise_is_not_negligible():
    space = continuous_space()
    g = torch.Generator().manual_seed(0)
    noisy, smooth = Optimizer(space, **FAST), Optimizer(space, **FAST)
    for config in space.sobol(8, seed=2) * 4:  # replicates: only noise explains their spread
        noise = float(torch.randn((), generator=g, dtype=torch.float64))
        value = config["x"] + 0.5 * config["y"]  # spans about 3
        smooth.observe(config, value)
        noisy.observe(config, value + 0.5 * noise)
    assert noisy.suggest().source == "ei" and smooth.suggest().source == "ei"
    loud, quiet = noisy.diagnostics[-1], smooth.diagnostics[-1]
    assert loud.noise > proposal.NOISY_EI_ABOVE and loud.noisy_ei
    assert quiet.noise < proposal.NOISY_EI_ABOVE and not quiet.noisy_ei
