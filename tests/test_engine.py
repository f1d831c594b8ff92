"""Tests for bopt.engine: the suggest/observe loop, its validation, fallbacks and diagnostics.

Every optimizer here runs on the CPU with tiny budgets (`n_initial=3`, 4 restarts, 64 raw
samples), so a GP round takes a few tens of milliseconds. Test objectives are deterministic
functions of the config, so two optimizers fed the same way see the same values.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pytest
import torch

from support import (ALL_ACQUISITIONS, FAST, GP_ACQUISITIONS, assert_valid, conditional_space, continuous_space, grid_space, key,
                     mixed_space, nested_space, objective, run_loop, typed)

import bopt.engine
import bopt.proposal
from bopt import (ArgumentError, Categorical, Float, Int, ObservationError, Optimizer, ParameterError,
                  RoundInfo, Space, SpaceExhaustedError, Trial, TrialError)

# --------------------------------------------------------------------------- constructor


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(acquisition="pi"), ValueError, r"acquisition must be one of .*got 'pi'"),
    (dict(acquisition="EI"), ValueError, r"acquisition must be one of .*got 'EI'"),
    (dict(direction="min"), ValueError, r"direction must be one of \('minimize', 'maximize'\); got 'min'"),
    (dict(n_initial=0), ValueError, r"n_initial must be an int >= 1; got 0"),
    (dict(n_initial=2.5), ValueError, r"n_initial must be an int >= 1; got 2.5"),
    (dict(n_initial=True), ValueError, r"n_initial must be an int >= 1; got True"),
    (dict(seed=-1), ValueError, r"seed must be an int >= 0; got -1"),
    (dict(seed=1.0), ValueError, r"seed must be an int >= 0; got 1.0"),
    (dict(seed="0"), ValueError, r"seed must be an int >= 0; got '0'"),
    (dict(num_restarts=0), ValueError, r"num_restarts must be an int >= 1; got 0"),
    (dict(num_raw_samples=1), ValueError, r"num_raw_samples must be an int >= 2; got 1"),
    (dict(beta=-1.0), ValueError, r"beta must be a finite number >= 0; got -1.0"),
    (dict(beta=float("nan")), ValueError, r"beta must be a finite number >= 0; got nan"),
    (dict(beta="2"), ValueError, r"beta must be a finite number >= 0; got '2'"),
    (dict(device=3), ValueError, r"device must be 'auto', 'cpu', 'cuda' or a torch.device; got 3"),
    (dict(refit_growth=-0.1), ValueError, r"refit_growth must be a finite number in \[0, 1\]; got -0.1"),
    (dict(refit_growth=1.5), ValueError, r"refit_growth must be a finite number in \[0, 1\]; got 1.5"),
    (dict(refit_growth=float("nan")), ValueError, r"refit_growth must be .*; got nan"),
    (dict(refit_growth=True), ValueError, r"refit_growth must be .*; got True"),
    (dict(refit_growth="0.1"), ValueError, r"refit_growth must be .*; got '0.1'"),
])
def test_constructor_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Optimizer(continuous_space(), **kwargs)


@pytest.mark.parametrize("beta", [float("inf"), True])
def test_constructor_rejects_infinite_or_bool_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        Optimizer(continuous_space(), "ucb", beta=beta)


@pytest.mark.parametrize("space", [[Float("x", 0.0, 1.0)], {"x": (0, 1)}, None])
def test_constructor_rejects_non_space(space):
    with pytest.raises(ArgumentError, match=r"space must be a bopt.Space; got "
                       + type(space).__name__):
        Optimizer(space)


def test_constructor_rejects_cuda_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda' but CUDA is not available.*"
                       r"device='auto'"):
        Optimizer(continuous_space(), device="cuda")
    assert Optimizer(continuous_space(), device="auto").device == torch.device("cpu")


def test_constructor_defaults():
    opt = Optimizer(continuous_space())
    assert opt.acquisition == "ei" and opt.direction == "minimize"
    assert opt.n_initial == 5  # max(5, d + 1) with d = 2
    assert Optimizer(Space([Float(f"x{i}", 0.0, 1.0) for i in range(7)])).n_initial == 8
    # with a categorical of two choices or more, max(10, d + 1)
    assert Optimizer(Space([Float("x", 0.0, 1.0), Categorical("c", ("a", "b"))])).n_initial == 10
    assert Optimizer(Space([Float("x", 0.0, 1.0), Categorical("c", ("a",))])).n_initial == 5
    wide = [Float(f"x{i}", 0.0, 1.0) for i in range(11)]
    assert Optimizer(Space([*wide, Categorical("c", ("a", "b"))])).n_initial == 13
    assert opt.history == [] and opt.diagnostics == [] and opt.best is None


# --------------------------------------------------------------------------- suggest


def test_suggest_returns_a_valid_pending_trial():
    space = nested_space()
    opt = Optimizer(space, **FAST)
    trial = opt.suggest()
    assert isinstance(trial, Trial)
    assert trial.id == 0 and trial.status == "pending" and trial.value is None
    assert trial.source == "sobol"
    assert_valid(space, trial.params)
    assert opt.history == [trial]


@pytest.mark.parametrize("acquisition", ALL_ACQUISITIONS)
def test_suggest_batch_gives_distinct_trials(acquisition):
    space = continuous_space()
    opt = Optimizer(space, acquisition, **FAST)
    run_loop(opt, 3)
    batch = opt.suggest(3)
    assert isinstance(batch, list) and len(batch) == 3
    assert [t.id for t in batch] == [3, 4, 5]
    assert len({key(space, t.params) for t in batch}) == 3
    for trial in batch:
        assert_valid(space, trial.params)
        assert trial.status == "pending"


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_suggest_rejects_bad_count(n):
    opt = Optimizer(continuous_space(), **FAST)
    with pytest.raises(ValueError, match=re.escape(f"suggest(n): n must be an int >= 1; got {n!r}")):
        opt.suggest(n)
    assert opt.history == []


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_initial_design_then_acquisition(acquisition):
    opt = Optimizer(continuous_space(), acquisition, **FAST)
    trials = run_loop(opt, 6)
    assert [t.source for t in trials] == ["sobol"] * 3 + [acquisition] * 3
    assert [r.strategy for r in opt.diagnostics] == ["sobol"] * 3 + [acquisition] * 3


@pytest.mark.parametrize("acquisition", ["ei", "sobol", "random"])
def test_finite_space_is_enumerated_without_repeats_then_exhausted(acquisition):
    space = grid_space()
    assert space.grid_size == 15
    opt = Optimizer(space, acquisition, **{**FAST, "n_initial": 8})  # 7 GP rounds for "ei"
    trials = run_loop(opt, 15)
    assert len({key(space, t.params) for t in trials}) == 15
    for trial in trials:
        assert_valid(space, trial.params)
    with pytest.raises(SpaceExhaustedError, match=r"all 15 configurations of this space have "
                       r"been suggested or observed"):
        opt.suggest()
    assert len(opt.history) == 15


def test_finite_space_is_exhausted_only_when_every_config_was_proposed():
    space = Space([Int("i", 0, 299)])
    opt = Optimizer(space, "random", seed=1, device="cpu")
    params = [t.params["i"] for t in opt.suggest(300)]  # raised at #298 with seed=1
    assert sorted(params) == list(range(300))


def test_suggest_batch_that_runs_out_leaves_state_unchanged():
    space = Space([Int("i", 0, 4)])
    opt = Optimizer(space, "random", **FAST)
    opt.suggest(4)
    with pytest.raises(SpaceExhaustedError):
        opt.suggest(3)
    assert len(opt.history) == 4


def test_observed_and_pending_configs_are_not_proposed_again():
    space = grid_space()
    opt = Optimizer(space, "ei", **FAST)
    seen = {key(space, opt.observe({"i": i, "c": "p"}, float(i)).params) for i in range(5)}
    seen.add(key(space, opt.observe({"i": 2, "c": "q"}, -1.0).params))
    pending = [opt.suggest() for _ in range(4)]  # GP rounds with the believer
    for trial in pending:
        assert key(space, trial.params) not in seen
        seen.add(key(space, trial.params))
    assert len(seen) == 10


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_pending_points_give_distinct_suggestions(acquisition):
    space = continuous_space()
    opt = Optimizer(space, acquisition, **FAST)
    run_loop(opt, 3)
    pending = [opt.suggest() for _ in range(3)]
    assert [t.source for t in pending] == [acquisition] * 3
    assert len({key(space, t.params) for t in pending}) == 3


# --------------------------------------------------------------------------- observe


def test_observe_by_trial_by_id_and_by_params():
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    t0, t1 = opt.suggest(2)
    done0 = opt.observe(t0, 1.5)
    assert done0 == Trial(0, t0.params, "complete", 1.5, "sobol")
    done1 = opt.observe(t1.id, 2)
    assert done1.status == "complete" and done1.value == 2.0 and type(done1.value) is float
    external = opt.observe({"x": 0.25, "y": -1}, -3.0)
    assert external == Trial(2, {"x": 0.25, "y": -1.0}, "complete", -3.0, "external")
    assert type(external.params["y"]) is float
    assert [t.id for t in opt.history] == [0, 1, 2]
    assert opt.history == [done0, done1, external]
    assert len(opt.diagnostics) == 2  # external data makes no round


def test_observe_accepts_real_number_types():
    opt = Optimizer(continuous_space(), **FAST)
    values = [np.float32(1.5), np.int64(3), torch.tensor(2.5), torch.tensor([4]), 7]
    for value in values:
        trial = opt.observe(opt.suggest(), value)
        assert type(trial.value) is float and trial.value == float(value)


def test_history_is_in_id_order_after_out_of_order_reports():
    opt = Optimizer(continuous_space(), **FAST)
    trials = opt.suggest(4)
    opt.observe(trials[2], 1.0)
    opt.fail(trials[0])
    opt.observe(trials[3], 2.0)
    opt.observe({"x": 0.5, "y": 0.0}, 0.0)
    assert [t.id for t in opt.history] == [0, 1, 2, 3, 4]
    assert [t.status for t in opt.history] == ["failed", "pending", "complete", "complete",
                                               "complete"]


@pytest.mark.parametrize("direction, expected", [("minimize", -2.0), ("maximize", 5.0)])
def test_best_respects_direction(direction, expected):
    opt = Optimizer(continuous_space(), direction=direction, **FAST)
    assert opt.best is None
    trials = opt.suggest(4)
    for trial, value in zip(trials, [1.0, 5.0, -2.0]):
        opt.observe(trial, value)
    opt.fail(trials[3])
    assert opt.best.value == expected and opt.best.status == "complete"


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_gp_rounds_move_towards_the_better_side(direction):
    """A linear objective in x: the GP rounds should propose x near the good end."""
    space = Space([Float("x", 0.0, 1.0)])
    sign = 1.0 if direction == "minimize" else -1.0
    opt = Optimizer(space, "ei", direction=direction, **FAST)
    trials = run_loop(opt, 6, func=lambda p: sign * p["x"])
    # The best end is x = 0 in both cases; 0.2 leaves room for exploration.
    assert min(t.params["x"] for t in trials[3:]) < 0.2


# --------------------------------------------------------------------------- bad input


def _prepared(seed: int = 0) -> tuple[Optimizer, list[Trial]]:
    """A conditional-space optimizer with trials 0-2 complete, 3 pending and 4 failed; its
    next suggestion is a GP round that believes the pending trial."""
    opt = Optimizer(conditional_space(), seed=seed, **FAST)
    trials = opt.suggest(5)
    trials[:3] = [opt.observe(t, objective(t.params)) for t in trials[:3]]
    trials[4] = opt.fail(trials[4])
    return opt, trials


@pytest.fixture(scope="module")
def reference_next():
    """The next suggestion of an untouched `_prepared()` optimizer."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    opt, _ = _prepared()
    trial = opt.suggest()
    torch.set_num_threads(before)
    return trial


