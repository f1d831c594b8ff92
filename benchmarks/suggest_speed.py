"""Seconds per suggest at 50-90 observations: bopt against Optuna's GPSampler (issue 12).

Real optimisation loops (each method's own history, as users run them) on Hartmann6,
Ackley6 and mixed_cat3 to 90 evaluations, run one after another in this one process
(interleaved: each seed of each problem for both methods in turn), every method with torch,
OpenMP and BLAS at one thread. The figure is the median wall time of the
suggests made with 50 to 89 observations, over every seed; bopt's is split into its model fit
and its acquisition ascent.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/suggest_speed.py --seeds 10 --out benchmarks/results/suggest_speed

Writes runs.jsonl (the harness's records, resumable), speed.json and speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bopt.benchmarks.machine import describe_machine
from bopt.benchmarks.records import read_runs
from bopt.benchmarks.runner import run_benchmark

PROBLEMS = ("hartmann6", "ackley6", "mixed_cat3")
METHODS = ("ei", "optuna-gp")
BUDGET = 90
WINDOW = (50, 90)  # observations before the suggest, lower bound included


def window_medians(runs: list[dict], problem: str, method: str) -> dict | None:
    """Medians over the suggests made with WINDOW observations, across seeds."""
    total, fit, acq, seeds = [], [], [], set()
    for r in runs:
        if r["problem"] != problem or r["method"] != method:
            continue
        seeds.add(r["seed"])
        for i, n in enumerate(r["num_observations"]):
            if WINDOW[0] <= n < WINDOW[1]:
                total.append(r["suggest_seconds"][i])
                fit.append(r["fit_seconds"][i])
                acq.append(r["acquisition_seconds"][i])
    if not total:
        return None
    return {"seeds": len(seeds), "suggests": len(total), "median": statistics.median(total),
            "fit": _median_known(fit), "acquisition": _median_known(acq)}


def _median_known(values: list) -> float | None:
    """The median of the values a method reported (None where it reports none)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def report(runs: list[dict]) -> tuple[dict, str]:
    """The figures as JSON and as a markdown table."""
    table = {p: {m: window_medians(runs, p, m) for m in METHODS} for p in PROBLEMS}
    lines = ["| problem | bopt s / suggest | fit + acquisition | Optuna GPSampler s / suggest "
             "| bopt ÷ Optuna | suggests (seeds) |", "|---|---|---|---|---|---|"]
    for p, row in table.items():
        ours, ref = row["ei"], row["optuna-gp"]
        if ours is None or ref is None:
            continue
        lines.append(f"| {p} | {ours['median']:.4f} | {ours['fit']:.4f} + "
                     f"{ours['acquisition']:.4f} | {ref['median']:.4f} | "
                     f"{ours['median'] / ref['median']:.2f}× | {ours['suggests']} "
                     f"({ours['seeds']}) |")
    return table, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/suggest_speed")
    args = parser.parse_args()
    out = Path(args.out)
    # One process, one thread, one run at a time, interleaved (seed by seed, problem by
    # problem, method by method), so that a drift in the machine's speed hits both methods
    # alike (the harness skips runs already recorded).
    for seed in range(args.seeds):
        for problem in PROBLEMS:
            for method in METHODS:
                run_benchmark([problem], [method], [seed], BUDGET, out, workers=1,
                              progress=False)
    runs = read_runs(out / "runs.jsonl")
    table, md = report(runs)
    machine = describe_machine()
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                              "OPENBLAS_NUM_THREADS")}
    (out / "speed.json").write_text(json.dumps({"machine": machine, "threads": threads,
                                                "window": WINDOW, "table": table}, indent=1))
    (out / "speed.md").write_text(
        f"# Seconds per suggest at {WINDOW[0]}-{WINDOW[1] - 1} observations\n\n"
        f"`OMP_NUM_THREADS=1 python benchmarks/suggest_speed.py --seeds {args.seeds}` on "
        f"{machine['summary']}; environment threads {threads}; torch threads 1 in every "
        f"run.\n\n"
        f"{md}\n")
    print(md)


if __name__ == "__main__":
    main()
