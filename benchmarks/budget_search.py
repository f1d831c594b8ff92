"""Training-budget search benchmark: anytime curves of bopt's schedules against references.

Every method runs one trial at a time on a `bopt.benchmarks.budget_tasks` task until the
budget spent (epochs summed over all trials, stopped ones included) reaches
`--total` full-budget trials' worth. A method's best value at a point is the best
*full-budget* validation value it has found so far (a stopped trial found nothing final).

Methods:
    gp-asha            bopt GP over configuration and budget (log EI) + bopt.ASHA
    gp-hyperband       the same + bopt.Hyperband
    gp-asha-level      ablation: the GP on one budget level at a time (BOHB's rule)
    gp-asha-completed  ablation: the GP on completed trials only
    gp-asha-top        ablation: the acquisition at the top level with enough values, no
    gp-hyperband-top   promotion weight (the rule before), with either schedule
    gp-asha-levels     ablation: each budget level's values put on one scale before the
                       fit (`bopt.fidelity.NORMALISE_LEVELS`)
    random-asha        bopt random search + bopt.ASHA (plain ASHA)
    gp-full            bopt GP, every trial to the full budget (no scheduler)
    random             random search, full budgets
    tpe-hyperband      Optuna TPE + HyperbandPruner
    tpe-sha            Optuna TPE + SuccessiveHalvingPruner

    OMP_NUM_THREADS=1 python benchmarks/budget_search.py --task augmented_hartmann \
        --max-budget 27 --total 20 --seeds 10 --out benchmarks/results/budget_search
    python benchmarks/budget_search.py --report benchmarks/results/budget_search

Each run appends one JSON line to `<out>/<task>.jsonl` (an existing (method, seed) is
skipped, so an interrupted run resumes); `--report` writes `report.md` and the figures.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


import bopt
import bopt.fidelity
from bopt.design import default_n_initial
from bopt.benchmarks.budget_tasks import BudgetTask, get_budget_task
from bopt.benchmarks.machine import describe_machine
from bopt.benchmarks.references import suggest_config

METHODS = ("gp-asha", "gp-hyperband", "gp-asha-level", "gp-asha-completed", "gp-asha-top",
           "gp-asha-levels",
           "gp-hyperband-top", "random-asha",
           "gp-full", "random", "tpe-hyperband", "tpe-sha")
REDUCTION = 3


class _Ledger:
    """Budget spent, wall time, and the best full-budget value, as events."""

    def __init__(self, total: float):
        self.total, self.spent, self.best = total, 0.0, math.inf
        self.start = time.perf_counter()
        self.events: list[tuple[float, float, float]] = []
        self.best_params: dict | None = None
        self.num_trials = self.num_full = 0

    def exhausted(self) -> bool:
        return self.spent >= self.total

    def spend(self) -> None:
        self.spent += 1

    def finished(self, params: dict, value: float | None) -> None:
        """A trial ended; `value` is its full-budget value, or None if it was stopped."""
        self.num_trials += 1
        if value is not None:
            self.num_full += 1
            if value < self.best:
                self.best, self.best_params = value, dict(params)
        self.events.append((self.spent, time.perf_counter() - self.start, self.best))


@contextmanager
def _ablation(rule: str, min_trials: int):
    """The GP's data under an older rule, for the ablations: "completed" keeps the
    full-budget values only; "level" (BOHB's rule) keeps the largest level with at least
    `min_trials` values. The budget column is then constant, which the GP ignores. "top"
    keeps every value and takes the acquisition at the largest level with enough values,
    unweighted (`bopt.fidelity.ACQUIRE`); "levels" maps each level's values onto one
    scale (`bopt.fidelity.NORMALISE_LEVELS`)."""
    if rule in ("top", "levels"):
        name, value = ("ACQUIRE", "top") if rule == "top" else ("NORMALISE_LEVELS", True)
        before = getattr(bopt.fidelity, name)
        setattr(bopt.fidelity, name, value)
        try:
            yield
        finally:
            setattr(bopt.fidelity, name, before)
        return
    original = bopt.fidelity.level_rows

    def rows(scheduler, trials, reports):
        every = original(scheduler, trials, reports)
        if rule == "completed":
            return [r for r in every if r[1] == 1.0]
        for position in sorted({r[1] for r in every}, reverse=True):
            chosen = [r for r in every if r[1] == position]
            if len(chosen) >= min_trials:
                return chosen
        return []

    bopt.fidelity.level_rows = rows
    try:
        yield
    finally:
        bopt.fidelity.level_rows = original


def _train(task: BudgetTask, params: dict, seed: int, book: _Ledger,
           stops: Callable[[int, float], bool]) -> tuple[float | None, bool]:
    """Train one configuration a budget unit at a time until `stops(budget, value)` says
    the schedule stopped it, the full budget is reached or the run's budget runs out.

    Returns:
        The full-budget value (None when the trial did not get there), and whether the
        schedule stopped it.
    """
    for budget, value in enumerate(task.train(params, seed), start=1):
        book.spend()
        if stops(budget, value):
            return None, True
        if book.exhausted():
            break
    return (value if budget == task.max_budget else None), False


def _run_bopt(task: BudgetTask, method: str, seed: int, book: _Ledger) -> None:
    acquisition = "random" if method.startswith("random") else "ei"
    scheduler = None
    if "asha" in method:
        scheduler = bopt.ASHA(1, task.max_budget, REDUCTION)
    elif "hyperband" in method:
        scheduler = bopt.Hyperband(1, task.max_budget, REDUCTION)
    opt = bopt.Optimizer(task.space, acquisition, seed=seed, device="cpu", scheduler=scheduler)
    def stops(trial, budget: int, value: float) -> bool:
        if scheduler is None:
            return False
        opt.report(trial, value, budget=budget)
        return opt.should_stop(trial)

    while not book.exhausted():
        trial = opt.suggest()
        value, stopped = _train(task, trial.params, seed, book,
                                lambda budget, value: stops(trial, budget, value))
        if value is not None:
            opt.observe(trial, value)
        elif not stopped:
            opt.interrupt(trial)  # the budget ran out mid-trial
        book.finished(trial.params, value)


def _run_optuna(task: BudgetTask, method: str, seed: int, book: _Ledger) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (optuna.pruners.HyperbandPruner(1, task.max_budget, REDUCTION)
              if method == "tpe-hyperband" else
              optuna.pruners.SuccessiveHalvingPruner(1, REDUCTION))
    # HyperbandPruner assigns trials to brackets by a hash of the study's name: name it, so
    # that a seed reproduces its run
    study = optuna.create_study(study_name=f"{task.name}-{method}-{seed}", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    while not book.exhausted():
        trial = study.ask()
        params = suggest_config(trial, task.space)

        def pruned(budget: int, value: float, trial=trial) -> bool:
            trial.report(value, budget)
            return trial.should_prune()

        value, _ = _train(task, params, seed, book, pruned)
        if value is not None:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        book.finished(params, value)


def run_one(task: BudgetTask, method: str, seed: int, total: float) -> dict:
    """One (method, seed) run; returns its JSON record."""
    import torch

    torch.set_num_threads(1)
    book = _Ledger(total * task.max_budget)
    if method.startswith("tpe"):
        _run_optuna(task, method, seed, book)
    elif method.endswith("-top") or method in ("gp-asha-completed", "gp-asha-level",
                                               "gp-asha-levels"):
        with _ablation(method.rsplit("-", 1)[1], default_n_initial(task.space)):
            _run_bopt(task, method, seed, book)
    else:
        _run_bopt(task, method, seed, book)
    return record_of(task, method, seed, book)


def record_of(task: BudgetTask, method: str, seed: int, book: _Ledger) -> dict:
    """A finished run's JSON record; the chosen configuration's test score, once (its
    time counts in `wall_s`)."""
    test = None
    if task.test is not None and book.best_params is not None:
        test = task.test(book.best_params, seed)  # scored once, after the search
    return {"task": task.name, "method": method, "seed": seed, "max_budget": task.max_budget,
            "total_budget": book.total, "events": book.events, "best": book.best,
            "best_params": book.best_params, "test": test, "num_trials": book.num_trials,
            "num_full": book.num_full, "wall_s": time.perf_counter() - book.start}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _done(path: Path) -> set[tuple[str, int]]:
    if not path.exists():
        return set()
    return {(r["method"], r["seed"]) for r in map(json.loads, path.read_text().splitlines())}


def common_parser(doc: str, methods: tuple[str, ...], out: Path) -> argparse.ArgumentParser:
    """The options this script shares with `budget_search_external.py`."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--task", default="augmented_hartmann")
    parser.add_argument("--max-budget", type=int, default=27)
    parser.add_argument("--total", type=float, default=20.0,
                        help="budget of the run, in full-budget trials")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--methods", default=",".join(methods))
    parser.add_argument("--out", type=Path, default=out)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__, METHODS, Path("benchmarks/results/budget_search"))
    parser.add_argument("--report", type=Path, default=None,
                        help="write report.md and figures from the JSONL files in this folder")
    args = parser.parse_args(argv)
    if args.report is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from budget_search_report import write_report

        print(write_report(args.report))
        return 0
    task = get_budget_task(args.task, max_budget=args.max_budget)
    args.out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown!r}; known: {', '.join(METHODS)}")
    run_all(task, methods, args.seeds, args.total, args.out / f"{task.name}.jsonl", run_one)
    return 0


def run_all(task: BudgetTask, methods: list[str], seeds: int, total: float, path: Path,
            run: Callable[[BudgetTask, str, int, float], dict]) -> None:
    """Every (seed, method) run not yet in `path`, each appended as one locked JSON line
    (so several processes may share the file)."""
    stamp = {"machine": describe_machine()["summary"], "commit": _commit()}
    for seed in range(seeds):
        for method in methods:
            if (method, seed) in _done(path):
                continue
            record = {**run(task, method, seed, total), **stamp}
            with path.open("a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
                f.write(json.dumps(record) + "\n")
            print(f"{task.name} {method} seed {seed}: best {record['best']:.5g} after "
                  f"{record['num_trials']} trials ({record['num_full']} full), "
                  f"{record['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
