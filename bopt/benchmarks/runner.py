"""The benchmark harness: plan (problem, method, seed) runs, execute them, record each one.

`run_benchmark` appends one record per finished run to `out_dir/runs.jsonl` (the format is
`bopt.benchmarks.records`) and skips runs already recorded there (same problem, method, seed
and budget), so an interrupted benchmark resumes where it stopped. Runs go to spawned worker
processes when `workers > 1`; only the parent writes the file. Every run uses one intra-op
torch thread (`torch.set_num_threads(1)`) so that parallel runs do not fight over cores and
timings stay comparable.

The `bopt bench` command line is `bopt.benchmarks.cli`; the report, `bopt.benchmarks.report`.
"""

from __future__ import annotations

import concurrent.futures as futures
import itertools
import multiprocessing
import numbers
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bopt.acquisition.registry import STRATEGIES, is_model_based
from bopt.benchmarks.errors import BenchmarkArgumentError, BenchmarkError
from bopt.benchmarks.machine import describe_machine
from bopt.benchmarks.problems import get_problem
from bopt.benchmarks.records import (KEY_FIELDS, RUNS_FILE, append_record,
                                     recorded_keys)
from bopt.benchmarks.references import (METHODS, Loop, RoundTiming,
                                        make_reference, require)
from bopt.engine import Optimizer
from bopt.validation import check_int

BOPT_METHODS = STRATEGIES


@dataclass(frozen=True)
class RunSpec:
    """One benchmark run: a method minimising a problem from a seed for `budget` evaluations."""

    problem: str
    method: str
    seed: int
    budget: int
    device: str = "cpu"
    workers: int = 1  # processes running alongside (recorded: it affects timings)

    @property
    def key(self) -> tuple[str, str, int, int]:
        """The run's `records.KEY_FIELDS` values, as `records.record_key` reads a record."""
        return tuple(getattr(self, field) for field in KEY_FIELDS)


# --------------------------------------------------------------------------- one run


class _BoptLoop:
    """bopt's `Optimizer` behind the common ask/tell interface."""

    def __init__(self, space, method: str, *, seed: int, device: str):
        self.optimizer = Optimizer(space, method, seed=seed, device=device)
        self.n_initial = self.optimizer.n_initial if is_model_based(method) else None
        self.device = self.optimizer.device
        self._last = None

    def ask(self) -> tuple[dict, RoundTiming]:
        trial = self.optimizer.suggest()
        info = self.optimizer.diagnostics[-1]
        self._last = trial
        model_based = is_model_based(info.strategy)
        return dict(trial.params), RoundTiming(
            model_based=model_based,
            fit_seconds=info.fit_seconds if model_based else None,
            acquisition_seconds=info.acquisition_seconds if model_based else None,
            source=info.strategy, num_warnings=len(info.warnings))

    def tell(self, config: dict, value: float) -> None:
        self.optimizer.observe(self._last, value)


def _make_loop(spec: RunSpec, space) -> Loop:
    if spec.method in BOPT_METHODS:
        return _BoptLoop(space, spec.method, seed=spec.seed, device=spec.device)
    return make_reference(spec.method, space, seed=spec.seed, device=spec.device)


def _evaluate(problem, config: dict, seed: int) -> float:
    """The objective value; a noisy problem draws its noise from `seed`."""
    return problem.evaluate(config, seed=seed)


