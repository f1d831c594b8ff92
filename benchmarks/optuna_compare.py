"""BoptSampler against Optuna's own samplers, every one driven through Optuna itself.

Samplers: `BoptSampler` (bopt's GP, log EI), Optuna's `GPSampler` and `TPESampler`, and
`RandomSampler` as the floor, each with its library's defaults and the run's seed. Problems
come from `bopt.benchmarks.problems` (minimised); each bopt parameter becomes the matching
`trial.suggest_*` call. Per run the script records every value, the best value after each
trial, the seconds spent in the suggest calls (the sampler's work, with Optuna's own
bookkeeping) and the seconds spent evaluating.

    OMP_NUM_THREADS=1 python benchmarks/optuna_compare.py                  # 10 seeds
    OMP_NUM_THREADS=1 python benchmarks/optuna_compare.py --seeds 2 --problems mixed_int:20

Resumable: runs already in `runs.jsonl` are skipped; with nothing left to run the script
rewrites `summary.json` and `report.md` from the records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import torch

from bopt.benchmarks.machine import describe_machine
from bopt.benchmarks.problems import Problem, get_problem
from bopt.benchmarks.references import suggest_config
from bopt.integrations.optuna import BoptSampler

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "optuna_compare"
# The budgets of the project's benchmark suite (benchmarks/compare.sh).
PROBLEMS = {"svm_digits": 40, "mixed_int": 60}
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "bopt": lambda seed: BoptSampler(seed=seed, device="cpu"),
    "optuna-gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "optuna-tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}
BASELINE = "bopt"


# --------------------------------------------------------------------------- one run


def run_once(problem: Problem, sampler_name: str, seed: int, budget: int) -> dict[str, Any]:
    """One seeded study of `budget` trials; its values, best-so-far curve and timings."""
    values: list[float] = []
    suggest_seconds: list[float] = []
    eval_seconds: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        config = suggest_config(trial, problem.space)  # the first call runs the sampler
        middle = time.perf_counter()
        value = problem(config)
        eval_seconds.append(time.perf_counter() - middle)
        suggest_seconds.append(middle - start)
        values.append(value)
        return value

    study = optuna.create_study(direction="minimize", sampler=SAMPLERS[sampler_name](seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=budget)
    wall = time.perf_counter() - start
    best = [min(values[: i + 1]) for i in range(len(values))]
    return {"problem": problem.name, "sampler": sampler_name, "seed": seed, "budget": budget,
            "optimum": problem.optimum, "values": values, "best": best,
            "suggest_seconds": suggest_seconds, "eval_seconds": eval_seconds,
            "wall_seconds": wall}


# --------------------------------------------------------------------------- records


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The records of `runs.jsonl` (a line cut short by an interruption is skipped)."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"skipping an unreadable line of {path}: {line[:60]!r}", file=sys.stderr)
    return runs


def append_run(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def provenance() -> dict[str, Any]:
    """The bopt commit, whether tracked library files differ from it, and the sampler
    file's hash (the file may not be committed yet)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    sampler_file = ROOT / "bopt" / "integrations" / "optuna.py"
    return {"commit": git("rev-parse", "HEAD"),
            "tree_differs": bool(git("status", "--porcelain", "--untracked-files=no", "--",
                                     "bopt", "kernels", "acquisition")),
            "sampler_sha256": hashlib.sha256(sampler_file.read_bytes()).hexdigest()[:16]}


# --------------------------------------------------------------------------- summary


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range ends (inclusive method: exact for few seeds)."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q2, q1, q3


def _score(run: dict[str, Any], i: int) -> float:
    """Best value after trial i + 1, as regret when the optimum is known."""
    optimum = run["optimum"]
    return run["best"][i] - (optimum or 0.0)


def _target(group: list[dict[str, Any]]) -> float:
    """The score a run "solves" the problem at: regret 1e-3 when the optimum is known,
    else the best value any run reached (cross-validated errors take few distinct values)."""
    if group[0]["optimum"] is not None:
        return 1e-3
    return min(r["best"][-1] for r in group)