NAN, INF = float("nan"), float("inf")
GOOD = {"kind": "b", "x": 0.5, "y": 0.5}

BAD_CALLS = [
    # (id, call(opt, trials), error, message)
    ("nan", lambda o, t: o.observe(t[3], NAN), ObservationError,
     r"observe\(trial 3\): value is nan; only finite numbers"),
    ("inf", lambda o, t: o.observe(t[3], INF), ObservationError,
     r"observe\(trial 3\): value is inf; only finite numbers"),
    ("-inf", lambda o, t: o.observe(3, -INF), ObservationError,
     r"observe\(trial 3\): value is -inf"),
    ("nan-tensor", lambda o, t: o.observe(3, torch.tensor(NAN)), ObservationError,
     r"observe\(trial 3\): value is nan"),
    ("none", lambda o, t: o.observe(t[3], None), ObservationError,
     r"observe\(trial 3\): value is None \(NoneType\); only finite real numbers"),
    ("str", lambda o, t: o.observe(t[3], "1.0"), ObservationError,
     r"observe\(trial 3\): value is '1.0' \(str\)"),
    ("bool", lambda o, t: o.observe(t[3], True), ObservationError,
     r"observe\(trial 3\): value is True \(bool\)"),
    ("bool-tensor", lambda o, t: o.observe(t[3], torch.tensor(True)), ObservationError,
     r"observe\(trial 3\): value is a bool tensor"),
    ("complex", lambda o, t: o.observe(t[3], 1 + 2j), ObservationError,
     r"observe\(trial 3\): value is \(1\+2j\) \(complex\)"),
    ("vector", lambda o, t: o.observe(t[3], [1.0]), ObservationError,
     r"observe\(trial 3\): value is \[1.0\] \(list\)"),
    pytest.param(
        lambda o, t: o.observe(t[3], 10**400), ObservationError,
        r"observe\(trial 3\): value is 1000",
        id="huge-int"),
    ("unknown-id", lambda o, t: o.observe(99, 1.0), TrialError,
     r"observe\(\): no trial with id 99; ids run 0..4"),
    ("negative-id", lambda o, t: o.observe(-1, 1.0), TrialError,
     r"observe\(\): no trial with id -1"),
    ("float-id", lambda o, t: o.observe(1.5, 1.0), TrialError,
     r"observe\(\): expected a Trial, a trial id or a config dict; got 1.5"),
    ("observe-twice", lambda o, t: o.observe(t[0], 1.0), TrialError,
     r"observe\(\): trial 0 is already complete"),
    ("observe-twice-by-id", lambda o, t: o.observe(1, 1.0), TrialError,
     r"observe\(\): trial 1 is already complete"),
    ("observe-failed", lambda o, t: o.observe(t[4], 1.0), TrialError,
     r"observe\(\): trial 4 is already failed"),
    ("fail-complete", lambda o, t: o.fail(t[0]), TrialError,
     r"fail\(\): trial 0 is already complete"),
    ("fail-twice", lambda o, t: o.fail(4), TrialError, r"fail\(\): trial 4 is already failed"),
    ("fail-unknown", lambda o, t: o.fail(7), TrialError, r"fail\(\): no trial with id 7"),
    ("missing-key", lambda o, t: o.observe({"kind": "b", "x": 0.5}, 1.0), ParameterError,
     r"missing parameter 'y' \(active because 'kind' = 'b'\)"),
    ("unknown-key", lambda o, t: o.observe({**GOOD, "z": 1.0}, 1.0), ParameterError,
     r"unknown parameter 'z'"),
    ("out-of-range", lambda o, t: o.observe({**GOOD, "x": 1.5}, 1.0), ParameterError,
     r"parameter 'x' = 1.5 is outside \[0.0, 1.0\]"),
    ("wrong-type", lambda o, t: o.observe({**GOOD, "x": "0.5"}, 1.0), ParameterError,
     r"parameter 'x' must be a float in \[0.0, 1.0\], got str '0.5'"),
    ("bad-choice", lambda o, t: o.observe({**GOOD, "kind": "c"}, 1.0), ParameterError,
     r"parameter 'kind' = 'c' \(str\) is not among its choices"),
    ("inactive-given", lambda o, t: o.observe({**GOOD, "kind": "a"}, 1.0), ParameterError,
     r"parameter 'y' is inactive because 'kind' = 'a'"),
    ("not-a-config", lambda o, t: o.observe([0.5, 0.5], 1.0), TrialError,
     r"observe\(\): expected a Trial, a trial id or a config dict; got \[0.5, 0.5\]"),
    ("external-nan", lambda o, t: o.observe(GOOD, NAN), ObservationError,
     r"observe\(\{'kind': 'b', 'x': 0.5, 'y': 0.5\}\): value is nan"),
]


