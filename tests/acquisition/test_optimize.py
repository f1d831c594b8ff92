"""Tests for bopt.acquisition.optimize.multistart_maximize on scores with known maximisers."""

import math

import pytest
import torch

from bopt.acquisition import LogEI, multistart_maximize, unit_to_layout
from bopt.errors import ArgumentError
from bopt.layout import (Condition, IntegerColumn, Layout, active_mask, canonicalize,
                         decode_integer, integer_grid_round)
from bopt.sobol import sobol_points

CONT = Layout(d=3, continuous=(0, 1, 2))
# col 0 float, col 1 integer 1..10, col 2 log-integer 1..100, cols 3, 4 categoricals (3, 4).
MIXED = Layout(d=5, continuous=(0, 1, 2),
               integers=(IntegerColumn(1, 1, 10, False), IntegerColumn(2, 1, 100, True)),
               categorical=(3, 4), categorical_sizes=(3, 4))
# col 0 parent categorical (3); col 1 float active iff parent == 0; col 2 categorical (2)
# active iff parent == 1; col 3 an unconditional float.
CONDITIONAL = Layout(d=4, continuous=(1, 3), categorical=(0, 2), categorical_sizes=(3, 2),
                     conditions=(Condition(1, 0, (0,)), Condition(2, 0, (1,))))
LAYOUTS = {"continuous": CONT, "mixed": MIXED, "conditional": CONDITIONAL}


def _generic_score(layout):
    """A smooth score over the numeric columns plus a bonus per category index."""
    numeric, cats = list(layout.continuous), list(layout.categorical)

    def score(X):  # ... x q x d -> ...
        value = -((X[..., numeric] - 0.3) ** 2).sum(-1)
        if cats:
            value = value + 0.1 * torch.cos(X[..., cats]).sum(-1)
        return value.sum(-1)
    return score


def _maximize(score, layout, seed=0, **kwargs):
    kwargs.setdefault("num_restarts", 4)
    kwargs.setdefault("num_raw_samples", 64)
    return multistart_maximize(score, layout, generator=torch.Generator().manual_seed(seed),
                               **kwargs)


def _valid_sobol_points(layout, n, seed, q=1):
    """`n x q x d` valid points from a fresh Sobol set: categories indexed, integers rounded."""
    U = sobol_points(n, layout.d * q, seed).reshape(n, q, layout.d)
    return integer_grid_round(unit_to_layout(U, layout), layout)


@pytest.mark.parametrize("with_seeds", [False, True])
@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_output_is_valid_canonical_and_sorted(kind, with_seeds):
    layout = LAYOUTS[kind]
    score = _generic_score(layout)
    seeds = _valid_sobol_points(layout, 3, seed=9).squeeze(1) if with_seeds else None
    X, values = _maximize(score, layout, seeds=seeds)
    assert X.shape == (4, 1, layout.d) and values.shape == (4,)
    numeric = list(layout.continuous)
    assert bool(((X[..., numeric] >= 0) & (X[..., numeric] <= 1)).all())
    active = active_mask(X, layout)
    for col, k in zip(layout.categorical, layout.categorical_sizes):
        idx = X[..., col]
        assert torch.equal(idx, idx.round())
        assert bool(((idx >= 0) & (idx <= k - 1) | ~active[..., col]).all())
    torch.testing.assert_close(integer_grid_round(X, layout), X, atol=0.0, rtol=0.0)
    torch.testing.assert_close(canonicalize(X, layout), X, atol=0.0, rtol=0.0)
    assert bool((values[:-1] >= values[1:]).all())
    torch.testing.assert_close(values, score(X), atol=0.0, rtol=0.0)


# Maxima of `_generic_score`: numeric columns at 0.3 or their nearest grid value (integer
# 4 of 1..10 encodes as 1/3; log-integer 4 of 1..100 as log 4 / log 100), categories at 0
# (cos 0 = 1). Conditional: parent 1 with its child at 0 gives 0.1 (cos 1 + cos 0) but
# pins the inactive float at 0.5; parent 0 leaves the inactive child at index 2 (cos 2 < 0).
OPTIMA = {
    "continuous": 0.0,
    "mixed": 0.2 - (1 / 3 - 0.3) ** 2 - (math.log(4) / math.log(100) - 0.3) ** 2,
    "conditional": 0.1 * (math.cos(1.0) + 1.0) - 0.2**2,
}


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_reaches_the_optimum_and_beats_a_fresh_sobol_set(kind):
    layout = LAYOUTS[kind]
    score = _generic_score(layout)
    _, values = _maximize(score, layout, num_raw_samples=64)
    baseline = float(score(_valid_sobol_points(layout, 64, seed=123)).max())
    assert baseline <= OPTIMA[kind]
    assert float(values[0]) >= baseline
    assert float(values[0]) == pytest.approx(OPTIMA[kind], abs=1e-8)


