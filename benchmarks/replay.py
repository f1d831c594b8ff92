"""Replay committed benchmark runs with the code as it is now and count equal evaluations.

A refactor that must not change behaviour passes when every selected run replays bit for bit:
the same configurations proposed, hence the same objective values, evaluation after
evaluation. Each run goes through `bopt.benchmarks.runner.execute_run`, exactly as
`bopt bench` ran it (one torch thread).

    python benchmarks/replay.py --runs benchmarks/results/compare/runs.jsonl \
        --select branin:ei:0,hartmann6:ei:0:12 --out /tmp/replay.json

An item is `problem:method:seed`, replayed for the record's budget, or
`problem:method:seed:budget`, replayed for `budget` evaluations (at most the record's) and
compared on the first `budget` values. Prints one line per run, `problem/method/seed: k/n
equal`, and exits 1 when a selected run replays fewer than all of its `n` evaluations, 2 when
an item is malformed or not recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from bopt.benchmarks.errors import BenchmarkArgumentError
from bopt.benchmarks.records import read_runs
from bopt.benchmarks.runner import RunSpec, execute_run


def equal_prefix(old: list[float], new: list[float]) -> int:
    """How many leading values of two traces are bitwise equal."""
    count = 0
    for a, b in zip(old, new):
        if a != b:
            break
        count += 1
    return count


def parse_item(item: str) -> tuple[str, str, int, int | None]:
    """`'problem:method:seed'` or `'problem:method:seed:budget'` -> (problem, method, seed,
    budget or None).

    Raises:
        BenchmarkArgumentError: another shape, a seed or budget that is no int, a budget < 1.
    """
    parts = item.split(":")
    if len(parts) not in (3, 4):
        raise BenchmarkArgumentError(f"--select item {item!r}: write problem:method:seed or "
                         "problem:method:seed:budget.")
    try:
        seed = int(parts[2])
        budget = int(parts[3]) if len(parts) == 4 else None
    except ValueError:
        raise BenchmarkArgumentError(
            f"--select item {item!r}: the seed and the budget must be ints.") from None
    if budget is not None and budget < 1:
        raise BenchmarkArgumentError(
            f"--select item {item!r}: the budget must be >= 1, got {budget}.")
    return parts[0], parts[1], seed, budget


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="benchmarks/results/compare/runs.jsonl")
    parser.add_argument("--select", required=True,
                        help="comma list of problem:method:seed or problem:method:seed:budget "
                        "to replay (a budget replays and compares only that many evaluations)")
    parser.add_argument("--out", default=None, help="write the per-run counts as JSON here")
    args = parser.parse_args(argv)
    try:
        items = [(item, *parse_item(item)) for item in args.select.split(",")]
    except BenchmarkArgumentError as err:
        print(err, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    records = {(r["problem"], r["method"], r["seed"]): r for r in read_runs(args.runs)}
    results, missed = [], []
    for item, problem, method, seed, budget in items:
        record = records.get((problem, method, seed))
        if record is None:
            print(f"{item}: not in {args.runs}", file=sys.stderr)
            return 2
        if budget is None:
            budget = record["budget"]
        elif budget > record["budget"]:
            print(f"{item}: the record has only {record['budget']} evaluations; pass a budget "
                  f"of at most {record['budget']}.", file=sys.stderr)
            return 2
        start = time.perf_counter()
        new = execute_run(RunSpec(problem, method, seed, budget))
        equal = equal_prefix(record["values"][:budget], new["values"])
        results.append({"problem": problem, "method": method, "seed": seed,
                        "budget": budget, "equal": equal,
                        "seconds": time.perf_counter() - start})
        print(f"{problem}/{method}/seed {seed}: {equal}/{budget} equal", flush=True)
        if equal < budget:
            missed.append(item)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