@pytest.mark.parametrize("call, error, message",
                         [pytest.param(*c[1:], id=c[0]) if type(c) is tuple else c
                          for c in BAD_CALLS])
def test_bad_input_raises_and_leaves_state_unchanged(call, error, message, reference_next):
    opt, trials = _prepared()
    history, diagnostics = opt.history, opt.diagnostics
    with pytest.raises(error, match=message):
        call(opt, trials)
    assert opt.history == history and len(opt.history) == 5
    assert opt.diagnostics == diagnostics
    assert reference_next.source == "ei"  # the comparison covers a GP round
    assert typed(opt.suggest().params) == typed(reference_next.params)


def test_errors_subclass_builtin_exceptions():
    opt, trials = _prepared()
    with pytest.raises(ValueError):
        opt.observe(trials[3], NAN)
    with pytest.raises(KeyError):
        opt.observe(99, 1.0)
    with pytest.raises(ValueError):
        opt.observe({"kind": "a"}, 1.0)
    assert str(pytest.raises(TrialError, opt.observe, 99, 1.0).value).startswith("observe()")


def test_mutating_returned_params_does_not_change_the_record():
    opt = Optimizer(continuous_space(), **FAST)
    trial = opt.suggest()
    original = dict(trial.params)
    trial.params["x"] = 0.123
    assert opt.history[0].params == original


