"""Report of `budget_search.py` runs: anytime medians and IQRs, the targets, and figures.

    python benchmarks/budget_search.py --report benchmarks/results/budget_search

For each `<task>.jsonl` in the folder: a table of the median (IQR) best full-budget value at
fractions of the total budget, the median test score of each method's chosen configuration,
the two targets of training-budget search, and `<task>_budget.png` / `<task>_wall.png`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

BOPT = "gp-asha"
FULL_BO = "gp-full"
REFERENCES = ("random", "random-asha", "tpe-hyperband", "tpe-sha", "smac-mf", "syne-bohb",
              "syne-mobster")
FRACTIONS = tuple(k / 20 for k in range(1, 21))
TABLE_AT = (1 / 10, 1 / 6, 1 / 3, 1 / 2, 2 / 3, 1.0)


def best_at(events: list, spent: float) -> float:
    """The best full-budget value found once `spent` budget was used (NaN before any)."""
    best = math.nan
    for at, _, value in events:
        if at > spent + 1e-9:
            break
        if math.isfinite(value):
            best = value
    return best


def best_by_wall(events: list, seconds: float) -> float:
    best = math.nan
    for _, at, value in events:
        if at > seconds:
            break
        if math.isfinite(value):
            best = value
    return best


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    """Median and IQR; a seed without a value yet counts as +inf (worst)."""
    array = np.array([v if math.isfinite(v) else math.inf for v in values])
    if np.isinf(array).sum() * 2 >= len(array):  # the median itself has no value yet
        return math.nan, math.nan, math.nan
    with np.errstate(invalid="ignore"):  # a quartile between a value and +inf is +inf
        return tuple(float(np.percentile(array, q)) for q in (50, 25, 75))


def summarize(records: list[dict]) -> dict:
    """method -> {"curve": [(fraction, median, q25, q75)], "test": median test score, ...}."""
    out: dict = {}
    total = records[0]["total_budget"]
    for method in dict.fromkeys(r["method"] for r in records):
        runs = [r for r in records if r["method"] == method]
        curve = [(f, *_quartiles([best_at(r["events"], f * total) for r in runs]))
                 for f in FRACTIONS]
        tests = [r["test"] for r in runs if r.get("test") is not None]
        out[method] = {"curve": curve, "seeds": len(runs),
                       "test": float(np.median(tests)) if tests else None,
                       "trials": float(np.median([r["num_trials"] for r in runs])),
                       "full": float(np.median([r["num_full"] for r in runs])),
                       "wall": float(np.median([r["wall_s"] for r in runs]))}
    return out


def targets(summary: dict) -> list[str]:
    """The two targets: GP + ASHA's median no worse than the best reference at every budget
    level, and full-budget BO's final median reached within a third of its budget."""
    lines = []
    if BOPT not in summary:
        return ["gp-asha did not run."]
    ours = [m for _, m, _, _ in summary[BOPT]["curve"]]
    refs = [m for m in REFERENCES if m in summary]
    behind = []
    for i, f in enumerate(FRACTIONS):
        best_ref = min((summary[m]["curve"][i][1] for m in refs
                        if math.isfinite(summary[m]["curve"][i][1])), default=math.nan)
        if math.isfinite(best_ref) and not (math.isfinite(ours[i]) and ours[i] <= best_ref):
            behind.append(f"{f:.2f} (gp-asha {ours[i]:.4g} vs {best_ref:.4g})")
    lines.append("- GP + ASHA's median no worse than the best reference (" + ", ".join(refs)
                 + ") at every budget level: "
                 + ("**met**" if not behind else "**missed** at " + "; ".join(behind)))
    if FULL_BO in summary:
        final = summary[FULL_BO]["curve"][-1][1]
        reach = next((f for f, m in zip(FRACTIONS, ours) if math.isfinite(m) and m <= final),
                     None)
        verdict = ("never" if reach is None else f"at {reach:.2f} of the budget")
        met = reach is not None and reach <= 1 / 3 + 1e-9
        lines.append(f"- reaches full-budget BO's final median ({final:.4g}) {verdict}; target "
                     f"a third: **{'met' if met else 'missed'}**")
    return lines


def _limits(summary: dict) -> tuple[float, float]:
    """y limits that show the medians from a fifth of the budget on (the first full-budget
    values of a few seeds would squash everything else)."""
    rows = [row for s in summary.values() for row in s["curve"] if row[0] >= 0.2]
    low = min(row[2] for row in rows if math.isfinite(row[2]))
    high = max(row[1] for row in rows if math.isfinite(row[1]))
    return low - 0.05 * (high - low), high + 0.15 * (high - low)


