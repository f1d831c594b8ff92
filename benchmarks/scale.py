"""Suggest latency versus the number of observations: bopt against BoTorch's standard loop.

Both run in this process on the same data (Hartmann6 at scrambled Sobol points, d = 6), for
q = 1 and q = 4, timing the model fit and the acquisition optimisation separately. bopt is
timed on its second suggestion at each n, so its fit is warm started as in a running study
(BoTorch's loop refits from its defaults every round), twice:

- *refit*: the default, hyperparameters re-estimated every round;
- *kept*: with `refit_growth=0.02`, which above 100 observations keeps the last estimate
  until the data have grown by 2% (one Cholesky factor, no optimisation).

*Amortized* is what a long study with `refit_growth=0.02` pays per suggestion: one refit
round per `gap = max(1, int(0.02 n))` rounds, and kept rounds in between.

    python benchmarks/scale.py --n 20,50,100,200,500,1000,2000 --threads 1 --out benchmarks/results

Writes scale_<device>.json, scale_<device>.md and scale_<device>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import torch

import bopt
from bopt import cuda_graphs
from bopt.benchmarks.machine import describe_machine


_GROWTH = 0.02  # the refit_growth of the kept and amortized columns


def _hartmann(X: torch.Tensor) -> torch.Tensor:
    from botorch.test_functions import Hartmann

    return Hartmann(dim=6)(X)


def time_bopt(X: torch.Tensor, y: torch.Tensor, q: int, device: str,
              refit_growth: float | None = None) -> dict:
    space = bopt.Space([bopt.Float(f"x{i}", 0.0, 1.0) for i in range(X.shape[1])])
    growth = {} if refit_growth is None else {"refit_growth": refit_growth}
    opt = bopt.Optimizer(space, "ei", seed=0, device=device, **growth)
    for row, value in zip(space.decode(X[:-1]), y[:-1].tolist()):
        opt.observe(row, value)
    warm = opt.suggest()  # first GP round: cold fit, not timed
    opt.observe(warm, float(y[-1]))
    _sync(device)
    start = time.perf_counter()
    trials = opt.suggest(q)
    _sync(device)
    total = time.perf_counter() - start
    rounds = opt.diagnostics[-q:]
    assert len({tuple(t.params.values()) for t in trials}) == q
    return {"total": total, "fit": sum(r.fit_seconds for r in rounds),
            "acquisition": sum(r.acquisition_seconds for r in rounds),
            "refit": rounds[0].refit}


def amortized(refit: dict, kept: dict, n: int, q: int, growth: float) -> float:
    """Seconds per suggest(q) call over one refit period of a long study: the estimate is
    redone once the data grew by `gap = max(1, int(growth n))`, i.e. every ceil(gap / q)
    calls, and kept in the calls between."""
    if kept["refit"]:  # too few observations to keep anything
        return refit["total"]
    calls = -(-max(1, int(growth * n)) // q)
    return (refit["total"] + (calls - 1) * kept["total"]) / calls


def time_botorch(X: torch.Tensor, y: torch.Tensor, q: int, device: str) -> dict:
    from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    X, Y = X.to(device), (-y).unsqueeze(-1).to(device)  # BoTorch maximises
    start = time.perf_counter()
    model = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    _sync(device)
    fitted = time.perf_counter()
    acqf = (LogExpectedImprovement(model, best_f=Y.max()) if q == 1
            else qLogExpectedImprovement(model, best_f=Y.max()))
    bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).to(X)
    optimize_acqf(acqf, bounds=bounds, q=q, num_restarts=10, raw_samples=512)
    _sync(device)
    done = time.perf_counter()
    return {"total": done - start, "fit": fitted - start, "acquisition": done - fitted}


def _commit() -> str | None:
    """The git commit of the checkout this script runs from, when there is one."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="20,50,100,200,500,1000,2000")
    parser.add_argument("--q", default="1,4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-botorch-above", type=int, default=10**9,
                        help="do not time BoTorch above this many observations")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for both libraries (default 1)")
    parser.add_argument("--botorch-from", metavar="JSON",
                        help="take BoTorch's timings from an earlier scale_<device>.json of "
                             "this machine, device and thread count instead of rerunning them")
    parser.add_argument("--report-only", metavar="JSON",
                        help="time nothing: rewrite the markdown and plot from this JSON")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        run = json.loads(Path(args.report_only).read_text())
        _report(run["machine"], run["rows"], out)
        return
    torch.set_num_threads(args.threads)
    machine = describe_machine()
    machine["device"] = args.device if args.device == "cpu" else torch.cuda.get_device_name()
    machine["commit"] = _commit()
    earlier = {}
    if args.botorch_from:
        earlier_run = json.loads(Path(args.botorch_from).read_text())
        for key in ("device", "torch_threads", "cpu"):
            if earlier_run["machine"].get(key) != machine[key]:
                parser.error(f"--botorch-from {args.botorch_from}: its {key} is "
                             f"{earlier_run['machine'].get(key)!r}, this run's {machine[key]!r}")
        earlier = {(r["n"], r["q"]): r["botorch"] for r in earlier_run["rows"] if "botorch" in r}
        machine["botorch_from"] = {"path": args.botorch_from,
                                   "commit": earlier_run["machine"].get("commit")}
    sizes = [int(v) for v in args.n.split(",")]
    qs = [int(v) for v in args.q.split(",")]
    sobol = torch.quasirandom.SobolEngine(6, scramble=True, seed=0)
    rows = []
    for n in sizes:
        X = sobol.draw(n, dtype=torch.float64)
        sobol.reset()
        y = _hartmann(X)
        for q in qs:
            row = {"n": n, "q": q, "bopt": time_bopt(X, y, q, args.device),
                   "bopt_kept": time_bopt(X, y, q, args.device, refit_growth=_GROWTH)}
            if (n, q) in earlier:
                row["botorch"] = earlier[(n, q)]
            elif n <= args.skip_botorch_above:
                row["botorch"] = time_botorch(X, y, q, args.device)
            row["load_average"] = round(os.getloadavg()[0], 2)  # 1-minute, after the row
            rows.append(row)
            print(json.dumps(row), flush=True)
    tag = "cpu" if args.device == "cpu" else "cuda"
    machine["cuda_graphs"] = os.environ.get(cuda_graphs.ENV, "1") != "0"
    machine["cuda_graph_failures"] = cuda_graphs.failures()  # loops that ran eagerly
    (out / f"scale_{tag}.json").write_text(json.dumps({"machine": machine, "rows": rows},
                                                      indent=1))
    _report(machine, rows, out)


