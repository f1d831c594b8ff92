"""Does `torch.compile` pay off for the acquisition ascent? (issue 12)

Runs a seeded Hartmann6 loop to `--n` observations (hyperparameters kept, so the fit is one
Cholesky factor), then times `--rounds` further suggests twice in one process: eagerly, and
with the BFGS iteration (`bopt.optim._iterate`, the closed-form acquisition inlined)
compiled by `torch.compile` (inductor, static shapes). Compile time is counted in the
suggest that pays it. Each round adds an observation, so the GP's cross-covariance plan
changes shape and the compiled graph is rebuilt: the figure that matters for a study.

    OMP_NUM_THREADS=1 python benchmarks/compile_check.py --n 80 --rounds 5 \\
        --out benchmarks/results/compile_check_cpu.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import bopt.optim as optim
from bopt import Optimizer
from bopt.benchmarks import get_problem
from bopt.benchmarks.machine import describe_machine


def _loop(n: int, seed: int = 0) -> tuple[Optimizer, object]:
    problem = get_problem("hartmann6")
    opt = Optimizer(problem.space, seed=seed, refit_growth=0.5)
    for _ in range(n):
        trial = opt.suggest()
        opt.observe(trial, problem(trial.params))
    return opt, problem


def time_rounds(n: int, rounds: int, compiled: bool) -> dict:
    """Seconds per suggest (and per compiled iteration) over `rounds` suggests after `n`."""
    opt, problem = _loop(n)
    eager = optim._iterate
    fast = torch.compile(eager, dynamic=False) if compiled else eager
    iteration_seconds: list[float] = []

    def iterate(evaluate, state, box, search, *, first):
        if first:  # the first iteration's eq. 6.20 branch stays eager
            return eager(evaluate, state, box, search, first=True)
        start = time.perf_counter()
        fast(evaluate, state, box, search, first=False)
        iteration_seconds.append(time.perf_counter() - start)

    optim._iterate = iterate
    suggest_seconds = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            trial = opt.suggest()
            suggest_seconds.append(time.perf_counter() - start)
            opt.observe(trial, problem(trial.params))
    finally:
        optim._iterate = eager
    fastest = sorted(iteration_seconds)[: max(1, len(iteration_seconds) // 2)]
    return {"suggest_seconds": suggest_seconds,
            "iteration_median_fast_half": statistics.median(fastest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/compile_check_cpu.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    eager = time_rounds(args.n, args.rounds, compiled=False)
    compiled = time_rounds(args.n, args.rounds, compiled=True)
    rows = ["| | suggest seconds, each round | BFGS iteration (median of the faster half) |",
            "|---|---|---|"]
    for name, r in (("eager", eager), ("torch.compile", compiled)):
        rows.append(f"| {name} | {', '.join(f'{s:.3f}' for s in r['suggest_seconds'])} | "
                    f"{1e3 * r['iteration_median_fast_half']:.2f} ms |")
    text = (f"# torch.compile of the ascent's BFGS iteration (Hartmann6, n = {args.n})\n\n"
            f"`python benchmarks/compile_check.py --n {args.n} --rounds {args.rounds}` on "
            f"{describe_machine()['summary']}.\n\n" + "\n".join(rows) + "\n")
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
