"""BoptSearch + ASHA against Tune's default random search (BasicVariantGenerator) + ASHA.

The task is BoTorch's `AugmentedHartmann` (6 parameters in [0, 1], minimised; optimum
-3.32237), with its seventh input, the fidelity, as the fraction of training done: a trial
"trains" for up to 27 epochs and reports H(x, epoch / 27) after each. Tune's
`ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3)` stops trials at 1, 3 and 9
epochs. Two trials run at a time (two CPUs); bopt proposes 40 trials through a
`ConcurrencyLimiter(max_concurrent=2)`; random search gets 160 trials, so that it spends at
least as many epochs as bopt (ASHA stops more of random's trials).

Scores per run: the best value a trial reached at the full 27 epochs (as regret to the
optimum), the epochs spent in all, and the best full-budget regret reached by each count of
epochs spent (the reports ordered by their time stamps), compared at equal epochs.

    python benchmarks/ray_compare.py --seeds 10      # runs, then writes the report
    python benchmarks/ray_compare.py --report        # the report from results.json again
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

OUT = Path("benchmarks/results/ray_compare")
MAX_EPOCHS, CONCURRENCY = 27, 2
NUM_TRIALS = {"bopt": 40, "random": 160}
OPTIMUM = -3.32237  # AugmentedHartmann at full fidelity (BoTorch's _optimal_value)
NAMES = [f"x{i}" for i in range(6)]
BUDGETS = (54, 108, 216, 324, 432)  # epochs spent, where the curves are compared


def _train(config: dict) -> None:
    """One trial: H(x, epoch / 27) after each epoch (all computed at once, then reported)."""
    import torch
    from botorch.test_functions.multi_fidelity import AugmentedHartmann
    from ray import tune

    torch.set_num_threads(1)
    x = torch.tensor([config[n] for n in NAMES], dtype=torch.float64)
    fidelity = torch.arange(1, MAX_EPOCHS + 1, dtype=torch.float64) / MAX_EPOCHS
    X = torch.cat([x.expand(MAX_EPOCHS, 6), fidelity[:, None]], dim=1)  # 27 x 7
    values = AugmentedHartmann()(X).tolist()
    for value in values:
        tune.report({"loss": value, "wall": time.time()})


def _search(method: str, seed: int):
    from ray import tune
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from bopt.integrations.ray import BoptSearch

    space = {n: tune.uniform(0.0, 1.0) for n in NAMES}
    if method == "bopt":
        return ConcurrencyLimiter(BoptSearch(seed=seed), max_concurrent=CONCURRENCY), space
    return BasicVariantGenerator(random_state=seed), space


def _curve(results) -> tuple[list[tuple[int, float]], int]:
    """(epochs spent, best full-budget regret so far) at each full-budget report, and the
    epochs spent in all."""
    events = []
    for result in results:
        frame = result.metrics_dataframe
        if frame is not None:
            events += list(zip(frame["wall"], frame["training_iteration"], frame["loss"]))
    events.sort()
    curve, best = [], float("inf")
    for spent, (_, epoch, loss) in enumerate(events, start=1):
        if epoch == MAX_EPOCHS and loss - OPTIMUM < best:
            best = loss - OPTIMUM
            curve.append((spent, best))
    return curve, len(events)


def run_one(method: str, seed: int, storage: str) -> dict:
    """One tuning run; its record for results.json."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    search, space = _search(method, seed)
    start = time.perf_counter()
    results = tune.Tuner(
        _train, param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=search, metric="loss", mode="min", num_samples=NUM_TRIALS[method],
            scheduler=ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1, reduction_factor=3),
            reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name=f"{method}_{seed}",
                                  verbose=0)).fit()
    seconds = time.perf_counter() - start
    curve, spent = _curve(results)
    record = {"method": method, "seed": seed, "trials": NUM_TRIALS[method],
              "seconds": round(seconds, 1),
              "epochs": spent, "errors": len(results.errors),
              "full_budget_trials": sum(r.metrics.get("training_iteration") == MAX_EPOCHS
                                        for r in results),
              "final_regret": curve[-1][1] if curve else None, "curve": curve}
    if method == "bopt":
        sources = [t.source for t in search.searcher.history]
        record["sources"] = {s: sources.count(s) for s in sorted(set(sources))}
        rounds = search.searcher.optimizer.diagnostics
        record["suggest_seconds"] = round(sum(r.suggest_seconds for r in rounds), 2)
    return record


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "bopt", "benchmarks/ray_compare.py")
    return commit + (" + uncommitted changes to bopt/" if dirty else "")


def regret_at(record: dict, budget: int) -> float | None:
    """The best full-budget regret once `budget` epochs were spent (None: none yet)."""
    reached = [regret for spent, regret in record["curve"] if spent <= budget]
    return reached[-1] if reached else None


def _median_iqr(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) < 2:
        return f"{values[0]:.3g}"
    q = statistics.quantiles(values, n=4, method="inclusive")
    return f"{statistics.median(values):.3g} ({q[0]:.3g} – {q[2]:.3g})"


