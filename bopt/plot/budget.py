"""Figures of a training-budget search: every trial's learning curve, and what each rung
let through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bopt.engine import Optimizer
from bopt.errors import ArgumentError
from bopt.plot.common import BEST_COLOR, MODEL_COLOR, pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_OUTCOME_COLORS = {"complete": MODEL_COLOR, "pruned": BEST_COLOR, "pending": "0.6",
                   "stale": "0.6", "failed": "k"}


def plot_learning_curves(opt: Optimizer, *, ax: Axes | None = None) -> Figure:
    """Each trial's reports against the budget, coloured by outcome (completed, pruned,
    still running), with the schedule's rungs as dotted lines and the best completed trial
    drawn thick.

    Raises:
        ArgumentError: no trial has reported yet.
    """
    history = opt.history
    curves = {t.id: opt.curve(t) for t in history}
    if not any(curves.values()):
        raise ArgumentError("plot_learning_curves: no trial has reported yet; call "
                            "opt.report(trial, value, budget=...) while training.")
    if ax is None:
        _, ax = pyplot().subplots(figsize=(7.0, 4.5), layout="constrained")
    best = opt.best
    seen = set()
    for t in history:
        if not curves[t.id]:
            continue
        budgets, values = zip(*curves[t.id])
        label = t.status if t.status not in seen else "_nolegend_"
        seen.add(t.status)
        thick = best is not None and t.id == best.id
        ax.plot(budgets, values, "-", marker="." if len(budgets) < 30 else None,
                color=_OUTCOME_COLORS.get(t.status, "k"), lw=2.5 if thick else 1.0,
                alpha=1.0 if thick else 0.6, label=label)
    rungs = sorted({row["rung"] for row in opt.rung_summary()})
    for k, rung in enumerate(rungs):
        ax.axvline(rung, color="0.5", ls=":", lw=1, label="rung" if k == 0 else "_nolegend_")
    ax.set_xscale("log" if rungs and max(rungs) / min(rungs) > 8 else "linear")
    ax.set_xlabel("budget")
    ax.set_ylabel(f"reported value ({'higher' if opt.direction == 'maximize' else 'lower'} "
                  "is better)")
    ax.set_title(f"Learning curves of {sum(bool(c) for c in curves.values())} trials")
    ax.legend(fontsize="small")
    return ax.figure


def plot_rungs(opt: Optimizer, *, ax: Axes | None = None) -> Figure:
    """Per rung (and bracket, for Hyperband), how many trials entered it and how many of
    them went on; the ratio should sit near 1 / reduction_factor once rungs fill up.

    Raises:
        ArgumentError: the optimizer has no scheduler, or no trial reached a rung.
    """
    rows = [r for r in opt.rung_summary() if r["entered"]]
    if not rows:
        raise ArgumentError("plot_rungs: no trial has reached a rung yet (an optimizer needs "
                            "scheduler=ASHA(...) or Hyperband(...), and reports).")
    if ax is None:
        _, ax = pyplot().subplots(figsize=(7.0, 4.0), layout="constrained")
    labels = [f"{r['rung']:g}" + (f"\n(bracket {r['bracket']})"
                                   if opt.scheduler.num_brackets > 1 else "") for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["entered"] for r in rows], 0.4, color="0.7",
           label="entered")
    ax.bar([i + 0.2 for i in x], [r["continued"] for r in rows], 0.4, color=MODEL_COLOR,
           label="continued")
    ax.set_xticks(list(x), labels, fontsize="small")
    ax.set_xlabel("rung (budget)")
    ax.set_ylabel("trials")
    ax.set_title(f"What each rung let through (1 / reduction_factor = "
                 f"{1 / opt.scheduler.reduction_factor:.2f})")
    ax.legend(fontsize="small")
    return ax.figure
