"""The plots in bopt/plot.py: each draws a figure with the expected panels, saves to PNG,
and leaves the optimizer as it was; every ArgumentError they raise, by its message."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported anywhere

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from bopt import ArgumentError, Categorical, Float, Optimizer, ParameterError, Space
from bopt.plot import plot_convergence, plot_diagnostics, plot_importance, plot_slice


def _objective(params: dict) -> float:
    shift = {"a": 0.0, "b": 0.5, "c": 1.0}[params["kind"]]
    return (params["x"] - 0.3) ** 2 + (math.log10(params["rate"]) + 2) ** 2 + shift


def _space() -> Space:
    return Space([Float("x", -2.0, 2.0), Float("rate", 1e-3, 1.0, log=True),
                  Categorical("kind", ["a", "b", "c"])])


@pytest.fixture(scope="module")
def opt() -> Optimizer:
    """A tiny seeded run: 3 Sobol points, then 5 model rounds (about a second)."""
    opt = Optimizer(_space(), n_initial=3, seed=0, device="cpu", num_raw_samples=64,
                    num_restarts=2)
    opt.minimize(_objective, 8, progress=False)
    return opt


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _check_figure(fig, num_axes: int, tmp_path=None) -> None:
    """A Figure with `num_axes` axes, something drawn, and (given `tmp_path`) a non-empty
    PNG; rendering takes most of these tests' time, so variants skip it."""
    assert isinstance(fig, Figure)
    assert len(fig.axes) == num_axes
    assert any(ax.lines or ax.collections or ax.patches for ax in fig.axes)
    if tmp_path is None:
        return
    path = tmp_path / "figure.png"
    fig.savefig(path, dpi=40)
    assert path.stat().st_size > 1000


def _best_line(ax) -> np.ndarray:
    (line,) = [ln for ln in ax.lines if ln.get_label() == "best so far"]
    return np.asarray(line.get_ydata())


# --------------------------------------------------------------------------- convergence


def test_convergence_draws_best_so_far_and_shades_the_initial_design(opt, tmp_path):
    fig = plot_convergence(opt)
    _check_figure(fig, 1, tmp_path)
    ax = fig.axes[0]
    values = [t.value for t in opt.history]
    np.testing.assert_allclose(_best_line(ax), np.minimum.accumulate(values), rtol=0, atol=0)
    shaded = [p for p in ax.patches if p.get_label() == "initial design (Sobol)"]
    assert len(shaded) == 1
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(values)


def test_convergence_maximize_follows_the_running_maximum():
    opt = Optimizer(_space(), acquisition="sobol", seed=1, device="cpu", direction="maximize")
    opt.minimize(_objective, 6, progress=False)
    fig = plot_convergence(opt)
    _check_figure(fig, 1)
    values = [t.value for t in opt.history]
    np.testing.assert_allclose(_best_line(fig.axes[0]), np.maximum.accumulate(values), rtol=0,
                               atol=0)
    assert "maximize" in fig.axes[0].get_title()


def test_convergence_with_an_optimum_shows_regret_on_a_log_scale(opt):
    fig = plot_convergence(opt.history, optimum=0.0)  # the objective's minimum
    _check_figure(fig, 1)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    values = np.array([t.value for t in opt.history])
    np.testing.assert_allclose(_best_line(ax), np.minimum.accumulate(values), rtol=0, atol=0)


def test_convergence_draws_zero_regret_below_the_smallest_positive_one():
    opt = Optimizer(_space(), acquisition="sobol", device="cpu")
    for value in (3.0, 1.0, 0.5):
        opt.observe(opt.suggest(), value)
    fig = plot_convergence(opt, optimum=0.5)
    np.testing.assert_allclose(_best_line(fig.axes[0]), [2.5, 0.5, 0.05], rtol=1e-12)


