"""Tests for bopt.integrations.ray: the Tune space conversion (no Ray runtime), the
searcher's bookkeeping driven by hand, and tuning runs on one shared local Ray runtime
(ASHA, HyperBand, a ConcurrencyLimiter, an errored trial, an interrupted experiment
restored from its directory)."""

from __future__ import annotations

import math
import os
import pickle
import signal
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray Tune searcher needs ray[tune]")
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler  # noqa: E402
from ray.tune.search import ConcurrencyLimiter, Searcher  # noqa: E402

from bopt.errors import ArgumentError, ParameterError, SearchSpaceError  # noqa: E402
from bopt.integrations.ray import BoptSearch, TuneSpace  # noqa: E402
from bopt.space import Categorical, Float, Int, Space  # noqa: E402

MAX_EPOCHS = 9


def _final_loss(x: float, y: float) -> float:
    return (x - 0.3) ** 2 + (y + 0.2) ** 2


def _loss(x: float, y: float, epoch: int) -> float:
    """A learning curve: the final loss plus a gap that halves every epoch (the ranking of
    configurations is the same at every epoch, as ASHA assumes)."""
    final = _final_loss(x, y)
    return final + (1.0 + final) * 0.5 ** epoch


def _train(config: dict) -> None:
    for epoch in range(1, MAX_EPOCHS + 1):
        tune.report({"loss": _loss(config["x"], config["y"], epoch)})


def _train_or_raise(config: dict) -> None:
    if config["x"] > 0.8:
        raise RuntimeError("diverged")
    _train(config)


class _Curve(tune.Trainable):
    """The same curve as a class trainable, which HyperBand can pause and resume."""

    def setup(self, config: dict) -> None:
        self.x, self.y, self.epoch = config["x"], config["y"], 0

    def step(self) -> dict:
        self.epoch += 1
        return {"loss": _loss(self.x, self.y, self.epoch), "done": self.epoch >= MAX_EPOCHS}

    def reset_config(self, new_config: dict) -> bool:  # lets Tune reuse the actor
        self.setup(new_config)
        return True

    def save_checkpoint(self, checkpoint_dir: str) -> dict:
        return {"epoch": self.epoch}

    def load_checkpoint(self, checkpoint: dict) -> None:
        self.epoch = checkpoint["epoch"]


XY = {"x": tune.uniform(-1.0, 1.0), "y": tune.uniform(-1.0, 1.0)}


# --------------------------------------------------------------------------- the space


@pytest.mark.parametrize("domain, param", [
    (tune.uniform(-1, 2), Float("v", -1.0, 2.0)),
    (tune.loguniform(1e-4, 1e-1), Float("v", 1e-4, 1e-1, log=True)),
    (tune.quniform(0, 1, 0.05), Int("v", 0, 20)),
    (tune.qloguniform(0.01, 1, 0.01), Int("v", 1, 100, log=True)),
    (tune.randint(0, 10), Int("v", 0, 9)),
    (tune.lograndint(1, 100), Int("v", 1, 99, log=True)),
    (tune.qrandint(0, 20, 5), Int("v", 0, 4)),
    (tune.qrandint(0, 10), Int("v", 0, 9)),
    (tune.qlograndint(2, 64, 2), Int("v", 1, 32, log=True)),
    (tune.choice(["a", "b", "a"]), Categorical("v", ["a", "b"])),
])
def test_each_tune_domain_becomes_one_bopt_parameter(domain, param):
    assert TuneSpace.from_tune({"v": domain}).space == Space([param])


@pytest.mark.parametrize("domain", [
    tune.quniform(0, 1, 0.25), tune.qloguniform(0.1, 1.0, 0.1), tune.randint(0, 5),
    tune.lograndint(1, 8), tune.qrandint(0, 20, 5), tune.qrandint(3, 7),
    tune.qlograndint(2, 16, 2), tune.choice([None, [1, 2], "x", 3]),
])
def test_a_discrete_domain_holds_exactly_the_values_tune_samples(domain):
    """Every value Tune's own sampler draws maps into the bopt space and back unchanged,
    and the bopt grid holds no value Tune never draws (exclusive and inclusive upper
    bounds, steps and log scales alike)."""
    ts = TuneSpace.from_tune({"v": domain})
    drawn = domain.sample(size=3000, random_state=np.random.default_rng(0))
    for value in drawn:
        params = ts.to_params({"v": value})
        assert ts.space.validate(params) == params
        back = ts.to_config(params)["v"]
        assert back == value or math.isclose(back, value, rel_tol=1e-12)
    def key(value):  # Tune's steps carry float error (0.30000000000000004); ours do not
        value = value.item() if isinstance(value, np.generic) else value
        return repr(round(value, 9) if isinstance(value, float) else value)
    grid = [ts.to_config(p)["v"] for p in ts.space.grid()]
    assert sorted(map(key, grid)) == sorted({key(v) for v in drawn})


