#!/usr/bin/env bash
# Issue #2's quality and speed comparison: bopt (log EI) against BoTorch's standard loop,
# Optuna's GPSampler and TPESampler, and random search, on the problems and budgets.
# BoTorch's loop is the slowest reference here (its mixed optimiser,
# optimize_acqf_mixed_alternating, takes 10-20 s per round on this 2-core machine), so it runs
# 5 seeds on the continuous problems and 2 on mixed_cat3; everything else runs 10.
# Resumable: finished runs in runs.jsonl are skipped. `bopt bench --out DIR` (no runs left)
# rewrites the report.
set -euo pipefail
out=${1:-benchmarks/results/compare}
run() { bopt bench --workers 2 --out "$out" --quiet "$@"; }
run --problems branin,hartmann6,ackley6,rosenbrock4,mixed_cat3 --methods ei,random,optuna-gp,optuna-tpe \
    --seeds 10 --budget branin:40,hartmann6:80,ackley6:80,rosenbrock4:60,mixed_cat3:60 --no-report
run --problems branin,hartmann6,ackley6,rosenbrock4 --methods botorch --seeds 5 \
    --budget branin:40,hartmann6:80,ackley6:80,rosenbrock4:60 --no-report
run --problems mixed_cat3 --methods botorch --seeds 2 --budget 60