def _summary_rows(runs: list[dict]) -> list[str]:
    rows = ["| method | runs | trials | final regret | epochs spent | full-budget trials | "
            "s / run | s suggesting / run |", "|---|---|---|---|---|---|---|---|"]
    for method in ("bopt", "random"):
        mine = [r for r in runs if r["method"] == method]
        finals = [r["final_regret"] for r in mine if r["final_regret"] is not None]
        trials = sorted({r.get("trials") for r in mine}, key=str)
        rows.append(f"| {method} | {len(mine)} | {', '.join(map(str, trials))} | "
                    f"{_median_iqr(finals)} | {_median_iqr([r['epochs'] for r in mine])} | "
                    f"{_median_iqr([r['full_budget_trials'] for r in mine])} | "
                    f"{statistics.median([r['seconds'] for r in mine]):.0f} | "
                    + (f"{statistics.median([r['suggest_seconds'] for r in mine]):.1f} |"
                       if method == "bopt" else "- |"))
    return rows


def _paired(runs: list[dict]) -> list[tuple[dict, dict]]:
    by_seed = {(r["method"], r["seed"]): r for r in runs}
    return [(by_seed[("bopt", s)], by_seed[("random", s)]) for s in sorted(
        {r["seed"] for r in runs}) if ("bopt", s) in by_seed and ("random", s) in by_seed]


def _budget_row(label: str, pairs: list[tuple[dict, dict]], budgets: list[int]) -> str:
    """Median regrets of both methods with at most `budgets[i]` epochs for pair `i`, and
    how often bopt's is lower (a run without a full-budget trial yet counts as worse)."""
    cells, values = [], []
    for k in range(2):
        regrets = [regret_at(pair[k], b) for pair, b in zip(pairs, budgets)]
        known = [v for v in regrets if v is not None]
        missing = len(regrets) - len(known)
        cells.append(_median_iqr(known) + (f", {missing} with none" if missing else ""))
        values.append(regrets)
    wins = sum(b is not None and (r is None or b < r) for b, r in zip(*values))
    ratio = ("-" if None in values[0] + values[1] else
             f"{statistics.median(values[0]) / statistics.median(values[1]):.2f}")
    return f"| {label} | {cells[0]} | {cells[1]} | {ratio} | {wins} of {len(pairs)} |"


def _curve_rows(runs: list[dict]) -> list[str]:
    pairs = _paired(runs)
    rows = ["| epochs spent (at most) | bopt | random | median ratio bopt / random | "
            "bopt lower (paired seeds) |", "|---|---|---|---|---|"]
    rows += [_budget_row(str(b), pairs, [b] * len(pairs)) for b in BUDGETS]
    rows.append(_budget_row("the shorter run's total", pairs,
                            [min(p[0]["epochs"], p[1]["epochs"]) for p in pairs]))
    return rows


def _sources(runs: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in runs:
        if r["method"] == "bopt":
            key = json.dumps(r.get("sources"), sort_keys=True)
            counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{key}: {n} runs" for key, n in counts.items())


def write_report(data: dict) -> None:
    runs = data["runs"]
    lines = ["# BoptSearch + ASHA against random search + ASHA (Ray Tune)", "",
             f"{len(runs)} runs (`benchmarks/ray_compare.py`); machine: "
             f"{data['machine']['summary']}; Ray {data['ray']}; commit {data['commit']}. "
             f"Median (IQR) over seeds.", "",
             f"Task: AugmentedHartmann (BoTorch), 6 parameters, the fidelity = epoch / "
             f"{MAX_EPOCHS}; ASHA(max_t={MAX_EPOCHS}, grace_period=1, reduction_factor=3); "
             f"{CONCURRENCY} trials at a time. Regret: the best value a trial reported at "
             f"{MAX_EPOCHS} epochs minus the optimum {OPTIMUM}.", "",
             "## Best full-budget regret by epochs spent", "",
             "The fair comparison: each method's best full-budget value once it had spent at "
             "most that many epochs (all trials together).", "", *_curve_rows(runs), "",
             "## Whole runs", "", *_summary_rows(runs), "",
             "bopt's trials by source: " + _sources(runs) + ".", "",
             "ASHA stops fewer of bopt's trials: each proposal tends to beat the trials before "
             "it at the rungs, so more of them run to 27 epochs, and bopt's 40 trials spend "
             "about as many epochs as 160 random ones. Hence 160 random trials, and the "
             "comparison at equal epochs above.", "",
             "Only one task, and a mild one for the early-stopped values: AugmentedHartmann's "
             "fidelity moves the value by at most 0.1 (one term's weight), so ASHA's rankings "
             "at 1, 3 and 9 epochs are nearly those at 27, and the values BoptSearch observes "
             "for stopped trials are nearly unbiased. A learning curve whose early values "
             "mislead would test that choice harder.", ""]
    (OUT / "report.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--report", action="store_true", help="rewrite report.md only")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.report:
        write_report(json.loads((OUT / "results.json").read_text()))
        return
    import ray
    import torch

    from bopt.benchmarks.machine import describe_machine

    torch.set_num_threads(1)
    ray.init(num_cpus=CONCURRENCY, include_dashboard=False, log_to_driver=False)
    data = {"machine": describe_machine(), "ray": ray.__version__, "commit": _commit(),
            "settings": {"max_epochs": MAX_EPOCHS, "num_trials": NUM_TRIALS,
                         "concurrency": CONCURRENCY}, "runs": []}
    with tempfile.TemporaryDirectory() as storage:
        for seed in range(args.seeds):
            for method in ("bopt", "random"):
                record = run_one(method, seed, storage)
                print(json.dumps({k: v for k, v in record.items() if k != "curve"}),
                      flush=True)
                data["runs"].append(record)
                (OUT / "results.json").write_text(json.dumps(data, indent=1))
    ray.shutdown()
    write_report(data)


if __name__ == "__main__":
    main()
