"""BoptSampler with real Optuna: the distribution map, quality against random search, RDB
storage shared by two processes, threads, pruners, define-by-run fallbacks and bad options.

Every study is seeded; the loops are short (bopt's rounds take about 0.1 s each here), and
the whole file runs in well under a minute on two busy cores.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import torch  # noqa: E402  (after the skip: the module needs Optuna)
from optuna.distributions import (CategoricalDistribution, FloatDistribution,  # noqa: E402
                                  IntDistribution)
from optuna.trial import TrialState, create_trial  # noqa: E402

from bopt import Categorical, Int  # noqa: E402
from bopt.errors import ArgumentError  # noqa: E402
from bopt.integrations.optuna import (ROUND_KEY, BoptSampler, _dimension,  # noqa: E402
                                      _finite)

ROOT = Path(__file__).resolve().parents[2]
ODD_CHOICES = (None, 3, "a", True, 2.5, "")
SPACE_2D = {"x": FloatDistribution(-1.0, 1.0), "y": FloatDistribution(-1.0, 1.0)}


@pytest.fixture(autouse=True)
def _quiet_optuna():
    """Optuna's per-trial INFO lines off during each test; the caller's level after."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


class _Records(logging.Handler):
    """Collects the records of one logger (Optuna's loggers do not propagate to root)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def sampler_log():
    handler = _Records()
    logger = logging.getLogger("optuna.bopt")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _quadratic(trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    y = trial.suggest_float("y", -1.0, 1.0)
    return (x - 0.3) ** 2 + (y + 0.2) ** 2


def _branin(trial) -> float:
    x = trial.suggest_float("x", -5.0, 10.0)
    y = trial.suggest_float("y", 0.0, 15.0)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10  # min 0.397887


def _key(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def _rounds(study) -> list[dict]:
    return [t.system_attrs[ROUND_KEY] for t in study.trials if ROUND_KEY in t.system_attrs]


def _history(values: list[float], *, seed: int = 0) -> list:
    """Complete trials of SPACE_2D at seeded random points, one per value."""
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(len(values), 2, generator=g, dtype=torch.float64) * 2 - 1).tolist()
    return [create_trial(params={"x": x, "y": y}, distributions=SPACE_2D, value=v)
            for (x, y), v in zip(points, values)]


def _propose(sampler, trials) -> dict:
    """The parameters `sampler` proposes for a new trial after `trials`."""
    study = optuna.create_study(sampler=sampler)
    study.add_trials(trials)
    trial = study.ask()
    return {"x": trial.suggest_float("x", -1.0, 1.0), "y": trial.suggest_float("y", -1.0, 1.0)}


# --------------------------------------------------------------------------- distributions


def _bopt_values(param) -> list:
    """Every value of a bopt Int or Categorical; the ends and middle of a Float."""
    if isinstance(param, Categorical):
        return list(param.choices)
    if isinstance(param, Int):
        return list(range(param.low, param.high + 1))
    return [param.low, param.high, (param.low + param.high) / 2]


@pytest.mark.parametrize("dist", [
    FloatDistribution(-2.0, 3.0),
    FloatDistribution(1e-5, 1.0, log=True),
    FloatDistribution(0.1, 1.0, step=0.1),
    FloatDistribution(-1.0, 1.0, step=0.25),
    IntDistribution(-3, 7),
    IntDistribution(1, 1024, log=True),
    IntDistribution(0, 20, step=5),
    CategoricalDistribution(ODD_CHOICES),
    CategoricalDistribution([1, True, 1.0]),  # equal values of three types
], ids=repr)
def test_every_value_round_trips_through_the_bopt_parameter(dist):
    dim = _dimension("p", dist)
    for value in _bopt_values(dim.param):
        external = dim.to_optuna(value)
        assert dist._contains(dist.to_internal_repr(external)), (value, external)
        assert dim.to_bopt(dim.internal(external)) == value
        again = dim.to_optuna(dim.to_bopt(dim.internal(external)))
        assert again is external or (type(again) is type(external) and again == external)


def test_stepped_values_are_optunas_grid_and_ints_stay_ints():
    dim = _dimension("p", FloatDistribution(0.1, 1.0, step=0.1))
    assert dim.param.low == 0 and dim.param.high == 9
    assert [dim.to_optuna(k) for k in (0, 9)] == [0.1, 1.0]
    dim = _dimension("n", IntDistribution(2, 17, step=5))
    assert dim.param.high == 3 and dim.to_optuna(3) == 17 and type(dim.to_optuna(1)) is int


def test_int_ranges_bopt_cannot_encode_go_to_the_independent_sampler():
    assert _dimension("big", IntDistribution(0, 2**60)) is None


def test_a_study_with_odd_choices_and_steps_gets_exact_values():
    seen = set()

    def objective(trial):
        c = trial.suggest_categorical("c", ODD_CHOICES)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        s = trial.suggest_float("s", 0.0, 1.0, step=0.1)
        n = trial.suggest_int("n", 0, 30, step=3)
        assert any(c is o or (type(c) is type(o) and c == o) for o in ODD_CHOICES), c
        assert 1e-4 <= lr <= 1.0 and type(n) is int and n % 3 == 0
        assert abs(s * 10 - round(s * 10)) < 1e-9
        seen.add(repr(c))
        return ODD_CHOICES.index(c) + math.log10(lr) ** 2 + s + n / 30

    study = optuna.create_study(sampler=BoptSampler(seed=0, n_startup_trials=4))
    study.optimize(objective, n_trials=9)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert {r["source"] for r in _rounds(study)} >= {"sobol", "ei"}
    assert len(seen) >= 3


# --------------------------------------------------------------------------- quality


def test_beats_random_search_on_branin_with_the_same_budget_and_seeds():
    best = {"bopt": [], "random": []}
    for seed in range(3):
        for name, sampler in [("bopt", BoptSampler(seed=seed)),
                              ("random", optuna.samplers.RandomSampler(seed=seed))]:
            study = optuna.create_study(sampler=sampler)
            study.optimize(_branin, n_trials=15)
            best[name].append(study.best_value)
    # Measured medians: bopt about 0.9, random about 7.5 (optimum 0.398); half is a wide margin.
    assert statistics.median(best["bopt"]) < 0.5 * statistics.median(best["random"]), best


def test_equal_seeds_and_histories_give_equal_proposals():
    trials = _history([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.4])  # past bopt's Sobol design
    first = _propose(BoptSampler(seed=5), trials)
    assert _propose(BoptSampler(seed=5), trials) == first
    # In the Sobol design, another seed scrambles differently.
    assert _propose(BoptSampler(seed=5), trials[:2]) != _propose(BoptSampler(seed=6), trials[:2])


def test_maximize_follows_the_study_direction():
    study = optuna.create_study(direction="maximize", sampler=BoptSampler(seed=1))
    study.optimize(lambda t: -_quadratic(t), n_trials=14)
    assert study.best_value > -0.02


# --------------------------------------------------------------------------- workers


_WORKER = textwrap.dedent("""
    import os, pathlib, sys, time, optuna
    from bopt.integrations.optuna import BoptSampler
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Start together (imports take seconds on a busy machine): wait for both ready files.
    folder = pathlib.Path(sys.argv[2])
    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(list(folder.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    def objective(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        y = trial.suggest_float("y", -1.0, 1.0)
        time.sleep(0.2)  # long enough for the other worker to sample meanwhile
        return (x - 0.3) ** 2 + (y + 0.2) ** 2
    study = optuna.load_study(study_name="shared", storage=sys.argv[1],
                              sampler=BoptSampler(seed=0, n_startup_trials=3))
    study.optimize(objective, n_trials=5)
""")


def test_two_processes_share_an_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=storage)  # the schema, created once
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, storage, str(tmp_path)],
                                cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 10
    assert len({_key(t) for t in study.trials}) == 10  # both workers used seed 0
    rounds = _rounds(study)
    assert sum(r["running"] + r["unsampled"] for r in rounds) > 0  # each saw the other's
    assert {r["source"] for r in rounds} >= {"sobol", "ei"}


def test_n_jobs_threads_see_each_others_points(tmp_path):
    storage = f"sqlite:///{tmp_path / 'threads.db'}"
    study = optuna.create_study(storage=storage, sampler=BoptSampler(seed=2, n_startup_trials=3))

    def objective(trial):
        value = _quadratic(trial)
        torch.tensor(0.0).add_(1.0)  # any torch work in the objective thread
        time.sleep(0.2)  # the other thread samples meanwhile
        return value

    study.optimize(objective, n_trials=8, n_jobs=2)
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 8
    assert len({_key(t) for t in study.trials}) == 8
    assert max(r["running"] for r in _rounds(study)) >= 1


def test_the_sampler_pickles_with_a_fresh_lock():
    sampler = pickle.loads(pickle.dumps(BoptSampler(seed=3)))
    assert sampler.seed == 3
    study = optuna.create_study(sampler=sampler)
    study.optimize(_quadratic, n_trials=2)


# --------------------------------------------------------------------------- trial states


def _curve_objective(trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    y = trial.suggest_float("y", -1.0, 1.0)
    value = (x - 0.3) ** 2 + (y + 0.2) ** 2
    for step in range(1, 10):
        trial.report(value + 1.0 / step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value + 1.0 / 9


@pytest.mark.parametrize("pruner", [
    optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3),
    optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
], ids=lambda p: type(p).__name__)
def test_pruners_prune_and_the_sampler_keeps_proposing(pruner):
    # Hyperband assigns brackets by a hash of the study name: name the study, so that the
    # run is the same every time.
    study = optuna.create_study(study_name="pruned", pruner=pruner,
                                sampler=BoptSampler(seed=0, n_startup_trials=3))
    study.optimize(_curve_objective, n_trials=16)
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    assert "ei" in {r["source"] for r in _rounds(study)}
    # A round that observed more trials than had completed before it used pruned ones.
    used_pruned = [t.system_attrs[ROUND_KEY]["observed"] > states[:t.number].count(
        TrialState.COMPLETE) for t in study.trials if ROUND_KEY in t.system_attrs]
    assert any(used_pruned)


def test_pruned_trials_count_as_observations_only_when_asked():
    complete = _history([0.5, 0.1, 0.9, 0.3, 0.7])
    pruned = [create_trial(params={"x": 0.5, "y": 0.5}, distributions=SPACE_2D,
                           state=TrialState.PRUNED, intermediate_values={1: 3.0, 2: 2.0}),
              create_trial(params={"x": -0.5, "y": 0.5}, distributions=SPACE_2D,
                           state=TrialState.PRUNED)]  # no intermediate value: ignored
    for use, observed in [(True, 6), (False, 5)]:
        study = optuna.create_study(sampler=BoptSampler(seed=0, use_pruned_trials=use))
        study.add_trials(complete + pruned)
        trial = study.ask()
        trial.suggest_float("x", -1.0, 1.0)
        assert study.trials[-1].system_attrs[ROUND_KEY]["observed"] == observed


def test_a_failed_configuration_is_not_proposed_again():
    trials = _history([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.4])
    first = _propose(BoptSampler(seed=0), trials)
    failed = create_trial(params=first, distributions=SPACE_2D, state=TrialState.FAIL)
    sampler = BoptSampler(seed=0)
    second = _propose(sampler, trials + [failed])
    assert math.dist(first.values(), second.values()) > 1e-3, (first, second)


def test_infinite_values_become_the_worst_and_best_finite_ones():
    assert _finite([({}, 1.0), ({}, math.inf), ({}, -math.inf), ({}, 3.0)]) == [
        ({}, 1.0), ({}, 3.0), ({}, 1.0), ({}, 3.0)]
    assert _finite([({}, math.inf)]) == []


def test_a_used_up_finite_space_falls_back_to_the_independent_sampler(sampler_log):
    def objective(trial):
        return trial.suggest_int("i", 0, 1) + 2 * (trial.suggest_categorical("c", "ab") == "b")

    study = optuna.create_study(sampler=BoptSampler(seed=0))
    study.optimize(objective, n_trials=7)
    assert len({_key(t) for t in study.trials}) == 4
    assert any("every configuration of the joint space" in m for m in sampler_log)


# --------------------------------------------------------------------------- define-by-run


def test_a_parameter_outside_the_joint_space_is_sampled_independently(sampler_log):
    def objective(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        extra = trial.suggest_int("extra", 1, 9) if trial.number % 2 else 5
        assert 1 <= extra <= 9
        return x * x + extra

    study = optuna.create_study(sampler=BoptSampler(seed=0))
    study.optimize(objective, n_trials=4)
    warned = [m for m in sampler_log if "'extra'" in m]
    assert warned and "outside the joint search space" in warned[0]
    assert "warn_independent_sampling=False" in warned[0]
    assert {"x"} == set(study.trials[-1].distributions) - {"extra"}

    quiet = BoptSampler(seed=0, warn_independent_sampling=False)
    sampler_log.clear()
    optuna.create_study(sampler=quiet).optimize(objective, n_trials=4)
    assert not sampler_log


def test_a_conditional_objective_runs_with_bopt_on_the_shared_parameters():
    def objective(trial):
        kind = trial.suggest_categorical("kind", ["linear", "square"])
        y = trial.suggest_float("y", 0.0, 1.0)
        if kind == "linear":
            return trial.suggest_float("slope", -1.0, 1.0) + y
        return trial.suggest_int("power", 1, 4) * y * y

    study = optuna.create_study(sampler=BoptSampler(seed=0, n_startup_trials=3,
                                                    warn_independent_sampling=False))
    study.optimize(objective, n_trials=10)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert set(study.sampler.infer_relative_search_space(study, study.trials[-1])) == {
        "kind", "y"}
    assert "ei" in {r["source"] for r in _rounds(study)}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, r"seed=-1\): seed must be None or an int in \[0, 4294967295\]"),
    ({"seed": 1.5}, r"seed must be None or an int .*got float 1.5"),
    ({"seed": True}, r"seed must be None or an int .*got bool True"),
    ({"n_startup_trials": 0}, r"n_startup_trials must be None or an int in \[1, "),
    ({"acquisition": "pi"}, r"acquisition must be one of \('ei'.*got 'pi'"),
    ({"device": "tpu"}, r"device must be 'auto', 'cpu', 'cuda' or a torch.device; got 'tpu'"),
    ({"independent_sampler": "random"}, r"expected None or an optuna.samplers.BaseSampler"),
    ({"use_pruned_trials": "yes"}, r"use_pruned_trials must be True or False; got str"),
])
def test_bad_options_are_refused_by_name(kwargs, message):
    with pytest.raises(ArgumentError, match=message):
        BoptSampler(**kwargs)
    with pytest.raises(ValueError):  # ArgumentError is a ValueError too
        BoptSampler(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ArgumentError, match="CUDA is not available here"):
        BoptSampler(device="cuda")


def test_a_multi_objective_study_is_refused():
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=BoptSampler())
    with pytest.raises(ArgumentError, match=r"single objective; this study has 2 "
                                            r"\(minimize, maximize\)"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1, catch=())
