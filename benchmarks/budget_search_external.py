"""Training-budget search with external multi-fidelity optimizers, in `budget_search.py`'s format.

Runs SMAC3 and Syne Tune, one trial at a time, on a `bopt.benchmarks.budget_tasks` task, and
writes records that `budget_search_report.py` reads like `budget_search.py`'s own: the same
keys, the same `_Ledger` (a run stops once `--total` full-budget trials' worth of epochs is
spent, stopped trials included; the best counts only full-budget values).

Methods:
    smac-mf       SMAC3's MultiFidelityFacade: random-forest BO with its Hyperband
                  intensifier, budgets 1, 3, 9, 27 (eta = 3, min 1, max `--max-budget`);
                  the facade's defaults except a random initial design of max(5, d + 1)
                  configurations (bopt's n_initial when these runs were made; since
                  f879c6c bopt starts mlp_digits, which has a categorical, with 10;
                  SMAC's own MF example uses 5, its
                  default rule 10·d would be 60-70 of the ~90 configurations a run sees).
                  Its model is fitted on the highest budget that has a trial
                  (ConfigSelector min_trials=1), so after the first full-budget trial on
                  very few points.
    syne-mobster  Syne Tune's MOBSTER (GP over configuration and resource, stopping-type
                  asynchronous Hyperband, one bracket, grace period 1, reduction factor 3)
    syne-mobster-matern
                  ablation: MOBSTER with one Matern-5/2 ARD kernel over configuration and
                  resource together (`gp_resource_kernel="matern52"`, bopt's kind of
                  kernel; Syne Tune's resource axis is linear in epochs, bopt's
                  logarithmic) instead of its default exponential-decay sum (Swersky et
                  al. 2014, Tiao et al. 2020: an additive learning-curve term shared by all
                  configurations)
    syne-bohb     Syne Tune's BOHB (KDE on each trial's last value, ASHA, one bracket)

Accounting:
    SMAC's Hyperband evaluates a configuration at budget 1, then again at 3, 9 and 27 when it
    is promoted, each time as a new trial. Here a promotion resumes the training where the
    configuration stopped, as if from a checkpoint: the budget spent is the increment over
    the largest budget that configuration already reached, and the value SMAC is told is the
    task's curve at the requested budget (the configuration's training iterator is kept alive
    between evaluations, with its torch RNG state saved and restored, so the curve is the
    one an uninterrupted run gives). Without checkpoints SMAC would spend 1 + 3 + 9 + 27
    epochs on a configuration that reaches 27, not 27. An event is appended after every
    evaluation that spent budget; `num_trials` counts distinct configurations (a trial in
    `budget_search.py`'s sense: one configuration, trained once); `num_full` those that
    reached the full budget.

    Syne Tune's schedulers are driven directly (no backend, no Tuner): `suggest` gives the
    configuration, `on_trial_add` registers it, every epoch goes to `on_trial_result` with
    the resource attribute `epoch`, a STOP before the full budget ends the trial
    (`on_trial_remove`, as the Tuner does), and at the full budget `on_trial_complete` is
    called. PAUSE (promotion-type schedulers only, not used here) keeps the trial's iterator
    so a later resume suggestion continues it.

    Syne Tune has no conditional parameters: a conditional parameter (`step_gamma` in
    mlp_digits) is always in Syne Tune's space and dropped from the configuration the task
    sees, and from `best_params`, when inactive. SMAC gets ConfigSpace conditions.

Versions: Syne Tune 0.16 has BOHB but no MOBSTER (its GP searchers were removed); MOBSTER is
`syne_tune.optimizer.legacy_baselines.MOBSTER` in 0.14 (`syne-tune[gpsearchers]==0.14.2`, which
needs numpy < 1.27), `syne_tune.optimizer.baselines.MOBSTER` before that. The script uses
whichever its interpreter has, and says so when none.

    OMP_NUM_THREADS=1 python benchmarks/budget_search_external.py --task augmented_hartmann \
        --max-budget 27 --total 20 --seeds 10 --methods smac-mf,syne-bohb \
        --out benchmarks/results/budget_search/external

The script re-executes itself with PYTHONHASHSEED=0 (SMAC's runs otherwise differ from one
interpreter to the next under the same seed). Each run appends one JSON line to `<out>/<task>.jsonl` (an existing (method, seed) is skipped,
so an interrupted run resumes; appends are locked, so two interpreters may share a file).
"""