@pytest.mark.parametrize("domain", [tune.uniform(-1, 2), tune.loguniform(1e-4, 1e-1)])
def test_tune_float_samples_round_trip(domain):
    ts = TuneSpace.from_tune({"v": domain})
    for value in domain.sample(size=200, random_state=np.random.default_rng(1)):
        assert ts.to_config(ts.to_params({"v": value}))["v"] == value


MIXED = {"lr": tune.loguniform(1e-4, 1e-1), "q": tune.quniform(0, 1, 0.05),
         "n": tune.lograndint(1, 100), "act": tune.choice(["relu", None, ("tanh", 2)]),
         "model": {"width": tune.qrandint(8, 64, 8), "kind": "mlp"}, "seed": 7}


def test_bopt_configs_round_trip_through_tune_configs():
    ts = TuneSpace.from_tune(MIXED)
    assert ts.space.names == ("lr", "q", "n", "act", "model/width")
    for params in ts.space.sample(50, seed=0):
        config = ts.to_config(params)
        assert config["seed"] == 7 and config["model"]["kind"] == "mlp"  # constants kept
        assert MIXED["lr"].is_valid(config["lr"]) and config["act"] in MIXED["act"].categories
        assert config["model"]["width"] % 8 == 0 and 8 <= config["model"]["width"] <= 64
        assert round(config["q"] / 0.05, 9).is_integer()
        assert ts.to_params(config) == params


def test_a_bopt_space_is_searched_as_it_is():
    space = Space([Categorical("opt", ["sgd", "adam"]),
                   Float("momentum", 0.0, 0.99, when={"opt": "sgd"})])
    ts = TuneSpace.from_bopt(space)
    assert ts.space == space
    for params in space.sample(20, seed=0):
        assert ts.to_config(params) == params == ts.to_params(params)


def test_choices_bopt_cannot_hold_come_back_as_copies_of_the_objects():
    ts = TuneSpace.from_tune({"layers": tune.choice([[64, 64], None])})
    assert ts.space["layers"].choices == ("0: [64, 64]", "1: None")
    config = ts.to_config({"layers": "0: [64, 64]"})
    assert config == {"layers": [64, 64]}
    config["layers"].append(1)  # a trial editing its config changes nothing here
    assert ts.to_config({"layers": "0: [64, 64]"}) == {"layers": [64, 64]}


def test_a_domain_holding_one_value_is_a_constant():
    ts = TuneSpace.from_tune({"a": tune.randint(3, 4), "b": tune.qrandint(5, 9, 5),
                              "c": tune.uniform(0, 1)})
    assert ts.space.names == ("c",)
    assert ts.to_config({"c": 0.5}) == {"a": 3, "b": 5, "c": 0.5}


@pytest.mark.parametrize("config, match", [
    ({"v": tune.randn(0, 1)}, r"'v': Normal sampling is not supported; BoptSearch needs a "
                              r"bounded range"),
    ({"v": tune.qrandn(0, 1, 0.1)}, r"'v': Normal sampling is not supported"),
    ({"v": tune.sample_from(lambda _: 1)}, r"'v': Function domains .* are not supported"),
    ({"m": {"v": tune.grid_search([1, 2])}}, r"'m/v': tune.grid_search is not supported.*"
                                             r"tune.choice"),
    ({"v": [tune.uniform(0, 1)]}, r"'v': search domains inside a list are not supported"),
    ({"v": tune.choice([tune.uniform(0, 1), 2])}, r"'v': a choice holds a Tune search domain"),
    ({"v": tune.qrandint(1, 4, 5)}, r"'v': the domain \[1, 4\] \(q=5\) holds no value"),
    ({"v": 3}, r"holds no search domain \(only constants\)"),
    ([tune.uniform(0, 1)], r"a Tune search space must be a dict; got list"),
])
def test_what_cannot_be_converted_is_named(config, match):
    with pytest.raises(SearchSpaceError, match=match):
        TuneSpace.from_tune(config)