# --------------------------------------------------------------------------- fail


def test_fail_marks_trial_failed_and_blocks_its_config():
    space = Space([Int("i", 0, 2)])
    opt = Optimizer(space, "random", **FAST)
    first = opt.suggest()
    failed = opt.fail(first)
    assert failed == Trial(first.id, first.params, "failed", None, "random")
    assert opt.history[0].status == "failed"
    with pytest.raises(TrialError, match=r"observe\(\): trial 0 is already failed"):
        opt.observe(first, 1.0)
    rest = [opt.suggest() for _ in range(2)]
    assert {t.params["i"] for t in rest} | {first.params["i"]} == {0, 1, 2}
    with pytest.raises(SpaceExhaustedError, match="all 3 configurations"):
        opt.suggest()
    assert opt.best is None


def test_failed_trials_are_not_training_data():
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 3)
    opt.fail(opt.suggest())
    opt.suggest()
    assert opt.diagnostics[-1].num_observations == 3


# --------------------------------------------------------------------------- determinism


def _trajectory(acquisition: str, seed: int, n: int = 6) -> list:
    opt = Optimizer(continuous_space(), acquisition, seed=seed, **FAST)
    return [typed(t.params) for t in run_loop(opt, n)]


@pytest.mark.parametrize("acquisition", ALL_ACQUISITIONS)
def test_equal_seeds_give_equal_suggestions(acquisition):
    first = _trajectory(acquisition, seed=3)
    torch.manual_seed(12345)  # the global RNG must not matter
    assert _trajectory(acquisition, seed=3) == first


@pytest.mark.parametrize("acquisition", ALL_ACQUISITIONS)
def test_different_seeds_give_different_suggestions(acquisition):
    a, b = _trajectory(acquisition, seed=0, n=4), _trajectory(acquisition, seed=1, n=4)
    assert all(x != y for x, y in zip(a, b))


@pytest.mark.parametrize("acquisition", ALL_ACQUISITIONS)
def test_global_rng_is_untouched(acquisition):
    state = torch.random.get_rng_state()
    _trajectory(acquisition, seed=0, n=5)
    assert torch.equal(torch.random.get_rng_state(), state)


# --------------------------------------------------------------------------- diagnostics


