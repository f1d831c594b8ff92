"""`Optimizer.minimize`: the suggest, evaluate, observe loop, over the optimizer's public API.

With a training-budget schedule the objective receives a `report(value, budget)` callable
as its second argument; `report` records the intermediate value and returns True when the
schedule stops the trial (the trial is then recorded as pruned, and the value the objective
returns is not observed). `n_jobs` threads share the optimizer (its calls are serialised,
the objective runs in parallel). An interrupted trial (Ctrl-C) is marked stale, so the
next `suggest` proposes it again, not failed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from bopt.errors import ArgumentError, ObservationError, SpaceExhaustedError
from bopt.trial import Trial
from bopt.validation import check_int, check_number

logger = logging.getLogger("bopt")
Callback = Callable[[Any, Trial], Any]


class _Progress:
    """A tqdm bar on a terminal; elsewhere (CI, a log file) a plain line every tenth."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="bopt", unit="trial")
        self._every = max(1, total // 10)

    def step(self, best: Trial | None) -> None:
        self.done += 1
        text = "" if best is None else f"best {best.value:.6g}"
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.done % self._every == 0 or self.done == self.total):
            print(f"bopt: {self.done}/{self.total} trials{', ' + text if text else ''}",
                  file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_minimize(opt: Any, func: Callable[..., Any], n_trials: int, *, progress: bool = True,
                 timeout: float | None = None, callbacks: Iterable[Callback] = (),
                 n_jobs: int = 1) -> Trial | None:
    """Suggest, evaluate and observe up to `n_trials` times (see `Optimizer.minimize`).

    Returns:
        The best completed trial (None if none completed).
    """
    n_trials = check_int(n_trials, "n_trials", low=0)
    n_jobs = check_int(n_jobs, "n_jobs", low=1)
    if timeout is not None:
        timeout = check_number(timeout, "timeout (seconds)", low=0.0, low_open=True)
    callbacks = list(callbacks)
    if not all(callable(c) for c in callbacks):
        raise ArgumentError(f"callbacks must be callables callback(opt, trial); got "
                            f"{callbacks!r}.")
    bar, left = _Progress(n_trials, progress), _Budget(n_trials, timeout)
    try:
        if n_jobs == 1:
            _work(opt, func, left, callbacks, bar)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="bopt") as pool:
                for done in [pool.submit(_work, opt, func, left, callbacks, bar)
                             for _ in range(n_jobs)]:
                    done.result()  # re-raises a worker's exception
    finally:
        bar.close()
    if left.stopped_by:
        bar.say(f"bopt: stopped after {bar.done} of {n_trials} trials: {left.stopped_by}")
    return opt.best


class _Budget:
    """How many trials may still start, shared by the worker threads."""

    def __init__(self, n_trials: int, timeout: float | None):
        self.left, self.deadline = n_trials, None if timeout is None else time.monotonic() + timeout
        self.stopped_by: str | None = None
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.stopped_by is not None or self.left <= 0:
                return False
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stopped_by = "the timeout ran out"
                return False
            self.left -= 1
            return True

    def stop(self, reason: str) -> None:
        with self._lock:
            self.stopped_by = self.stopped_by or reason


def _work(opt: Any, func: Callable[..., Any], budget: _Budget, callbacks: list[Callback],
          bar: _Progress) -> None:
    """One worker: trials until the budget is spent, the space runs out or a trial raises."""
    while budget.take():
        try:
            trial = opt.suggest()
        except SpaceExhaustedError as err:
            budget.stop(f"the space has no unseen configuration left ({err})")
            logger.warning("minimize(): stopping early: %s", err)
            return
        try:
            _evaluate(opt, func, trial)
        except BaseException:
            budget.stop("a trial raised")
            raise
        if callbacks:
            finished = opt.history[trial.id]  # ids run 0, 1, ... in history order
            for callback in callbacks:
                callback(opt, finished)
        bar.step(opt.best if bar.enabled else None)  # `best` reads the whole history


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
    except (KeyboardInterrupt, SystemExit) as err:  # not the configuration's fault
        if not stopped:
            opt.interrupt(trial, reason=f"interrupted ({type(err).__name__})")
        raise
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