def test_convergence_groups_dots_by_source():
    opt = Optimizer(_space(), acquisition="random", n_initial=2, device="cpu")
    opt.observe({"x": 0.0, "rate": 0.1, "kind": "a"}, 2.0)  # external
    opt.observe(opt.suggest(), 1.0)
    fig = plot_convergence(opt)
    labels = [c.get_label() for c in fig.axes[0].collections]
    assert labels == ["observed (other)"]  # neither Sobol nor GP: no empty legend entries
    assert not [p for p in fig.axes[0].patches if p.get_label() == "initial design (Sobol)"]


def test_convergence_draws_on_given_axes(opt):
    fig, ax = plt.subplots()
    assert plot_convergence(opt, ax=ax) is fig


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_has_four_panels_over_the_rounds(opt, tmp_path):
    fig = plot_diagnostics(opt)
    _check_figure(fig, 4, tmp_path)
    lengthscales, noise, lml, seconds = fig.axes
    assert [ln.get_label() for ln in lengthscales.lines] == ["x", "rate", "kind"]
    model_ids = [r.trial_id for r in opt.diagnostics if r.lengthscales]
    assert list(noise.lines[0].get_xdata()) == model_ids == list(lml.lines[0].get_xdata())
    assert len(seconds.lines) == 3
    assert lengthscales.get_yscale() == "log"


def test_diagnostics_and_importance_before_any_model_round_still_draw():
    opt = Optimizer(_space(), n_initial=3, device="cpu")
    opt.observe(opt.suggest(), 1.0)
    fig = plot_diagnostics(opt)
    _check_figure(fig, 4)
    assert "no GP round yet" in fig.axes[0].texts[0].get_text()
    fig = plot_importance(opt)
    _check_figure(fig, 1 + 3 + 1)
    assert "no GP fit yet" in fig.axes[0].texts[0].get_text()


# --------------------------------------------------------------------------- importance


def test_importance_bars_sum_to_one_largest_on_top(opt, tmp_path):
    fig = plot_importance(opt)
    _check_figure(fig, 1 + 3 + 1, tmp_path)  # bars, one scatter per parameter, colour bar
    bars = fig.axes[0].patches
    widths = [bar.get_width() for bar in bars]
    assert len(bars) == 3 and math.isclose(sum(widths), 1.0, rel_tol=1e-12)
    assert widths == sorted(widths)  # barh draws the first bar at the bottom
    last = [r for r in opt.diagnostics if r.lengthscales][-1]
    top = fig.axes[0].get_yticklabels()[-1].get_text()
    assert top == min(last.lengthscales, key=last.lengthscales.get)
    for ax in fig.axes[1:4]:
        assert ax.collections
    assert [t.get_text() for t in fig.axes[3].get_xticklabels()] == ["a", "b", "c"]
    assert fig.axes[2].get_xscale() == "log"


# --------------------------------------------------------------------------- slices


def test_slice_1d_in_user_units_leaves_the_optimizer_unchanged(opt):
    warm = opt.warm_start
    before = (opt.history, opt.diagnostics, warm.theta.clone(), warm.num_observations)
    fig = plot_slice(opt, ["rate"])
    _check_figure(fig, 2)  # the 2-D test saves a PNG
    posterior, acquisition = fig.axes
    mean = [ln for ln in posterior.lines if ln.get_label() == "posterior median"][0]
    assert min(mean.get_xdata()) == pytest.approx(1e-3) and max(mean.get_xdata()) == 1.0
    assert np.isfinite(mean.get_ydata()).all()
    assert acquisition.get_xscale() == "log"
    curves = [ln for ln in acquisition.lines if not ln.get_label().startswith("_")]
    assert len(curves) == 3
    for curve in curves:
        assert np.nanmin(curve.get_ydata()) == 0.0 and np.nanmax(curve.get_ydata()) == 1.0
    after = (opt.history, opt.diagnostics, opt.warm_start.theta, opt.warm_start.num_observations)
    assert before[:2] == after[:2] and before[3] == after[3]
    torch.testing.assert_close(before[2], after[2], rtol=0, atol=0)