def test_one_round_info_per_suggested_trial():
    opt = Optimizer(continuous_space(), "ei", **FAST)
    run_loop(opt, 5)
    opt.suggest(2)
    opt.observe({"x": 0.1, "y": 0.1}, 0.0)
    rounds = opt.diagnostics
    assert all(isinstance(r, RoundInfo) for r in rounds)
    assert [r.trial_id for r in rounds] == [0, 1, 2, 3, 4, 5, 6]
    assert [r.num_observations for r in rounds] == [0, 1, 2, 3, 4, 5, 5]
    for r in rounds[:3]:
        assert r.strategy == "sobol" and r.num_starts == 0 and r.fallback is None
        assert r.device == "cpu"


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_gp_round_diagnostics(acquisition):
    space = mixed_space()
    opt = Optimizer(space, acquisition, **FAST)
    run_loop(opt, 5)
    for r in opt.diagnostics[3:]:
        assert r.strategy == acquisition and r.device == "cpu"
        assert math.isfinite(r.fit_seconds) and r.fit_seconds > 0
        assert math.isfinite(r.acquisition_seconds) and r.acquisition_seconds > 0
        assert set(r.lengthscales) == set(space.names)
        assert all(math.isfinite(v) and v > 0 for v in r.lengthscales.values())
        assert r.noise is not None and r.noise > 0
        assert r.num_starts > 0
        assert math.isfinite(r.log_marginal_likelihood)
        assert math.isfinite(r.best_acquisition)
        assert r.fallback is None and r.warnings == []


def test_gp_round_logs_at_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="bopt")
    opt = Optimizer(continuous_space(), **FAST)
    run_loop(opt, 3)
    caplog.clear()
    opt.suggest()
    records = [r for r in caplog.records if r.name == "bopt" and r.levelno == logging.DEBUG]
    assert len(records) == 1 and "round 3" in records[0].getMessage()


# --------------------------------------------------------------------------- degradation


def test_constant_objective_still_suggests_and_warns():
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    trials = run_loop(opt, 5, func=lambda p: 4.2)
    for trial in trials:
        assert_valid(space, trial.params)
    assert len({key(space, t.params) for t in trials}) == 5
    for r in opt.diagnostics[3:]:
        assert any("all observed values are equal" in w for w in r.warnings)


def test_hyperparameters_are_kept_until_the_data_grow_by_refit_growth():
    opt = Optimizer(continuous_space(), refit_growth=0.5, **FAST)
    run_loop(opt, 12)
    rounds = opt.diagnostics[3:]  # GP rounds at n = 3..11 observations
    # Refit when n - n_fit >= max(1, int(0.5 n_fit)): at 3 (cold), 4, 6 and 9.
    assert [r.num_observations for r in rounds if r.refit] == [3, 4, 6, 9]
    last = None
    for r in rounds:
        if r.refit:
            last = r
        else:  # kept: the last estimate's hyperparameters, exactly
            assert r.lengthscales == last.lengthscales and r.noise == last.noise


@pytest.mark.parametrize("growth", [None, 0.0, 0.02])
def test_every_round_refits_by_default_and_below_a_hundred_observations(growth):
    kwargs = {} if growth is None else {"refit_growth": growth}
    opt = Optimizer(continuous_space(), **kwargs, **FAST)
    run_loop(opt, 10)
    assert [r.refit for r in opt.diagnostics] == [False] * 3 + [True] * 7


@pytest.mark.parametrize("values", [
    [1e300, -1e300, 5e299, 1e300, -3e299, 2e299],
    [1e-300 * i for i in range(6)],
    [1.0 + 1e-300 * i for i in range(6)],  # equal in float64
    [0.0, 1e-300, 1.0, 1e300, -1e300, 0.5],
])
def test_extreme_values_do_not_crash(values):
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    for value in values:
        trial = opt.suggest()
        assert_valid(space, trial.params)
        opt.observe(trial, value)
    trial = opt.suggest()
    assert_valid(space, trial.params)
    assert len({key(space, t.params) for t in opt.history}) == 7


@pytest.mark.parametrize("scale", [2.0**900, 2.0**-50], ids=["x2^900", "x2^-50"])
def test_suggestions_are_invariant_to_power_of_two_scaling(scale):
    """Standardisation makes the loop scale-free; powers of two scale exactly in float."""
    base = _trajectory("ei", seed=0)
    opt = Optimizer(continuous_space(), "ei", seed=0, **FAST)
    scaled = [typed(t.params) for t in run_loop(opt, 6, func=lambda p: scale * objective(p))]
    assert scaled == base
    assert all(r.warnings == [] for r in opt.diagnostics)


# --------------------------------------------------------------------------- minimize


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_minimize_returns_best(direction, capsys):
    space = continuous_space()
    opt = Optimizer(space, direction=direction, **FAST)
    best = opt.minimize(objective, 5, progress=False)
    history = opt.history
    assert len(history) == 5 and all(t.status == "complete" for t in history)
    pick = min if direction == "minimize" else max
    assert best == opt.best and best.value == pick(t.value for t in history)
    assert all(t.value == objective(t.params) for t in history)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_minimize_progress_bar_goes_to_stderr(capsys):
    opt = Optimizer(continuous_space(), **FAST)
    opt.minimize(objective, 2, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "bopt" in out.err and "2/2" in out.err


def test_minimize_marks_non_finite_results_failed_and_continues(caplog):
    results = iter([1.0, math.nan, 2.0, math.inf, "oops", 0.5])
    opt = Optimizer(continuous_space(), **FAST)
    best = opt.minimize(lambda p: next(results), 6, progress=False)
    assert [t.status for t in opt.history] == ["complete", "failed", "complete", "failed",
                                               "failed", "complete"]
    assert best.value == 0.5 and best.id == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("trial 1 failed") and "nan" in m for m in warnings)