from __future__ import annotations

import datetime
import inspect
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bopt  # noqa: E402
from bopt.benchmarks.budget_tasks import BudgetTask, get_budget_task  # noqa: E402
from budget_search import (REDUCTION, _Ledger, common_parser, record_of,  # noqa: E402
                           run_all)

METHODS = ("smac-mf", "syne-mobster", "syne-mobster-matern", "syne-bohb")
METRIC, RESOURCE = "loss", "epoch"


def _cast(task: BudgetTask, values: dict) -> dict:
    """The active parameters of `values`, as plain Python types (JSON-safe)."""
    out = {}
    for p in task.space.params:
        if p.name not in values:
            continue
        v = values[p.name]
        if isinstance(p, bopt.Int):
            v = int(round(float(v)))
        elif isinstance(p, bopt.Float):
            v = float(v)
        elif hasattr(v, "item"):  # a numpy scalar
            v = v.item()
        out[p.name] = v
    return task.space.active_config(out)


class _Curve:
    """One configuration's training, resumable: `advance()` trains one more epoch. The torch
    RNG state and grad mode are swapped in and out around each epoch, so interleaving
    several curves gives each the values of an uninterrupted run."""

    def __init__(self, task: BudgetTask, params: dict, seed: int):
        import torch

        self._torch = torch
        self._it = task.train(params, seed)
        self._rng = None
        self.values: list[float] = []

    def advance(self) -> float:
        torch = self._torch
        outside, outside_grad = torch.get_rng_state(), torch.is_grad_enabled()
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            torch.set_grad_enabled(self._grad)
        try:
            value = float(next(self._it))
        finally:
            # the MLP task yields inside `torch.no_grad()`: its grad mode is part of its
            # state too, and must not leak into the other curves (or into the optimizer)
            self._rng, self._grad = torch.get_rng_state(), torch.is_grad_enabled()
            torch.set_rng_state(outside)
            torch.set_grad_enabled(outside_grad)
        self.values.append(value)
        return value

    def close(self) -> None:
        """End the training (under its own grad mode, which closing it restores)."""
        if self._it is None:
            return
        torch = self._torch
        outside_grad = torch.is_grad_enabled()
        try:
            if self._rng is not None:
                torch.set_grad_enabled(self._grad)
            self._it.close()
        finally:
            self._it = None
            torch.set_grad_enabled(outside_grad)


# --------------------------------------------------------------------------- SMAC3


def _configspace(task: BudgetTask, seed: int):
    from ConfigSpace import (Categorical, ConfigurationSpace, EqualsCondition, Float,
                             InCondition, Integer)

    cs = ConfigurationSpace(seed=seed)
    hps = {}
    for p in task.space.params:
        if isinstance(p, bopt.Categorical):
            hp = Categorical(p.name, list(p.choices))
        elif isinstance(p, bopt.Int):
            hp = Integer(p.name, (int(p.low), int(p.high)), log=bool(p.log))
        else:
            hp = Float(p.name, (float(p.low), float(p.high)), log=bool(p.log))
        hps[p.name] = hp
    cs.add(list(hps.values()))
    for p in task.space.params:
        if p.parent is not None:
            allowed = list(p.allowed)
            cs.add(EqualsCondition(hps[p.name], hps[p.parent], allowed[0]) if len(allowed) == 1
                   else InCondition(hps[p.name], hps[p.parent], allowed))
    return cs


