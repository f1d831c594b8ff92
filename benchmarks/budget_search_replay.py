"""Rerun committed `budget_search.py` runs at this commit and compare them with the records.

    OMP_NUM_THREADS=1 python benchmarks/budget_search_replay.py benchmarks/results/budget_search/replay_<commit>.json

A run is equal when its budget-spent / best-value events, its chosen configuration and its
test score all match the record (wall times differ). The plan below covers every GP +
schedule run on augmented_hartmann and the first seeds elsewhere.
"""
import json, subprocess, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import budget_search as bs
from bopt.benchmarks.budget_tasks import get_budget_task
plan = [("augmented_hartmann", 20, m, s) for m in ("gp-asha", "gp-hyperband") for s in range(10)]
plan += [("mlp_digits", 12, m, s) for m in ("gp-asha", "tpe-sha", "random-asha") for s in range(3)]
plan += [("hgb_digits", 12, m, s) for m in ("gp-asha",) for s in range(3)]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out = []
for task_name, total, method, seed in plan:
    recs = [json.loads(l) for l in Path(f"benchmarks/results/budget_search/{task_name}.jsonl").read_text().splitlines()]
    old = next(r for r in recs if r["method"] == method and r["seed"] == seed)
    task = get_budget_task(task_name, max_budget=27)
    new = bs.run_one(task, method, seed, total)
    same = ([e[0] for e in new["events"]] == [e[0] for e in old["events"]]
            and [e[2] for e in new["events"]] == [e[2] for e in old["events"]]
            and new["best_params"] == old["best_params"] and new["test"] == old["test"])
    row = {"task": task_name, "method": method, "seed": seed, "recorded_at": old["commit"],
           "replayed_at": commit, "best_recorded": old["best"], "best_replayed": new["best"],
           "equal": same}
    print(row, flush=True)
    out.append(row)
Path(sys.argv[1]).write_text(json.dumps(out, indent=1))