@pytest.mark.parametrize("q", [1, 2])
def test_finds_the_maximiser_of_a_concave_score(q, dtype):
    score = _generic_score(CONT)
    X, values = _maximize(score, CONT, q=q, dtype=dtype)
    assert X.dtype == dtype and X.shape == (4, q, 3)
    atol = 1e-4 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(X[0], torch.full((q, 3), 0.3, dtype=dtype), atol=atol, rtol=0.0)
    assert float(values[0]) <= 0.0 and float(values[0]) >= -q * 3 * atol**2


def _table_score(table, cats, numeric):
    """Score = table[c0, c1] - (numeric - 0.6)^2 summed."""
    def score(X):
        idx = X[..., cats].round().long()  # ... x q x 2
        bonus = table[idx[..., 0], idx[..., 1]]
        return (bonus - ((X[..., numeric] - 0.6) ** 2).sum(-1)).sum(-1)
    return score


def test_enumeration_finds_a_non_separable_best_combination():
    layout = Layout(d=3, continuous=(0,), categorical=(1, 2), categorical_sizes=(3, 4))
    # The best cell (2, 1) sits in the worst row and column on average.
    table = torch.zeros(3, 4, dtype=torch.float64)
    table[2, :] = -1.0
    table[:, 1] = -1.0
    table[2, 1] = 1.0
    score = _table_score(table, [1, 2], [0])
    # Two raw candidates: the starts almost surely miss (2, 1); enumeration must find it.
    X, values = _maximize(score, layout, num_restarts=2, num_raw_samples=2)
    assert X[0, 0, 1:].tolist() == [2.0, 1.0]
    assert float(values[0]) == pytest.approx(1.0, abs=1e-8)


def test_one_flip_moves_find_the_best_separable_combination():
    layout = Layout(d=3, continuous=(0,), categorical=(1, 2), categorical_sizes=(3, 4))
    row = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    col = torch.tensor([0.3, 0.0, 0.1, 0.4], dtype=torch.float64)
    table = row[:, None] + col[None, :]  # best (2, 3), reachable by one-column changes
    score = _table_score(table, [1, 2], [0])
    X, values = _maximize(score, layout, num_restarts=2, num_raw_samples=2, enumerate_limit=1)
    assert X[:, 0, 1:].tolist() == [[2.0, 3.0], [2.0, 3.0]]
    torch.testing.assert_close(X[:, 0, 0], torch.full((2,), 0.6, dtype=torch.float64),
                               atol=1e-4, rtol=0.0)


def test_integer_moves_beat_rounding_the_relaxed_optimum():
    layout = Layout(d=2, continuous=(0, 1), integers=(IntegerColumn(1, 1, 10, False),))
    col = layout.integers[0]

    def score(X):
        # On the integer scale: relaxed optimum 7.4 rounds to 7, but 8 scores higher.
        v = decode_integer(X[..., 1], col)
        gap = v - 7.4
        asymmetric = torch.where(gap < 0, gap**2, 0.1 * gap**2)
        return (-asymmetric - (X[..., 0] - 0.5) ** 2).sum(-1)

    X, _ = _maximize(score, layout, num_restarts=3, num_raw_samples=16)
    assert float(decode_integer(X[0, 0, 1], col)) == pytest.approx(8.0, abs=1e-9)
    assert float(X[0, 0, 0]) == pytest.approx(0.5, abs=1e-4)


