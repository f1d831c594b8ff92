"""The benchmark report: plots and `report.md` from the records of `runs.jsonl`.

Per problem (and budget): the median best-so-far regret with its inter-quartile band per
method against the evaluation number (best-so-far value when the optimum is unknown), the
median suggest time against the number of observations, and a markdown table of final
regret and suggest time, with ratios to BoTorch's when BoTorch ran.

Figures are drawn with matplotlib's object-oriented API (`matplotlib.figure.Figure`), never
through pyplot: writing a report leaves the caller's backend and open figures alone.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bopt.acquisition.registry import STRATEGIES
from bopt.benchmarks.errors import NoRunsError
from bopt.benchmarks.records import RUNS_FILE, read_runs
from bopt.benchmarks.references import METHODS

REGRET_FLOOR = 1e-10  # regrets below this are drawn at it on the log axis
_REFERENCE = "botorch"


@dataclass
class MethodSummary:
    """Summary statistics of one method's runs on one problem."""

    method: str
    num_runs: int
    final_median: float
    final_q25: float
    final_q75: float
    suggest_median: float  # seconds, model-based rounds (all rounds if `model_free`)
    model_free: bool
    fit_median: float | None
    acquisition_median: float | None
    total_suggest_median: float  # seconds per run
    num_warnings: int


# --------------------------------------------------------------------------- grouping


def group_runs(records: Sequence[dict[str, Any]]) -> dict[tuple[str, int], dict[str, list[dict]]]:
    """`{(problem, budget): {method: [records ordered by seed]}}`, bopt's methods first."""
    groups: dict[tuple[str, int], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        groups[(r["problem"], r["budget"])][r["method"]].append(r)
    ordered = {}
    for key in sorted(groups):
        by_method = groups[key]
        ordered[key] = {m: sorted(by_method[m], key=lambda r: r["seed"])
                        for m in sorted(by_method, key=_method_rank)}
    return ordered


def _method_rank(method: str) -> tuple[int, str]:
    return (METHODS.index(method) if method in METHODS else len(METHODS), method)


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """One colour per method, the same in every figure (tab10: bopt's methods, references,
    then any other name alphabetically)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors
    extra = sorted(m for m in methods if m not in METHODS)
    order = list(METHODS) + extra
    return {m: palette[order.index(m) % len(palette)] for m in methods}


def _style(method: str) -> str:
    return "-" if method in STRATEGIES else "--"  # bopt solid, references dashed


# --------------------------------------------------------------------------- statistics


def _trace(record: dict[str, Any]) -> list[float]:
    """Best-so-far regret when the optimum is known, else best-so-far value."""
    return record["regret"] if record.get("regret") is not None else record["best_so_far"]


def _traces(runs: list[dict]) -> np.ndarray:
    """`runs x budget` traces (NaN-padded if a run is shorter)."""
    length = max(len(_trace(r)) for r in runs)
    out = np.full((len(runs), length), np.nan)
    for i, r in enumerate(runs):
        out[i, :len(_trace(r))] = _trace(r)
    return out


def summarize(method: str, runs: list[dict]) -> MethodSummary:
    """Final regret (or value) quantiles over seeds and suggest-time medians."""
    finals = [_trace(r)[-1] for r in runs]
    q25, q50, q75 = np.percentile(finals, [25, 50, 75]).tolist()
    model = [s for r in runs for s, m in zip(r["suggest_seconds"], r["model_based"]) if m]
    model_free = not model
    seconds = model or [s for r in runs for s in r["suggest_seconds"]]
    fits = [f for r in runs for f, m in zip(r["fit_seconds"], r["model_based"])
            if m and f is not None]
    acqs = [a for r in runs for a, m in zip(r["acquisition_seconds"], r["model_based"])
            if m and a is not None]
    return MethodSummary(
        method=method, num_runs=len(runs), final_median=q50, final_q25=q25, final_q75=q75,
        suggest_median=statistics.median(seconds), model_free=model_free,
        fit_median=statistics.median(fits) if fits else None,
        acquisition_median=statistics.median(acqs) if acqs else None,
        total_suggest_median=statistics.median(sum(r["suggest_seconds"]) for r in runs),
        num_warnings=sum(r.get("num_warnings", 0) for r in runs))


# --------------------------------------------------------------------------- plots


def _create_axes():
    """A figure of the report's size outside pyplot (no backend, no figure manager) and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    return fig, fig.subplots()


def _finish(fig, ax, path: Path, num_methods: int) -> Path:
    """Grid, legend and save: the common end of every figure here."""
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, ncols=2 if num_methods > 4 else 1)
    fig.savefig(path, dpi=120)
    return path


