import sys, json, torch
sys.path.insert(0, "/work/main/benchmarks")
torch.set_num_threads(1)
import bopt.warp as warp
variant, problem, sd, method, seeds = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
if variant == "median_mean":
    warp.PRIOR_MEAN_QUANTILE = 0.5
elif variant == "no_warp":
    warp._LAMBDAS = (1.0, 1.0, 1)
elif variant == "no_outliers":
    warp.OUTLIER_FENCE_IQRS = 1e9
elif variant.startswith("noise_rate_"):
    import bopt.model
    bopt.model._NOISE_RATE = float(variant.removeprefix("noise_rate_"))
import noisy_batch
out = open(f"/work/exp/ablate/{variant}_{problem}_{sd}_{method}.jsonl", "w")
for s in range(seeds):
    r = noisy_batch.run_noisy(problem, sd, method, s)
    out.write(json.dumps(r) + "\n"); out.flush()
