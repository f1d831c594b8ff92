"""What the GP learns from under a training-budget schedule.

With a scheduler most trials stop after a few epochs, so the completed trials alone are
too few to fit a GP on until late in the study. BOHB's rule (Falkner et al. 2018, "BOHB:
Robust and Efficient Hyperparameter Optimization at Scale", section 4.2) uses them all, one
budget at a time: the model is fitted on the values trials reached at one budget *level*
(a rung of any bracket, or the full budget), the largest level that already holds enough
of them. Early on that is the first rung, where every trial reports; as trials climb, the
model moves up to budgets that predict the full-budget value better.

`benchmarks/budget_search.py` measured this rule against fitting on completed trials only
(results in `benchmarks/results/budget_search/`).

A trial's value at a level is its first report at or past that budget and below the next
level up: the value the rung decided on. A trial that ran to the full budget (status
"complete") has its observed value there. Failed and stale trials teach the model nothing;
pruned and still running trials count at every level they reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bopt.schedulers import Scheduler
from bopt.trial import Trial

_LEARNS = ("complete", "pruned", "pending")


def budget_levels(scheduler: Scheduler) -> tuple[float, ...]:
    """Every rung of every bracket, and the full budget, ascending."""
    rungs = {r for b in range(scheduler.num_brackets) for r in scheduler.rungs(b)}
    return tuple(sorted(rungs | {float(scheduler.max_budget)}))


def value_at(reports: Sequence[tuple[float, float]], low: float, high: float) -> float | None:
    """The value of the first `(budget, value)` report with `low <= budget < high`."""
    for budget, value in reports:
        if low <= budget < high:
            return value
    return None


@dataclass(frozen=True)
class LevelData:
    """The observations of one budget level.

    Attributes:
        budget: the level (a rung, or the full budget).
        trials: the trials with a value there, in the order given.
        values: their values at that level.
    """

    budget: float
    trials: list[Trial]
    values: list[float]


def _at_level(trials: Sequence[Trial], reports: Callable[[int], list[tuple[float, float]]],
              level: float, above: float, full: float) -> LevelData:
    chosen, values = [], []
    for t in trials:
        if t.status not in _LEARNS:
            continue
        if t.status == "complete" and level == full:
            value = t.value
        else:
            value = value_at(reports(t.id), level, above)
        if value is not None:
            chosen.append(t)
            values.append(value)
    return LevelData(level, chosen, values)


def training_level(scheduler: Scheduler, trials: Sequence[Trial],
                   reports: Callable[[int], list[tuple[float, float]]],
                   min_points: int) -> LevelData | None:
    """The largest budget level with at least `min_points` values, and those values.

    Args:
        scheduler: the study's schedule.
        trials: every trial of the study.
        reports: trial id -> its `(budget, value)` reports, by budget.
        min_points: how many values a level needs to be modelled.

    Returns:
        The level's data, or None while no level holds `min_points` values (the initial
        design is still running).
    """
    levels = budget_levels(scheduler)
    full = levels[-1]
    for i in range(len(levels) - 1, -1, -1):
        above = levels[i + 1] if i + 1 < len(levels) else float("inf")
        data = _at_level(trials, reports, levels[i], above, full)
        if len(data.trials) >= min_points:
            return data
    return None
