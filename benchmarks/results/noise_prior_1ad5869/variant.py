"""python variant.py VARIANT OUT problems methods seeds budgets"""
import sys, math, torch, bopt.model as M
torch.set_num_threads(1)
variant, out, problems, methods, seeds, budgets = sys.argv[1:7]
if variant.startswith("rate_"):
    M._NOISE_RATE = float(variant[5:])
elif variant.startswith("start_"):  # rate 1, noise start at a given variance
    v = float(variant[6:]); orig = M._Theta.mode
    def mode(self, dtype, device):
        m = orig(self, dtype, device).clone(); m[-1] = math.log(v); return m
    M._Theta.mode = mode
elif variant.startswith("lowstart2_"):  # second cold start with low noise
    v = float(variant[10:]); orig = M._starts
    def starts(spec, X, warm, *, single):
        s = orig(spec, X, warm, single=single)
        if warm is None:
            s[1] = s[1].clone(); s[1][-1] = math.log(v)
        return s
    M._starts = starts
from bopt.benchmarks.runner import run_benchmark
b = {k: int(v) for k, v in (x.split(":") for x in budgets.split(","))}
run_benchmark(problems.split(","), methods.split(","), int(seeds), None, out, workers=1, progress=False, budgets=b)
