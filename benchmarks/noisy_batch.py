"""Noisy objectives and parallel batches: bopt against BoTorch's qLogNEI loop, same script.

Two parts (issue 11's targets):

- `noisy`: Hartmann6 and Ackley6 with additive N(0, sd^2) noise (sd 0.3 and 0.5), 60
  evaluations. Each method recommends at the end the observed configuration it believes
  best (bopt: `Optimizer.recommend()`; BoTorch: the observed point with the best posterior
  mean); we score the *true* (noise-free) value of that recommendation, and of the best
  observed draw for comparison.
- `batch`: Hartmann6, Ackley6 and mixed_cat3 (noise-free), the initial design then 15
  rounds of q = 4: bopt's `suggest(4)` against BoTorch's `optimize_acqf(qLogNEI, q=4)`
  (`optimize_acqf_mixed_alternating` on mixed_cat3). We score the best value found and the
  smallest distance between two members of one batch (unit cube, numeric columns).

Every run is one JSON line in `OUT/runs.jsonl` (finished runs are skipped when rerun);
`--report` writes `OUT/report.md` with medians and IQRs. One torch thread per process.

    python benchmarks/noisy_batch.py --part noisy --seeds 10 --botorch-seeds 5
    python benchmarks/noisy_batch.py --part batch --seeds 10 --botorch-seeds 5
    python benchmarks/noisy_batch.py --report
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from bopt import Optimizer
from bopt.benchmarks import get_problem
from bopt.benchmarks.machine import describe_machine
from bopt.benchmarks.records import append_record, read_runs
from bopt.benchmarks.references import BotorchLoop

OUT = Path("benchmarks/results/noisy_batch")
NOISY = [("hartmann6", 0.3), ("hartmann6", 0.5), ("ackley6", 0.3), ("ackley6", 0.5)]
NOISY_BUDGET = 60
BATCH_PROBLEMS = ("hartmann6", "ackley6", "mixed_cat3")
BATCH_Q, BATCH_ROUNDS = 4, 15


def _noise_seed(seed: int, i: int) -> int:
    return seed * 1_000_003 + i


def _min_batch_distance(space, configs) -> float:
    """The smallest distance (unit cube, numeric columns) between two members of a batch
    that share their categories; members with different categories count as far apart.
    (Runs recorded before commit 3d0c461 ignored the categories: 0 then meant two members
    with equal numbers and different categories.)"""
    X = space.encode(configs)
    cont, cat = list(space.layout.continuous), list(space.layout.categorical)
    d = torch.cdist(X[:, cont], X[:, cont])
    same = (X[:, None, cat] == X[None, :, cat]).all(-1) & ~torch.eye(len(configs), dtype=bool)
    return float(torch.where(same, d, torch.full_like(d, math.inf)).min())


class _QLogNEILoop(BotorchLoop):
    """BoTorch's loop with qLogNoisyExpectedImprovement (pruned baseline) for q points."""

    def propose(self, q: int) -> list[dict]:
        from botorch.acquisition import qLogNoisyExpectedImprovement
        from botorch.optim import optimize_acqf, optimize_acqf_mixed_alternating

        with warnings.catch_warnings(), torch.random.fork_rng():
            warnings.simplefilter("ignore")
            torch.manual_seed(self.seed * 1_000_003 + len(self._configs))
            model = self._fit()
            train_X = self.space.encode(self._configs)
            acqf = qLogNoisyExpectedImprovement(model, X_baseline=train_X, prune_baseline=True)
            if self._discrete or self._categorical:
                x, _ = optimize_acqf_mixed_alternating(
                    acqf, self._bounds, discrete_dims=self._discrete or None,
                    cat_dims=self._categorical or None, q=q, num_restarts=10, raw_samples=512)
            else:
                x, _ = optimize_acqf(acqf, self._bounds, q=q, num_restarts=10, raw_samples=512)
        return self.space.decode(x.detach().cpu())

    def recommend(self) -> dict:
        """The observed configuration with the best posterior mean (minimising)."""
        model = self._fit()
        X = self.space.encode(self._configs)
        with torch.no_grad():
            mean = model.posterior(X).mean.squeeze(-1)  # maximises -y
        return self._configs[int(mean.argmax())]


def run_noisy(problem_name: str, sd: float, method: str, seed: int) -> dict:
    problem = get_problem(problem_name, noise_std=sd)
    start = time.perf_counter()
    if method == "botorch-qlognei":
        loop = _QLogNEILoop(problem.space, seed=seed)
        for i in range(NOISY_BUDGET):
            config = (loop._initial[i] if i < loop.n_initial else loop.propose(1)[0])
            loop.tell(config, problem.evaluate(config, seed=_noise_seed(seed, i)))
        recommended, observed = loop.recommend(), loop._configs
        values = loop._values
    else:
        opt = Optimizer(problem.space, method.removeprefix("bopt-"), seed=seed, device="cpu")
        for i in range(NOISY_BUDGET):
            trial = opt.suggest()
            opt.observe(trial, problem.evaluate(trial.params, seed=_noise_seed(seed, i)))
        recommended = opt.recommend().params
        observed = [t.params for t in opt.history]
        values = [t.value for t in opt.history]
    lucky = observed[int(np.argmin(values))]
    return {"part": "noisy", "problem": problem_name, "sd": sd, "method": method, "seed": seed,
            "budget": NOISY_BUDGET, "optimum": problem.optimum,
            "recommended_true": problem.objective(recommended),
            "best_observed_true": problem.objective(lucky),
            "seconds": time.perf_counter() - start}