def _figure(task: str, summary: dict, records: list[dict], folder: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    total = records[0]["total_budget"]
    colors = dict(zip(summary, plt.cm.tab20(np.linspace(0, 1, max(len(summary), 2)))))
    for method, s in summary.items():
        x = [f * total for f, *_ in s["curve"]]
        ax.plot(x, [m for _, m, _, _ in s["curve"]], label=method, color=colors[method],
                lw=2.5 if method == BOPT else 1)
        ax.fill_between(x, [a for *_, a, _ in s["curve"]], [b for *_, b in s["curve"]],
                        color=colors[method], alpha=0.08)
    ax.set(xlabel="budget spent (epochs summed over trials)", ylabel="best full-budget value",
           title=f"{task}: median and IQR over seeds", ylim=_limits(summary))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / f"{task}_budget.png", dpi=110)
    names.append(f"{task}_budget.png")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    horizon = max(r["wall_s"] for r in records)
    grid = np.linspace(horizon / 40, horizon, 40)
    for method in summary:
        runs = [r for r in records if r["method"] == method]
        med = [_quartiles([best_by_wall(r["events"], t) for r in runs])[0] for t in grid]
        ax.plot(grid, med, label=method, color=colors[method], lw=2.5 if method == BOPT else 1)
    ax.set(xscale="log", xlabel="wall time (s, one CPU thread)", ylabel="best full-budget value",
           title=f"{task}: median over seeds against wall time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / f"{task}_wall.png", dpi=110)
    names.append(f"{task}_wall.png")
    plt.close("all")
    return names


def _commits(records: list[dict]) -> dict[str, list[str]]:
    """commit -> the methods whose runs were made at it."""
    out: dict[str, list[str]] = {}
    for r in records:
        methods = out.setdefault(r.get("commit", "not recorded"), [])
        if r["method"] not in methods:
            methods.append(r["method"])
    return out


def task_section(paths: list[Path]) -> list[str]:
    """The section of one task, from its records in `paths` (ours first)."""
    records = [json.loads(line) for path in paths for line in path.read_text().splitlines()
               if line.strip()]
    task, first = paths[0].stem, records[0]
    summary = summarize(records)
    lines = [f"## {task}", "",
             f"max budget {first['max_budget']}, total budget {first['total_budget']:g} "
             f"({first['total_budget'] / first['max_budget']:g} full-budget trials), "
             f"{max(s['seeds'] for s in summary.values())} seeds; machine: "
             f"{first.get('machine', 'not recorded')}; bopt commits "
             + ", ".join(f"{c} ({', '.join(ms)})" for c, ms in _commits(records).items())
             + ".", "",
             "Median (IQR) best full-budget validation value at fractions of the budget:", "",
             "| method | " + " | ".join(f"{f:.2f}" for f in TABLE_AT)
             + " | test | trials | full | wall s |",
             "|---" * (len(TABLE_AT) + 5) + "|"]
    for method, s in summary.items():
        cells = []
        for f in TABLE_AT:
            _, m, a, b = min(s["curve"], key=lambda row: abs(row[0] - f))
            cells.append("–" if not math.isfinite(m) else f"{m:.4g} ({a:.3g}–{b:.3g})")
        test = "–" if s["test"] is None else f"{s['test']:.4f}"
        lines.append(f"| {method} | " + " | ".join(cells)
                     + f" | {test} | {s['trials']:.0f} | {s['full']:.0f} | {s['wall']:.0f} |")
    lines += ["", *targets(summary), ""]
    for name in _figure(task, summary, records, paths[0].parent):
        lines.append(f"![{name}]({name})")
    return lines + [""]


def write_report(folder: Path) -> Path:
    """Write `folder/report.md` from every `*.jsonl` there (and `external/` runs of the
    same tasks, from `budget_search_external.py`); returns its path."""
    folder = Path(folder)
    lines = ["# Training-budget search benchmark", "",
             "Written by `python benchmarks/budget_search.py --report`. `test` is the median "
             "test score (test error for the real tasks) of each run's chosen configuration, "
             "scored once after the search; the search saw validation values only.", ""]
    for path in sorted(folder.glob("*.jsonl")):  # SMAC3 and Syne Tune runs lie in external/
        extra = folder / "external" / path.name
        lines += task_section([path] + ([extra] if extra.exists() else []))
    out = folder / "report.md"
    out.write_text("\n".join(lines))
    return out