def test_slice_1d_categorical_shows_each_choice(opt):
    fig = plot_slice(opt, "kind", fixed={"x": 0.3})
    _check_figure(fig, 2)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["a", "b", "c"]
    assert len(fig.axes[1].patches) == 3 * 3  # three acquisitions per choice
    assert any("others fixed at: x=0.3," in text.get_text() for text in fig.texts)


def test_slice_2d_draws_mean_and_std_maps(opt, tmp_path):
    fig = plot_slice(opt, ["x", "rate"], num_points=12)
    _check_figure(fig, 2 + 2 + 3, tmp_path)  # two maps, their colour bars, three acquisitions
    mean_ax, std_ax = fig.axes[:2]
    assert mean_ax.get_xlabel() == "x" and mean_ax.get_ylabel() == "rate"
    assert mean_ax.get_yscale() == "log"
    assert mean_ax.get_ylim() == pytest.approx((1e-3, 1.0))
    assert "spread" in std_ax.get_title() and "log colour scale" in std_ax.get_title()
    from matplotlib.colors import LogNorm

    spread = std_ax.collections[0]
    assert isinstance(spread.norm, LogNorm) and spread.norm.vmin > 0
    titles = [ax.get_title() for ax in fig.axes[2:5]]
    assert [t.split(" (")[0] for t in titles] == ["expected improvement", "UCB", "Thompson sample"]
    for ax in fig.axes[2:5]:  # each acquisition map marks its maximum
        assert any(c.get_label() == "maximum on this slice" for c in ax.collections)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_slice_is_in_the_objectives_units(direction):
    """Far from the GP's standardised scale (values near 1000), the median curve passes
    near the observations and the band contains them: the inverse transform is applied."""
    space = Space([Float("x", 0.0, 1.0)])
    opt = Optimizer(space, acquisition="sobol", seed=1, device="cpu", direction=direction)
    f = lambda p: 1000.0 + 50.0 * math.sin(6.0 * p["x"])  # noqa: E731
    opt.minimize(f, 10, progress=False)
    fig = plot_slice(opt, "x", num_points=400)
    posterior = fig.axes[0]
    median = [ln for ln in posterior.lines if ln.get_label() == "posterior median"][0]
    xs, ys = np.asarray(median.get_xdata()), np.asarray(median.get_ydata())
    observed = [(t.params["x"], t.value) for t in opt.history]
    for x, value in observed:
        assert abs(np.interp(x, xs, ys) - value) < 0.05 * 100.0  # 5% of the objective's range
    assert 940 < ys.min() and ys.max() < 1060


