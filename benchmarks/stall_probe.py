"""Why some Hartmann6 runs stay at a local optimum: how often, for whom, and what the model
believes about the global optimum when they do.

1. Hartmann6, 80 evaluations, many seeds (40 by default, not the suite's 10): how many
   runs end within 1e-3 of the optimum and how many stay stuck (regret above 0.05, the
   local optima at -3.20 and -3.14), for bopt's log EI, UCB and Thompson sampling and
   Optuna's GPSampler, through the benchmark harness (`bopt.benchmarks.run_benchmark`).
2. For every stuck log-EI run, the loop is replayed (it is deterministic) and, at its end,
   the fitted GP is asked about the global optimum x*: its posterior mean and standard
   deviation there, and where x*'s log EI ranks among 20,000 uniform points of the cube.
   A rank near the middle means the data carry no evidence of x*'s basin: no acquisition
   on this model prefers it, and only exploration that happens to land there finds it.

    python benchmarks/stall_probe.py --out benchmarks/results/stall_probe

Writes runs.jsonl (resumable), stall_probe.json and stall_probe.md there.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import numpy as np
import torch

import bopt
from bopt.acquisition.ei import log_expected_improvement
from bopt.benchmarks import get_problem
from bopt.benchmarks.machine import describe_machine
from bopt.benchmarks.records import read_runs
from bopt.benchmarks.runner import RUNS_FILE, run_benchmark

METHODS = ("ei", "ucb", "ts", "optuna-gp")
HIT, STUCK = 1e-3, 0.05
# Hartmann6's global minimiser (BoTorch's Hartmann(dim=6).optimizers).
X_STAR = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)


def _log_ei(best: float, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log E[max(best - f, 0)] for minimisation, f ~ N(mean, std^2): bopt's own log EI
    (`bopt.acquisition.ei.log_expected_improvement`, for maximisation) on -f."""
    value = log_expected_improvement(-torch.as_tensor(mean), torch.as_tensor(std), -best)
    return value.numpy()


def probe(seed: int, budget: int, num_points: int = 20_000) -> dict:
    """Replay bopt's log-EI run and ask its final model about x*."""
    problem = get_problem("hartmann6")
    opt = bopt.Optimizer(problem.space, "ei", seed=seed, device="cpu")
    for _ in range(budget):
        trial = opt.suggest()
        opt.observe(trial, problem(dict(trial.params)))
    names = list(problem.space.names)
    points = np.random.default_rng(seed).random((num_points, len(names)))
    configs = [dict(zip(names, map(float, x))) for x in points]
    star = dict(zip(names, X_STAR))
    mean, std = opt.predict(configs + [star])
    best = opt.best.value
    log_ei = _log_ei(best, mean, std)
    observed = np.array([[t.params[k] for k in names] for t in opt.history])
    return {"seed": seed, "regret": problem.regret(best),
            "x_star_mean": float(mean[-1]), "x_star_std": float(std[-1]),
            "uniform_std_max": float(std[:-1].max()),
            "x_star_log_ei": float(log_ei[-1]), "uniform_log_ei_max": float(log_ei[:-1].max()),
            "x_star_log_ei_rank": float(np.mean(log_ei[:-1] > log_ei[-1])),
            "nearest_observation_to_x_star": float(
                np.linalg.norm(observed - np.array(X_STAR), axis=1).min()),
            "lengthscales": opt.diagnostics[-1].lengthscales,
            "warp_lambda": opt.diagnostics[-1].warp_lambda}


def summarise(records: list[dict]) -> dict:
    out = {}
    for method in METHODS:
        final = [r["regret"][-1] for r in records if r["method"] == method]
        if final:
            out[method] = {"runs": len(final), "hit": sum(x < HIT for x in final),
                           "stuck": sum(x > STUCK for x in final),
                           "median_regret": statistics.median(final),
                           "stuck_seeds": sorted(r["seed"] for r in records
                                                 if r["method"] == method
                                                 and r["regret"][-1] > STUCK)}
    return out


def _markdown(summary: dict, probes: list[dict], seeds: int, budget: int) -> str:
    lines = [f"# Hartmann6 stalls: {seeds} seeds, {budget} evaluations",
             "", f"Machine: {describe_machine()['summary']}. Written by "
             "`python benchmarks/stall_probe.py`.", "",
             f"| method | runs | within {HIT:g} | stuck (regret > {STUCK:g}) | median regret |",
             "|---|---|---|---|---|"]
    for method, s in summary.items():
        lines.append(f"| {method} | {s['runs']} | {s['hit']} | {s['stuck']} | "
                     f"{s['median_regret']:.3g} |")
    lines += ["", "Stuck log-EI runs, their final model at x* (objective units, from "
              "`Optimizer.predict`: the posterior median and the half-width of its central "
              "68% band, a mean and standard deviation where the output warp is linear, as "
              "it was in these runs; log EI from them):", "",
              "| seed | regret | median at x* | 68% half-width at x* | max half-width (uniform) | log EI at x* | "
              "max log EI (uniform) | share of uniform points above x* | nearest trial |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in probes:
        lines.append(f"| {p['seed']} | {p['regret']:.3g} | {p['x_star_mean']:.2f} | "
                     f"{p['x_star_std']:.2f} | {p['uniform_std_max']:.2f} | "
                     f"{p['x_star_log_ei']:.1f} | {p['uniform_log_ei_max']:.1f} | "
                     f"{p['x_star_log_ei_rank']:.2f} | {p['nearest_observation_to_x_star']:.2f} |"
                     + ("" if p.get("replay_equals_record", True) else " replay differs |"))
    if probes:
        ranks = [p["x_star_log_ei_rank"] for p in probes]
        lines += ["", f"Median share of uniform points whose log EI beats x*'s: "
                  f"{statistics.median(ranks):.2f} (0.5: x* looks like any point)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="benchmarks/results/stall_probe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    run_benchmark(["hartmann6"], args.methods.split(","), args.seeds, args.budget, out,
                  progress=False)
    records = [r for r in read_runs(out / RUNS_FILE) if r["problem"] == "hartmann6"
               and r["budget"] == args.budget and r["seed"] < args.seeds]
    summary = summarise(records)
    stuck = summary.get("ei", {}).get("stuck_seeds", [])
    probes = [probe(seed, args.budget) for seed in stuck]
    for p in probes:  # the replay should be the recorded run; say so when it is not
        recorded = next(r for r in records if r["method"] == "ei" and r["seed"] == p["seed"])
        p["replay_equals_record"] = math.isclose(p["regret"], recorded["regret"][-1],
                                                 rel_tol=1e-9)
    (out / "stall_probe.json").write_text(json.dumps(
        {"summary": summary, "probes": probes, "machine": describe_machine()["summary"]},
        indent=1))
    (out / "stall_probe.md").write_text(_markdown(summary, probes, args.seeds, args.budget))
    print((out / "stall_probe.md").read_text())


if __name__ == "__main__":
    main()
