"""`plot_slice`: the GP's posterior and the acquisitions along one or two parameters.

The GP is the one the optimizer would fit (`bopt.proposal.fit_surrogate` on the optimizer's
public history and warm start); nothing of the optimizer changes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from bopt.acquisition import draw_posterior_path, expected_improvement, upper_confidence_bound
from bopt.acquisition.registry import ucb_weight
from bopt.engine import Optimizer
from bopt.errors import ArgumentError
from bopt.model import BoptGP
from bopt.plot.common import (BEST_COLOR, MODEL_COLOR, NEXT_COLOR, completed, format_value,
                              pyplot)
from bopt.proposal import fit_surrogate, reported_sems
from bopt.runtime import suggest_threads, torch_threads
from bopt.space import Categorical, Float, Param, Space
from bopt.trial import Trial
from bopt.validation import check_int
from bopt.warp import OutputTransform

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
    done = completed(history, "plot_slice", at_least=2)
    pending = _coordinates(opt.space, [t for t in history if t.status == "pending"], names)
    values = _reference_values(opt, done, dict(fixed or {}))
    _check_active(opt.space, names, values)
    _check_fixed_used(opt.space, names, values, dict(fixed or {}))
    model, Y, transform = _slice_model(opt, done)
    others = ", ".join(f"{n}={format_value(values[n])}" for n in _held(opt.space, names, values))
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
    if num_points is not None:
        check_int(num_points, "plot_slice: num_points", low=2)
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


def _held(space: Space, names: list[str], values: Mapping[str, Any]) -> list[str]:
    """The parameters other than `names` that are active somewhere on the slice."""
    configs = [space.active_config(values)] + [
        space.active_config({**values, n: c}) for n in names
        if isinstance(space[n], Categorical) for c in space[n].choices]
    return [n for n in space.names if n not in names and any(n in c for c in configs)]


def _check_active(space: Space, names: list[str], values: Mapping[str, Any]) -> None:
    config = space.active_config(values)
    for name in names:
        p = space[name]
        if name not in config:
            raise ArgumentError(
                f"plot_slice: {name!r} is inactive when {p.parent!r} = "
                f"{values[p.parent]!r}; fix its parent, e.g. fixed={{{p.parent!r}: "
                f"{p.allowed[0]!r}}}.")


def _check_fixed_used(space: Space, names: list[str], values: Mapping[str, Any],
                      fixed: dict) -> None:
    """A fixed value for a parameter that is inactive everywhere on the slice would be
    silently ignored: refuse it, saying why it is inactive."""
    used = set(_held(space, names, values))
    for name in fixed:
        if name not in used:
            p = space[name]
            raise ArgumentError(
                f"plot_slice: fixed[{name!r}] is never used: {name!r} is inactive on this "
                f"slice ({p.parent!r} = {values[p.parent]!r}, but {name!r} needs one of "
                f"{list(p.allowed)!r}); drop it, or fix {p.parent!r} as well.")


def _slice_model(opt: Optimizer, done: list[Trial]) -> tuple[BoptGP, Tensor, OutputTransform]:
    """The GP the optimizer would fit on `done`, its `n x 1` targets and their transform.

    Fitted from the optimizer's public history and warm start, under its thread setting;
    the optimizer itself is not changed.

    Raises:
        ArgumentError: no hyperparameters give a usable GP on these observations.
    """
    X = opt.space.encode([t.params for t in done], device=opt.device)
    values = torch.tensor([t.value for t in done], dtype=torch.float64, device=opt.device)
    with torch_threads(suggest_threads(opt.device, opt.num_threads, len(done))):
        surrogate = fit_surrogate(X, values, opt.space.layout,
                                  maximize=opt.direction == "maximize",
                                  warm_start=opt.warm_start, refit_growth=opt.refit_growth,
                                  sems=reported_sems([t.sem for t in done], opt.device))
    if surrogate.model is None:
        raise ArgumentError(f"plot_slice: no usable GP on these {len(done)} observations "
                            f"({'; '.join(surrogate.warnings)}).")
    return surrogate.model, surrogate.targets, surrogate.transform


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
    beta = ucb_weight(opt.beta, Y.shape[0], opt.space.layout.d)
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
    configs = [opt.space.active_config({**values, name: v}) for v in levels]
    grid, mean, std = _posterior(opt, model, configs)
    acq = _acquisitions(opt, model, Y, grid, mean, std)
    median, low, high = _objective_band(transform, mean, std)
    categorical = isinstance(p, Categorical)
    x = np.arange(len(levels), dtype=float) if categorical else np.array(levels, dtype=float)
    fig, (top, bottom) = pyplot().subplots(2, 1, sharex=True, figsize=(7.0, 6.0),
                                            height_ratios=[2, 1], layout="constrained")
    if categorical:
        top.errorbar(x, median, yerr=np.stack([median - low, high - median]), fmt="o",
                     capsize=4, color=MODEL_COLOR, label="posterior median, 95% band")
    else:
        top.fill_between(x, low, high, color=MODEL_COLOR, alpha=0.2, lw=0, label="95% band")
        top.plot(x, median, color=MODEL_COLOR, label="posterior median")
    maximize = opt.direction == "maximize"
    (obs_x,), obs_y, best = _observations(opt.space, done, [name], maximize)
    if categorical:
        obs_x = obs_x + np.random.default_rng(0).uniform(-0.15, 0.15, obs_x.size)  # seeded jitter
    top.scatter(obs_x, obs_y, s=18, color="k", zorder=3, label="observations (projected)")
    if best is not None:
        top.scatter(obs_x[best], obs_y[best], marker="*", s=160, color=BEST_COLOR,
                    edgecolor="k", lw=0.5, zorder=4, label="best trial")
    for k, x_next in enumerate(pending[0]):
        for ax in (top, bottom):
            ax.axvline(x_next, color=NEXT_COLOR, ls="--", lw=1.2,
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
    configs = [opt.space.active_config({**values, names[0]: a, names[1]: b})
               for b in ys for a in xs]  # rows follow the second parameter
    grid, mean, std = _posterior(opt, model, configs)
    median, low, high = _objective_band(transform, mean, std)
    maximize = opt.direction == "maximize"
    acq = _acquisitions(opt, model, Y, grid, mean, std)
    (obs_x, obs_y), _, best = _observations(opt.space, done, names, maximize)
    fig = pyplot().figure(figsize=(12.0, 8.4), layout="constrained")
    cells = fig.add_gridspec(2, 6)
    model_axes = [fig.add_subplot(cells[0, :3]), fig.add_subplot(cells[0, 3:])]
    acq_axes = [fig.add_subplot(cells[1, 2 * k:2 * k + 2]) for k in range(3)]
    # The spread spans orders of magnitude (tiny at the data, large in an extrapolated
    # corner): a log colour scale shows both.
    panels = [(model_axes[0], f"posterior median ({'higher' if maximize else 'lower'} is "
               "better)", median, "viridis", "linear"),
              (model_axes[1], "posterior spread (95% band width / 4, log colour scale)",
               (high - low) / 4, "magma", "log")]
    panels += [(ax, f"{label} (scaled to [0, 1])", curve, "cividis", None)
               for ax, (label, curve) in zip(acq_axes, acq.items())]
    for ax, title, field, cmap, scale in panels:
        _contour_panel(fig, ax, xs, ys, field.reshape(len(ys), len(xs)), cmap, scale)
        ax.scatter(obs_x, obs_y, s=18, color="w", edgecolor="k", lw=0.6, label="observations")
        if best is not None:
            ax.scatter(obs_x[best], obs_y[best], marker="*", s=180, color=BEST_COLOR,
                       edgecolor="k", lw=0.5, label="best trial")
        if pending[0].size:
            ax.scatter(pending[0], pending[1], marker="P", s=120, color=NEXT_COLOR,
                       edgecolor="k", lw=0.6, label="next suggestion (pending)")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_xscale("log" if p.log else "linear")
        ax.set_yscale("log" if r.log else "linear")
    model_axes[0].legend(fontsize="small")
    acq_axes[0].legend(fontsize="x-small")
    return fig


def _contour_panel(fig, ax: Axes, xs: list, ys: list, field: np.ndarray, cmap: str,
                   scale: str | None) -> None:
    """Filled contours of a `len(ys) x len(xs)` field; with a colour bar on a linear or log
    `scale`, or, for an acquisition (`scale` None), its maximum on the slice marked."""
    if scale == "log" and float(field.max()) > 0:
        from matplotlib.colors import LogNorm

        positive = field[field > 0]
        low = max(float(positive.min()), float(field.max()) * 1e-6)
        levels = np.geomspace(low, float(field.max()) * (1 + 1e-9), 21)
        filled = ax.contourf(xs, ys, np.clip(field, low, None), levels=levels, cmap=cmap,
                             norm=LogNorm(levels[0], levels[-1]))
    else:
        filled = ax.contourf(xs, ys, field, levels=20, cmap=cmap)
    if scale is not None:
        fig.colorbar(filled, ax=ax)
        return
    top = int(np.argmax(field))
    ax.scatter(xs[top % len(xs)], ys[top // len(xs)], marker="X", s=140, color="r",
               edgecolor="w", lw=0.8, label="maximum on this slice")