def test_values_off_the_grid_or_the_choices_are_refused():
    ts = TuneSpace.from_tune({"q": tune.quniform(0, 1, 0.25), "c": tune.choice(["a", "b"])})
    with pytest.raises(ParameterError, match=r"'q': 0.3 is not a multiple of the step q=0.25"):
        ts.to_params({"q": 0.3, "c": "a"})
    with pytest.raises(ParameterError, match=r"'c': 'z' is not one of the Tune choices"):
        ts.to_params({"q": 0.5, "c": "z"})


# --------------------------------------------------------------------------- the searcher


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": ["a", "b"]}, r"optimizes one metric: metric must be a non-empty str"),
    ({"metric": "loss", "mode": "minimize"}, r"mode must be 'min' or 'max'; got 'minimize'"),
    ({"space": 42}, r"space must be a Tune search space \(dict\), a bopt.Space or None; got "
                    r"int"),
    ({"acquisition": "pi"}, r"acquisition"),
    ({"space": XY, "points_to_evaluate": {"x": 0.0}}, r"points_to_evaluate must be a list"),
    ({"space": XY, "points_to_evaluate": [{"x": 0.0, "y": 5.0}]}, r"points_to_evaluate\[0\]"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ArgumentError, ParameterError), match=match):
        BoptSearch(**kwargs)


def test_suggest_needs_a_space_a_metric_and_a_mode():
    with pytest.raises(ArgumentError, match=r"needs a metric and a mode; got metric=None"):
        BoptSearch(XY).suggest("t0")
    with pytest.raises(ArgumentError, match=r"has no search space: pass space="):
        BoptSearch(metric="loss", mode="min").suggest("t0")


def test_tune_passes_the_space_metric_and_mode():
    search = BoptSearch()
    assert search.set_search_properties("loss", "max", {**XY, "epochs": 3})
    assert search.metric == "loss" and search.mode == "max"
    assert set(search.suggest("t0")) == {"x", "y", "epochs"}
    own = BoptSearch(XY, metric="loss", mode="min")
    assert not own.set_search_properties(None, None, {"z": tune.uniform(0, 1)})
    assert own.set_search_properties("loss", "min", {"epochs": 3})  # constants only
    with pytest.raises(ArgumentError, match=r"BoptSearch\(metric='loss'\) but tune.TuneConfig "
                                            r"passed metric='acc'; set the metric in one"):
        own.set_search_properties("acc", "min", {})


def _drive(search: BoptSearch, n: int, start: int = 0) -> list[dict]:
    """Suggest and complete `n` trials by hand, at the full budget."""
    configs = []
    for i in range(start, start + n):
        config = search.suggest(f"t{i}")
        loss = _loss(config["x"], config["y"], MAX_EPOCHS)
        search.on_trial_complete(f"t{i}", {"loss": loss, "training_iteration": MAX_EPOCHS})
        configs.append(config)
    return configs


def test_equal_seeds_give_equal_suggestions():
    runs = [_drive(BoptSearch(XY, "loss", "min", seed=s, n_initial=3), 6) for s in (1, 1, 2)]
    assert runs[0] == runs[1] != runs[2]


def test_how_each_trial_outcome_is_recorded():
    search = BoptSearch(XY, "loss", "min", seed=0, n_initial=3)
    configs = [search.suggest(f"t{i}") for i in range(7)]
    search.on_trial_complete("t0", {"loss": 0.5, "training_iteration": MAX_EPOCHS})
    search.on_trial_complete("t1", {"loss": 0.9, "training_iteration": 1})  # stopped early
    search.on_trial_complete("t2", error=True)
    search.on_trial_result("t3", {"loss": 0.7, "training_iteration": 3})
    search.on_trial_complete("t3")  # HyperBand stopped it while paused: no result
    search.on_trial_complete("t4")  # ended before reporting anything
    search.on_trial_complete("t5", {"loss": float("nan"), "training_iteration": 2})
    search.on_trial_complete("t6", {"time_total_s": 1.0})
    trials = search.history
    assert [t.status for t in trials] == ["complete", "complete", "failed", "complete",
                                          "stale", "failed", "failed"]
    assert [trials[i].value for i in (0, 1, 3)] == [0.5, 0.9, 0.7]
    assert search.budgets == {"t0": MAX_EPOCHS, "t1": 1, "t3": 3}
    assert trials[2].note == "the Ray Tune trial raised an error"
    assert trials[5].note == "reported loss=nan"
    assert trials[6].note == "its last result holds no 'loss'"
    retry = search.suggest("t7")  # the interrupted configuration comes back
    assert retry == configs[4] and search.history[-1].source == "retry"