def run_batch(problem_name: str, method: str, seed: int) -> dict:
    problem = get_problem(problem_name)
    start = time.perf_counter()
    distances, values = [], []
    if method == "botorch-qlognei":
        loop = _QLogNEILoop(problem.space, seed=seed)
        for config in loop._initial:
            loop.tell(config, problem(config))
        for _ in range(BATCH_ROUNDS):
            batch = loop.propose(BATCH_Q)
            distances.append(_min_batch_distance(problem.space, batch))
            for config in batch:
                loop.tell(config, problem(config))
        values = loop._values
    else:
        opt = Optimizer(problem.space, method.removeprefix("bopt-"), seed=seed, device="cpu")
        for _ in range(opt.n_initial):
            trial = opt.suggest()
            opt.observe(trial, problem(trial.params))
        for _ in range(BATCH_ROUNDS):
            batch = opt.suggest(BATCH_Q)
            distances.append(_min_batch_distance(problem.space, [t.params for t in batch]))
            for trial in batch:
                opt.observe(trial, problem(trial.params))
        values = [t.value for t in opt.history]
    return {"part": "batch", "problem": problem_name, "method": method, "seed": seed,
            "q": BATCH_Q, "rounds": BATCH_ROUNDS, "optimum": problem.optimum,
            "regret": min(values) - problem.optimum, "min_batch_distance": min(distances),
            "batch_distances": distances, "seconds": time.perf_counter() - start}


def _plan(part: str, seeds: int, botorch_seeds: int) -> list[tuple]:
    methods = [("bopt-ei", seeds), ("bopt-nei", seeds), ("botorch-qlognei", botorch_seeds)]
    if part == "noisy":
        return [("noisy", p, sd, m, s) for p, sd in NOISY for m, n in methods for s in range(n)]
    return [("batch", p, None, m, s) for p in BATCH_PROBLEMS for m, n in methods
            for s in range(n)]


def _key(record: dict) -> tuple:
    return (record["part"], record["problem"], record.get("sd"), record["method"],
            record["seed"])


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(part: str, seeds: int, botorch_seeds: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "runs.jsonl"
    done = {_key(r) for r in read_runs(path)}
    machine, commit = describe_machine()["summary"], _commit()
    for part_, problem, sd, method, seed in _plan(part, seeds, botorch_seeds):
        if (part_, problem, sd, method, seed) in done:
            continue
        record = (run_noisy(problem, sd, method, seed) if part_ == "noisy"
                  else run_batch(problem, method, seed))
        record.update(machine=machine, commit=commit,
                      load=float(open("/proc/loadavg").read().split()[0]))
        append_record(path, record)
        print(json.dumps({k: record[k] for k in ("problem", "method", "seed", "seconds")}),
              flush=True)


def _quartiles(values: list[float]) -> str:
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return f"{q50:.3g} ({q25:.3g} – {q75:.3g})"


def report(out: Path) -> Path:
    records = read_runs(out / "runs.jsonl")
    lines = ["# Noisy objectives and parallel batches", "",
             f"{len(records)} runs from `runs.jsonl` (`benchmarks/noisy_batch.py`); machine: "
             f"{records[0]['machine'] if records else '?'}; commits "
             f"{sorted({r['commit'] for r in records})}. Median (IQR) over seeds.", ""]
    noisy = [r for r in records if r["part"] == "noisy"]
    if noisy:
        lines += ["## Noisy: true regret of the recommendation after 60 evaluations", "",
                  "| problem | noise sd | method | seeds | recommended (true regret) | "
                  "best observed draw (true regret) | s / run |", "|---|---|---|---|---|---|---|"]
        for (problem, sd, method), runs in _groups(noisy, ("problem", "sd", "method")):
            lines.append(
                f"| {problem} | {sd} | `{method}` | {len(runs)} | "
                f"{_quartiles([r['recommended_true'] - r['optimum'] for r in runs])} | "
                f"{_quartiles([r['best_observed_true'] - r['optimum'] for r in runs])} | "
                f"{statistics.median(r['seconds'] for r in runs):.0f} |")
        lines.append("")
    batch = [r for r in records if r["part"] == "batch"]
    if batch:
        lines += [f"## Batches: q = {BATCH_Q} for {BATCH_ROUNDS} rounds after the initial design",
                  "", "The distance is over the numeric columns; on mixed_cat3 these runs "
                  "counted pairs with different categories too, so 0 there is two members "
                  "with equal numbers and different categories.", "",
                  "| problem | method | seeds | final regret | smallest intra-batch "
                  "distance (median over runs; min) | s / run |", "|---|---|---|---|---|---|"]
        for (problem, method), runs in _groups(batch, ("problem", "method")):
            dist = [r["min_batch_distance"] for r in runs]
            lines.append(f"| {problem} | `{method}` | {len(runs)} | "
                         f"{_quartiles([r['regret'] for r in runs])} | "
                         f"{statistics.median(dist):.3g}; {min(dist):.2g} | "
                         f"{statistics.median(r['seconds'] for r in runs):.0f} |")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _groups(records: list[dict], fields: tuple[str, ...]) -> list[tuple[tuple, list[dict]]]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r.get(f) for f in fields), []).append(r)
    return sorted(groups.items(), key=lambda item: tuple(str(v) for v in item[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("noisy", "batch"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--botorch-seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report", action="store_true", help="only write report.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part:
        run(args.part, args.seeds, args.botorch_seeds, args.out)
    print(f"report: {report(args.out)}")


if __name__ == "__main__":
    main()