def plot_regret(problem: str, by_method: dict[str, list[dict]], path: Path, *,
                colors: dict[str, Any]) -> Path:
    """Median best-so-far regret (log y) with its inter-quartile band, per method."""
    from matplotlib.ticker import MaxNLocator

    known = all(r.get("regret") is not None for runs in by_method.values() for r in runs)
    fig, ax = _create_axes()
    for method, runs in by_method.items():
        T = _traces(runs)  # runs x budget
        if known:
            T = np.maximum(T, REGRET_FLOOR)
        q25, q50, q75 = np.nanpercentile(T, [25, 50, 75], axis=0)  # each: budget
        x = np.arange(1, T.shape[1] + 1)
        ax.plot(x, q50, _style(method), color=colors[method], lw=2,
                label=f"{method} ({len(runs)} seeds)")
        ax.fill_between(x, q25, q75, color=colors[method], alpha=0.15, lw=0)
    for n_initial, who in _initial_designs(by_method):
        ax.axvline(n_initial + 0.5, color="0.5", ls=":", lw=1)
        ax.annotate(f"initial design ends\n({who})", (n_initial + 0.5, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", va="top", fontsize=8, color="0.35")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if known:
        ax.set_yscale("log")
        ax.set_ylabel("best-so-far regret (median, IQR band)")
    else:
        ax.set_ylabel("best-so-far value (median, IQR band)")
    ax.set_xlabel("evaluation number")
    ax.set_title(f"{problem}: best-so-far {'regret' if known else 'value'} "
                 f"(lower is better)")
    return _finish(fig, ax, path, len(by_method))


def plot_suggest_seconds(problem: str, by_method: dict[str, list[dict]], path: Path, *,
                         colors: dict[str, Any]) -> Path:
    """Median (over seeds) suggest seconds against the number of observations (log y)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _create_axes()
    for method, runs in by_method.items():
        per_n: dict[int, list[float]] = defaultdict(list)
        for r in runs:
            for n, s in zip(r["num_observations"], r["suggest_seconds"]):
                per_n[n].append(s)
        ns = sorted(per_n)
        median = [max(statistics.median(per_n[n]), 1e-6) for n in ns]
        ax.plot(ns, median, _style(method), color=colors[method], lw=2, marker=".", ms=4,
                label=method)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of observations when suggesting")
    ax.set_ylabel("suggest time [s] (median over seeds)")
    threads = sorted({r["host"].get("torch_threads") for runs in by_method.values()
                      for r in runs})
    ax.set_title(f"{problem}: time to suggest the next point "
                 f"(torch threads = {', '.join(map(str, threads))})")
    return _finish(fig, ax, path, len(by_method))


def _initial_designs(by_method: dict[str, list[dict]]) -> list[tuple[int, str]]:
    """`(size, "methods")` for each distinct initial-design size among model-based methods."""
    sizes: dict[int, list[str]] = defaultdict(list)
    for method, runs in by_method.items():
        n = runs[0].get("n_initial")
        if n is not None and any(runs[0]["model_based"]):
            sizes[n].append(method)
    return [(n, ", ".join(methods)) for n, methods in sorted(sizes.items())]


# --------------------------------------------------------------------------- markdown


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def _ratio(x: float, ref: float | None) -> str:
    if ref is None or ref == 0 or x is None:
        return "–"
    return f"{x / ref:.2g}×"


def problem_table(problem: str, by_method: dict[str, list[dict]]) -> list[str]:
    """Markdown table lines: one row per method."""
    summaries = [summarize(m, runs) for m, runs in by_method.items()]
    known = all(r.get("regret") is not None for runs in by_method.values() for r in runs)
    what = "regret" if known else "value"
    ref = next((s for s in summaries if s.method == _REFERENCE), None)
    header = ["method", "runs", f"median final {what}", "IQR"]
    if ref:
        header.append(f"{what} ÷ BoTorch")
    header += ["median s / suggest (model-based)"]
    if ref:
        header.append("time ÷ BoTorch")
    header += ["fit + acq s", "suggest s / run", "warnings"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        row = [f"`{s.method}`", str(s.num_runs), _fmt(s.final_median),
               f"{_fmt(s.final_q25)} – {_fmt(s.final_q75)}"]
        if ref:
            row.append(_ratio(s.final_median, ref.final_median))
        row.append(_fmt(s.suggest_median) + (" †" if s.model_free else ""))
        if ref:
            row.append("–" if s.model_free else _ratio(s.suggest_median, ref.suggest_median))
        split = ("–" if s.fit_median is None
                 else f"{_fmt(s.fit_median)} + {_fmt(s.acquisition_median)}")
        row += [split, _fmt(s.total_suggest_median), str(s.num_warnings)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def machine_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """A short description of the machine(s) and library versions behind the records."""
    lines = []
    seen = []
    for r in records:
        host, v = r.get("host", {}), r.get("versions", {})
        key = (host.get("hostname"), host.get("cpu"), host.get("cores"),
               host.get("torch_threads"), tuple(sorted(v.items())))
        if key in seen:
            continue
        seen.append(key)
        libs = ", ".join(f"{name} {v[name]}" for name in
                         ("bopt", "torch", "gpytorch", "botorch", "optuna") if v.get(name))
        lines.append(f"- **{host.get('cpu', '?')}**, {host.get('cores', '?')} "
                     f"logical cores (host `{host.get('hostname', '?')}`); {libs}; "
                     f"torch intra-op threads per run: {host.get('torch_threads', '?')}.")
    gpus = sorted({r["host"]["cuda"] for r in records
                   if "cuda" in str(r.get("device")) and r.get("host", {}).get("cuda")})
    if gpus:
        lines.append(f"- GPU: {', '.join(gpus)}.")
    devices = sorted({r.get("device", "?") for r in records})
    workers = sorted({r.get("workers", 1) for r in records})
    lines.append(f"- Device(s): {', '.join(devices)}; parallel worker processes: "
                 f"{', '.join(map(str, workers))}.")
    lines.append("- Every run sets `torch.set_num_threads(1)`: with two intra-op threads on "
                 "a shared 2-core box, small GP operations were up to 60× slower under "
                 "contention, so one thread per run keeps parallel timings fair.")
    return lines


def write_report(out_dir: str | Path) -> Path:
    """Write `report.md` and the PNG plots into `out_dir` from its `runs.jsonl`.

    Returns:
        The path of `report.md`.

    Raises:
        NoRunsError: if `out_dir` holds no runs (a `FileNotFoundError` too).
    """
    out = Path(out_dir)
    records = read_runs(out / RUNS_FILE)
    if not records:
        raise NoRunsError(f"write_report(): no runs in {out / RUNS_FILE}; run "
                                "run_benchmark(...) (or `bopt bench`) into that folder first.")
    groups = group_runs(records)
    colors = method_colors(sorted({r["method"] for r in records}, key=_method_rank))
    problem_budgets = defaultdict(list)
    for problem, budget in groups:
        problem_budgets[problem].append(budget)
    md = ["# bopt benchmark report", "",
          f"{len(records)} runs from `{RUNS_FILE}`. All methods minimise. "
          "Regret = best value so far − known optimum.", "",
          "Suggest time is the wall time of producing the next configuration (objective "
          "excluded), measured identically for every method. *Model-based* rounds are those "
          "after the initial design (bopt and BoTorch: Sobol, of the size each record "
          "names; Optuna: its 10 random startup trials); † marks model-free methods, whose "
          "median is over all rounds. *fit + acq* is the median model fit and acquisition "
          "optimisation time where the method reports them.", "", "## Machine", "", *machine_lines(records), ""]
    for (problem, budget), by_method in groups.items():
        stem = problem if len(problem_budgets[problem]) == 1 else f"{problem}_budget{budget}"
        regret_png = plot_regret(f"{problem} (budget {budget})", by_method,
                                 out / f"{stem}_regret.png", colors=colors)
        time_png = plot_suggest_seconds(f"{problem} (budget {budget})", by_method,
                                        out / f"{stem}_suggest_seconds.png", colors=colors)
        runs = next(iter(by_method.values()))
        optimum = runs[0].get("optimum")
        md += [f"## {problem} (d = {runs[0].get('dimension', '?')}, budget {budget}, "
               f"optimum {'unknown' if optimum is None else _fmt(optimum)})", "",
               *problem_table(problem, by_method), "",
               f"![{problem} regret]({regret_png.name})", "",
               f"![{problem} suggest time]({time_png.name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path


__all__ = ["MethodSummary", "group_runs", "method_colors", "plot_regret",
           "plot_suggest_seconds", "problem_table", "summarize", "write_report"]