def _trials_to(run: dict[str, Any], target: float) -> float:
    """Trials until the run's score reached `target` (inf if it never did)."""
    hits = (i + 1 for i in range(len(run["best"])) if _score(run, i) <= target + 1e-12)
    return float(next(hits, math.inf))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per problem and sampler: median and IQR of the best value (regret) after every
    trial, trials to the problem's target, and the median seconds per trial spent
    suggesting and evaluating."""
    out: dict[str, Any] = {}
    for run in runs:
        out.setdefault(run["problem"], {}).setdefault(run["sampler"], []).append(run)
    summary: dict[str, Any] = {}
    for problem, by_sampler in out.items():
        summary[problem] = {}
        target = _target([r for group in by_sampler.values() for r in group])
        for sampler, group in sorted(by_sampler.items()):
            budget = min(r["budget"] for r in group)
            curve = [_quartiles([_score(r, i) for r in group]) for i in range(budget)]
            suggest = [statistics.fmean(r["suggest_seconds"]) for r in group]
            evals = [statistics.fmean(r["eval_seconds"]) for r in group]
            summary[problem][sampler] = {
                "seeds": sorted(r["seed"] for r in group), "budget": budget,
                "optimum": group[0]["optimum"],
                "median": [c[0] for c in curve], "q1": [c[1] for c in curve],
                "q3": [c[2] for c in curve], "target": target,
                "trials_to_target": [None if math.isinf(t) else int(t)  # None: not reached
                                     for t in sorted(_trials_to(r, target) for r in group)],
                "suggest_seconds_per_trial": statistics.median(suggest),
                "eval_seconds_per_trial": statistics.median(evals)}
    return summary


# --------------------------------------------------------------------------- report


def _g(x: float) -> str:
    return f"{x:.3g}"


def _ratio(x: float, base: float) -> str:
    if base == 0:
        return "–" if x == 0 else "∞"
    return f"{x / base:.2g}×"


def problem_table(name: str, by_sampler: dict[str, Any]) -> list[str]:
    """The markdown section of one problem: checkpoints, final ratio and timings."""
    budget = min(s["budget"] for s in by_sampler.values())
    checkpoints = sorted({max(1, budget * k // 4) for k in (1, 2, 3, 4)})
    known = by_sampler[next(iter(by_sampler))]["optimum"] is not None
    what = "regret (best value − optimum)" if known else "best value (1 − CV accuracy)"
    base = by_sampler.get(BASELINE)
    head = ["sampler", "seeds"] + [f"median after {c}" for c in checkpoints]
    target = next(iter(by_sampler.values()))["target"]
    head += [f"IQR after {budget}", f"÷ {BASELINE} after {budget}",
             f"trials to {_g(target)}: median (runs)", "suggest s / trial",
             f"suggest s ÷ {BASELINE}"]
    lines = [f"## {name} (budget {budget}, {what})", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = [BASELINE] + sorted(s for s in by_sampler if s != BASELINE)
    for sampler in order:
        if sampler not in by_sampler:
            continue
        s = by_sampler[sampler]
        row = [f"`{sampler}`", str(len(s["seeds"]))]
        row += [_g(s["median"][c - 1]) for c in checkpoints]
        row.append(f"{_g(s['q1'][budget - 1])} – {_g(s['q3'][budget - 1])}")
        row.append("–" if base is None else _ratio(s["median"][budget - 1],
                                                      base["median"][budget - 1]))
        hits = [math.inf if h is None else h for h in s["trials_to_target"]]
        median = statistics.median(hits)
        reached = sum(math.isfinite(h) for h in hits)
        row.append(f"{median:g} ({reached}/{len(hits)})" if math.isfinite(median)
                   else f"> {budget} ({reached}/{len(hits)})")
        if base is None:
            row += [_g(s["suggest_seconds_per_trial"]), "–"]
        else:
            row.append(_g(s["suggest_seconds_per_trial"]))
            row.append(_ratio(s["suggest_seconds_per_trial"], base["suggest_seconds_per_trial"]))
        lines.append("| " + " | ".join(row) + " |")
    evals = statistics.median(s["eval_seconds_per_trial"] for s in by_sampler.values())
    lines += ["", f"An evaluation took {_g(evals)} s (median over samplers).", ""]
    return lines


def code_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One markdown line per code version the runs were recorded with."""
    counts: dict[tuple, dict[str, int]] = {}
    for run in runs:
        prov = run.get("provenance")
        key = ("unrecorded", False, "unrecorded") if prov is None else (
            prov["commit"][:10], prov["tree_differs"], prov["sampler_sha256"])
        by_sampler = counts.setdefault(key, {})
        by_sampler[run["sampler"]] = by_sampler.get(run["sampler"], 0) + 1
    lines = []
    for (commit, differs, sha), by_sampler in sorted(counts.items()):
        which = ", ".join(f"{n} `{s}`" for s, n in sorted(by_sampler.items()))
        lines.append(f"- {which} runs: bopt commit `{commit}`"
                     + (" with uncommitted changes to bopt" if differs else "")
                     + f", `bopt/integrations/optuna.py` sha256 `{sha}`.")
    return lines


