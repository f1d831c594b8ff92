#!/usr/bin/env bash
# The GPU check (issue 12): run once on a fresh GPU machine that has torch, gpytorch and
# botorch but no package index; every figure lands in one folder, to be committed with the
# device named. Budget: under 8 minutes on an H200 (each step has its own timeout, and a
# failed step does not stop the others).
#
#     bash benchmarks/gpu_check.sh [OUT]        # OUT defaults to gpu_check/
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check}
mkdir -p "$out"
step() {  # step NAME SECONDS COMMAND...: run with a timeout, log to OUT/NAME.log, go on
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$out/steps.txt"
}
: > "$out/steps.txt"
step install 120 python3 -m pip install --no-deps --no-build-isolation -e .
step device 30 python3 -c "import torch, gpytorch, botorch, bopt; print(torch.__version__, \
torch.version.cuda, torch.cuda.get_device_name(), gpytorch.__version__, botorch.__version__)"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
if python3 -c "import pytest" 2>/dev/null; then
    step pytest_cuda 120 python3 -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py
else
    echo "pytest_cuda: skipped, pytest is not installed here" | tee -a "$out/steps.txt"
fi
step scale_cuda 180 python3 benchmarks/scale.py --device cuda --n 100,200,500,1000,2000,5000 \
    --q 1 --skip-botorch-above 1000 --threads 1 --out "$out"
# The same on CUDA with the solver loops run eagerly (no CUDA graphs): what the graphs save.
mkdir -p "$out/eager"
BOPT_CUDA_GRAPHS=0 step scale_cuda_eager 90 python3 benchmarks/scale.py --device cuda \
    --n 100,500,2000 --q 1 --skip-botorch-above 0 --threads 1 --out "$out/eager"
step scale_cpu 120 python3 benchmarks/scale.py --device cpu --n 100,200,500,1000 --q 1 \
    --skip-botorch-above 0 --threads 1 --out "$out"
step op_count 60 python3 benchmarks/op_count.py --device cuda --n 80 --repeats 3 --out "$out"
step speed 90 python3 -m bopt bench --problems hartmann6 --methods ei --seeds 1 --budget 60 \
    --device cuda --workers 1 --no-report --quiet --out "$out/speed"
echo "done: $out" | tee -a "$out/steps.txt"
