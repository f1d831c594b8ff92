"""Rerun committed `budget_search.py` runs at this commit and compare them with the records.

    OMP_NUM_THREADS=1 python benchmarks/budget_search_replay.py \
        --folder benchmarks/results/budget_search_81 --tasks augmented_hartmann \
        --methods gp-asha,gp-hyperband --seeds 0-9 --out /tmp/replay.json

Each run's full budget and total budget come from its record, so one script replays the
max-budget-27 folder (`budget_search/`, the default) and the max-budget-81 one alike. A
run is equal when its budget-spent / best-value events, its chosen configuration and its
test score all match the record (wall times differ). Without `--tasks`, `--methods` and
`--seeds` the plan is the one the max-budget-27 replays used: every GP + schedule run on
augmented_hartmann and the first seeds elsewhere. The exit status is 1 when any run
differs, 0 when all are equal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import budget_search as bs  # noqa: E402  (the benchmark script beside this one)

from bopt.benchmarks.budget_tasks import get_budget_task  # noqa: E402

DEFAULT_PLAN = (
    [("augmented_hartmann", m, s) for m in ("gp-asha", "gp-hyperband") for s in range(10)]
    + [("mlp_digits", m, s) for m in ("gp-asha", "tpe-sha", "random-asha") for s in range(3)]
    + [("hgb_digits", "gp-asha", s) for s in range(3)])


def seed_range(text: str) -> list[int]:
    """"0-9" -> 0..9, "0,3,5" -> [0, 3, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def plan_of(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(task, method, seed) to replay: the product of the three options, or the default."""
    if args.tasks is None and args.methods is None and args.seeds is None:
        return list(DEFAULT_PLAN)
    tasks = (args.tasks or "augmented_hartmann").split(",")
    methods = (args.methods or "gp-asha").split(",")
    seeds = seed_range(args.seeds or "0")
    return [(t, m, s) for t in tasks for m in methods for s in seeds]


def recorded(folder: Path, task_name: str, method: str, seed: int,
             records: dict[str, list[dict]]) -> dict:
    """The last record of `method`'s run `seed` on `task_name` (each task's file read once,
    into `records`)."""
    if task_name not in records:
        path = folder / f"{task_name}.jsonl"
        records[task_name] = [json.loads(line) for line in path.read_text().splitlines()
                              if line.strip()]
    matches = [r for r in records[task_name] if r["method"] == method and r["seed"] == seed]
    if not matches:
        raise SystemExit(f"{folder / task_name}.jsonl has no run of {method!r} seed {seed}")
    return matches[-1]


def replay(old: dict, commit: str) -> dict:
    """The recorded run `old` rerun here, and whether it came out the same."""
    task_name, method, seed = old["task"], old["method"], old["seed"]
    task = get_budget_task(task_name, max_budget=old["max_budget"])
    new = bs.run_one(task, method, seed, old["total_budget"] / old["max_budget"])
    same = ([e[0] for e in new["events"]] == [e[0] for e in old["events"]]
            and [e[2] for e in new["events"]] == [e[2] for e in old["events"]]
            and new["best_params"] == old["best_params"] and new["test"] == old["test"])
    return {"task": task_name, "method": method, "seed": seed, "max_budget": old["max_budget"],
            "recorded_at": old["commit"], "replayed_at": commit,
            "best_recorded": old["best"], "best_replayed": new["best"], "equal": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/budget_search"))
    parser.add_argument("--tasks", help="comma-separated task names")
    parser.add_argument("--methods", help="comma-separated methods")
    parser.add_argument("--seeds", help='"0-9" or "0,3"')
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the results")
    args = parser.parse_args(argv)
    commit, records, rows = bs._commit(), {}, []
    for task_name, method, seed in plan_of(args):
        rows.append(replay(recorded(args.folder, task_name, method, seed, records), commit))
        print(rows[-1], flush=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["equal"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
