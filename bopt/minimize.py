"""`Optimizer.minimize`: the suggest, evaluate, observe loop, over the optimizer's public API.

With a training-budget schedule the objective receives a `report(value, budget)` callable
as its second argument; `report` records the intermediate value and returns True when the
schedule stops the trial (the trial is then recorded as pruned, and the value the objective
returns is not observed).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from bopt.errors import ObservationError, SpaceExhaustedError
from bopt.trial import Trial
from bopt.validation import check_int

logger = logging.getLogger("bopt")


def run_minimize(opt: Any, func: Callable[..., Any], n_trials: int, *,
                 progress: bool = True) -> Trial | None:
    """Suggest, evaluate and observe `n_trials` times (see `Optimizer.minimize`).

    Returns:
        The best completed trial (None if none completed).
    """
    n_trials = check_int(n_trials, "n_trials", low=0)
    from tqdm.auto import tqdm

    bar = tqdm(range(n_trials), disable=not progress, desc="bopt", unit="trial")
    for _ in bar:
        try:
            trial = opt.suggest()
        except SpaceExhaustedError as err:
            logger.info("stopping early: %s", err)
            break
        _evaluate(opt, func, trial)
        best = opt.best
        if best is not None:
            bar.set_postfix(best=f"{best.value:.6g}", refresh=False)
    return opt.best


def _evaluate(opt: Any, func: Callable[..., Any], trial: Trial) -> None:
    """One trial: call the objective, then observe its value (or fail the trial)."""
    stopped = []

    def report(value: Any, budget: Any) -> bool:
        opt.report(trial, value, budget=budget)
        if opt.should_stop(trial):
            stopped.append(budget)
            return True
        return False

    try:
        value = func(dict(trial.params), report) if opt.scheduler is not None else \
            func(dict(trial.params))
    except BaseException as err:
        if not stopped:
            opt.fail(trial, reason=f"the objective raised {type(err).__name__}: {err}")
        raise
    if stopped:  # pruned: its reports are its record
        return
    try:
        opt.observe(trial, value)
    except ObservationError as err:
        opt.fail(trial, reason=f"rejected: {err}")
        logger.warning("trial %d failed: %s", trial.id, err)