def test_minimize_propagates_exceptions_and_marks_trial_failed():
    calls = []

    def func(params):
        calls.append(params)
        if len(calls) == 3:
            raise RuntimeError("simulation crashed")
        return objective(params)

    opt = Optimizer(continuous_space(), **FAST)
    with pytest.raises(RuntimeError, match="simulation crashed"):
        opt.minimize(func, 5, progress=False)
    assert [t.status for t in opt.history] == ["complete", "complete", "failed"]
    opt.minimize(objective, 1, progress=False)  # the loop can go on
    assert opt.history[-1].status == "complete"


def test_minimize_passes_a_copy_of_params():
    opt = Optimizer(continuous_space(), **FAST)
    opt.minimize(lambda p: p.pop("x"), 2, progress=False)
    assert all(set(t.params) == {"x", "y"} for t in opt.history)


@pytest.mark.parametrize("n_trials", [-1, 1.5, True])
def test_minimize_rejects_bad_trial_count(n_trials):
    opt = Optimizer(continuous_space(), **FAST)
    with pytest.raises(ValueError, match=re.escape(f"n_trials must be an int >= 0; "
                                                   f"got {n_trials!r}")):
        opt.minimize(objective, n_trials, progress=False)


# --------------------------------------------------------------------------- strategies, spaces


@pytest.mark.parametrize("acquisition", ["random", "sobol"])
def test_model_free_strategies(acquisition):
    space = mixed_space()
    opt = Optimizer(space, acquisition, **FAST)
    trials = run_loop(opt, 12)
    assert {t.source for t in trials} == {acquisition}
    assert len({key(space, t.params) for t in trials}) == 12
    for trial in trials:
        assert_valid(space, trial.params)
    assert all(r.fit_seconds == 0.0 and r.num_starts == 0 for r in opt.diagnostics)


def test_sobol_strategy_follows_the_space_design():
    space = continuous_space()
    opt = Optimizer(space, "sobol", seed=5, **{**FAST, "n_initial": 8})
    trials = run_loop(opt, 8)
    assert [typed(t.params) for t in trials] == [typed(c) for c in space.sobol(8, seed=5)]


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_conditional_space_suggestions_omit_inactive_params(acquisition):
    space = nested_space()
    opt = Optimizer(space, acquisition, **FAST)
    trials = run_loop(opt, 6)
    for trial in trials:
        params = trial.params
        assert_valid(space, params)
        assert ("momentum" in params) == (params["opt"] in ("sgd", "rmsprop"))
        assert ("nesterov" in params) == (params["opt"] == "sgd")
        assert ("warmup" in params) == (params.get("nesterov") is True)
    assert len({t.params["opt"] for t in trials}) >= 2
    assert len({key(space, t.params) for t in trials}) == 6
    assert set(opt.diagnostics[-1].lengthscales) == set(space.names)


@pytest.mark.parametrize("acquisition", GP_ACQUISITIONS)
def test_mixed_space_loop(acquisition):
    space = mixed_space()
    opt = Optimizer(space, acquisition, **FAST)
    trials = run_loop(opt, 10)
    assert [t.source for t in trials] == ["sobol"] * 3 + [acquisition] * 7
    assert len({key(space, t.params) for t in trials}) == 10
    for trial in trials:
        assert_valid(space, trial.params)
        p = trial.params
        assert type(p["layers"]) is int and type(p["width"]) is int
        assert type(p["flag"]) is bool and type(p["k"]) is int and type(p["act"]) is str
    assert all(r.fallback is None for r in opt.diagnostics)


# --- rollback, early stop, threads ------------------------------------------------------------