def _host() -> dict[str, Any]:
    """Where this run executes: `describe_machine()` plus the host name."""
    return {"hostname": socket.gethostname(), **describe_machine()}


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Run one (problem, method, seed) for `spec.budget` evaluations and describe it.

    The suggest step of every method is timed the same way: the wall time of producing the
    next configuration, excluding the objective.

    Returns:
        The JSON-ready record written to `runs.jsonl`.
    """
    problem = get_problem(spec.problem)
    loop = _make_loop(spec, problem.space)
    start_run = time.perf_counter()
    rounds: list[dict[str, Any]] = []
    values: list[float] = []
    for i in range(spec.budget):
        start = time.perf_counter()
        config, timing = loop.ask()
        suggest_seconds = time.perf_counter() - start
        value = _evaluate(problem, config, seed=spec.seed * 1_000_003 + i)
        loop.tell(config, value)
        values.append(value)
        rounds.append({"suggest_seconds": suggest_seconds, "num_observations": i,
                       **asdict(timing)})
    wall = time.perf_counter() - start_run
    best = list(itertools.accumulate(values, min))
    optimum = problem.optimum
    host = _host()
    return {
        "problem": spec.problem, "method": spec.method, "seed": spec.seed,
        "budget": spec.budget, "dimension": len(problem.space), "optimum": optimum,
        "n_initial": loop.n_initial,
        "values": values, "best_so_far": best,
        "regret": None if optimum is None else [b - optimum for b in best],
        "suggest_seconds": [r["suggest_seconds"] for r in rounds],
        "fit_seconds": [r["fit_seconds"] for r in rounds],
        "acquisition_seconds": [r["acquisition_seconds"] for r in rounds],
        "num_observations": [r["num_observations"] for r in rounds],
        "model_based": [r["model_based"] for r in rounds],
        "source": [r["source"] for r in rounds],
        "num_warnings": sum(r["num_warnings"] for r in rounds),
        "device": str(loop.device),
        "versions": host["versions"], "wall_seconds": wall, "host": host,
        "workers": spec.workers,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _init_worker() -> None:
    """Per-process setup: one intra-op thread (fair, uncontended timings).

    Optuna needs nothing here: `OptunaLoop` quiets its log only around its own calls.
    """
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- the benchmark


def _check_names(kind: str, names: Any, allowed: Sequence[str] | None) -> list[str]:
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names or not all(isinstance(n, str) for n in names):
        raise BenchmarkArgumentError(
            f"run_benchmark(): {kind} must be a non-empty list of names; got "
            f"{names!r}.")
    if allowed is not None:
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise BenchmarkArgumentError(
                f"run_benchmark(): unknown {kind} {unknown!r}; choose from "
                f"{list(allowed)!r}.")
    return list(dict.fromkeys(names))


def _check_int(what: str, value: Any, low: int) -> int:
    return check_int(value, f"run_benchmark(): {what}", low=low, error=BenchmarkArgumentError)


def _check_seeds(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        return list(range(_check_int("seeds", seeds, 1)))
    seeds = [_check_int("every seed", s, 0) for s in seeds]
    if not seeds:
        raise BenchmarkArgumentError(
            "run_benchmark(): seeds is empty; pass a count or a list of ints.")
    return list(dict.fromkeys(seeds))


def plan_runs(problems: Sequence[str], methods: Sequence[str], seeds: Sequence[int],
              budget: int | None, budgets: Mapping[str, int] | None,
              device: str, workers: int = 1) -> list[RunSpec]:
    """Every (problem, method, seed) run, with each problem's budget."""
    budgets = dict(budgets or {})
    unknown = sorted(set(budgets) - set(problems))
    if unknown:
        raise BenchmarkArgumentError(
            f"run_benchmark(): budgets names {unknown!r}, which are not among the "
            f"problems {list(problems)!r}; add them or drop their budgets.")
    specs = []
    for problem in problems:
        b = budgets.get(problem, budget)
        if b is None:
            raise BenchmarkArgumentError(
                f"run_benchmark(): no budget for {problem!r}; pass budget= or "
                f"budgets={{{problem!r}: ...}}.")
        b = _check_int(f"the budget of {problem!r}", b, 1)
        specs += [RunSpec(problem, m, s, b, device, workers) for m in methods for s in seeds]
    return specs


