"""Tests for bopt.schedulers: where the rungs are, which bracket a trial joins, and ASHA's
decision at a rung."""

import math

import numpy as np
import pytest

from bopt.errors import ArgumentError
from bopt.schedulers import (ASHA, Hyperband, continues, scheduler_from_dict,
                             scheduler_to_dict)


def test_asha_rungs_are_powers_of_the_factor_below_the_full_budget():
    assert ASHA(1, 81, 3).rungs() == (1, 3, 9, 27)
    assert ASHA(1, 100, 3).rungs() == (1, 3, 9, 27, 81)
    assert ASHA(2, 16, 2, grace_period=4).rungs() == (4, 8)
    assert ASHA(1, 81, 3).num_brackets == 1 and ASHA().bracket_of(17) == 0


def test_hyperband_brackets_follow_li_et_al_table_1():
    """R = 81, eta = 3: five brackets of 81, 34, 15, 8 and 5 configurations, starting at
    budgets 1, 3, 9, 27 and 81 (Li et al. 2018, Table 1)."""
    hb = Hyperband(1, 81, 3)
    assert hb.num_brackets == 5
    assert hb.bracket_sizes() == (5, 8, 15, 34, 81)  # bracket s = 0 .. 4
    assert [hb.rungs(s) for s in range(5)] == [(), (27,), (9, 27), (3, 9, 27), (1, 3, 9, 27)]
    first_iteration = [hb.bracket_of(i) for i in range(143)]
    assert [first_iteration.count(s) for s in range(5)] == [5, 8, 15, 34, 81]
    assert first_iteration[0] == 4  # the most aggressive bracket starts first
    assert hb.bracket_of(143) == hb.bracket_of(0)  # and the pattern repeats


@pytest.mark.parametrize("scheduler", [Hyperband(1, 81, 3), Hyperband(1, 27, 3),
                                       Hyperband(1, 16, 2), Hyperband(0.5, 100, 4)])
def test_every_prefix_of_the_bracket_order_keeps_the_iterations_proportions(scheduler):
    """A study of any length runs each bracket in its share of a Hyperband iteration, at
    most one trial off: 30 trials at R = 81 are not 30 trials of bracket 4 (plain ASHA)."""
    sizes = scheduler.bracket_sizes()
    total, counts = sum(sizes), [0] * len(sizes)
    for i in range(2 * total):
        counts[scheduler.bracket_of(i)] += 1
        for s, size in enumerate(sizes):
            assert abs(counts[s] - (i + 1) * size / total) < 1.0, (i, s, counts)
    assert len({scheduler.bracket_of(i) for i in range(10)}) >= 2


def test_the_sequential_order_is_algorithm_1s_and_stored_studies_keep_it():
    """A study stored before the interleaved order (its scheduler dict has no "order")
    loads with Algorithm 1's order, so its trials keep their brackets."""
    hb = Hyperband(1, 81, 3, order="sequential")
    first_iteration = [hb.bracket_of(i) for i in range(143)]
    assert first_iteration == [4] * 81 + [3] * 34 + [2] * 15 + [1] * 8 + [0] * 5
    stored = {"kind": "Hyperband", "min_budget": 1, "max_budget": 81, "reduction_factor": 3}
    assert scheduler_from_dict(stored) == hb
    new = Hyperband(1, 81, 3)
    assert new.order == "interleaved" and scheduler_from_dict(scheduler_to_dict(new)) == new
    with pytest.raises(ArgumentError, match=r"Hyperband: order must be one of \('interleaved', "
                                            r"'sequential'\); got 'random'"):
        Hyperband(1, 81, 3, order="random")


def test_a_huge_budget_ratio_builds_only_the_order_a_study_uses():
    """Hyperband(1, 1e9, 2) has 30 brackets and about 1e9 slots per iteration: the
    interleaved order is built as far as the trial ids asked for, not the whole cycle."""
    hb = Hyperband(1, 1e9, 2)
    assert hb.num_brackets == 30 and sum(hb.bracket_sizes()) > 1e9
    brackets = [hb.bracket_of(i) for i in range(200)]
    assert brackets[0] == 29 and len(set(brackets)) > 5


def test_continues_matches_the_percentile_rule_in_both_directions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        recorded = rng.normal(size=rng.integers(0, 12)).tolist()
        value = float(rng.normal())
        cutoff = np.percentile(recorded + [value], 100 * (1 - 1 / 3))
        assert continues(value, recorded, 3, maximize=True) == (value >= cutoff)
        low = np.percentile(recorded + [value], 100 / 3)
        assert continues(value, recorded, 3, maximize=False) == (value <= low)


def test_the_first_trial_continues_and_about_one_in_eta_survives():
    assert continues(5.0, [], 3, maximize=False)
    rng = np.random.default_rng(1)
    recorded, kept = [], 0
    for value in rng.normal(size=3000):
        kept += continues(float(value), recorded, 3, maximize=False)
        recorded.append(float(value))
    assert abs(kept / 3000 - 1 / 3) < 0.03


@pytest.mark.parametrize("make, message", [
    (lambda: ASHA(0, 81, 3), r"ASHA: min_budget must be a finite number > 0; got 0"),
    (lambda: ASHA(9, 3, 3), r"ASHA: need min_budget < max_budget, got min_budget=9"),
    (lambda: ASHA(1, 81, 1), r"ASHA: reduction_factor must be a finite number > 1; got 1"),
    (lambda: ASHA(1, 81, 3, grace_period=0.5), r"ASHA: grace_period must be a finite number >= 1"),
    (lambda: ASHA(1, 81, 3, grace_period=81), r"ASHA: grace_period must be below max_budget=81"),
    (lambda: Hyperband(1, math.inf, 3), r"Hyperband: max_budget must be a finite number > 0"),
])
def test_bad_schedules_name_the_argument(make, message):
    with pytest.raises(ArgumentError, match=message):
        make()


@pytest.mark.parametrize("scheduler", [Hyperband(1, 100, 3), Hyperband(0.5, 100, 4),
                                       Hyperband(1, 10, 3), Hyperband(1, 81, 3)])
def test_every_brackets_rungs_are_the_same_floats_as_the_most_aggressive_ones(scheduler):
    """A rung's decisions pool every bracket's trials by its budget: at R = 100, eta = 3,
    bracket 1's rung 33.333333333333336 and bracket 2's 33.33333333333333 were two pools."""
    s_max = scheduler.num_brackets - 1
    chain = scheduler.rungs(s_max)
    assert len(chain) == s_max and chain[-1] < scheduler.max_budget
    for s in range(s_max + 1):
        rungs = scheduler.rungs(s)
        assert len(rungs) == s and rungs == chain[s_max - s:]
        for k, budget in enumerate(rungs):  # each where Hyperband puts it
            assert budget == pytest.approx(
                scheduler.max_budget / scheduler.reduction_factor**(s - k), rel=1e-12)


def test_a_hyperband_with_one_bracket_says_it_stops_nothing(caplog):
    with caplog.at_level("WARNING", logger="bopt"):
        hb = Hyperband(1, 2, 3)
    assert hb.num_brackets == 1 and hb.rungs(0) == () and ASHA(1, 2, 3).rungs() == (1,)
    assert "has one bracket, which stops no trial" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="bopt"):
        Hyperband(1, 3, 3)  # two brackets: bracket 1 stops at 1
    assert caplog.text == ""
