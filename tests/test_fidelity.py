"""Which values the GP learns from under a schedule (`bopt.fidelity`), on its own and
through the optimizer's rounds."""

from __future__ import annotations

import math

import pytest
import torch
from support import FAST, continuous_space

import bopt
import bopt.fidelity
import bopt.proposal
from bopt.acquisition.budget import PromotionWeighted
from bopt import Optimizer, Trial
from bopt.fidelity import budget_levels, budget_round_data, level_rows, value_at
from bopt.schedulers import ASHA, Hyperband


def test_levels_are_every_rung_of_every_bracket_and_the_full_budget():
    assert budget_levels(ASHA(1, 81, 3)) == (1, 3, 9, 27, 81)
    assert budget_levels(ASHA(1, 81, 3, grace_period=9)) == (9, 27, 81)
    # Hyperband's brackets start at 81, 27, 9, 3 and 1: the same levels, from all of them
    assert budget_levels(Hyperband(1, 81, 3)) == (1, 3, 9, 27, 81)
    assert budget_levels(Hyperband(2, 20, 2)) == (2.5, 5, 10, 20)


def test_hyperband_rungs_equal_but_for_rounding_are_one_level():
    levels = budget_levels(Hyperband(1, 100, 3))  # 100/27 and 100/3 arise twice each
    assert len(levels) == 5 and levels[-1] == 100.0
    assert all(b / a > 2 for a, b in zip(levels, levels[1:]))
    assert budget_levels(Hyperband(1, 2, 3)) == (2.0,)  # one bracket, no rung


def test_a_schedule_with_no_rung_still_models_the_full_budget():
    opt = Optimizer(continuous_space(), seed=0, scheduler=Hyperband(1, 2, 3), **FAST)
    for _ in range(4):
        _climb(opt, opt.suggest(), until=2)
    assert opt.suggest().source == "ei" and opt.diagnostics[-1].budget_level == 2.0


def test_a_value_at_a_level_is_the_first_report_inside_its_window():
    reports = [(1, 5.0), (2, 4.0), (4, 3.0), (10, 1.0)]
    assert value_at(reports, 1, 3) == 5.0
    assert value_at(reports, 3, 9) == 3.0  # reported at 4, not at 3
    assert value_at(reports, 9, 27) == 1.0
    assert value_at(reports, 27, 81) is None
    assert value_at([(81, 2.0)], 1, 3) is None  # a late first report is not an early value


def _trial(tid: int, status: str, value: float | None = None) -> Trial:
    return Trial(tid, {"x": tid / 10}, status, value, "random")


def test_every_trial_counts_at_every_level_it_reached():
    scheduler = ASHA(1, 9, 3)  # levels 1, 3, 9 at positions 0, 1/2, 1
    trials = [_trial(0, "complete", 0.5), _trial(1, "pruned", 2.0), _trial(2, "pending"),
              _trial(3, "failed"), _trial(4, "stale"), _trial(5, "complete", 0.7)]
    curves = {0: [(1, 3.0), (3, 1.0), (9, 0.6)], 1: [(1, 2.0)], 2: [(1, 2.5), (4, 1.5)],
              3: [(1, 0.1), (3, 0.1)], 4: [(1, 0.1)], 5: []}  # 5: observed from outside
    rows = level_rows(scheduler, trials, lambda tid: curves[tid])
    assert [(t.id, position, value) for t, position, value in rows] == [
        (0, 0.0, 3.0), (0, 0.5, 1.0), (0, 1.0, 0.5),  # the observed value, not the report
        (1, 0.0, 2.0), (2, 0.0, 2.5), (2, 0.5, 1.5), (5, 1.0, 0.7)]  # failed, stale: none