def _report(machine: dict, rows: list[dict], out: Path) -> None:
    """scale_<device>.md and .png from the timings."""
    tag = "cpu" if machine["device"] == "cpu" else "cuda"
    lines = [f"# Suggest latency versus observations ({machine['device']})", "",
             f"Machine: {machine['summary']}; commit {machine.get('commit')}. Hartmann6 data "
             "at Sobol points, d = 6; bopt's fit warm started as in a running study; BoTorch: "
             "SingleTaskGP + fit_gpytorch_mll + (q)LogEI + optimize_acqf(10 restarts, 512 raw "
             "samples). Seconds per suggest call (q points). The load column is the 1-minute "
             "load average after each row.", "",
             "| n | q | bopt (fit + acq) | bopt kept round (fit + acq) | "
             f"bopt amortized, refit_growth={_GROWTH} | BoTorch (fit + acq) | BoTorch / bopt | "
             "BoTorch / bopt amortized † | load |", "|---|---|---|---|---|---|---|---|---|"]

    def cell(t: dict) -> str:
        return f"{t['total']:.3f} ({t['fit']:.3f} + {t['acquisition']:.3f})"

    for r in rows:
        b, k, t = r["bopt"], r["bopt_kept"], r.get("botorch")
        a = amortized(b, k, r["n"], r["q"], _GROWTH)
        r["bopt_amortized"] = a
        kept = cell(k) if not k["refit"] else "= refit"
        ref = (f"{cell(t)} | {t['total'] / b['total']:.1f}x | {t['total'] / a:.1f}x"
               if t else "- | - | -")
        lines.append(f"| {r['n']} | {r['q']} | {cell(b)} | {kept} | {a:.3f} | {ref} | "
                     f"{r.get('load_average', '-')} |")
    lines += ["", "† Not like for like: BoTorch's loop re-estimates its hyperparameters every "
                  f"round, bopt with refit_growth={_GROWTH} only every 2% more data."]
    if machine.get("botorch_from"):
        lines += ["", "BoTorch's timings come from an earlier run of this script on the same "
                      f"machine and data (`--botorch-from {machine['botorch_from']['path']}`, "
                      f"commit {machine['botorch_from']['commit']}); bopt's were measured "
                      "afterwards."]
    (out / f"scale_{tag}.md").write_text("\n".join(lines) + "\n")
    try:
        _plot(rows, sorted({r["q"] for r in rows}), out / f"scale_{tag}.png", machine["device"])
    except ImportError:  # a bare GPU machine may lack matplotlib: the tables are written
        print("scale.py: matplotlib is missing; no plot")


def _plot(rows: list[dict], qs: list[int], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(qs), figsize=(5.5 * len(qs), 4), squeeze=False)
    for ax, q in zip(axes[0], qs):
        sub = [r for r in rows if r["q"] == q]
        for lib, colour in (("bopt", "tab:blue"), ("botorch", "tab:orange")):
            pts = [(r["n"], r[lib]) for r in sub if lib in r]
            if not pts:
                continue
            ns = [p[0] for p in pts]
            ax.plot(ns, [p[1]["total"] for p in pts], "o-", color=colour, label=f"{lib} total")
            if lib == "bopt":
                ax.plot(ns, [r["bopt_amortized"] for r in sub], "D-", color="tab:green",
                        label=f"bopt total, refit_growth={_GROWTH} (amortized)")
            ax.plot(ns, [p[1]["fit"] for p in pts], "s--", color=colour, alpha=0.6,
                    label=f"{lib} fit")
            ax.plot(ns, [p[1]["acquisition"] for p in pts], "^:", color=colour, alpha=0.6,
                    label=f"{lib} acquisition")
        ax.set(xscale="log", yscale="log", xlabel="observations n", ylabel="seconds per suggest",
               title=f"q = {q} ({device})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
