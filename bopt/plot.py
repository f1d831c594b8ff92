"""Visual diagnostics of an optimisation run.

Each function draws one matplotlib figure and returns it; matplotlib is imported inside the
functions, so `import bopt` never needs it (`pip install matplotlib` to plot). Figures are
made with `matplotlib.pyplot`, so `plt.show()` shows them in a script; in a notebook end the
cell with `;` (or assign the result) to see a figure once.

- `plot_convergence`: best value so far (or regret) against trial number.
- `plot_diagnostics`: the GP's hyperparameters, likelihood and timings, round by round.
- `plot_importance`: relative importance from the lengthscales, and values per parameter.
- `plot_slice`: the GP's posterior and the acquisitions along one or two parameters.
"""

from __future__ import annotations

import math
import numbers
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from bopt.acquisition import (draw_posterior_path, expected_improvement, ucb_beta,
                              upper_confidence_bound)
from bopt.engine import _GP_STRATEGIES, Optimizer, RoundInfo, Trial, _torch_threads
from bopt.errors import ArgumentError
from bopt.model import BoptGP, fit_gp
from bopt.space import Categorical, Float, Param, Space
from bopt.warp import OutputTransform

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_SOBOL_COLOR, _MODEL_COLOR, _BEST_COLOR, _NEXT_COLOR = "0.55", "C0", "C3", "m"


# --------------------------------------------------------------------------- shared helpers


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _check_direction(direction: Any) -> str:
    if direction not in ("minimize", "maximize"):
        raise ArgumentError(f"direction must be 'minimize' or 'maximize'; got {direction!r}.")
    return direction


def _trials_and_direction(opt_or_trials: Any, direction: str | None,
                          caller: str) -> tuple[list[Trial], str]:
    """The trials in id order and the direction, from an Optimizer or a list of Trials."""
    if isinstance(opt_or_trials, Optimizer):
        trials = opt_or_trials.history
        direction = opt_or_trials.direction if direction is None else direction
    elif isinstance(opt_or_trials, Iterable) and not isinstance(opt_or_trials, (str, Mapping)):
        trials = list(opt_or_trials)
        for i, t in enumerate(trials):
            if not isinstance(t, Trial):
                raise ArgumentError(f"{caller}: item #{i} is {type(t).__name__} {t!r}; pass an "
                                    "Optimizer or a list of Trials (e.g. opt.history).")
        direction = "minimize" if direction is None else direction
    else:
        raise ArgumentError(f"{caller}: expected an Optimizer or a list of Trials; got "
                            f"{type(opt_or_trials).__name__}.")
    return sorted(trials, key=lambda t: t.id), _check_direction(direction)


def _completed(trials: Sequence[Trial], caller: str, *, at_least: int = 1) -> list[Trial]:
    done = [t for t in trials if t.status == "complete"]
    if len(done) < at_least:
        raise ArgumentError(f"{caller}: needs at least {at_least} completed trial(s), got "
                            f"{len(done)}; observe more values first.")
    return done


def _initial_design_ids(trials: Sequence[Trial]) -> list[int]:
    """Ids of the leading run of Sobol trials (the initial design), in id order."""
    ids = []
    for t in trials:
        if t.source != "sobol":
            break
        ids.append(t.id)
    return ids


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return repr(value)


def _last_model_round(opt: Optimizer) -> RoundInfo | None:
    return next((r for r in reversed(opt.diagnostics) if r.lengthscales), None)


# --------------------------------------------------------------------------- convergence

_SOURCE_STYLES = (("observed (Sobol)", _SOBOL_COLOR), ("observed (GP)", _MODEL_COLOR),
                  ("observed (other)", "k"))