def test_a_trial_tune_restarted_under_a_new_id_is_observed_from_its_config():
    search = BoptSearch({"m": XY}, "loss", "min")
    search.suggest("t0")
    search.on_trial_complete("new", {"loss": 0.25, "config/m/x": 0.5, "config/m/y": 0.0})
    assert search.history[-1].params == {"m/x": 0.5, "m/y": 0.0}
    assert search.history[-1].value == 0.25 and search.trial_ids["new"] == 1
    search.on_trial_complete("other", {"loss": 0.25, "config/m/x": 7.0, "config/m/y": 0.0})
    assert len(search.history) == 2  # a config outside the space is ignored


def test_points_to_evaluate_come_first():
    points = [{"x": 0.3, "y": -0.2}, {"x": -1.0, "y": 1.0}]
    search = BoptSearch(XY, "loss", "min", points_to_evaluate=points)
    assert _drive(search, 3)[:2] == points
    assert [t.source for t in search.history] == ["external", "external", "sobol"]


def test_a_finite_space_finishes():
    search = BoptSearch({"c": tune.choice(["a", "b"])}, "loss", "min")
    for i in range(2):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", {"loss": float(i)})
    assert search.suggest("t2") == Searcher.FINISHED


def test_save_and_restore_keep_the_history_and_the_running_trials(tmp_path):
    search = BoptSearch({"m": XY}, "loss", "max", seed=3, n_initial=3,
                        points_to_evaluate=[{"m": {"x": 0.1, "y": 0.1}}] * 2)
    for i in range(6):
        search.suggest(f"t{i}")
        if i < 4:
            search.on_trial_complete(f"t{i}", {"loss": float(i), "training_iteration": 2})
    search.on_trial_complete("t4", error=True)
    path = str(tmp_path / "searcher.pkl")
    search.save(path)
    restored = BoptSearch()
    restored.restore(path)
    fields = [(t.id, t.params, t.status, t.value, t.note) for t in search.history]
    assert [(t.id, t.params, t.status, t.value, t.note) for t in restored.history] == fields
    assert (restored.metric, restored.mode, restored.trial_ids) == ("loss", "max",
                                                                   search.trial_ids)
    restored.on_trial_complete("t5", {"loss": 9.0})  # the running trial completes
    assert restored.history[5].status == "complete" and restored.history[5].value == 9.0
    copy = pickle.loads(pickle.dumps(search))  # Tune pickles searchers into tuner.pkl
    assert [t.params for t in copy.history] == [t.params for t in search.history]
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"format": "other"}))
    with pytest.raises(ArgumentError, match=r"restore\(\): not a BoptSearch checkpoint"):
        BoptSearch().restore(str(tmp_path / "bad.pkl"))


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def ray_runtime():
    # the workers cannot import this test module: ship its trainables by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _tuner(trainable, search, path, name, num_samples, *, scheduler=None, callbacks=None,
           param_space=None):
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, metric="loss",
                                    mode="min", num_samples=num_samples, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(path), name=name, verbose=0,
                                  callbacks=callbacks))


def _asha() -> ASHAScheduler:
    return ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1, reduction_factor=3)


def _random_best_of(n: int, draws: int = 4000) -> np.ndarray:
    """The best final loss of `n` uniform random configurations, `draws` times: what
    random search with ASHA reaches here (the curves keep the ranking, so ASHA always lets
    the best trial so far run to the end)."""
    xy = np.random.default_rng(0).uniform(-1.0, 1.0, size=(draws, n, 2))
    return _final_loss(xy[..., 0], xy[..., 1]).min(axis=1)


def test_with_asha_the_gp_takes_over_and_beats_random_search(ray_runtime, tmp_path):
    search = BoptSearch(seed=0, n_initial=5)
    results = _tuner(_train, ConcurrencyLimiter(search, max_concurrent=2), tmp_path, "asha",
                     20, scheduler=_asha(), param_space=XY).fit()
    assert not results.errors
    trials = search.history
    assert len(trials) == 20 and all(t.status == "complete" for t in trials)
    sources = [t.source for t in trials]  # with 2 running, the design may take a 6th
    assert sources[:5] == ["sobol"] * 5 and sources[-14:] == ["ei"] * 14
    stopped = [k for k, budget in search.budgets.items() if budget < MAX_EPOCHS]
    assert stopped  # ASHA stopped some trials, observed at their last value
    best = min(_final_loss(r.config["x"], r.config["y"]) for r in results
               if r.metrics["training_iteration"] == MAX_EPOCHS)
    # random search's median over 4000 simulated runs of 20 trials is 0.042; this run
    # reached 0.0014 when written. Assert only that it beats random's median.
    assert best < float(np.median(_random_best_of(20)))


