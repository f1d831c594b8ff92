"""Which values the GP learns from under a schedule (`bopt.fidelity`), on its own and
through the optimizer's rounds."""

from __future__ import annotations

import pytest
from support import FAST, continuous_space

import bopt
from bopt import Optimizer, Trial
from bopt.fidelity import budget_levels, training_level, value_at
from bopt.schedulers import ASHA, Hyperband


def test_levels_are_every_rung_of_every_bracket_and_the_full_budget():
    assert budget_levels(ASHA(1, 81, 3)) == (1, 3, 9, 27, 81)
    assert budget_levels(ASHA(1, 81, 3, grace_period=9)) == (9, 27, 81)
    # Hyperband's brackets start at 81, 27, 9, 3 and 1: the same levels, from all of them
    assert budget_levels(Hyperband(1, 81, 3)) == (1, 3, 9, 27, 81)
    assert budget_levels(Hyperband(2, 20, 2)) == (2.5, 5, 10, 20)


def test_a_value_at_a_level_is_the_first_report_inside_its_window():
    reports = [(1, 5.0), (2, 4.0), (4, 3.0), (10, 1.0)]
    assert value_at(reports, 1, 3) == 5.0
    assert value_at(reports, 3, 9) == 3.0  # reported at 4, not at 3
    assert value_at(reports, 9, 27) == 1.0
    assert value_at(reports, 27, 81) is None
    assert value_at([(81, 2.0)], 1, 3) is None  # a late first report is not an early value


def _trial(tid: int, status: str, value: float | None = None) -> Trial:
    return Trial(tid, {"x": tid / 10}, status, value, "random")


def test_the_largest_level_with_enough_values_is_chosen():
    scheduler = ASHA(1, 9, 3)  # levels 1, 3, 9
    trials = [_trial(0, "complete", 0.5), _trial(1, "pruned", 2.0), _trial(2, "pending"),
              _trial(3, "failed"), _trial(4, "stale"), _trial(5, "complete", 0.7)]
    curves = {0: [(1, 3.0), (3, 1.0), (9, 0.5)], 1: [(1, 2.0)], 2: [(1, 2.5), (3, 1.5)],
              3: [(1, 0.1), (3, 0.1)], 4: [(1, 0.1)], 5: []}  # 5: observed from outside
    reports = lambda tid: curves[tid]  # noqa: E731
    top = training_level(scheduler, trials, reports, min_points=2)
    assert top.budget == 9 and [t.id for t in top.trials] == [0, 5]
    assert top.values == [0.5, 0.7]  # the observed values, not the reports
    middle = training_level(scheduler, trials, reports, min_points=3)
    assert middle.budget == 1 and [t.id for t in middle.trials] == [0, 1, 2]
    assert middle.values == [3.0, 2.0, 2.5]  # failed and stale trials teach nothing
    assert training_level(scheduler, trials, reports, min_points=4) is None


def _climb(opt: Optimizer, trial, until: int) -> None:
    """Report epochs 1..until of a loss that falls with the budget, stopping when told."""
    for epoch in range(1, until + 1):
        opt.report(trial, (trial.params["x"] - 0.3) ** 2 + 1.0 / epoch, budget=epoch)
        if opt.should_stop(trial):
            return
    if until == opt.scheduler.max_budget:
        opt.observe(trial, (trial.params["x"] - 0.3) ** 2 + 1.0 / until)


def test_the_model_starts_on_first_rung_values_before_any_trial_completes():
    opt = Optimizer(continuous_space(), seed=3, scheduler=ASHA(1, 9, 3), **{**FAST, "n_initial": 4})
    for _ in range(4):
        _climb(opt, opt.suggest(), until=2)  # running or pruned, none complete
    assert not [t for t in opt.history if t.status == "complete"]
    trial = opt.suggest()
    assert trial.source == "ei"
    info = opt.diagnostics[-1]
    assert info.budget_level == 1 and info.num_observations == 4
    assert opt.diagnostics[0].budget_level is None  # the Sobol rounds fit nothing


def test_the_model_moves_up_to_the_full_budget_once_enough_trials_finish(tmp_path):
    opt = Optimizer(continuous_space(), seed=4, scheduler=ASHA(1, 9, 3),
                    storage=tmp_path / "s.db", **FAST)  # FAST: n_initial=3
    levels = []
    for _ in range(12):
        trial = opt.suggest()
        levels.append(opt.diagnostics[-1].budget_level)
        _climb(opt, trial, until=9)
    assert levels[:3] == [None] * 3 and levels[3] == 1
    finished = sum(t.status == "complete" for t in opt.history)
    assert finished >= 3 and levels[-1] in (3, 9)
    assert all(a <= b for a, b in zip(levels[3:], levels[4:]))  # it only climbs
    # the level is stored with the round, for every worker and a later load
    again = Optimizer.load(tmp_path / "s.db")
    assert [r.budget_level for r in again.diagnostics] == levels


def test_schedulers_are_public_names():
    assert bopt.ASHA is ASHA and bopt.Hyperband is Hyperband
    with pytest.raises(bopt.ArgumentError, match="reduction_factor"):
        bopt.ASHA(1, 9, 1)