def _three_trials():
    """A space, one pruned and two running trials, their curves on ASHA(1, 9, 3)'s levels,
    and the encoder `budget_round_data` takes."""
    space = continuous_space()
    trials = [Trial(0, {"x": 0.1, "y": 0.0}, "pruned", 2.0, "sobol"),
              Trial(1, {"x": 0.9, "y": 1.0}, "pending", None, "sobol"),
              Trial(2, {"x": 0.5, "y": 1.0}, "pending", None, "sobol")]
    curves = {0: [(1, 2.0)], 1: [(1, 1.0), (3, 0.5)], 2: [(2, 1.5), (3, 0.7)]}
    return space, trials, curves, lambda ts: list(space.encode([t.params for t in ts]))


def test_round_tensors_carry_the_budget_column_and_acquire_at_the_full_budget():
    space, trials, curves, encoded = _three_trials()
    extra = list(space.encode([{"x": 0.5, "y": 0.5}]))
    scheduler = ASHA(1, 9, 3)
    data = budget_round_data(scheduler, trials, lambda t: curves[t], encoded, extra, 2)
    assert data.train_X.shape == (5, 3)
    assert data.train_X[:, -1].tolist() == [0.0, 0.0, 0.5, 0.0, 0.5]
    assert data.values.tolist() == [2.0, 1.0, 0.5, 1.5, 0.7]
    # no trial has finished, yet the acquisition is taken at the full budget, weighed by
    # the chance of passing rung 1 (position 0), where the best third goes on
    assert data.acquire_at == 1.0 and data.acquire_budget == 9
    assert data.promotion == (0.0, pytest.approx(2 / 3))
    # nothing is known at the full budget: both running trials and the batch's row pending
    assert data.pending_X.shape == (3, 3) and torch.all(data.pending_X[:, -1] == 1.0)
    assert torch.equal(data.pending_X[-1, :-1], extra[0])
    assert budget_round_data(scheduler, trials, lambda t: curves[t], encoded, [], 3) is not None
    assert budget_round_data(scheduler, trials, lambda t: curves[t], encoded, [], 4) is None


def test_the_promotion_rung_is_the_new_trials_bracket_first_rung():
    space = continuous_space()
    trials = [Trial(i, {"x": i / 4, "y": 0.0}, "pruned", 1.0, "sobol") for i in range(3)]
    curves = {i: [(1, 1.0 + i)] for i in range(3)}
    encoded = lambda ts: list(space.encode([t.params for t in ts]))  # noqa: E731
    scheduler = Hyperband(1, 9, 3)  # brackets 0, 1, 2 start at 9, 3, 1: positions 1, 1/2, 0
    rows = lambda t: curves[t]  # noqa: E731
    assert budget_round_data(scheduler, trials, rows, encoded, [], 2,
                             bracket=2).promotion == (0.0, pytest.approx(2 / 3))
    assert budget_round_data(scheduler, trials, rows, encoded, [], 2,
                             bracket=1).promotion == (0.5, pytest.approx(2 / 3))
    none = budget_round_data(scheduler, trials, rows, encoded, [], 2, bracket=0)
    assert none.promotion is None and none.acquire_at == 1.0  # bracket 0 stops nothing


def test_the_previous_rule_acquires_at_the_top_level_with_enough_values(monkeypatch):
    """`ACQUIRE = "top"` (the benchmark's ablation): the largest level holding values of
    `min_trials` trials, no promotion weight."""
    monkeypatch.setattr(bopt.fidelity, "ACQUIRE", "top")
    _, trials, curves, encoded = _three_trials()
    data = budget_round_data(ASHA(1, 9, 3), trials, lambda t: curves[t], encoded, [], 2)
    assert data.acquire_at == 0.5 and data.acquire_budget == 3 and data.promotion is None
    assert data.pending_X.shape == (0, 3)  # both running trials have a value at level 3
    lower = budget_round_data(ASHA(1, 9, 3), trials, lambda t: curves[t], encoded, [], 3)
    assert lower.acquire_at == 0.0 and lower.acquire_budget == 1  # only level 1 has three


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
        _climb(opt, opt.suggest(), until=4)  # running or pruned, none complete
    assert not [t for t in opt.history if t.status == "complete"]
    went_on = sum(opt.curve(t)[-1][0] >= 3 for t in opt.history)
    assert 1 <= went_on < 4  # the first at rung 1 goes on; seed 3 stops some
    trial = opt.suggest()
    assert trial.source == "ei"
    info = opt.diagnostics[-1]
    assert info.num_observations == 4 + went_on  # every trial at rung 1, the rest also at 3
    assert set(info.lengthscales) == {"x", "y", "budget"}
    assert info.budget_level == 9  # acquired at the full budget, weighed at rung 1
    assert opt.diagnostics[0].budget_level is None  # the Sobol rounds fit nothing