def test_suggest_batch_interrupted_midway_leaves_state_unchanged(monkeypatch):
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    opt = Optimizer(space, "ei", seed=0, n_initial=2, num_raw_samples=64, num_restarts=2)
    for _ in range(3):
        trial = opt.suggest()
        opt.observe(trial, trial.params["x"] + trial.params["y"])
    twin = Optimizer(space, "ei", seed=0, n_initial=2, num_raw_samples=64, num_restarts=2)
    for trial in opt.history:
        twin_trial = twin.suggest()
        twin.observe(twin_trial, trial.value)
    before = (opt.history, len(opt.diagnostics))
    calls = {"n": 0}
    original = bopt.proposal.propose

    def interrupt_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(bopt.engine, "propose", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        opt.suggest(3)
    monkeypatch.setattr(bopt.engine, "propose", original)
    assert (opt.history, len(opt.diagnostics)) == before
    assert opt.suggest().params == twin.suggest().params


def test_minimize_stops_when_a_finite_space_runs_out():
    space = Space([Int("n", 0, 2), Categorical("c", ["a", "b"])])
    opt = Optimizer(space, "ei", seed=0, n_initial=2, num_raw_samples=16, num_restarts=2)
    best = opt.minimize(lambda p: p["n"] + (p["c"] == "b"), 20, progress=False)
    assert len(opt.history) == 6
    assert best.params == {"n": 0, "c": "a"} and best.value == 0


def test_suggest_restores_the_callers_torch_thread_count():
    import torch

    space = Space([Float("x", 0.0, 1.0)])
    opt = Optimizer(space, "ei", seed=0, n_initial=2, num_raw_samples=16, num_restarts=2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(3):
            trial = opt.suggest()
            opt.observe(trial, (trial.params["x"] - 0.3) ** 2)
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bad_device_string_is_a_clear_error():
    with pytest.raises(ArgumentError, match=r"device must be 'auto', 'cpu', 'cuda' or a torch.device; got 'gpu'"):
        Optimizer(Space([Float("x", 0.0, 1.0)]), device="gpu")


# --------------------------------------------------------------------------- objective trouble


def test_a_single_observation_then_model_rounds():
    space = continuous_space()
    opt = Optimizer(space, n_initial=1, num_restarts=4, num_raw_samples=64, device="cpu")
    run_loop(opt, 1)
    trials = run_loop(opt, 2)  # n_initial is raised to 2 internally, then the GP takes over
    assert [t.source for t in trials] == ["sobol", "ei"]


def test_duplicate_configurations_with_different_values():
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    run_loop(opt, 3)
    same = {"x": 0.25, "y": 1.0}
    for value in (1.0, 3.0, -2.0):
        opt.observe(same, value)
    trial = opt.suggest()
    info = opt.diagnostics[-1]
    assert info.num_duplicates == 2 and trial.source == "ei"
    assert any("repeat an observed configuration" in w for w in info.warnings)
    assert key(space, trial.params) != key(space, same)


def test_heavy_noise_still_gives_valid_distinct_suggestions():
    space = mixed_space()
    opt = Optimizer(space, **FAST)
    rng = np.random.default_rng(0)
    trials = run_loop(opt, 10, func=lambda p: objective(p) + 50.0 * rng.standard_normal())
    assert len({key(space, t.params) for t in trials}) == 10
    for t in trials:
        assert_valid(space, t.params)
    assert opt.diagnostics[-1].noise > 1e-3  # the model noticed the noise


def test_threads_interleaving_suggest_and_observe():
    """Four threads share one optimizer: every trial is reported once, ids are unique, and no
    configuration is proposed twice."""
    import threading

    space = mixed_space()
    opt = Optimizer(space, acquisition="random", seed=3, device="cpu")
    errors = []

    def worker():
        try:
            for _ in range(25):
                trial = opt.suggest()
                opt.observe(trial, objective(trial.params))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = opt.history
    assert [t.id for t in history] == list(range(100))
    assert all(t.status == "complete" for t in history)
    assert len({key(space, t.params) for t in history}) == 100


# --------------------------------------------------------------------------- recommend, predict


def _replicates(direction: str = "minimize") -> Optimizer:
    """A is observed three times near 1.0; B once at a lucky -0.5 and three times near 2.0."""
    sign = 1.0 if direction == "minimize" else -1.0
    opt = Optimizer(continuous_space(), direction=direction, **FAST)
    a, b = {"x": 0.2, "y": 0.0}, {"x": 0.8, "y": 0.0}
    for config, values in ((a, [1.0, 1.1, 0.9]), (b, [-0.5, 2.0, 2.1, 1.9])):
        for v in values:
            opt.observe(config, sign * v)
    for i, x in enumerate((0.05, 0.35, 0.5, 0.65, 0.95)):
        opt.observe({"x": x, "y": 1.0}, sign * (1.5 + 0.1 * i))
    return opt


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_recommend_trusts_the_model_not_the_luckiest_draw(direction):
    opt = _replicates(direction)
    sign = 1.0 if direction == "minimize" else -1.0
    assert opt.best.params == {"x": 0.8, "y": 0.0} and opt.best.value == sign * -0.5
    rec = opt.recommend()
    assert rec.params == {"x": 0.2, "y": 0.0} and rec.value == sign * 1.0
    # B's replicates spread over 2.6, so the fitted noise is large and A's mean shrinks
    # towards the prior mean (a poor value) by a fraction of its posterior std.
    assert rec.trial_id == 0 and abs(rec.mean - sign * 1.0) < 1.5 * rec.std < 0.6
    mean, std = opt.predict([{"x": 0.2, "y": 0.0}, {"x": 0.8, "y": 0.0}])
    assert mean.shape == std.shape == (2,) and mean.dtype == np.float64
    assert sign * mean[1] > sign * mean[0] + 0.1  # B is believed worse, despite its -0.5


def test_predict_recovers_a_smooth_objective_and_changes_nothing():
    space = continuous_space()
    opt = Optimizer(space, **FAST)
    f = lambda p: math.sin(3 * p["x"]) + 0.5 * p["y"]  # noqa: E731
    for config in space.sobol(32, seed=1):
        opt.observe(config, f(config))
    before = (opt.history, opt.diagnostics, opt.warm_start)
    probe = space.sample(5, seed=9)
    mean, std = opt.predict(probe)
    np.testing.assert_allclose(mean, [f(c) for c in probe], atol=0.05)
    assert (std > 0).all() and (std < 0.1).all()
    assert (opt.history, opt.diagnostics) == before[:2] and opt.warm_start is before[2]
    again, _ = opt.predict(probe)  # cached: the same fit answers again
    assert np.array_equal(mean, again)


def test_far_from_the_data_predict_expects_a_poor_value_not_the_average():
    """The GP's prior mean is the targets' lower quartile (`bopt.warp`): where the data say
    nothing the model expects a poor value (minimising: near the values' upper quartile),
    so log EI does not chase the corners it knows nothing about. With the mean as prior
    mean (the rule before) the far prediction sat at the values' average, 0.0."""
    opt = Optimizer(continuous_space(), **FAST)
    rng = np.random.default_rng(0)
    values = rng.normal(size=16)
    values -= values.mean()  # average 0; upper quartile about 0.45
    for v in values:  # structureless values in one corner: x, y within 0.1 of their lows
        opt.observe({"x": float(rng.uniform(0.0, 0.1)), "y": float(rng.uniform(-2.0, -1.6))},
                    float(v))
    mean, _ = opt.predict([{"x": 1.0, "y": 2.0}])
    assert np.quantile(values, 0.6) < mean[0] < np.quantile(values, 0.9), (
        mean[0], np.quantile(values, [0.6, 0.75, 0.9]))


def test_predict_and_recommend_before_any_observation():
    opt = Optimizer(continuous_space(), **FAST)
    assert opt.recommend() is None
    with pytest.raises(ArgumentError, match=r"predict\(\): no completed trial yet"):
        opt.predict([{"x": 0.5, "y": 0.0}])


def test_predict_validates_its_configs():
    opt = _replicates()
    with pytest.raises(ParameterError, match=r"config #1: parameter 'x' = 2.0 is outside"):
        opt.predict([{"x": 0.5, "y": 0.0}, {"x": 2.0, "y": 0.0}])


@pytest.mark.parametrize("sem", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_a_bad_standard_error_is_refused_and_changes_nothing(sem):
    opt = Optimizer(continuous_space(), **FAST)
    trial = opt.suggest()
    with pytest.raises(ObservationError, match=rf"observe\(trial {trial.id}\): sem \(the value's "
                       r"standard error\) must be a finite number >= 0"):
        opt.observe(trial, 1.0, sem=sem)
    assert opt.history[trial.id].status == "pending"


def test_a_large_standard_error_makes_the_model_distrust_that_value():
    """B's lucky -0.5 reported with a large standard error: the model leans on the rest."""
    opt, trusting = _replicates(), _replicates()
    opt.observe({"x": 0.8, "y": 0.1}, -0.5, sem=5.0)
    trusting.observe({"x": 0.8, "y": 0.1}, -0.5)
    assert opt.history[-1].sem == 5.0
    here = [{"x": 0.8, "y": 0.1}]
    assert opt.predict(here)[0][0] > trusting.predict(here)[0][0] + 0.1


# --------------------------------------------------------------------------- minimize, as users meet it


def test_ctrl_c_marks_the_running_trial_stale_and_it_is_retried():
    opt = Optimizer(continuous_space(), acquisition="random", seed=1)
    calls = []

    def func(params):
        calls.append(params)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return objective(params)

    with pytest.raises(KeyboardInterrupt):
        opt.minimize(func, 5, progress=False)
    interrupted = opt.history[1]
    assert interrupted.status == "stale" and interrupted.note == "interrupted (KeyboardInterrupt)"
    retry = opt.suggest()
    assert retry.source == "retry" and retry.retry_of == 1 and retry.params == calls[1]


def test_minimize_timeout_callbacks_and_threads():
    import threading
    import time as clock

    opt = Optimizer(continuous_space(), acquisition="random", seed=2)
    seen, threads = [], set()

    def slow(params):
        threads.add(threading.get_ident())
        clock.sleep(0.05)
        return objective(params)

    opt.minimize(slow, 100, progress=False, timeout=0.3, n_jobs=3,
                 callbacks=[lambda o, t: seen.append((t.id, t.status))])
    done = [t for t in opt.history if t.status == "complete"]
    assert 3 <= len(done) < 100 and len(threads) == 3  # stopped by the timeout
    assert sorted(seen) == sorted((t.id, "complete") for t in done)
    assert len({key(opt.space, t.params) for t in opt.history}) == len(opt.history)


def test_minimize_says_when_the_space_runs_out(capsys, caplog):
    space = Space([Int("n", 0, 2), Categorical("c", ["a", "b"])])
    opt = Optimizer(space, "random", seed=0)
    opt.minimize(lambda p: p["n"], 20, progress=True)
    err = capsys.readouterr().err
    assert "stopped after 6 of 20 trials: the space has no unseen configuration left" in err
    assert any(r.levelno == logging.WARNING and "stopping early" in r.getMessage()
               for r in caplog.records)


def test_reopening_a_study_with_pending_trials_warns(tmp_path, caplog):
    opt = Optimizer(continuous_space(), acquisition="random", storage=tmp_path / "s.db")
    opt.suggest(2)
    with caplog.at_level(logging.WARNING, logger="bopt"):
        Optimizer.load(tmp_path / "s.db")
    assert any("has 2 pending trial(s)" in r.getMessage() and "pending_timeout" in
               r.getMessage() for r in caplog.records)
    caplog.clear()
    Optimizer.load(tmp_path / "s.db", pending_timeout=3600)
    assert not any("pending trial" in r.getMessage() for r in caplog.records)