class _CountingSearch(BoptSearch):
    """Records how many trials were pending at each suggestion."""

    def suggest(self, trial_id):
        pending = sum(t.status == "pending" for t in self.history)
        self.pending_seen = max(getattr(self, "pending_seen", 0), pending)
        return super().suggest(trial_id)


def test_a_concurrency_limiter_keeps_at_most_two_pending_points(ray_runtime, tmp_path):
    search = _CountingSearch(XY, "loss", "min", seed=1, n_initial=3)
    _tuner(_train, ConcurrencyLimiter(search, max_concurrent=2), tmp_path, "limited", 8).fit()
    assert search.pending_seen == 1  # one still running when the next was proposed
    assert [t.status for t in search.history] == ["complete"] * 8


def test_an_errored_trial_is_failed(ray_runtime, tmp_path):
    search = BoptSearch(XY, "loss", "min", seed=2, n_initial=3,
                        points_to_evaluate=[{"x": 0.9, "y": 0.0}])
    results = _tuner(_train_or_raise, search, tmp_path, "errors", 6).fit()
    trials = search.history
    assert trials[0].status == "failed" and trials[0].note == "the Ray Tune trial raised an error"
    assert all((t.status == "failed") == (t.params["x"] > 0.8) for t in trials)
    assert len(results.errors) == sum(t.status == "failed" for t in trials)


def test_hyperband_pauses_and_stops_trials(ray_runtime, tmp_path):
    """Synchronous HyperBand pauses the trials of a bracket (9 here) until all reach the
    rung; Tune keeps one trial of a custom searcher pending unless a ConcurrencyLimiter
    allows more, and with fewer than a bracket the rungs never fill."""
    search = BoptSearch(XY, "loss", "min", seed=3, n_initial=4)
    scheduler = HyperBandScheduler(max_t=MAX_EPOCHS, reduction_factor=3)
    _tuner(_Curve, ConcurrencyLimiter(search, max_concurrent=9), tmp_path, "hyperband", 9,
           scheduler=scheduler).fit()
    trials = search.history
    assert len(trials) == 9 and all(t.status == "complete" for t in trials)
    assert min(search.budgets.values()) < MAX_EPOCHS == max(search.budgets.values())


class _InterruptAfter(tune.Callback):
    """Interrupts the experiment (as Ctrl-C would, by SIGUSR1) once `n` trials completed,
    only while `flag` does not exist (a restored run unpickles this callback too)."""

    def __init__(self, n: int, flag: str):
        self.n, self.flag, self.done = n, flag, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        # only to Tune's handler: the default action of SIGUSR1 would end pytest
        caught = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
        if self.done == self.n and caught and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os.kill(os.getpid(), signal.SIGUSR1)


def test_an_interrupted_experiment_resumes_with_the_same_history(ray_runtime, tmp_path):
    search = BoptSearch(XY, "loss", "min", seed=4, n_initial=3)
    flag = str(tmp_path / "interrupted")
    first = _tuner(_train, ConcurrencyLimiter(search, max_concurrent=2), tmp_path, "resume",
                   10, callbacks=[_InterruptAfter(3, flag)]).fit()
    done_first = {tuple(sorted(r.config.items())): r.metrics["loss"] for r in first
                  if r.metrics and r.metrics.get("training_iteration") == MAX_EPOCHS}
    assert os.path.exists(flag) and 3 <= len(done_first) < 10
    experiment = str(tmp_path / "resume")
    assert tune.Tuner.can_restore(experiment)
    tune.Tuner.restore(experiment, _train).fit()
    restored = BoptSearch()
    restored.restore_from_dir(experiment)  # the searcher state Tune saved at the end
    trials = restored.history
    assert len(trials) == 10 and all(t.status == "complete" for t in trials)
    values = {tuple(sorted(t.params.items())): t.value for t in trials}
    assert all(values[config] == loss for config, loss in done_first.items())