def test_a_scheduled_study_proposes_from_the_model_and_recommends_from_completed(tmp_path):
    opt = Optimizer(continuous_space(), seed=4, scheduler=ASHA(1, 9, 3),
                    storage=tmp_path / "s.db", **FAST)  # FAST: n_initial=3
    levels = []
    for _ in range(12):
        trial = opt.suggest()
        levels.append(opt.diagnostics[-1].budget_level)
        _climb(opt, trial, until=9)
    assert levels[:3] == [None] * 3 and set(levels[3:]) == {9}
    sources = [t.source for t in opt.history]
    assert sources[:3] == ["sobol"] * 3 and set(sources[3:]) == {"ei"}
    done = [t for t in opt.history if t.status == "complete"]
    assert done and opt.recommend().trial_id in {t.id for t in done}
    mean, std = opt.predict([{"x": 0.3, "y": 0.0}])
    assert mean.shape == std.shape == (1,)
    again = Optimizer.load(tmp_path / "s.db")  # the study resumes with its schedule
    assert [r.budget_level for r in again.diagnostics] == levels  # stored with the rounds
    assert again.scheduler == opt.scheduler and again.suggest().source == "ei"


def test_schedulers_are_public_names():
    assert bopt.ASHA is ASHA and bopt.Hyperband is Hyperband
    with pytest.raises(bopt.ArgumentError, match="reduction_factor"):
        bopt.ASHA(1, 9, 1)


@pytest.mark.parametrize("first, then", [(ASHA(1, 9, 3), None), (None, ASHA(1, 9, 3))])
def test_a_study_reopened_with_or_without_a_schedule_fits_afresh(tmp_path, first, then):
    """The stored warm start belongs to a model of the other width: it is not used."""
    opt = Optimizer(continuous_space(), seed=1, scheduler=first, storage=tmp_path / "s.db",
                    **FAST)
    while sum(t.status == "complete" for t in opt.history) < 4:  # a model either way
        trial = opt.suggest()
        if first is None:
            opt.observe(trial, (trial.params["x"] - 0.3) ** 2)
        else:
            _climb(opt, trial, until=9)
    again = Optimizer.load(tmp_path / "s.db", scheduler=then)
    assert again.suggest().source == "ei" and again.diagnostics[-1].refit
    assert again.recommend() is not None


def test_rows_replaced_at_the_same_count_are_refitted():
    opt = Optimizer(continuous_space(), seed=2, scheduler=ASHA(1, 9, 3), **FAST)
    for _ in range(3):
        _climb(opt, opt.suggest(), until=9)
    running = opt.suggest()
    for epoch in (1, 2, 3):
        opt.report(running, 5.0 - epoch, budget=epoch)
    opt.suggest()  # fitted with the running trial's rows
    n = opt.diagnostics[-1].num_observations
    opt.fail(running, "crashed")  # its rows leave the data
    other = opt.history[-1]
    for epoch in (1, 2, 3):
        opt.report(other, 4.0 - epoch, budget=epoch)
    opt.suggest()
    info = opt.diagnostics[-1]
    assert info.num_observations == n and info.refit  # same count, other data: refitted


def test_noisy_ei_under_a_schedule_uses_the_budget_incumbent():
    opt = Optimizer(continuous_space(), "nei", seed=5, scheduler=ASHA(1, 9, 3), **FAST)
    for _ in range(4):
        _climb(opt, opt.suggest(), until=9)
    assert opt.suggest().source == "nei" and not opt.diagnostics[-1].noisy_ei


