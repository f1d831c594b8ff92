"""Figures of what a run did: convergence, the GP's round-by-round diagnostics, and
parameter importance."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bopt.acquisition.registry import is_model_based
from bopt.engine import Optimizer
from bopt.errors import ArgumentError
from bopt.plot.common import (BEST_COLOR, MODEL_COLOR, SOBOL_COLOR, completed,
                              initial_design_ids, last_model_round, pyplot,
                              trials_and_direction)
from bopt.space import Categorical, Param
from bopt.trial import RoundInfo, Trial

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


_SOURCE_STYLES = (("observed (Sobol)", SOBOL_COLOR), ("observed (GP)", MODEL_COLOR),
                  ("observed (other)", "k"))


def _source_group(source: str) -> int:
    """0: the Sobol design, 1: a GP proposal, 2: random, fallback or external."""
    if source == "sobol":
        return 0
    return 1 if is_model_based(source) else 2


def _regret(values: np.ndarray, trials: list[Trial], optimum: Any, direction: str) -> np.ndarray:
    """`n` non-negative gaps to `optimum`; ArgumentError if a value beats it."""
    if isinstance(optimum, bool) or not isinstance(optimum, numbers.Real) or not math.isfinite(
            optimum):
        raise ArgumentError(f"plot_convergence: optimum must be a finite number; got {optimum!r}.")
    gap = values - optimum if direction == "minimize" else optimum - values
    worst = int(np.argmin(gap))
    if gap[worst] < -1e-9 * max(1.0, abs(optimum)):
        raise ArgumentError(
            f"plot_convergence: trial {trials[worst].id} observed {float(values[worst])!r}, "
            f"better than optimum={optimum!r} for direction={direction!r}; pass the best "
            "achievable value.")
    return np.clip(gap, 0.0, None)


def plot_convergence(opt_or_trials: Optimizer | Iterable[Trial], *, optimum: float | None = None,
                     direction: str | None = None, ax: Axes | None = None) -> Figure:
    """Best value so far against trial number.

    Observed values are dots (grey from the Sobol design, blue proposed by the GP, black any
    other: random, fallback or external) and the initial design is shaded. With `optimum`,
    the y axis shows the regret (distance to the optimum) on a log scale instead; a regret of
    exactly 0 is drawn at a tenth of the smallest positive one. Pending and failed trials are
    not drawn.

    Args:
        opt_or_trials: an `Optimizer`, or trials such as `opt.history`.
        optimum: the best achievable value, if known.
        direction: "minimize" or "maximize"; default the optimizer's, or "minimize" for a
            list of trials.
        ax: axes to draw on; default a new figure.

    Returns:
        The figure.

    Raises:
        ArgumentError: no completed trial, a bad `direction`, or a value better than
            `optimum`.
    """
    trials, direction = trials_and_direction(opt_or_trials, direction, "plot_convergence")
    done = completed(trials, "plot_convergence")
    ids = np.array([t.id for t in done])
    values = np.array([t.value for t in done], dtype=float)
    accumulate = np.minimum.accumulate if direction == "minimize" else np.maximum.accumulate
    best = accumulate(values)
    if optimum is not None:
        values, best = (_regret(v, done, optimum, direction) for v in (values, best))
        positive = values[values > 0]
        floor = positive.min() / 10 if positive.size else 1e-12 * max(1.0, abs(optimum))
        values, best = np.maximum(values, floor), np.maximum(best, floor)
    if ax is None:
        _, ax = pyplot().subplots(figsize=(6.4, 4.0), layout="constrained")
    initial = initial_design_ids(trials)
    if initial:
        ax.axvspan(initial[0] - 0.5, initial[-1] + 0.5, color="0.92", zorder=0,
                   label="initial design (Sobol)")
    groups = np.array([_source_group(t.source) for t in done])
    for group, (label, color) in enumerate(_SOURCE_STYLES):
        mask = groups == group
        if mask.any():
            ax.scatter(ids[mask], values[mask], s=16, color=color, label=label)
    ax.step(ids, best, where="post", color=BEST_COLOR, lw=2, label="best so far")
    if optimum is not None:
        ax.set_yscale("log")
        ax.set_ylabel("regret (distance to the optimum)")
    else:
        ax.set_ylabel("objective value")
    ax.set_xlabel("trial")
    ax.set_title(f"Convergence ({direction})")
    ax.legend(fontsize="small")
    return ax.figure


# --------------------------------------------------------------------------- diagnostics


def plot_diagnostics(opt: Optimizer, *, axes: Sequence[Axes] | None = None) -> Figure:
    """What the GP did round by round, in four panels sharing the trial id as x axis.

    From the top: each parameter's lengthscale (log scale, in encoded units where every
    numeric parameter spans [0, 1]: small means the objective changes fast along it); the
    noise variance (standardised scale); the log marginal likelihood of the fit; and the
    seconds spent per round in `suggest`, in the GP fit and in the acquisition ascent. Red
    dotted lines mark rounds that fell back after numerical trouble.

    Args:
        opt: the optimizer.
        axes: four axes to draw on; default a new figure.

    Returns:
        The figure.

    Raises:
        ArgumentError: no suggestion round yet, or `axes` not of length 4.
    """
    rounds = opt.diagnostics
    if not rounds:
        raise ArgumentError("plot_diagnostics: no suggestion round yet; call suggest() first.")
    if axes is None:
        _, axes = pyplot().subplots(4, 1, sharex=True, figsize=(7.0, 8.0),
                                       layout="constrained")
    elif len(axes) != 4:
        raise ArgumentError(f"plot_diagnostics: axes must hold 4 Axes; got {len(axes)}.")
    for k, r in enumerate(r for r in rounds if r.fallback):
        for ax in axes:
            ax.axvline(r.trial_id, color=BEST_COLOR, ls=":", lw=1,
                       label="fallback round" if k == 0 and ax is axes[3] else "_nolegend_")
    model = [r for r in rounds if r.lengthscales]
    if model:
        _plot_model_rounds(axes[:3], model)
    else:
        for ax in axes[:3]:
            ax.text(0.5, 0.5, "no GP round yet (initial design)", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
    _plot_seconds(axes[3], rounds, model)
    for ax, label in zip(axes, ("lengthscale\n(encoded units)", "noise variance\n(standardised)",
                                "log marginal\nlikelihood", "seconds")):
        ax.set_ylabel(label)
    axes[0].set_title(f"GP diagnostics ({len(model)} model rounds of {len(rounds)})")
    axes[-1].set_xlabel("trial id")
    return axes[0].figure


def _plot_model_rounds(axes: Sequence[Axes], model: list[RoundInfo]) -> None:
    """Lengthscales, noise and log marginal likelihood of the GP rounds on three axes."""
    ids = [r.trial_id for r in model]
    for name in model[-1].lengthscales:
        axes[0].plot(ids, [r.lengthscales.get(name, np.nan) for r in model], "o-", ms=3,
                     label=name)
    axes[0].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].plot(ids, [r.noise for r in model], "o-", ms=3, color="C4")
    lml = [np.nan if r.log_marginal_likelihood is None else r.log_marginal_likelihood
           for r in model]
    axes[2].plot(ids, lml, "o-", ms=3, color="C2")
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")


def _plot_seconds(ax: Axes, rounds: list[RoundInfo], model: list[RoundInfo]) -> None:
    ax.plot([r.trial_id for r in rounds], [r.suggest_seconds for r in rounds], "o-", ms=3,
            color="0.3", label="suggest (total)")
    if model:
        ids = [r.trial_id for r in model]
        ax.plot(ids, [r.fit_seconds for r in model], "s--", ms=3, color="C0", label="GP fit")
        ax.plot(ids, [r.acquisition_seconds for r in model], "^--", ms=3, color="C1",
                label="acquisition")
    ax.set_yscale("log")
    ax.legend(fontsize="x-small", ncols=3)


# --------------------------------------------------------------------------- importance


def plot_importance(opt: Optimizer) -> Figure:
    """Parameter importance from the GP, and the observed value against each parameter.

    The top panel ranks parameters by 1 / lengthscale of the last GP fit, normalised to sum
    to 1: a rough guide to how fast the model thinks the objective changes along each
    parameter (categorical lengthscales come from a different kernel, so compare them with
    numeric ones loosely). Below, one scatter per parameter shows every completed trial in
    which it was active, coloured by trial id, the best trial as a red star; categoricals
    are spread slightly sideways so equal choices do not hide each other.

    Args:
        opt: the optimizer.

    Returns:
        The figure.

    Raises:
        ArgumentError: no completed trial yet.
    """
    plt = pyplot()
    from matplotlib.colors import Normalize

    done = completed(opt.history, "plot_importance")
    params = opt.space.params
    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig = plt.figure(figsize=(3.2 * ncols + 1.0, 0.35 * len(params) + 1.6 + 2.6 * nrows),
                     layout="constrained")
    grid = fig.add_gridspec(nrows + 1, ncols,
                            height_ratios=[0.25 * len(params) + 1.2] + [2.6] * nrows)
    _plot_importance_bars(fig.add_subplot(grid[0, :]), last_model_round(opt))
    axes = [fig.add_subplot(grid[1 + i // ncols, i % ncols]) for i in range(len(params))]
    best = opt.best
    first, last = done[0].id, done[-1].id
    norm = Normalize(first, max(last, first + 1))
    for i, (ax, p) in enumerate(zip(axes, params)):
        points = _scatter_values(ax, p, done, best, norm)
        ax.set_title(p.name if p.parent is None else f"{p.name} (active in {points} of "
                     f"{len(done)})", fontsize="medium")
        if i % ncols == 0:
            ax.set_ylabel("objective value")
    fig.colorbar(plt.cm.ScalarMappable(norm, "viridis"), ax=axes, label="trial id",
                 shrink=0.8)
    fig.suptitle(f"Parameters and the objective ({opt.direction})")
    return fig


def _plot_importance_bars(ax: Axes, last: RoundInfo | None) -> None:
    if last is None:
        ax.text(0.5, 0.5, "no GP fit yet: importance appears after the initial design",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_axis_off()
        return
    inverse = {name: 1.0 / scale for name, scale in last.lengthscales.items()}
    total = sum(inverse.values())
    ranked = sorted(inverse.items(), key=lambda item: item[1])  # largest drawn on top
    ax.barh([name for name, _ in ranked], [v / total for _, v in ranked], color=MODEL_COLOR)
    ax.set_xlabel("relative importance (1 / lengthscale, normalised)")
    ax.set_title(f"Importance from the GP fitted for trial {last.trial_id} "
                 f"({last.num_observations} observations)", fontsize="medium")


def _scatter_values(ax: Axes, p: Param, done: list[Trial], best: Trial | None, norm) -> int:
    """Observed values against `p` where it was active; returns how many points."""
    active = [t for t in done if p.name in t.params]
    y = np.array([t.value for t in active], dtype=float)
    if isinstance(p, Categorical):
        x = np.array([p.index(t.params[p.name]) for t in active], dtype=float)
        x = x + np.random.default_rng(0).uniform(-0.15, 0.15, x.size)  # seeded: same plot each time
        ax.set_xticks(range(len(p.choices)), [str(c) for c in p.choices])
        ax.set_xlim(-0.5, len(p.choices) - 0.5)
    else:
        x = np.array([t.params[p.name] for t in active], dtype=float)
        if p.log:
            ax.set_xscale("log")
    ax.scatter(x, y, c=[t.id for t in active], cmap="viridis", norm=norm, s=18)
    if best is not None and p.name in best.params:
        k = next(i for i, t in enumerate(active) if t.id == best.id)
        ax.scatter(x[k], y[k], marker="*", s=160, color=BEST_COLOR, edgecolor="k", lw=0.5,
                   zorder=3, label="best")
    return len(active)