def test_conditional_score_picks_the_best_branch():
    # Branch parent == 0 with its float at 0.8 scores 1.0; branch 1 scores at most 0.5.
    def score(X):
        parent = X[..., 0]
        branch0 = 1.0 - (X[..., 1] - 0.8) ** 2
        branch1 = 0.5 * (X[..., 2] == 1).double()
        value = torch.where(parent == 0, branch0, torch.where(parent == 1, branch1, 0.0))
        return (value - (X[..., 3] - 0.3) ** 2).sum(-1)

    X, values = _maximize(score, CONDITIONAL, num_restarts=3, num_raw_samples=8)
    best = X[0, 0]
    assert best[0] == 0 and best[2] == 2  # child categorical inactive: its extra index
    torch.testing.assert_close(best[[1, 3]], torch.tensor([0.8, 0.3], dtype=torch.float64),
                               atol=1e-4, rtol=0.0)


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_equal_seeds_equal_results_and_global_rng_untouched(kind):
    layout = LAYOUTS[kind]
    score = _generic_score(layout)
    state = torch.random.get_rng_state()
    X1, v1 = _maximize(score, layout, seed=7)
    X2, v2 = _maximize(score, layout, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())
    torch.testing.assert_close(X1, X2, atol=0.0, rtol=0.0)
    torch.testing.assert_close(v1, v2, atol=0.0, rtol=0.0)


def test_seed_points_lead_to_a_narrow_peak():
    peak = torch.tensor([0.71, 0.13, 0.42], dtype=torch.float64)

    def score(X):  # a bump of width 0.02: invisible to 8 Sobol points
        return torch.exp(-((X - peak) ** 2).sum(-1) / (2 * 0.02**2)).sum(-1)

    _, without = _maximize(score, CONT, num_raw_samples=8)
    X, with_seeds = _maximize(score, CONT, num_raw_samples=8,
                              seeds=(peak + 0.03).unsqueeze(0))
    assert float(without[0]) < 0.5
    # The ascent stops once an iteration gains less than 1e-3 (1 + |value|): the top of the
    # bump to that precision, about 6e-4 from its centre.
    assert float(with_seeds[0]) == pytest.approx(1.0, abs=2e-3)
    torch.testing.assert_close(X[0, 0], peak, atol=2e-3, rtol=0.0)


