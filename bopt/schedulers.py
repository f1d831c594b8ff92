"""Training-budget schedules: successive-halving rung decisions as pure functions.

A trial trains for a budget (epochs, boosting rounds) and reports intermediate values. A
*rung* is a budget at which it may be stopped. ASHA (Li et al. 2020, "A System for
Massively Parallel Hyperparameter Tuning", the stopping variant) keeps a trial going past a
rung only if its value there is among the best `1 / reduction_factor` of the values that
rung has recorded so far, without waiting for a cohort. Hyperband (Li et al. 2018,
"Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization") runs several such
brackets with different minimum budgets, so that some trials are never stopped early.

The schedules know nothing of trials or storage: they say where the rungs are and which
bracket a new trial joins, and `continues` decides one report from the values a rung holds.
`record_report` and `prune_if_stopped`, at the end, apply them to a study's trial ledger.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import numbers
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bopt.errors import ArgumentError
from bopt.validation import check_choice, check_number, finite_value

logger = logging.getLogger("bopt")


def _rungs_from(first: float, max_budget: float, reduction_factor: float) -> tuple[float, ...]:
    """`first * reduction_factor**k` for k = 0, 1, ... while below `max_budget`."""
    rungs, budget = [], first
    while budget < max_budget * (1 - 1e-12):
        rungs.append(budget)
        budget *= reduction_factor
    return tuple(rungs)


def _check_budgets(kind: str, min_budget: float, max_budget: float,
                   reduction_factor: float) -> None:
    check_number(min_budget, f"{kind}: min_budget", low=0.0, low_open=True)
    check_number(max_budget, f"{kind}: max_budget", low=0.0, low_open=True)
    check_number(reduction_factor, f"{kind}: reduction_factor", low=1.0, low_open=True)
    if not min_budget < max_budget:
        raise ArgumentError(f"{kind}: need min_budget < max_budget, got min_budget="
                            f"{min_budget!r}, max_budget={max_budget!r}.")


@dataclass(frozen=True)
class ASHA:
    """Asynchronous successive halving, stopping variant: one bracket of rungs.

    Attributes:
        min_budget: the first rung (e.g. 1 epoch).
        max_budget: a trial's full budget; trials that reach it are complete.
        reduction_factor: at each rung, the best `1 / reduction_factor` go on (> 1).
        grace_period: no trial is stopped before this budget (default `min_budget`): the
            rungs are `grace_period * reduction_factor**k` below `max_budget`.

    Raises:
        ArgumentError: budgets not positive and increasing, a factor not above 1, or a grace
            period outside `[min_budget, max_budget)`.
    """

    min_budget: float = 1.0
    max_budget: float = 81.0
    reduction_factor: float = 3.0
    grace_period: float | None = None

    def __post_init__(self) -> None:
        _check_budgets("ASHA", self.min_budget, self.max_budget, self.reduction_factor)
        if self.grace_period is not None:
            grace = check_number(self.grace_period, "ASHA: grace_period", low=self.min_budget)
            if grace >= self.max_budget:
                raise ArgumentError(f"ASHA: grace_period must be below max_budget="
                                    f"{self.max_budget!r}; got {self.grace_period!r}.")

    @property
    def num_brackets(self) -> int:
        return 1

    def rungs(self, bracket: int = 0) -> tuple[float, ...]:
        """The budgets at which a trial of `bracket` (always 0) may be stopped, ascending."""
        first = self.min_budget if self.grace_period is None else self.grace_period
        return _rungs_from(first, self.max_budget, self.reduction_factor)

    def bracket_of(self, trial_index: int) -> int:
        """The bracket the `trial_index`-th trial of the study joins (always 0)."""
        return 0


@dataclass(frozen=True)
class Hyperband:
    """Hyperband's brackets run asynchronously: bracket `s` (0 .. s_max) starts its trials
    at budget `max_budget / reduction_factor**s` and halves them at every rung after, so
    bracket 0 never stops a trial and bracket `s_max` starts at or just above `min_budget`.

    New trials are spread over the brackets in the proportions of one Hyperband iteration
    (Li et al. 2018, Algorithm 1: `n_s = ceil((s_max + 1) / (s + 1) * reduction_factor**s)`
    configurations in bracket `s`), interleaved so that any number of trials keeps those
    proportions (`bracket_of`).

    Attributes:
        min_budget, max_budget, reduction_factor: as for `ASHA`. When
            `log(max_budget / min_budget)` is not a whole number of `log(reduction_factor)`,
            the most aggressive bracket starts above `min_budget` (at
            `max_budget / reduction_factor**s_max`).
        order: "interleaved" (the default), or "sequential": Algorithm 1's order, each
            iteration's slots bracket by bracket, most aggressive first, so that a study of
            fewer trials than that bracket's size runs it alone. Studies stored before the
            interleaved order existed load with "sequential" and keep their trials' brackets.
    """

    min_budget: float = 1.0
    max_budget: float = 81.0
    reduction_factor: float = 3.0
    order: str = "interleaved"

    def __post_init__(self) -> None:
        _check_budgets("Hyperband", self.min_budget, self.max_budget, self.reduction_factor)
        check_choice(self.order, "Hyperband: order", _ORDERS)
        if self.num_brackets == 1:
            logger.warning(
                "Hyperband(min_budget=%r, max_budget=%r, reduction_factor=%r) has one bracket, "
                "which stops no trial: early stopping needs max_budget / min_budget >= "
                "reduction_factor (ASHA with these budgets stops at min_budget)",
                self.min_budget, self.max_budget, self.reduction_factor)

    @property
    def num_brackets(self) -> int:
        ratio = self.max_budget / self.min_budget
        return int(math.floor(math.log(ratio) / math.log(self.reduction_factor) + 1e-9)) + 1

    def bracket_sizes(self) -> tuple[int, ...]:
        """How many trials each bracket starts per Hyperband iteration."""
        s_max = self.num_brackets - 1
        return tuple(math.ceil((s_max + 1) / (s + 1) * self.reduction_factor**s)
                     for s in range(s_max + 1))

    def rungs(self, bracket: int) -> tuple[float, ...]:
        """Bracket `bracket`'s rungs: the last `bracket` rungs of the most aggressive
        bracket, the very same floats, so that one rung's decisions pool every bracket's
        trials (computed per bracket, 100 / 3**3 * 3 and 100 / 3**2 differ in the last bit,
        and a rung's pool is keyed by its budget)."""
        s_max = self.num_brackets - 1
        chain = _rungs_from(self.max_budget / self.reduction_factor**s_max, self.max_budget,
                            self.reduction_factor)
        return chain[len(chain) - bracket:]

    def bracket_of(self, trial_index: int) -> int:
        """The bracket of the study's trial with id `trial_index` (ids count every trial the
        study created, in order).

        With `order="interleaved"`, one Hyperband iteration's `sum(bracket_sizes())` slots
        are spread by smooth weighted round robin: every prefix of the sequence holds each
        bracket in its share of the iteration (at most one trial off), the most aggressive
        bracket first on ties, and the sequence repeats. A study of a few dozen trials then
        runs every bracket (at max_budget / min_budget = 81, the first 81 trials of
        Algorithm 1's order are all in bracket 4: plain ASHA).
        """
        sizes = self.bracket_sizes()
        if self.order == "interleaved":
            return _interleaving(sizes).at(trial_index)
        slot = trial_index % sum(sizes)
        for s in range(len(sizes) - 1, -1, -1):
            if slot < sizes[s]:
                return s
            slot -= sizes[s]
        raise AssertionError("unreachable: slot is below the sum of the sizes")


_ORDERS = ("interleaved", "sequential")


class _Interleaving:
    """Indices `s` repeated `sizes[s]` times per cycle, spread out: at each step every index
    gains its size in credit and the one with the most (the highest index on ties) is taken
    and pays the cycle's length. Built only as far as asked (a cycle of a large budget
    ratio has millions of slots; a study uses its first few hundred)."""

    def __init__(self, sizes: tuple[int, ...]):
        self.sizes, self.total = sizes, sum(sizes)
        self.credit, self.order = [0] * len(sizes), []
        self.lock = threading.Lock()

    def at(self, index: int) -> int:
        index %= self.total
        with self.lock:
            while len(self.order) <= index:
                self.credit = [c + size for c, size in zip(self.credit, self.sizes)]
                pick = max(range(len(self.sizes)), key=lambda s: (self.credit[s], s))
                self.credit[pick] -= self.total
                self.order.append(pick)
            return self.order[index]


@functools.lru_cache(maxsize=32)
def _interleaving(sizes: tuple[int, ...]) -> _Interleaving:
    return _Interleaving(sizes)


def continues(value: float, recorded: Sequence[float], reduction_factor: float, *,
              maximize: bool) -> bool:
    """ASHA's decision for a trial reaching a rung: go on iff `value` is at least as good as
    the `1 - 1 / reduction_factor` quantile (linear interpolation) of every value the rung
    has recorded, this one included (the rule Ray Tune's ASHAScheduler applies).

    Args:
        value: the trial's value at the rung.
        recorded: the values the rung recorded before, from every trial and worker.
        reduction_factor: above 1.
        maximize: whether higher values are better.

    Returns:
        True to continue; the first trial at a rung always continues.
    """
    values = np.asarray([*recorded, value], dtype=float)
    if not maximize:
        values, value = -values, -value
    return bool(value >= np.percentile(values, 100.0 * (1.0 - 1.0 / reduction_factor)))


Scheduler = ASHA | Hyperband


def scheduler_to_dict(scheduler: Scheduler | None) -> dict | None:
    """The JSON form stored with a study's settings."""
    if scheduler is None:
        return None
    return {"kind": type(scheduler).__name__, **dataclasses.asdict(scheduler)}


def scheduler_from_dict(data: dict | None) -> Scheduler | None:
    """The inverse of `scheduler_to_dict`."""
    if data is None:
        return None
    kinds = {"ASHA": ASHA, "Hyperband": Hyperband}
    fields = {k: v for k, v in data.items() if k != "kind"}
    if data.get("kind") not in kinds:
        raise ArgumentError(f"unknown scheduler {data.get('kind')!r}; expected one of "
                            f"{sorted(kinds)}.")
    if data["kind"] == "Hyperband":
        fields.setdefault("order", "sequential")  # stored before the order was a setting
    return kinds[data["kind"]](**fields)


# --------------------------------------------------------------------------- a study's reports
# The two steps `Optimizer.report` and `Optimizer.should_stop` take on a trial ledger
# (`bopt.ledger`): checked arguments in, one committed change out.


def record_report(ledger, scheduler: Scheduler | None, trial, value, budget, *,
                  maximize: bool) -> None:
    """Check a report, then commit it with the decisions at the rungs it reaches."""
    pending = ledger.pending_trial(trial, "report")
    where = f"report(trial {pending.id})"
    value = finite_value(value, where)
    high = math.inf if scheduler is None else scheduler.max_budget
    budget = check_number(budget, f"{where}: budget", low=0.0, low_open=True, high=high)
    reports = ledger.reports(pending.id)
    if reports and budget <= reports[-1][0]:
        raise ArgumentError(f"{where}: budget must grow from report to report; the last was "
                            f"{reports[-1][0]!r}, got {budget!r}.")
    if scheduler is None:
        ledger.add_report(pending, budget, value, rungs=(), decide=None)
        return

    def decide(rung: float, at_rung: float, recorded: list[float]) -> bool:
        return not continues(at_rung, recorded, scheduler.reduction_factor, maximize=maximize)

    ledger.add_report(pending, budget, value, rungs=scheduler.rungs(
        scheduler.bracket_of(pending.id)), decide=decide)


def prune_if_stopped(ledger, trial) -> bool:
    """True, with the trial recorded as pruned, when a decision stopped it."""
    tid = getattr(trial, "id", trial)
    known = ledger.get(int(tid)) if isinstance(tid, numbers.Integral) and not isinstance(
        tid, bool) else None
    if known is not None and known.status == "pruned":
        return True
    pending = ledger.pending_trial(trial, "should_stop")
    stops = [d for d in ledger.decisions(pending.id) if d[2]]
    if not stops:
        return False
    rung, value, _ = stops[0]
    budget, last = ledger.reports(pending.id)[-1]
    ledger.finish(pending, "pruned", last, f"stopped at rung {rung:g} (value {value:.6g}); "
                  f"last report at budget {budget:g}", "should_stop")
    return True


def summarize_rungs(scheduler: Scheduler, decisions: dict[int, list[tuple[float, float, bool]]],
                    finals: dict[int, float] | None = None) -> list[dict]:
    """`{"bracket", "rung", "entered", "continued", "stopped", "agreement"}` per bracket
    and rung, from each trial's `(rung, value, stop)` decisions (trial id -> its decisions)
    and the completed trials' values (`finals`, trial id -> value).

    `agreement` is the Spearman rank correlation between the values at the rung and at the
    full budget of the completed trials that passed it (None below `_MIN_AGREEMENT` such
    trials, or when either side is constant): near 1 the rung ranks configurations as the
    full budget does; near 0 or below it misleads, and stopping there throws good trials
    away (a larger grace period, or Hyperband's later brackets, are then safer). The
    trials it is computed on all passed the rung, so it reads low when the rung already
    separated them well; read it beside `continued` and `stopped`.
    """
    finals = finals or {}
    rows = []
    for bracket in range(scheduler.num_brackets):
        ids = [tid for tid in decisions if scheduler.bracket_of(tid) == bracket]
        for rung in scheduler.rungs(bracket):
            made = [stop for tid in ids for r, _, stop in decisions[tid] if r == rung]
            pairs = [(value, finals[tid]) for tid in ids if tid in finals
                     for r, value, _ in decisions[tid] if r == rung]
            rows.append({"bracket": bracket, "rung": rung, "entered": len(made),
                         "continued": made.count(False), "stopped": made.count(True),
                         "agreement": _rank_agreement(pairs)})
    return rows


_MIN_AGREEMENT = 4  # completed trials a rung's agreement needs


def _rank_agreement(pairs: list[tuple[float, float]]) -> float | None:
    """Spearman's correlation of `(value at the rung, value at the full budget)` pairs."""
    from scipy.stats import spearmanr  # scipy ships with BoTorch

    if len(pairs) < _MIN_AGREEMENT:
        return None
    at_rung, final = zip(*pairs)
    if len(set(at_rung)) == 1 or len(set(final)) == 1:  # no ranking to compare
        return None
    return float(spearmanr(at_rung, final)[0])


def check_scheduler(scheduler: object) -> Scheduler | None:
    """A schedule, from itself or its stored dict; ArgumentError for anything else."""
    if isinstance(scheduler, dict):  # as stored with a study
        return scheduler_from_dict(scheduler)
    if scheduler is None or isinstance(scheduler, (ASHA, Hyperband)):
        return scheduler
    raise ArgumentError(f"scheduler must be bopt.ASHA(...), bopt.Hyperband(...) or None; got "
                        f"{scheduler!r}.")