def test_slice_of_a_conditional_parameter_needs_its_parent():
    space = Space([Float("x", 0.0, 1.0), Categorical("opt", ["adam", "sgd"]),
                   Float("momentum", 0.0, 1.0, when={"opt": ["sgd"]})])
    opt = Optimizer(space, acquisition="sobol", seed=0, device="cpu")
    opt.minimize(lambda p: p["x"] + p.get("momentum", 0.5), 6, progress=False)
    fig = plot_slice(opt, ["momentum"], fixed={"opt": "sgd"})
    _check_figure(fig, 2)
    with pytest.raises(ArgumentError, match=r"plot_slice: 'momentum' is inactive when 'opt' = "
                       r"'adam'; fix its parent, e\.g\. fixed=\{'opt': 'sgd'\}"):
        plot_slice(opt, ["momentum"], fixed={"opt": "adam"})
    with pytest.raises(ArgumentError, match=r"fixed\['momentum'\] is never used: 'momentum' is "
                       r"inactive on this slice \('opt' = 'adam', but 'momentum' needs one of "
                       r"\['sgd'\]\)"):
        plot_slice(opt, ["x"], fixed={"opt": "adam", "momentum": 0.9})
    fig = plot_slice(opt, ["x"], fixed={"opt": "sgd", "momentum": 0.9})  # used: accepted
    assert "momentum=0.9" in fig._suptitle.get_text()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda o: plot_convergence(o, direction="up"),
     r"direction must be one of \('minimize', 'maximize'\); got 'up'"),
    (lambda o: plot_convergence([o.history[0], 3]),
     r"plot_convergence: item #1 is int 3; pass an Optimizer or a list of Trials"),
    (lambda o: plot_convergence("trials"),
     r"plot_convergence: expected an Optimizer or a list of Trials; got str"),
    (lambda o: plot_convergence([]),
     r"plot_convergence: needs at least 1 completed trial\(s\), got 0; observe more values"),
    (lambda o: plot_convergence(o, optimum=float("nan")),
     r"plot_convergence: optimum must be a finite number; got nan"),
    (lambda o: plot_convergence(o, optimum=1.0),
     r"plot_convergence: trial \d+ observed [\d.]+, better than optimum=1.0 for "
     r"direction='minimize'; pass the best achievable value"),
    (lambda o: plot_diagnostics(o, axes=plt.subplots(2)[1]),
     r"plot_diagnostics: axes must hold 4 Axes; got 2"),
    (lambda o: plot_slice(o, []),
     r"plot_slice: params must be one or two distinct names; got \[\]"),
    (lambda o: plot_slice(o, ["x", "x"]), r"params must be one or two distinct names"),
    (lambda o: plot_slice(o, 3), r"params must be one or two distinct names; got 3"),
    (lambda o: plot_slice(o, ["y"]),
     r"plot_slice: unknown parameter 'y'; the space has \['x', 'rate', 'kind'\]"),
    (lambda o: plot_slice(o, ["x"], fixed=[("rate", 0.1)]),
     r"plot_slice: fixed must be a dict \{name: value\}"),
    (lambda o: plot_slice(o, ["x"], fixed={"x": 0.1}),
     r"plot_slice: 'x' is both sliced and fixed; drop it from fixed"),
    (lambda o: plot_slice(o, ["x", "kind"]),
     r"plot_slice: a 2-D slice needs two numeric parameters, but 'kind' is categorical"),
    (lambda o: plot_slice(o, ["x"], num_points=1),
     r"plot_slice: num_points must be an int >= 2; got 1"),
])
def test_bad_arguments_are_named(opt, call, match):
    with pytest.raises(ArgumentError, match=match):
        call(opt)


def test_slice_checks_fixed_values_against_the_space(opt):
    with pytest.raises(ParameterError, match=r"config #0: .*'kind'"):
        plot_slice(opt, ["x"], fixed={"kind": "z"})


def test_empty_optimizers_are_refused():
    opt = Optimizer(_space(), device="cpu")
    with pytest.raises(ArgumentError, match=r"plot_diagnostics: no suggestion round yet; "
                                            r"call suggest\(\) first"):
        plot_diagnostics(opt)
    with pytest.raises(ArgumentError, match=r"plot_importance: needs at least 1 completed"):
        plot_importance(opt)
    opt.observe({"x": 0.0, "rate": 0.1, "kind": "a"}, 1.0)
    with pytest.raises(ArgumentError, match=r"plot_slice: needs at least 2 completed trial\(s\), "
                                            r"got 1"):
        plot_slice(opt, ["x"])


def test_slices_mark_the_pending_suggestion():
    space = Space([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    opt = Optimizer(space, seed=0, n_initial=4, device="cpu")
    opt.minimize(lambda p: (p["x"] - 0.3) ** 2 + p["y"], 6, progress=False)
    nxt = opt.suggest()
    one = plot_slice(opt, "x", num_points=50)
    lines = [ln for ln in one.axes[0].lines if ln.get_label() == "next suggestion (pending)"]
    assert len(lines) == 1 and lines[0].get_xdata()[0] == pytest.approx(nxt.params["x"])
    two = plot_slice(opt, ["x", "y"], num_points=10)
    for ax in two.axes[:5]:
        marks = [c for c in ax.collections if c.get_label() == "next suggestion (pending)"]
        assert len(marks) == 1
        assert marks[0].get_offsets()[0].tolist() == pytest.approx([nxt.params["x"], nxt.params["y"]])
