#!/usr/bin/env bash
# Issue #2's quality and speed comparison: bopt against BoTorch's standard loop, Optuna's
# GPSampler and TPESampler, and random search, on the problems and budgets.
# BoTorch's mixed loop (optimize_acqf_mixed_alternating) takes ~10-20 s per round here, so it
# runs 3 seeds on mixed_cat3; everything else runs 10. Resumable: finished runs are skipped.
set -euo pipefail
out=${1:-benchmarks/results/compare}
budgets="branin:40,hartmann6:80,ackley6:80,rosenbrock4:60,mixed_cat3:60"
bopt bench --problems branin,hartmann6,ackley6,rosenbrock4,mixed_cat3 --budget "$budgets" \
    --methods ei,ucb,ts,random,optuna-gp,optuna-tpe --seeds 10 --workers 2 --out "$out" --no-report --quiet
bopt bench --problems branin,hartmann6,ackley6,rosenbrock4 --budget "$budgets" \
    --methods botorch --seeds 10 --workers 2 --out "$out" --no-report --quiet
bopt bench --problems mixed_cat3 --budget "$budgets" \
    --methods botorch --seeds 3 --workers 2 --out "$out" --quiet