def test_purely_categorical_layout():
    layout = Layout(d=2, categorical=(0, 1), categorical_sizes=(3, 4))
    table = torch.rand(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def score(X):  # no numeric column, hence no gradient: only discrete moves can act
        idx = X.round().long()
        return table[idx[..., 0], idx[..., 1]].sum(-1)

    X, values = _maximize(score, layout, num_restarts=2, num_raw_samples=2)
    best = divmod(int(table.argmax()), 4)
    assert X[0, 0].tolist() == [float(best[0]), float(best[1])]
    assert float(values[0]) == float(table.max())


def test_maximizes_log_ei_on_the_fitted_mixed_model(mixed_problem):
    model, layout = mixed_problem.model, mixed_problem.layout
    acquisition = LogEI(model, mixed_problem.Y.max())
    X, values = _maximize(acquisition, layout, num_restarts=4, num_raw_samples=64,
                          seeds=mixed_problem.X[mixed_problem.Y.squeeze(-1).argsort()[-3:]])
    with torch.no_grad():
        baseline = float(acquisition(_valid_sobol_points(layout, 256, seed=5)).max())
    assert bool(torch.isfinite(values).all())
    assert float(values[0]) >= baseline
    torch.testing.assert_close(canonicalize(X, layout), X, atol=0.0, rtol=0.0)


def test_a_single_restart_works():
    X, values = _maximize(_generic_score(CONT), CONT, num_restarts=1)
    assert X.shape == (1, 1, 3)
    torch.testing.assert_close(X[0, 0], torch.full((3,), 0.3, dtype=torch.float64),
                               atol=1e-4, rtol=0.0)


def test_q_above_one_needs_a_continuous_layout():
    with pytest.raises(ArgumentError, match=r"multistart_maximize\(q=2\): q > 1 needs a "
                                            r"purely continuous layout"):
        _maximize(_generic_score(MIXED), MIXED, q=2)


# --- conditional spaces: children a move switches on must get real values -------------------

def _nested_space():
    import bopt

    return bopt.Space([
        bopt.Categorical("a", list(range(9))),
        bopt.Categorical("b", list(range(8)), when={"a": [0, 1, 2, 3]}),
        bopt.Int("k", 0, 3, when={"a": 0}),
        bopt.Categorical("c", ["x", "y"], when={"b": [0, 1]}),
    ])


def _assert_valid(X, layout, *, on_grid=True):
    from bopt.layout import active_mask, canonicalize, integer_grid_round

    torch.testing.assert_close(canonicalize(X, layout), X, atol=0.0, rtol=0.0)
    if on_grid:
        torch.testing.assert_close(integer_grid_round(X, layout), X, atol=0.0, rtol=0.0)
    active = active_mask(X, layout)
    for col, k in zip(layout.categorical, layout.categorical_sizes):
        assert bool((X[..., col][active[..., col]] < k).all()), f"column {col} holds an invalid level"


def test_discrete_move_gives_switched_on_children_valid_values():
    from bopt.acquisition.optimize import _discrete_move

    space = _nested_space()
    layout = space.layout
    X = space.encode([{"a": 5}]).unsqueeze(1)  # b, k and c inactive

    def score(Z):  # prefers a = 0 (switching b and k on) and a high k
        return -Z[..., 0].abs().sum(-1) + Z[..., 2].sum(-1)

    moved = _discrete_move(score, X, layout, enumerate_limit=64)[:, 0]
    _assert_valid(moved, layout)
    (config,) = space.decode(moved)
    assert config["a"] == 0 and {"b", "k"} <= set(config)
    assert space.validate(config) == config


def test_perturbations_of_nested_conditional_points_are_valid():
    from bopt.acquisition.optimize import perturb

    space = _nested_space()
    seeds = space.encode(space.sample(20, seed=1))
    X = perturb(seeds, 300, space.layout, torch.Generator().manual_seed(0))
    _assert_valid(X, space.layout, on_grid=False)  # integers stay relaxed for the ascent


def test_multistart_on_a_conditional_space_returns_valid_points():
    space = _nested_space()

    def score(Z):
        return -(Z[..., 0] - 1).abs().sum(-1) + Z[..., 2].sum(-1)

    cands, _ = multistart_maximize(score, space.layout, generator=torch.Generator().manual_seed(0),
                                   num_raw_samples=64, num_restarts=4)
    _assert_valid(cands[:, 0], space.layout)
    for config in space.decode(cands[:, 0]):
        assert space.validate(config) == config


def test_alternation_stops_once_no_discrete_move_helps(monkeypatch):
    """Level 2 is best everywhere: once the starts hold it (from the raw candidates or the
    first move), a move changes nothing and the remaining alternations (and their
    ascents) are skipped."""
    import bopt.acquisition.optimize as optimize

    layout = Layout(d=2, continuous=(0,), categorical=(1,), categorical_sizes=(3,))

    def score(X):  # level 2 is best wherever x is: one move finds it, none improves on it
        return (-(X[..., 0] - 0.3) ** 2 + 0.5 * (X[..., 1] == 2)).sum(-1)

    moves, real = [], optimize._discrete_move
    monkeypatch.setattr(optimize, "_discrete_move",
                        lambda *a, **k: moves.append(1) or real(*a, **k))
    X, values = _maximize(score, layout, num_alternations=5)
    assert 1 <= len(moves) <= 2  # at most one that moved the starts, then one that did not
    assert X[0, 0, 1] == 2.0 and float(X[0, 0, 0]) == pytest.approx(0.3, abs=1e-3)


def test_columns_the_model_finds_flat_are_drawn_not_optimised():
    """With lengthscales marking column 1 flat (above FLAT_LENGTHSCALE), the ascent leaves it
    where its start drew it, and perturbations of a seed redraw it: the candidates spread
    over column 1 instead of inheriting the seed's bound. The other columns are still
    optimised. Without lengthscales, a gently sloped column 1 is pushed to its bound."""
    from bopt.acquisition.optimize import FLAT_LENGTHSCALE

    def score(X):  # column 0 matters; column 1 has a faint slope towards 0
        return (-(X[..., 0] - 0.7) ** 2 - 1e-3 * X[..., 1] - (X[..., 2] - 0.4) ** 2).sum(-1)

    seeds = torch.tensor([[0.7, 0.0, 0.4]], dtype=torch.float64)  # column 1 at its bound
    flat = torch.tensor([0.5, 2 * FLAT_LENGTHSCALE, 0.5], dtype=torch.float64)
    cands, _ = _maximize(score, CONT, seeds=seeds, seed_lengthscales=flat, num_restarts=8)
    torch.testing.assert_close(cands[:, 0, 0], torch.full((8,), 0.7, dtype=torch.float64),
                               atol=1e-3, rtol=0)
    torch.testing.assert_close(cands[:, 0, 2], torch.full((8,), 0.4, dtype=torch.float64),
                               atol=1e-3, rtol=0)
    assert float(cands[:, 0, 1].std()) > 0.1  # drawn, not pushed to one value
    pinned, _ = _maximize(score, CONT, seeds=seeds, num_restarts=8)
    assert float(pinned[:, 0, 1].max()) < 1e-6  # without: every candidate at the bound