def _source_group(source: str) -> int:
    """0: the Sobol design, 1: a GP proposal, 2: random, fallback or external."""
    if source == "sobol":
        return 0
    return 1 if source in _GP_STRATEGIES else 2


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
    trials, direction = _trials_and_direction(opt_or_trials, direction, "plot_convergence")
    done = _completed(trials, "plot_convergence")
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
        _, ax = _pyplot().subplots(figsize=(6.4, 4.0), layout="constrained")
    initial = _initial_design_ids(trials)
    if initial:
        ax.axvspan(initial[0] - 0.5, initial[-1] + 0.5, color="0.92", zorder=0,
                   label="initial design (Sobol)")
    groups = np.array([_source_group(t.source) for t in done])
    for group, (label, color) in enumerate(_SOURCE_STYLES):
        mask = groups == group
        if mask.any():
            ax.scatter(ids[mask], values[mask], s=16, color=color, label=label)
    ax.step(ids, best, where="post", color=_BEST_COLOR, lw=2, label="best so far")
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
        _, axes = _pyplot().subplots(4, 1, sharex=True, figsize=(7.0, 8.0),
                                       layout="constrained")
    elif len(axes) != 4:
        raise ArgumentError(f"plot_diagnostics: axes must hold 4 Axes; got {len(axes)}.")
    for k, r in enumerate(r for r in rounds if r.fallback):
        for ax in axes:
            ax.axvline(r.trial_id, color=_BEST_COLOR, ls=":", lw=1,
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
    plt = _pyplot()
    from matplotlib.colors import Normalize

    done = _completed(opt.history, "plot_importance")
    params = opt.space.params
    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig = plt.figure(figsize=(3.2 * ncols + 1.0, 0.35 * len(params) + 1.6 + 2.6 * nrows),
                     layout="constrained")
    grid = fig.add_gridspec(nrows + 1, ncols,
                            height_ratios=[0.25 * len(params) + 1.2] + [2.6] * nrows)
    _plot_importance_bars(fig.add_subplot(grid[0, :]), _last_model_round(opt))
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
    ax.barh([name for name, _ in ranked], [v / total for _, v in ranked], color=_MODEL_COLOR)
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
        ax.scatter(x[k], y[k], marker="*", s=160, color=_BEST_COLOR, edgecolor="k", lw=0.5,
                   zorder=3, label="best")
    return len(active)


# --------------------------------------------------------------------------- slices


def plot_slice(opt: Optimizer, params: Sequence[str] | str, *,
               fixed: Mapping[str, Any] | None = None, num_points: int | None = None) -> Figure:
    """The GP posterior along one or two parameters, the others held fixed.

    The GP is fitted as the engine fits it (same targets, warm started from the last round,
    pending trials ignored); the optimizer is not changed. The GP models transformed values
    (standardised, far-out poor values compressed, warped: `bopt.warp.OutputTransform`);
    the plot maps its posterior back to the objective's units through the inverse of that
    monotone transform, so the curve is the posterior median and the band its central 95%
    (asymmetric where the warp bends). Observations are drawn at their own values of the
    sliced parameters: a projection, since their other parameters differ. Pending trials
    (the suggestions awaiting a value: call `plot_slice` between `suggest` and `observe` to
    see the next one) are marked where the sliced parameters are active.

    One parameter: the posterior median and 95% band with the observations, and below it
    expected improvement, UCB and one Thompson sample, each scaled to [0, 1] with its
    maximum marked. Two (numeric) parameters: contour maps of the posterior median and of
    the band's width divided by 4 (the standard deviation, for a normal), and below them
    maps of the three acquisitions with each one's maximum on the slice marked; the
    observations on every map.

    Args:
        opt: the optimizer, with at least 2 completed trials.
        params: one or two parameter names (a single name may be a str).
        fixed: values of other parameters; the rest take the best trial's values (a
            parameter inactive there takes them from the best trial where it is active).
        num_points: grid points per sliced parameter (default 200 for one, 40 for two).

    Returns:
        The figure.

    Raises:
        ArgumentError: unknown, repeated or inactive parameters, a categorical in a 2-D
            slice, fewer than 2 completed trials, or `fixed` naming a sliced parameter.
        ParameterError: a `fixed` value that does not fit its parameter.
    """
    names = _check_slice(opt.space, params, fixed, num_points)
    history = opt.history
    done = _completed(history, "plot_slice", at_least=2)
    pending = _coordinates(opt.space, [t for t in history if t.status == "pending"], names)
    values = _reference_values(opt, done, dict(fixed or {}))
    _check_active(opt.space, names, values)
    model, Y, transform = _slice_model(opt, done)
    others = ", ".join(f"{n}={_format_value(values[n])}" for n in _held(opt.space, names, values))
    if len(names) == 1:
        fig = _slice_1d(opt, model, Y, transform, done, names[0], values, num_points or 200,
                        pending)
    else:
        fig = _slice_2d(opt, model, Y, transform, done, names, values, num_points or 40,
                        pending)
    fig.suptitle(textwrap.fill(f"others fixed at: {others or '(none)'}", 110),
                 fontsize="small")
    return fig


def _check_slice(space: Space, params: Any, fixed: Any, num_points: Any) -> list[str]:
    names = [params] if isinstance(params, str) else list(params) if isinstance(
        params, Sequence) else []
    if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise ArgumentError(f"plot_slice: params must be one or two distinct names; got "
                            f"{params!r}.")
    if fixed is not None and not isinstance(fixed, Mapping):
        raise ArgumentError(f"plot_slice: fixed must be a dict {{name: value}}; got {fixed!r}.")
    for name in names + list(fixed or {}):
        if name not in space:
            raise ArgumentError(f"plot_slice: unknown parameter {name!r}; the space has "
                                f"{list(space.names)!r}.")
    if clash := [n for n in names if n in (fixed or {})]:
        raise ArgumentError(f"plot_slice: {clash[0]!r} is both sliced and fixed; drop it from "
                            "fixed.")
    if len(names) == 2 and (cat := [n for n in names if isinstance(space[n], Categorical)]):
        raise ArgumentError(f"plot_slice: a 2-D slice needs two numeric parameters, but "
                            f"{cat[0]!r} is categorical; slice it alone (params=[{cat[0]!r}]) "
                            "or fix it.")
    if num_points is not None and (isinstance(num_points, bool) or not isinstance(
            num_points, int) or num_points < 2):
        raise ArgumentError(f"plot_slice: num_points must be an int >= 2; got {num_points!r}.")
    return names


def _reference_values(opt: Optimizer, done: list[Trial], fixed: dict) -> dict[str, Any]:
    """A value for every parameter: `fixed`, else from the best trial where it is active."""
    ranked = sorted(done, key=lambda t: t.value, reverse=opt.direction == "maximize")
    values = {}
    for p in opt.space.params:
        source = next((t for t in ranked if p.name in t.params), None)
        if p.name in fixed:
            values[p.name] = fixed[p.name]
        elif source is not None:
            values[p.name] = source.params[p.name]
        else:  # never active in any trial
            values[p.name] = _middle(p)
    return values


def _middle(p: Param) -> Any:
    """The first choice, or the middle of the range (geometric when `log`)."""
    if isinstance(p, Categorical):
        return p.choices[0]
    middle = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
    return middle if isinstance(p, Float) else int(round(middle))


def _active_config(space: Space, values: Mapping[str, Any]) -> dict[str, Any]:
    """The active parameters of `values` (which holds every parameter), in column order."""
    config: dict[str, Any] = {}
    for p in space.params:  # parents come first
        if p.parent is not None:
            parent = space[p.parent]
            if p.parent not in config or parent.index(config[p.parent]) not in {
                    parent.index(v) for v in p.allowed}:
                continue
        config[p.name] = values[p.name]
    return config


def _held(space: Space, names: list[str], values: Mapping[str, Any]) -> list[str]:
    """The parameters other than `names` that are active somewhere on the slice."""
    configs = [_active_config(space, values)] + [
        _active_config(space, {**values, n: c}) for n in names
        if isinstance(space[n], Categorical) for c in space[n].choices]
    return [n for n in space.names if n not in names and any(n in c for c in configs)]


def _check_active(space: Space, names: list[str], values: Mapping[str, Any]) -> None:
    config = _active_config(space, values)
    for name in names:
        p = space[name]
        if name not in config:
            raise ArgumentError(
                f"plot_slice: {name!r} is inactive when {p.parent!r} = "
                f"{values[p.parent]!r}; fix its parent, e.g. fixed={{{p.parent!r}: "
                f"{p.allowed[0]!r}}}.")


def _slice_model(opt: Optimizer, done: list[Trial]) -> tuple[BoptGP, Tensor, OutputTransform]:
    """The GP the engine would fit on `done`, its `n x 1` targets and their transform.

    This reads the optimizer's private `_training_data`, `_theta` and `_theta_n` (and runs
    under the engine's thread setting) so the plot shows the engine's model; it calls
    `fit_gp` itself instead of `_fit`, which would overwrite the engine's warm start.
    """
    with opt._lock, _torch_threads(opt._threads_for_suggest()):
        X, Y, transform, _, _ = opt._training_data(done, opt.device)
        warm = None if opt._theta is None else opt._theta.to(X.device)
        model, _, _ = fit_gp(X, Y, opt.space.layout, warm_start=warm,
                             max_iter=0 if opt._reuse_hyperparameters(X.shape[0]) else None)
    return model, Y, transform


def _objective_band(transform: OutputTransform, mean: Tensor, std: Tensor
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior median, 2.3rd and 97.7th percentiles in objective units, each `b`."""
    quantiles = torch.stack([mean, mean - 2 * std, mean + 2 * std])  # 3 x b
    median, a, b = transform.inverse(quantiles).cpu().numpy()
    return median, np.minimum(a, b), np.maximum(a, b)  # minimising flips the ends


def _grid_values(p: Param, num: int) -> list:
    if isinstance(p, Categorical):
        return list(p.choices)
    spaced = np.geomspace if p.log else np.linspace
    grid = np.clip(spaced(p.low, p.high, num), p.low, p.high)
    if isinstance(p, Float):
        return grid.tolist()
    return sorted({int(round(v)) for v in grid})


def _posterior(opt: Optimizer, model: BoptGP, configs: list[dict]) -> tuple[Tensor, Tensor, Tensor]:
    """The `b` configs encoded as `b x 1 x d` candidates, and the posterior mean and std
    there, each `b` (GP scale)."""
    grid = opt.space.encode(configs, device=opt.device).unsqueeze(-2)  # b x 1 x d
    with torch.no_grad():
        mean, std = model.mean_std(grid)  # b x 1 each
    return grid, mean.squeeze(-1), std.squeeze(-1)  # b each


def _acquisitions(opt: Optimizer, model: BoptGP, Y: Tensor, grid: Tensor, mean: Tensor,
                  std: Tensor) -> dict[str, np.ndarray]:
    """EI, UCB and a Thompson sample on the `b x 1 x d` grid, each `b`, scaled to [0, 1]."""
    beta = opt.beta if opt.beta is not None else ucb_beta(Y.shape[0], opt.space.layout.d)
    generator = torch.Generator(device=opt.device).manual_seed(opt.seed)
    with torch.no_grad():
        path = draw_posterior_path(model, generator=generator)
        curves = {"expected improvement": expected_improvement(mean, std, Y.max()),
                  f"UCB (beta={beta:.2f})": upper_confidence_bound(mean, std, beta),
                  "Thompson sample": path(grid).squeeze(-1)}  # b each
    scaled = {}
    for label, curve in curves.items():
        c = curve.cpu().numpy()
        span = c.max() - c.min()
        scaled[label] = (c - c.min()) / span if span > 0 else np.zeros_like(c)
    return scaled


def _coordinates(space: Space, trials: list[Trial], names: list[str]) -> list[np.ndarray]:
    """Each trial's position along `names` (categorical: index), for the trials where all
    of `names` are active; one array per name."""
    keep = [t for t in trials if all(n in t.params for n in names)]
    coords = []
    for n in names:
        p = space[n]
        raw = [t.params[n] for t in keep]
        coords.append(np.array([p.index(v) for v in raw] if isinstance(p, Categorical) else raw,
                               dtype=float))
    return coords


def _observations(space: Space, done: list[Trial], names: list[str], maximize: bool
                  ) -> tuple[list[np.ndarray], np.ndarray, int | None]:
    """Coordinates along `names` (categorical: index) of the trials where all are active,
    their values, and the position of the best trial among them (None if absent)."""
    keep = [i for i, t in enumerate(done) if all(n in t.params for n in names)]
    coords = _coordinates(space, [done[i] for i in keep], names)
    y = np.array([t.value for t in done], dtype=float)
    best = int(np.argmax(y) if maximize else np.argmin(y))
    return coords, y[keep], keep.index(best) if best in keep else None


def _slice_1d(opt: Optimizer, model: BoptGP, Y: Tensor, transform: OutputTransform,
              done: list[Trial], name: str, values: dict, num: int,
              pending: list[np.ndarray]) -> Figure:
    p = opt.space[name]
    levels = _grid_values(p, num)
    configs = [_active_config(opt.space, {**values, name: v}) for v in levels]
    grid, mean, std = _posterior(opt, model, configs)
    acq = _acquisitions(opt, model, Y, grid, mean, std)
    median, low, high = _objective_band(transform, mean, std)
    categorical = isinstance(p, Categorical)
    x = np.arange(len(levels), dtype=float) if categorical else np.array(levels, dtype=float)
    fig, (top, bottom) = _pyplot().subplots(2, 1, sharex=True, figsize=(7.0, 6.0),
                                            height_ratios=[2, 1], layout="constrained")
    if categorical:
        top.errorbar(x, median, yerr=np.stack([median - low, high - median]), fmt="o",
                     capsize=4, color=_MODEL_COLOR, label="posterior median, 95% band")
    else:
        top.fill_between(x, low, high, color=_MODEL_COLOR, alpha=0.2, lw=0, label="95% band")
        top.plot(x, median, color=_MODEL_COLOR, label="posterior median")
    maximize = opt.direction == "maximize"
    (obs_x,), obs_y, best = _observations(opt.space, done, [name], maximize)
    if categorical:
        obs_x = obs_x + np.random.default_rng(0).uniform(-0.15, 0.15, obs_x.size)  # seeded jitter
    top.scatter(obs_x, obs_y, s=18, color="k", zorder=3, label="observations (projected)")
    if best is not None:
        top.scatter(obs_x[best], obs_y[best], marker="*", s=160, color=_BEST_COLOR,
                    edgecolor="k", lw=0.5, zorder=4, label="best trial")
    for k, x_next in enumerate(pending[0]):
        for ax in (top, bottom):
            ax.axvline(x_next, color=_NEXT_COLOR, ls="--", lw=1.2,
                       label="next suggestion (pending)" if k == 0 and ax is top else None)
    top.set_ylabel(f"objective\n({'higher' if maximize else 'lower'} is better)")
    top.set_title(f"Posterior along {name!r}")
    top.legend(fontsize="small")
    _plot_acquisitions(bottom, x, acq, categorical)
    if categorical:
        bottom.set_xticks(x, [str(c) for c in p.choices])
    elif p.log:
        bottom.set_xscale("log")
    bottom.set_xlabel(name + (" (log scale)" if getattr(p, "log", False) else ""))
    return fig


def _plot_acquisitions(ax: Axes, x: np.ndarray, acq: dict[str, np.ndarray],
                       categorical: bool) -> None:
    width = 0.8 / len(acq)
    for k, (label, curve) in enumerate(acq.items()):
        color = f"C{k + 1}"
        if categorical:
            ax.bar(x + (k - (len(acq) - 1) / 2) * width, curve, width, color=color, label=label)
        else:
            ax.plot(x, curve, color=color, label=label)
            top = int(np.argmax(curve))
            ax.plot(x[top], curve[top], "v", color=color, ms=7)
    ax.set_ylabel("acquisition\n(each scaled to [0, 1])")
    ax.legend(fontsize="x-small", ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))


def _slice_2d(opt: Optimizer, model: BoptGP, Y: Tensor, transform: OutputTransform,
              done: list[Trial], names: list[str], values: dict, num: int,
              pending: list[np.ndarray]) -> Figure:
    p, r = opt.space[names[0]], opt.space[names[1]]
    xs, ys = _grid_values(p, num), _grid_values(r, num)
    configs = [_active_config(opt.space, {**values, names[0]: a, names[1]: b})
               for b in ys for a in xs]  # rows follow the second parameter
    grid, mean, std = _posterior(opt, model, configs)
    shape = (len(ys), len(xs))
    median, low, high = _objective_band(transform, mean, std)
    maximize = opt.direction == "maximize"
    fields = {f"posterior median ({'higher' if maximize else 'lower'} is better)": median,
              "posterior spread (95% band width / 4)": (high - low) / 4}
    acq = _acquisitions(opt, model, Y, grid, mean, std)
    (obs_x, obs_y), _, best = _observations(opt.space, done, names, maximize)
    fig = _pyplot().figure(figsize=(12.0, 8.4), layout="constrained")
    cells = fig.add_gridspec(2, 6)
    model_axes = [fig.add_subplot(cells[0, :3]), fig.add_subplot(cells[0, 3:])]
    acq_axes = [fig.add_subplot(cells[1, 2 * k:2 * k + 2]) for k in range(3)]
    panels = [(ax, title, field, cmap, True) for ax, (title, field), cmap
              in zip(model_axes, fields.items(), ("viridis", "magma"))]
    panels += [(ax, f"{label} (scaled to [0, 1])", curve, "cividis", False)
               for ax, (label, curve) in zip(acq_axes, acq.items())]
    for ax, title, field, cmap, colorbar in panels:
        filled = ax.contourf(xs, ys, field.reshape(shape), levels=20, cmap=cmap)
        if colorbar:
            fig.colorbar(filled, ax=ax)
        ax.scatter(obs_x, obs_y, s=18, color="w", edgecolor="k", lw=0.6, label="observations")
        if best is not None:
            ax.scatter(obs_x[best], obs_y[best], marker="*", s=180, color=_BEST_COLOR,
                       edgecolor="k", lw=0.5, label="best trial")
        if pending[0].size:
            ax.scatter(pending[0], pending[1], marker="P", s=120, color=_NEXT_COLOR,
                       edgecolor="k", lw=0.6, label="next suggestion (pending)")
        if not colorbar:  # an acquisition: where it would propose on this slice
            top = int(np.argmax(field))
            ax.scatter(xs[top % len(xs)], ys[top // len(xs)], marker="X", s=140, color="r",
                       edgecolor="w", lw=0.8, label="maximum on this slice")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if p.log:
            ax.set_xscale("log")
        if r.log:
            ax.set_yscale("log")
    model_axes[0].legend(fontsize="small")
    acq_axes[0].legend(fontsize="x-small")
    return fig