def _run_smac(task: BudgetTask, method: str, seed: int, book: _Ledger) -> None:
    from smac import MultiFidelityFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    curves: dict = {}

    def evaluate(params: dict, budget: int) -> tuple[float | None, bool]:
        """Train `params` up to `budget` (resuming); (value at budget or None if the run's
        budget ran out first, whether any budget was spent)."""
        key = tuple(sorted(params.items()))
        curve = curves.get(key)
        if curve is None:
            curve = curves[key] = _Curve(task, params, seed)
        spent = False
        while len(curve.values) < budget and not book.exhausted():
            curve.advance()
            book.spend()
            spent = True
        if len(curve.values) < budget:
            return None, spent
        if budget >= task.max_budget:
            curve.close()
        return curve.values[budget - 1], spent

    def target(config, seed: int = 0, budget: float = task.max_budget) -> float:
        """SMAC's target signature; the loop below calls `evaluate` itself so that a run
        can end mid-evaluation when its budget is spent."""
        value, _ = evaluate(_cast(task, dict(config)), int(round(budget)))
        return math.inf if value is None else value

    with tempfile.TemporaryDirectory(prefix="smac_") as tmp:
        scenario = Scenario(_configspace(task, seed), name=f"{task.name}-{seed}",
                            output_directory=Path(tmp), deterministic=True, n_trials=10**6,
                            min_budget=1, max_budget=task.max_budget, seed=seed)
        facade = MultiFidelityFacade(
            scenario, target,
            initial_design=MultiFidelityFacade.get_initial_design(
                scenario, n_configs=max(5, len(task.space) + 1)),
            intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=REDUCTION),
            overwrite=True, logging_level=40)
        while not book.exhausted():
            info = facade.ask()
            budget = int(round(info.budget))
            params = _cast(task, dict(info.config))
            start = time.perf_counter()
            value, spent = evaluate(params, budget)
            if value is None:  # the run's budget ran out mid-evaluation
                book.finished(params, None)
                break
            facade.tell(info, TrialValue(cost=value, time=time.perf_counter() - start),
                        save=False)
            if spent:
                book.finished(params, value if budget >= task.max_budget else None)
    for curve in curves.values():
        curve.close()
    book.num_trials = len(curves)


# --------------------------------------------------------------------------- Syne Tune


def _syne_space(task: BudgetTask) -> dict:
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    space = {}
    for p in task.space.params:
        if isinstance(p, bopt.Categorical):
            space[p.name] = choice(list(p.choices))
        elif isinstance(p, bopt.Int):
            space[p.name] = (lograndint if p.log else randint)(int(p.low), int(p.high))
        else:
            space[p.name] = (loguniform if p.log else uniform)(float(p.low), float(p.high))
    return space


def _syne_scheduler(task: BudgetTask, method: str, seed: int):
    space = _syne_space(task)
    if method == "syne-bohb":
        try:
            from syne_tune.optimizer.baselines import BOHB
        except ImportError as error:
            raise RuntimeError(f"Syne Tune's BOHB does not import here: {error}") from error
        if "time_attr" in inspect.signature(BOHB.__init__).parameters:  # 0.15+
            return BOHB(space, metric=METRIC, time_attr=RESOURCE, max_t=task.max_budget,
                        do_minimize=True, random_seed=seed, grace_period=1,
                        reduction_factor=REDUCTION)
        return BOHB(space, metric=METRIC, resource_attr=RESOURCE, max_t=task.max_budget,
                    mode="min", random_seed=seed, grace_period=1,
                    reduction_factor=REDUCTION, type="stopping")
    MOBSTER = None
    for module in ("syne_tune.optimizer.baselines", "syne_tune.optimizer.legacy_baselines"):
        try:
            MOBSTER = getattr(__import__(module, fromlist=["MOBSTER"]), "MOBSTER")
            break
        except (ImportError, AttributeError):
            continue
    if MOBSTER is None:
        import syne_tune

        raise RuntimeError(
            f"Syne Tune {getattr(syne_tune, '__version__', '?')} has no MOBSTER (removed with "
            "its GP searchers after 0.14); use syne-tune[gpsearchers]==0.14.2 (numpy < 1.27)")
    options = {"gp_resource_kernel": "matern52"} if method == "syne-mobster-matern" else {}
    return MOBSTER(space, metric=METRIC, resource_attr=RESOURCE, max_t=task.max_budget,
                   mode="min", random_seed=seed, grace_period=1, reduction_factor=REDUCTION,
                   type="stopping", search_options=options)


