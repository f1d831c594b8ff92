"""Training-budget search through the optimizer: `report`, `should_stop`, pruned trials,
stored reports and decisions, and `minimize(func(params, report))`. The rung arithmetic
itself is tested in test_schedulers.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support import FAST, continuous_space

from bopt import ArgumentError, ObservationError, Optimizer, TrialError
from bopt.schedulers import ASHA, Hyperband, summarize_rungs


def _curve(params: dict, budget: float) -> float:
    """A loss that falls with the budget, lower for x near 0.3."""
    return (params["x"] - 0.3) ** 2 + 1.0 / budget


def _train(opt: Optimizer, trial, until: float) -> bool:
    """Report epochs 1.. until; True if the schedule stopped the trial."""
    budget = 1
    while budget <= until:
        opt.report(trial, _curve(trial.params, budget), budget=budget)
        if opt.should_stop(trial):
            return True
        budget += 1
    return False


def test_a_trial_worse_than_the_rung_so_far_is_stopped_and_pruned():
    opt = Optimizer(continuous_space(), acquisition="random", seed=0,
                    scheduler=ASHA(min_budget=1, max_budget=9, reduction_factor=3))
    good = opt.observe({"x": 0.3, "y": 0.0}, 0.0)  # an external result; no reports
    first, second = opt.suggest(2)
    assert not _train(opt, first, 8)  # the first at every rung goes on
    opt.observe(first, _curve(first.params, 9))
    bad = second if abs(second.params["x"] - 0.3) > abs(first.params["x"] - 0.3) else None
    assert bad is not None  # seed 0 draws a worse second configuration
    assert _train(opt, bad, 8)  # stopped at the first rung it reached
    pruned = opt.history[bad.id]
    assert pruned.status == "pruned" and pruned.value == _curve(bad.params, 1)
    assert pruned.note.startswith("stopped at rung 1 ")
    assert opt.curve(bad) == [(1.0, _curve(bad.params, 1))]
    assert opt.best.id in (good.id, first.id) and opt.should_stop(bad)
    with pytest.raises(TrialError, match=rf"report\(\): trial {bad.id} is already pruned"):
        opt.report(bad, 0.5, budget=2)


def test_without_a_scheduler_reports_are_kept_and_nothing_stops():
    opt = Optimizer(continuous_space(), acquisition="random", seed=1)
    trial = opt.suggest()
    assert not _train(opt, trial, 4)
    assert [b for b, _ in opt.curve(trial)] == [1, 2, 3, 4]
    assert opt.history[trial.id].status == "pending"


@pytest.mark.parametrize("call, error, message", [
    (lambda o, t: o.report(t, 1.0, budget=0), ArgumentError,
     r"report\(trial 0\): budget must be a finite number in \(0, 9\]; got 0"),
    (lambda o, t: o.report(t, 1.0, budget=10), ArgumentError,
     r"budget must be a finite number in \(0, 9\]; got 10"),
    (lambda o, t: o.report(t, math.nan, budget=2), ObservationError, r"value is nan"),
    (lambda o, t: o.report(t, 1.0, budget=1), ArgumentError, r"budget must grow from report to "
                                                             r"report; the last was 1.0, got 1"),
    (lambda o, t: o.report(t.id + 5, 1.0, budget=2), TrialError, r"no trial with id"),
])
def test_bad_reports_are_refused_and_change_nothing(call, error, message):
    opt = Optimizer(continuous_space(), acquisition="random", seed=2,
                    scheduler=ASHA(1, 9, 3))
    trial = opt.suggest()
    opt.report(trial, 0.5, budget=1)
    with pytest.raises(error, match=message):
        call(opt, trial)
    assert opt.curve(trial) == [(1.0, 0.5)] and opt.history[trial.id].status == "pending"


def test_a_bad_scheduler_is_refused():
    with pytest.raises(ArgumentError, match=r"scheduler must be bopt.ASHA\(...\), "
                                            r"bopt.Hyperband\(...\) or None; got 3"):
        Optimizer(continuous_space(), scheduler=3)


def test_workers_on_one_file_decide_from_each_others_reports(tmp_path):
    path = tmp_path / "s.db"
    kwargs = dict(acquisition="random", storage=path, scheduler=ASHA(1, 9, 3))
    a, b = Optimizer(continuous_space(), seed=0, **kwargs), Optimizer.load(path)
    assert b.scheduler == ASHA(1, 9, 3)  # stored with the study
    near = a.observe({"x": 0.31, "y": 0.0}, 1.0)  # configurations chosen by hand
    assert near.status == "complete"
    t_a = a.suggest()
    t_b = b.suggest()
    a.report(t_a, 0.1, budget=1)  # a's trial is good at rung 1
    b.report(t_b, 5.0, budget=1)  # b's is worse than what the rung holds (a's 0.1)
    assert b.should_stop(t_b) and not a.should_stop(t_a)
    reopened = Optimizer.load(path)
    assert reopened.history[t_b.id].status == "pruned"
    assert reopened.curve(t_a) == [(1.0, 0.1)] and reopened.curve(t_b) == [(1.0, 5.0)]


@pytest.mark.parametrize("scheduler", [ASHA(1, 27, 3), Hyperband(1, 27, 3)])
def test_minimize_with_a_schedule_spends_less_than_full_budgets(scheduler):
    opt = Optimizer(continuous_space(), seed=3, scheduler=scheduler, **FAST)
    spent = []

    def train(params, report):
        for epoch in range(1, 28):
            spent.append(epoch)
            loss = _curve(params, epoch)
            if report(loss, epoch):
                return loss
        return loss

    best = opt.minimize(train, 12, progress=False)
    statuses = [t.status for t in opt.history]
    assert set(statuses) <= {"complete", "pruned"} and "pruned" in statuses
    assert best.status == "complete" and len(spent) < 0.8 * 12 * 27
    for t in opt.history:
        assert opt.curve(t)[-1][1] == t.value  # a trial's value is its last report


def test_json_export_carries_the_curves(tmp_path):
    import json

    opt = Optimizer(continuous_space(), acquisition="random", seed=4, scheduler=ASHA(1, 9, 3))
    trial = opt.suggest()
    _train(opt, trial, 3)
    opt.observe(opt.suggest(), 1.0)
    opt.to_json(tmp_path / "h.json")
    trials = json.loads((tmp_path / "h.json").read_text())["trials"]
    assert trials[0]["curve"] == [[1.0, _curve(trial.params, 1)], [2.0, _curve(trial.params, 2)],
                                  [3.0, _curve(trial.params, 3)]]
    assert "curve" not in trials[1]


def _asha_study(scheduler=ASHA(1, 27, 3)) -> Optimizer:
    opt = Optimizer(continuous_space(), acquisition="random", seed=5, scheduler=scheduler)

    def train(params, report):
        for epoch in range(1, 28):
            if report(_curve(params, epoch), epoch):
                return None
        return _curve(params, 27)

    opt.minimize(train, 15, progress=False)
    return opt


def test_rung_summary_counts_what_each_rung_let_through():
    opt = _asha_study()
    rows = opt.rung_summary()
    assert [r["rung"] for r in rows] == [1, 3, 9]
    pruned = sum(t.status == "pruned" for t in opt.history)
    assert sum(r["stopped"] for r in rows) == pruned > 0
    assert rows[0]["entered"] == 15  # every trial reaches the first rung
    for upper, lower in zip(rows[1:], rows[:-1]):
        assert upper["entered"] == lower["continued"]  # who goes on reaches the next rung
    assert Optimizer(continuous_space()).rung_summary() == []
    # the loss ranks configurations alike at every budget: each rung agrees with the full one
    assert [r["agreement"] for r in rows] == [pytest.approx(1.0)] * 3


def test_rung_agreement_is_spearmans_correlation_with_the_full_budget():
    """Cross-checked against scipy on random pairs with ties; a rung that reverses the
    order reads -1; too few completed trials, or a constant side, read None."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    scheduler = ASHA(1, 9, 3)  # rungs 1 and 3
    for _ in range(20):
        n = int(rng.integers(4, 12))
        at_rung = rng.integers(0, 4, n).astype(float).tolist()  # ties
        final = (np.asarray(at_rung) + rng.normal(0, 1.5, n)).tolist()
        decisions = {tid: [(1.0, v, False)] for tid, v in enumerate(at_rung)}
        finals = dict(enumerate(final))
        row = summarize_rungs(scheduler, decisions, finals)[0]
        expected = spearmanr(at_rung, final)[0]
        if np.isnan(expected):
            assert row["agreement"] is None
        else:
            assert row["agreement"] == pytest.approx(expected, abs=1e-12)
    decisions = {tid: [(1.0, float(tid), False)] for tid in range(5)}
    reversed_finals = {tid: -float(tid) for tid in range(5)}
    assert summarize_rungs(scheduler, decisions, reversed_finals)[0]["agreement"] == (
        pytest.approx(-1.0))
    assert summarize_rungs(scheduler, decisions, {0: 1.0, 1: 2.0, 2: 3.0})[0][
        "agreement"] is None  # three completed trials: too few
    assert summarize_rungs(scheduler, decisions, {t: 1.0 for t in range(5)})[0][
        "agreement"] is None  # the full budget cannot tell them apart
    assert summarize_rungs(scheduler, decisions)[1] == {
        "bracket": 0, "rung": 3, "entered": 0, "continued": 0, "stopped": 0, "agreement": None}


def test_learning_curve_and_rung_plots():
    pytest.importorskip("matplotlib")
    from bopt.plot import plot_learning_curves, plot_rungs

    opt = _asha_study(Hyperband(1, 27, 3))
    fig = plot_learning_curves(opt)
    labels = {ln.get_label() for ln in fig.axes[0].lines}
    assert {"complete", "pruned", "rung"} <= labels
    fig = plot_rungs(opt)
    bars = fig.axes[0].patches
    assert len(bars) == 2 * sum(1 for r in opt.rung_summary() if r["entered"])
    with pytest.raises(ArgumentError, match="plot_learning_curves: no trial has reported"):
        plot_learning_curves(Optimizer(continuous_space()))
    with pytest.raises(ArgumentError, match="plot_rungs: no trial has reached a rung"):
        plot_rungs(Optimizer(continuous_space()))
    import matplotlib.pyplot as plt

    plt.close("all")