def write_report(out: Path, runs: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """`summary.json` and `report.md` from the records."""
    summary = summarize(runs)
    (out / "summary.json").write_text(json.dumps({"meta": meta, "problems": summary},
                                                 indent=1) + "\n")
    machine = meta["machine"]
    lines = ["# BoptSampler against Optuna's samplers, through Optuna", "",
             f"{len(runs)} runs from `runs.jsonl`; written by `benchmarks/optuna_compare.py`. "
             "Every sampler runs inside `optuna.create_study(...).optimize(...)` with its "
             "library's defaults (bopt: a Sobol design of its default size at the records' "
             "commit, max(5, d + 1) points before f879c6c and max(10, d + 1) with a "
             "categorical since, then log EI; "
             "GPSampler and TPESampler: 10 random startup trials). Lower is better.", "",
             "*suggest s / trial* is the wall time of the objective's `suggest_*` calls (the "
             "sampler's work plus Optuna's storage bookkeeping), median over seeds of the "
             "per-run mean.", "",
             "## Machine and code", "",
             f"- {machine['summary']}.",
             *code_lines(runs),
             f"- `OMP_NUM_THREADS={meta['omp_threads']}`, torch threads 1, one run at a time.",
             ""]
    for problem, by_sampler in summary.items():
        lines += problem_table(problem, by_sampler)
    lines += meta.get("notes", [])
    (out / "report.md").write_text("\n".join(lines).rstrip() + "\n")


# --------------------------------------------------------------------------- main


def _parse_problems(text: str) -> dict[str, int]:
    problems = {}
    for item in text.split(","):
        name, _, budget = item.partition(":")
        problems[name] = int(budget) if budget else PROBLEMS[name]
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--problems", default=",".join(f"{k}:{v}" for k, v in PROBLEMS.items()),
                        help="name:budget,... (default: %(default)s)")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--notes", type=Path, help="markdown appended to the report")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.jsonl"
    done = {(r["problem"], r["sampler"], r["seed"], r["budget"]) for r in read_runs(path)}
    prov = provenance()  # before any run: the code these runs import
    for name, budget in _parse_problems(args.problems).items():
        problem = get_problem(name)
        for seed in range(args.seeds):
            for sampler in args.samplers.split(","):
                if (name, sampler, seed, budget) in done:
                    continue
                record = {**run_once(problem, sampler, seed, budget), "provenance": prov}
                append_run(path, record)
                print(f"{name} {sampler} seed {seed}: best {record['best'][-1]:.4g}, "
                      f"{statistics.fmean(record['suggest_seconds']):.3f} s/suggest",
                      flush=True)
    meta = {"machine": describe_machine(),
            "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "notes": args.notes.read_text().splitlines() if args.notes else []}
    write_report(args.out, read_runs(path), meta)


if __name__ == "__main__":
    main()
