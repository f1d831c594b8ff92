"""What the GP learns from under a training-budget schedule: a model over configuration
and budget.

With a scheduler most trials stop after a few epochs, so completed trials alone are too few
to fit a GP on until late in the study, and a model that never sees the stopped trials
keeps proposing where they failed. Like MOBSTER (Klein et al. 2020, "Model-based
Asynchronous Hyperparameter and Neural Architecture Search"), the GP here takes the budget
as one more input: every trial contributes its value at each budget *level* it reached (a
rung of any bracket, or the full budget), the level's position `log(b / b_min) /
log(b_max / b_min)` in [0, 1] as an extra Matern column. What a trial showed at one epoch
then informs the model at every budget, as far as the fitted budget lengthscale says
values carry over.

The acquisition is taken at the full budget, with the best posterior mean there among the
observed configurations as the incumbent, and log EI is weighed by the probability that
the new trial passes its first rung: `log EI(x, full) + log P(y(x, first rung) >= q)`, with
`q` the `1 - 1 / reduction_factor` quantile of the values that rung has seen and `y` the
noisy value under the posterior there (`bopt.acquisition.budget.PromotionWeighted`; no
weight in a Hyperband bracket that stops nothing). Each term guards against one failure
measured on the benchmark:
- log EI at the full budget alone chases configurations whose full-budget value is merely
  unknown; ASHA stops most of them at the first rung, which teaches the model little, and
  on the MLP task one run spent its whole budget that way (218 trials, one finished). The
  promotion weight rules those out: the first rung is where the model knows most.
- log EI at the largest level holding values of `min_trials` trials (MOBSTER's default,
  after BOHB) optimises an early budget for most of a study; on gradient boosting, where a
  large learning rate wins the first iterations and loses at the full budget, it ended
  behind plain ASHA.

`benchmarks/budget_search.py` measured this against BOHB's rule (Falkner et al. 2018: one
model on the largest level with enough values) and against completed trials only; results
and the reasons for the choice are in `benchmarks/results/budget_search/`.

A trial's value at a level is its first report at or past that budget and below the next
level up: the value the rung decided on. A trial that ran to the full budget (status
"complete") has its observed value there. Failed and stale trials teach the model nothing;
pruned and still running trials count at every level they reached.
"""

from __future__ import annotations

import collections
import math
import statistics
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from bopt.proposal import RoundData, reported_sems
from bopt.schedulers import Scheduler
from bopt.trial import Trial

_LEARNS = ("complete", "pruned", "pending")
# "full" (above), or "top": the acquisition at the largest level holding values of
# `min_trials` trials, unweighted (the rule before; the benchmark's ablation sets it)
ACQUIRE = "full"
# Whether each level's values are mapped, median and spread, onto the highest level that
# has enough of them (`_levels_on_one_scale`). Off: at max budget 81 (10 seeds) it moved
# the final median on hgb_digits from 0.120 to 0.118 but on mlp_digits from 0.086 to 0.092
# (augmented_hartmann -3.155 -> -3.162); benchmarks/results/budget_search_81/, gp-asha-levels.
NORMALISE_LEVELS = False
_MIN_PER_LEVEL = 3  # values a level needs for its own median and spread


def budget_levels(scheduler: Scheduler) -> tuple[float, ...]:
    """Every rung of every bracket, and the full budget, ascending; rungs that differ only
    by rounding (Hyperband's `max_budget / reduction_factor**s` from different brackets)
    are one level, at the smallest of them."""
    rungs = {r for b in range(scheduler.num_brackets) for r in scheduler.rungs(b)}
    levels: list[float] = []
    for r in sorted(rungs | {float(scheduler.max_budget)}):
        if levels and math.isclose(r, levels[-1], rel_tol=1e-9):
            if r == float(scheduler.max_budget):
                levels[-1] = r  # the full budget keeps its exact value
            continue
        levels.append(r)
    return tuple(levels)


def value_at(reports: Sequence[tuple[float, float]], low: float, high: float) -> float | None:
    """The value of the first `(budget, value)` report with `low <= budget < high`."""
    for budget, value in reports:
        if low <= budget < high:
            return value
    return None


def level_rows(scheduler: Scheduler, trials: Sequence[Trial],
               reports: Callable[[int], list[tuple[float, float]]]
               ) -> list[tuple[Trial, float, float]]:
    """`(trial, position, value)` for every level each trial reached.

    Args:
        scheduler: the study's schedule.
        trials: every trial of the study.
        reports: trial id -> its `(budget, value)` reports, by budget.

    Returns:
        One row per trial and level, with the level's position in [0, 1] (0 at the lowest
        level, 1 at the full budget).
    """
    levels = budget_levels(scheduler)
    positions, full = _positions(levels), levels[-1]
    rows = []
    for t in trials:
        if t.status not in _LEARNS:
            continue
        curve = reports(t.id)
        for i, level in enumerate(levels):
            above = levels[i + 1] if i + 1 < len(levels) else math.inf
            if t.status == "complete" and level == full:
                value = t.value
            else:
                value = value_at(curve, level, above)
            if value is not None:
                rows.append((t, positions[i], value))
    return rows