def _run_syne(task: BudgetTask, method: str, seed: int, book: _Ledger) -> None:
    import numpy as np
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.scheduler import SchedulerDecision

    np.random.seed(seed)  # ASHA's bracket draw in 0.16 uses numpy's global generator
    scheduler = _syne_scheduler(task, method, seed)
    takes_id = "trial_id" in inspect.signature(scheduler.suggest).parameters  # legacy API
    trials: dict[int, tuple] = {}  # trial_id -> (Trial, params, _Curve), paused ones kept
    next_id = 0
    while not book.exhausted():
        suggestion = scheduler.suggest(next_id) if takes_id else scheduler.suggest()
        if suggestion is None:
            break
        if suggestion.spawn_new_trial_id:
            config = dict(suggestion.config)
            trial = Trial(trial_id=next_id, config=config,
                          creation_time=datetime.datetime.now())
            next_id += 1
            params = _cast(task, {k: config[k] for k in task.space.names if k in config})
            curve = _Curve(task, params, seed)
            trials[trial.trial_id] = (trial, params, curve)
            scheduler.on_trial_add(trial=trial)
        else:  # resume a paused trial from where it stopped
            trial, params, curve = trials[suggestion.checkpoint_trial_id]
            if suggestion.config is not None:
                trial.config = dict(suggestion.config)
        decision = SchedulerDecision.CONTINUE
        while len(curve.values) < task.max_budget and not book.exhausted():
            value = curve.advance()
            book.spend()
            result = {METRIC: value, RESOURCE: len(curve.values)}
            decision = scheduler.on_trial_result(trial=trial, result=result)
            if len(curve.values) >= task.max_budget:
                scheduler.on_trial_complete(trial=trial, result=result)
                break
            if decision in (SchedulerDecision.STOP, SchedulerDecision.PAUSE):
                scheduler.on_trial_remove(trial=trial)
                break
        if len(curve.values) >= task.max_budget:
            book.finished(params, curve.values[-1])
            curve.close()
            del trials[trial.trial_id]
        else:  # stopped, paused, or the run's budget ran out mid-trial
            book.finished(params, None)
            if decision != SchedulerDecision.PAUSE:
                curve.close()
                del trials[trial.trial_id]
    for _, _, curve in trials.values():
        curve.close()


# --------------------------------------------------------------------------- runs


def run_one(task: BudgetTask, method: str, seed: int, total: float) -> dict:
    """One (method, seed) run; returns its JSON record (`budget_search.run_one`'s keys)."""
    import torch

    torch.set_num_threads(1)
    book = _Ledger(total * task.max_budget)
    if method == "smac-mf":
        _run_smac(task, method, seed, book)
    else:
        _run_syne(task, method, seed, book)
    return record_of(task, method, seed, book)


def main(argv: list[str] | None = None) -> int:
    parser = common_parser(__doc__, METHODS, Path("benchmarks/results/budget_search/external"))
    args = parser.parse_args(argv)
    if argv is None and os.environ.get("PYTHONHASHSEED") != "0":
        # SMAC's choices depend on string hashing (set order): fix it, so a seed reproduces
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    methods = args.methods.split(",")
    for method in methods:
        if method not in METHODS:
            parser.error(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    logging.getLogger("syne_tune").setLevel(logging.ERROR)
    task = get_budget_task(args.task, max_budget=args.max_budget)
    args.out.mkdir(parents=True, exist_ok=True)
    run_all(task, methods, args.seeds, args.total, args.out / f"{task.name}.jsonl", run_one)
    return 0


if __name__ == "__main__":
    sys.exit(main())
