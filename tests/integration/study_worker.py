"""A worker process for test_durability: suggest, evaluate, observe on a stored study.

Prints "S <id>" after each suggest returns and "O <id> <value>" after each observe returns,
so the parent knows what the study must contain even if it kills this process. With
`--asha`, each trial trains for up to 9 epochs under ASHA(1, 9, 3) and also prints
"R <id> <epoch>" after each report returns.

    python study_worker.py DB STUDY --acquisition random --trials 50 --seed 1
"""

from __future__ import annotations

import argparse
import math

import torch

from bopt import Categorical, Float, Int, Optimizer, Space
from bopt.schedulers import ASHA


def space() -> Space:
    return Space([Float("x", -2.0, 2.0), Float("lr", 1e-4, 1e-1, log=True), Int("k", 1, 8),
                  Categorical("c", ["a", "b", "c"])])


def objective(p: dict) -> float:
    return (p["x"] - 0.3) ** 2 + 0.1 * math.log10(p["lr"]) ** 2 + 0.05 * p["k"] + (p["c"] == "b")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("study")
    parser.add_argument("--acquisition", default="random")
    parser.add_argument("--trials", type=int, default=-1, help="-1: until killed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-initial", type=int, default=4)
    parser.add_argument("--asha", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    opt = Optimizer(space(), acquisition=args.acquisition, seed=args.seed, storage=args.db,
                    study=args.study, n_initial=args.n_initial, num_raw_samples=128,
                    scheduler=ASHA(1, 9, 3) if args.asha else None)
    if args.asha:
        return train_under_asha(opt, args.trials)
    done = 0
    while args.trials < 0 or done < args.trials:
        trial = opt.suggest()
        print(f"S {trial.id}", flush=True)
        value = objective(trial.params)
        opt.observe(trial, value)
        print(f"O {trial.id} {value!r}", flush=True)
        done += 1


def train_under_asha(opt: Optimizer, trials: int) -> None:
    for _ in range(trials):
        trial = opt.suggest()
        print(f"S {trial.id}", flush=True)
        for epoch in range(1, 10):
            opt.report(trial, objective(trial.params) + 1.0 / epoch, budget=epoch)
            print(f"R {trial.id} {epoch}", flush=True)
            if opt.should_stop(trial):
                break
        else:
            opt.observe(trial, objective(trial.params))


if __name__ == "__main__":
    main()