def run_benchmark(problems: Sequence[str] | str, methods: Sequence[str] | str,
                  seeds: int | Iterable[int], budget: int | None, out_dir: str | Path, *,
                  workers: int = 1, device: str = "cpu", progress: bool = True,
                  budgets: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Run every (problem, method, seed) and append each finished run to `runs.jsonl`.

    Args:
        problems: problem names (see `bopt.benchmarks.get_problem`), or one comma list.
        methods: names from `METHODS`: bopt's strategies (`bopt.acquisition.registry.
            STRATEGIES`: "ei", "ucb", "ts", "random", "sobol") and the references
            "botorch", "optuna-tpe", "optuna-gp".
        seeds: a count (seeds 0..n-1) or explicit seeds.
        budget: evaluations per run, unless `budgets` names the problem.
        out_dir: folder for `runs.jsonl` (created if needed).
        workers: parallel processes (spawned); 1 runs in this process.
        device: torch device for the model-based methods.
        progress: show a tqdm bar over all runs.
        budgets: per-problem budgets overriding `budget`.

    Returns:
        The records of the runs finished by this call (skipped runs excluded).

    Raises:
        BenchmarkArgumentError: on unknown methods, bad counts or a missing budget.
        ProblemError: on an unknown problem name.
        MissingDependencyError: a method's optional library is missing.
        BenchmarkError: some runs raised; the others were recorded, and rerunning retries
            only the failed ones.
    """
    problems = _check_names("problems", problems, None)
    methods = _check_names("methods", methods, METHODS)
    seeds = _check_seeds(seeds)
    workers = _check_int("workers", workers, 1)
    device = _check_device(device)
    _check_problems(problems)
    _check_dependencies(methods)
    specs = plan_runs(problems, methods, seeds, budget, budgets, device, workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _run_all(specs, out / RUNS_FILE, workers=workers, progress=progress)


def _run_all(specs: list[RunSpec], path: Path, *, workers: int,
             progress: bool) -> list[dict[str, Any]]:
    """Run the specs not yet recorded in `path`, appending each finished one."""
    done = recorded_keys(path)
    todo = [s for s in specs if s.key not in done]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), disable=not progress,
               desc="bopt bench", unit="run")
    finished, failed = [], []

    def record(spec: RunSpec, result: dict | None, error: BaseException | None) -> None:
        if error is not None:
            failed.append((spec, error))
            bar.write(f"bopt bench: {spec.problem}/{spec.method}/seed {spec.seed} failed: "
                      f"{type(error).__name__}: {error}")
        else:
            append_record(path, result)
            finished.append(result)
            bar.set_postfix_str(f"{spec.problem}/{spec.method}/{spec.seed}", refresh=False)
        bar.update(1)

    try:
        if workers == 1:
            _run_here(todo, record)
        else:
            _run_in_pool(todo, workers, record)
    finally:
        bar.close()
    if failed:
        lines = "\n".join(f"  {s.problem}/{s.method}/seed {s.seed}: {type(e).__name__}: {e}"
                          for s, e in failed)
        raise BenchmarkError(f"{len(failed)} of {len(todo)} runs failed (the other runs are in "
                             f"{path}; rerun to retry the failed ones):\n{lines}")
    return finished


def _run_here(todo: list[RunSpec], record) -> None:
    """Run sequentially in this process, with the same single torch thread as a worker."""
    threads = torch.get_num_threads()
    _init_worker()
    try:
        for spec in todo:
            try:
                result = execute_run(spec)
            except Exception as err:  # noqa: BLE001 - reported, other runs go on
                record(spec, None, err)
            else:
                record(spec, result, None)
    finally:
        torch.set_num_threads(threads)


def _run_in_pool(todo: list[RunSpec], workers: int, record) -> None:
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                     initializer=_init_worker) as pool:
        pending = {pool.submit(execute_run, spec): spec for spec in todo}
        try:
            for future in futures.as_completed(pending):
                error = future.exception()
                record(pending[future], None if error else future.result(), error)
        except KeyboardInterrupt:  # finished runs are on disk; rerunning resumes
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _check_device(device: str) -> str:
    """"auto" resolved here, so that every record names the device it really used."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda"):
        raise BenchmarkArgumentError(
            f"run_benchmark(): device must be 'cpu', 'cuda' or "
            f"'auto'; got {device!r}.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BenchmarkArgumentError(
            f"run_benchmark(): device={device!r} but CUDA is not "
            "available here; use --device cpu (or auto).")
    return str(device)


def _check_problems(problems: list[str]) -> None:
    for name in problems:
        get_problem(name)  # raises with the known names on a typo


def _check_dependencies(methods: list[str]) -> None:
    """Fail before any run when a method's optional library is missing."""
    needs = {"botorch": ["botorch"], "optuna-tpe": ["optuna"],
             "optuna-gp": ["optuna", "scipy"]}
    for method in methods:
        for module in needs.get(method, []):
            require(module, method)


__all__ = ["BOPT_METHODS", "METHODS", "BenchmarkArgumentError", "BenchmarkError", "RunSpec",
           "execute_run", "plan_runs", "run_benchmark"]