def _positions(levels: tuple[float, ...]) -> tuple[float, ...]:
    """Each level's budget column: `log(level / lowest) / log(full / lowest)`, in [0, 1]
    (1 when the full budget is the only level)."""
    if len(levels) == 1:
        return (1.0,)
    return tuple(math.log(b / levels[0]) / math.log(levels[-1] / levels[0]) for b in levels)


def budget_round_data(scheduler: Scheduler, trials: Sequence[Trial],
                      reports: Callable[[int], list[tuple[float, float]]],
                      encoded: Callable[[list[Trial]], list[Tensor]], extra_pending: list[Tensor],
                      min_trials: int, bracket: int = 0) -> RoundData | None:
    """A model round's tensors over configuration and budget (`RoundData.acquire_at`).

    Args:
        scheduler, trials, reports: as for `level_rows`.
        encoded: trials -> their `d` encoded rows.
        extra_pending: `d` rows of the batch being built, pending too.
        min_trials: how many trials a level needs before a model is fitted (at the first
            level) or the acquisition moves up to it.
        bracket: the new trial's bracket, whose first rung the acquisition weighs.

    Returns:
        `n x (d + 1)` inputs with their values and `k x (d + 1)` pending points at the
        acquisition's level; None while fewer than `min_trials` trials have a value.
    """
    rows = level_rows(scheduler, trials, reports)
    counts = collections.Counter(position for _, position, _ in rows)
    enough = [p for p in counts if counts[p] >= min_trials]  # one row per trial and level
    if not enough:
        return None
    levels = budget_levels(scheduler)
    positions = _positions(levels)
    at, promotion = max(enough), None
    if ACQUIRE == "full":
        at = 1.0
        rungs = scheduler.rungs(bracket)
        if rungs:
            first = min(range(len(levels)), key=lambda i: abs(levels[i] - rungs[0]))
            promotion = (positions[first], 1.0 - 1.0 / scheduler.reduction_factor)
    budget = dict(zip(positions, levels))[at]
    column = torch.tensor([[position] for _, position, _ in rows], dtype=torch.float64)
    X = torch.cat([torch.stack(encoded([t for t, _, _ in rows])), column], dim=-1)  # n x (d+1)
    known = {t.id for t, position, _ in rows if position >= at}  # observed there already
    pending = encoded([t for t in trials if t.status == "pending" and t.id not in known])
    pending += extra_pending
    d = X.shape[-1] - 1
    pending_X = torch.stack(pending) if pending else torch.empty(0, d, dtype=torch.float64)
    pending_X = torch.cat([pending_X, torch.full((pending_X.shape[0], 1), at,
                                                 dtype=torch.float64)], dim=-1)  # k x (d + 1)
    values = [v for _, _, v in rows]
    sems = [t.sem if position == 1.0 and t.status == "complete" else None
            for t, position, _ in rows]
    if NORMALISE_LEVELS:
        values, sems = _levels_on_one_scale([p for _, p, _ in rows], values, sems)
    return RoundData(X, torch.tensor(values, dtype=torch.float64), pending_X,
                     num_duplicates=0, sems=reported_sems(sems, torch.device("cpu")),
                     acquire_at=at, acquire_budget=budget, promotion=promotion)


def _levels_on_one_scale(positions: list[float], values: list[float],
                         sems: list[float | None]) -> tuple[list[float], list[float | None]]:
    """Each value mapped `v -> m_ref + s_ref (v - m) / s`, `m` and `s` the median and
    standard deviation of its level's values, `ref` the highest level with at least
    `_MIN_PER_LEVEL` values (whose values, and those of every level above it, stay as
    they are). Levels with fewer values take the map of the nearest level that has enough.

    One stationary GP over configuration and budget has one signal scale; a loss that
    spans 2.2 to 0.5 after one boosting iteration and 0.15 to 0.11 after 81 then fits the
    early spread and leaves the full-budget differences that matter inside its noise. The
    map keeps each level's order (what a rung decides on) and puts the levels' spreads on
    one scale, that of the budget the acquisition is taken at once it has enough values.
    Known weakness (the rule is an ablation, off by default): a level without a spread of
    its own borrows its neighbour's median too, so a level of equal values can land far
    outside the reference's range.
    """
    by_level = collections.defaultdict(list)
    for position, value in zip(positions, values):
        by_level[position].append(value)
    stats = {p: (statistics.median(v), _spread(v)) for p, v in by_level.items()
             if len(v) >= _MIN_PER_LEVEL}
    stats = {p: (m, s) for p, (m, s) in stats.items() if s > 0}
    if not stats:
        return values, sems
    ref = max(stats)
    m_ref, s_ref = stats[ref]

    def level_map(position: float) -> tuple[float, float]:
        if position >= ref:
            return m_ref, s_ref
        return stats[min(stats, key=lambda p: (abs(p - position), -p))]

    out_values, out_sems = [], []
    for position, value, sem in zip(positions, values, sems):
        m, s = level_map(position)
        out_values.append(m_ref + s_ref * (value - m) / s)
        out_sems.append(None if sem is None else sem * s_ref / s)
    return out_values, out_sems


def _spread(values: list[float]) -> float:
    """The sample standard deviation in plain float arithmetic (`statistics.stdev` rounds
    differently in the last bits, and the ablation's committed runs replay on these)."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