@pytest.mark.parametrize("acquisition", ["ucb", "ts"])
@pytest.mark.parametrize("scheduler", [ASHA(1, 9, 3), Hyperband(1, 9, 3)])
def test_ucb_and_thompson_sampling_propose_under_a_schedule(acquisition, scheduler,
                                                            monkeypatch):
    """The promotion weight joins scores that are not log EI's too: every model round of a
    bracket with rungs weighs its score (and only those), and proposes an unseen
    configuration from a finite score, at the full budget, never at random (a Thompson path
    may peak at a corner already tried; its best unseen neighbour is then proposed)."""
    weighted = []
    original = bopt.proposal._promotion_weighted

    def spy(*args):
        score = original(*args)
        weighted.append(isinstance(score, PromotionWeighted))
        return score

    monkeypatch.setattr(bopt.proposal, "_promotion_weighted", spy)
    opt = Optimizer(continuous_space(), acquisition, seed=6, scheduler=scheduler, **FAST)
    for _ in range(9):
        _climb(opt, opt.suggest(), until=9)
    rounds = [r for r in opt.diagnostics if r.strategy == acquisition]
    assert len(rounds) == 9 - FAST["n_initial"] == len(weighted)
    with_rungs = [bool(scheduler.rungs(scheduler.bracket_of(r.trial_id))) for r in rounds]
    assert weighted == with_rungs and any(with_rungs)
    assert all(r.budget_level == 9 and r.fallback in (None, "neighbour") for r in rounds)
    assert all(math.isfinite(r.best_acquisition) for r in rounds)
    configs = [tuple(t.params.values()) for t in opt.history]
    assert len(set(configs)) == len(configs)


def test_levels_are_put_on_the_scale_of_the_highest_level_with_enough_values():
    """Rung 1 spans 1.0-3.0, rung 3 spans 0.2-0.4: rung 1's values are mapped onto rung 3's
    median and spread, in order; rung 3 (the reference) and the one full-budget value above
    it stay as they are; standard errors scale with their values."""
    positions = [0.0] * 4 + [0.5] * 3 + [1.0]
    values = [1.0, 2.0, 3.0, 2.5, 0.2, 0.3, 0.4, 0.25]
    sems = [0.1, None, None, None, 0.01, None, None, 0.02]
    out, out_sems = bopt.fidelity._levels_on_one_scale(positions, values, sems)
    low = torch.tensor(out[:4])
    assert torch.equal(low.argsort(), torch.tensor(values[:4]).argsort())  # order kept
    assert float(low.median()) == pytest.approx(0.3, abs=0.06)  # rung 3's median ...
    assert float(low.std()) == pytest.approx(0.1)  # ... and spread
    assert out[0] == pytest.approx(0.3 + 0.1 * (1.0 - 2.25) / float(torch.tensor(values[:4]).std()))
    assert out[4:] == values[4:]
    assert out_sems[0] == pytest.approx(0.1 * 0.1 / float(torch.tensor(values[:4]).std()))
    assert out_sems[4:] == sems[4:] and out_sems[1:4] == [None] * 3


def test_a_level_with_few_values_takes_its_nearest_neighbours_map():
    positions = [0.0] * 3 + [0.25] + [0.75] * 3
    values = [10.0, 20.0, 30.0, 15.0, 1.0, 2.0, 3.0]
    out, _ = bopt.fidelity._levels_on_one_scale(positions, values, [None] * 7)
    assert out[3] == pytest.approx(1.5)  # rung 0.25 is nearer 0.0: mapped as 10-30 -> 1-3
    assert out[:3] == pytest.approx([1.0, 2.0, 3.0]) and out[4:] == values[4:]
    # no level with enough distinct values: nothing to map
    assert bopt.fidelity._levels_on_one_scale([0.0, 0.0, 1.0], [1.0, 2.0, 3.0],
                                              [None] * 3)[0] == [1.0, 2.0, 3.0]
    assert bopt.fidelity._levels_on_one_scale([0.0] * 3, [1.0] * 3, [None] * 3)[0] == [1.0] * 3
