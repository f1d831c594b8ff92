"""Aten operations dispatched per suggest: a device-independent cost figure.

On a GPU every dispatched aten operation is at least one kernel launch, so the count bounds
the launch overhead whatever the device; on a CPU it tracks the Python and dispatcher
overhead that dominates small problems. Counted with a `TorchDispatchMode` around the
model fit (`bopt.proposal.fit_surrogate`) and the acquisition ascent
(`bopt.proposal.multistart_maximize`) of real optimisation loops on Hartmann6 at n = 80
observations, median over several suggests:

- *kept*: `refit_growth=0.5`, so the hyperparameters are kept (one Cholesky, no fit);
- *refit*: the default, a warm-started re-estimate every round;
- *kept, graphs* and *refit, graphs*: the same loops counted as the host dispatches them on
  CUDA, where the solver loops are replayed as CUDA graphs (`bopt.cuda_graphs`): emulated on
  the CPU by a stand-in recorder whose recording dispatches the iteration once (what a
  capture costs the host) and whose replays are not counted (one graph launch each). The
  trials are the same as without graphs.

    python benchmarks/op_count.py --n 80 --repeats 10 --out benchmarks/results

Writes op_count_<device>.json and op_count_<device>.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import bopt.proposal as proposal
from bopt import Optimizer, cuda_graphs
from bopt.benchmarks import get_problem
from bopt.benchmarks.machine import describe_machine


class _Count(TorchDispatchMode):
    """Counts every aten operation dispatched inside the block, by name."""

    paused = 0  # > 0 inside an emulated graph replay, whose operations the host never sees

    def __init__(self):
        super().__init__()
        self.by_name: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not _Count.paused:
            self.by_name[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


class _EmulatedGraph:
    """A CUDA graph's host cost on the CPU: the block is dispatched (and counted) once, at
    its first run, as a capture is; replays run it uncounted."""

    def capture(self, block):
        self.block, self.recorded = block, False

    def replay(self):
        if not self.recorded:
            self.recorded = True
            self.block()
            return
        _Count.paused += 1
        try:
            self.block()
        finally:
            _Count.paused -= 1


def _emulated_graphs(on: bool):
    """Switch the CPU emulation of CUDA graphs on or off; returns what to restore."""
    saved = cuda_graphs._DEVICE_TYPES, cuda_graphs.new_recorder
    if on:
        cuda_graphs._DEVICE_TYPES, cuda_graphs.new_recorder = ("cuda", "cpu"), _EmulatedGraph
    return saved


def _counting(phases: dict, name: str, function):
    def counted(*args, **kwargs):
        counter = _Count()
        with counter:
            result = function(*args, **kwargs)
        phases[name] = counter.by_name
        return result
    return counted


def count_suggests(n: int, repeats: int, refit_growth: float, device: str,
                   graphs: bool = False) -> list[dict]:
    """Operation counts of `repeats` suggests after `n` observations of a seeded loop (with
    `graphs`, as the host dispatches them with CUDA graphs, emulated on the CPU)."""
    if graphs and device != "cpu":
        raise ValueError("the graph emulation runs on the CPU; on CUDA the graphs are real")
    problem = get_problem("hartmann6")
    opt = Optimizer(problem.space, seed=0, device=device, refit_growth=refit_growth)
    for _ in range(n):
        trial = opt.suggest()
        opt.observe(trial, problem(trial.params))
    phases: dict[str, collections.Counter] = {}
    real = proposal.fit_surrogate, proposal.multistart_maximize
    proposal.fit_surrogate = _counting(phases, "fit", real[0])
    proposal.multistart_maximize = _counting(phases, "acquisition", real[1])
    saved = _emulated_graphs(graphs)
    rows = []
    try:
        for _ in range(repeats):
            trial = opt.suggest()
            info = opt.diagnostics[-1]
            fit, acq = sum(phases["fit"].values()), sum(phases["acquisition"].values())
            rows.append({"n": info.num_observations, "refit": info.refit, "fit": fit,
                         "acquisition": acq, "total": fit + acq, "params": trial.params,
                         "top": (phases["fit"] + phases["acquisition"]).most_common(8)})
            opt.observe(trial, problem(trial.params))
    finally:
        proposal.fit_surrogate, proposal.multistart_maximize = real
        cuda_graphs._DEVICE_TYPES, cuda_graphs.new_recorder = saved
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    machine = describe_machine()
    result = {"machine": machine, "n": args.n, "repeats": args.repeats, "device": args.device,
              "kept": count_suggests(args.n, args.repeats, 0.5, args.device),
              "refit": count_suggests(args.n, args.repeats, 0.0, args.device)}
    if args.device == "cpu":
        for label, growth in (("kept", 0.5), ("refit", 0.0)):
            rows = count_suggests(args.n, args.repeats, growth, "cpu", graphs=True)
            # Recorded fit iterations solve by triangular solves (`model.factor_solve`), the
            # eager ones by `cholesky_solve`: the trials agree up to rounding, carried
            # through ten fits and ascents (each stops at a tolerance, not at an exact point).
            drift = max(abs(graphed["params"][k] - eager["params"][k])
                        for graphed, eager in zip(rows, result[label]) for k in eager["params"])
            if drift > 1e-3:
                raise SystemExit(f"{label}: the emulated graphs changed the trials by {drift:.2g}")
            result[f"{label}, graphs drift"] = drift
            result[f"{label}, graphs"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"op_count_{args.device.split(':')[0]}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [f"# Aten operations per suggest (Hartmann6, n = {args.n}, {args.repeats} suggests)",
             "", f"`python benchmarks/op_count.py --n {args.n} --repeats {args.repeats} "
             f"--device {args.device}` on {machine['summary']}.", "",
             "| hyperparameters | rounds that refitted | fit (median) | acquisition (median) "
             "| total (median, min - max) |", "|---|---|---|---|---|"]
    for label in [k for k in ("kept", "refit", "kept, graphs", "refit, graphs") if k in result]:
        rows = result[label]
        totals = [r["total"] for r in rows]
        lines.append(f"| {label} | {sum(r['refit'] for r in rows)} of {len(rows)} | "
                     f"{statistics.median(r['fit'] for r in rows):.0f} | "
                     f"{statistics.median(r['acquisition'] for r in rows):.0f} | "
                     f"{statistics.median(totals):.0f} ({min(totals)} - {max(totals)}) |")
    if "kept, graphs drift" in result:
        lines += ["", "Largest difference in a proposed parameter, emulated graphs against eager: "
                  f"kept {result['kept, graphs drift']:.2g}, refit {result['refit, graphs drift']:.2g}."]
    lines += ["", "Most frequent operations in the last refit suggest: "
              + ", ".join(f"`{name}` {count}" for name, count in result["refit"][-1]["top"]), ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
