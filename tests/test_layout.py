"""Tests for bopt.layout: column bookkeeping, conditional activity and the integer grid."""

import math

import pytest
import torch

from bopt.layout import (INACTIVE_NUMERIC, Condition, IntegerColumn, Layout, active_mask,
                         canonicalize, decode_integer, encode_integer, fill_activated,
                         inactive_fill, integer_grid_round)

K_COLUMN = IntegerColumn(3, 1, 10, False)
LOG_COLUMN = IntegerColumn(4, 1, 100, True)
# col 0: categorical a (3 choices), unconditional
# col 1: categorical b (2 choices), active iff a in {0, 1}
# col 2: float x, active iff b == 0 (so a grandchild of a)
# col 3: integer k in 1..10, active iff a == 2
# col 4: log-integer in 1..100, unconditional; col 5: float, unconditional
NESTED = Layout(d=6, continuous=(2, 3, 4, 5), integers=(K_COLUMN, LOG_COLUMN),
                categorical=(0, 1), categorical_sizes=(3, 2),
                conditions=(Condition(1, 0, (0, 1)), Condition(2, 1, (0,)),
                            Condition(3, 0, (2,))))
FLAT = Layout(d=3, continuous=(0, 2), categorical=(1,), categorical_sizes=(4,))


def _rows(rows, dtype=torch.float64):
    return torch.tensor(rows, dtype=dtype)


# Rows of NESTED with their activity: the nesting case is row 2, where b still holds 0 but is
# inactive (a == 2), so x must be inactive too.
ROWS = [
    [0, 0, 0.3, 0.2, 0.6, 0.9],
    [1, 1, 0.3, 0.2, 0.6, 0.9],
    [2, 0, 0.3, 0.2, 0.6, 0.9],
    [2, 2, 0.5, 0.2, 0.6, 0.9],
]
ACTIVE = [
    [True, True, True, False, True, True],
    [True, True, False, False, True, True],
    [True, False, False, True, True, True],
    [True, False, False, True, True, True],
]
CANONICAL = [
    [0, 0, 0.3, 0.5, 0.6, 0.9],
    [1, 1, 0.5, 0.5, 0.6, 0.9],
    [2, 2, 0.5, 0.2, 0.6, 0.9],
    [2, 2, 0.5, 0.2, 0.6, 0.9],
]


def test_categorical_levels_add_an_inactive_level_to_conditional_columns():
    assert NESTED.categorical_levels == (3, 3)  # a is unconditional, b conditional
    assert FLAT.categorical_levels == (4,)
    assert Layout(d=2, continuous=(0, 1)).categorical_levels == ()


def test_active_mask_resolves_nested_conditions(dtype):
    X = _rows(ROWS, dtype)
    expected = torch.tensor(ACTIVE)
    assert torch.equal(active_mask(X, NESTED), expected)
    batched = active_mask(X.reshape(2, 2, NESTED.d), NESTED)  # ... x d
    assert torch.equal(batched, expected.reshape(2, 2, NESTED.d))
    assert bool(active_mask(torch.zeros(3, FLAT.d, dtype=dtype), FLAT).all())


def test_canonicalize_pins_inactive_entries(dtype):
    X = _rows(ROWS, dtype)
    canonical = canonicalize(X, NESTED)
    torch.testing.assert_close(canonical, _rows(CANONICAL, dtype), atol=0.0, rtol=0.0)
    torch.testing.assert_close(canonicalize(canonical, NESTED), canonical, atol=0.0, rtol=0.0)
    assert torch.equal(X, _rows(ROWS, dtype))  # the argument is not edited in place
    flat = _rows([[0.1, 3, 0.7]], dtype)
    torch.testing.assert_close(canonicalize(flat, FLAT), flat, atol=0.0, rtol=0.0)


def test_fill_activated_gives_switched_on_children_values():
    # Canonical points whose parent a was then moved (the inactive children still hold their
    # placeholders): row 0 from a = 2 to a = 0, twice, with fills choosing b = 1 and b = 0;
    # row 2 from a = 0 to a = 2, switching the integer k on.
    X = _rows([[0, 2, 0.5, 0.2, 0.6, 0.9],
               [0, 2, 0.5, 0.2, 0.6, 0.9],
               [2, 2, 0.5, 0.5, 0.6, 0.9],
               [0, 0, 0.3, 0.5, 0.6, 0.9]])  # row 3: nothing stuck, all kept
    fill = _rows([[1, 1, 0.8, 0.7, 0.1, 0.1],
                  [1, 0, 0.8, 0.7, 0.1, 0.1],
                  [1, 1, 0.8, 0.37, 0.1, 0.1],
                  [1, 1, 0.8, 0.7, 0.1, 0.1]])
    k = float(encode_integer(torch.tensor(4.0, dtype=torch.float64), K_COLUMN))  # 0.37 -> 4.33
    # Every active integer goes back on its grid: 0.6 is 15.85 on 1..100 (log), so 16.
    g = float(encode_integer(torch.tensor(16.0, dtype=torch.float64), LOG_COLUMN))
    expected = _rows([[0, 1, 0.5, 0.5, g, 0.9],  # b = 1: x stays inactive, k pinned
                      [0, 0, 0.8, 0.5, g, 0.9],  # b = 0 switches x on in the same pass
                      [2, 2, 0.5, k, g, 0.9],  # k takes its fill, on the integer grid
                      [0, 0, 0.3, 0.5, g, 0.9]])
    torch.testing.assert_close(fill_activated(X, NESTED, fill), expected, atol=1e-12, rtol=0.0)
    flat = _rows([[0.1, 3, 0.5]])
    torch.testing.assert_close(fill_activated(flat, FLAT, flat + 1), flat, atol=0.0, rtol=0.0)


def test_integer_grid_round_rounds_on_the_integer_scale(dtype):
    layout = Layout(d=3, continuous=(0, 1, 2),
                    integers=(IntegerColumn(1, 1, 10, False), IntegerColumn(2, 1, 100, True)))
    u = torch.linspace(0.0, 1.0, 101, dtype=dtype)
    X = torch.stack([u, u, u], dim=-1)  # 101 x 3
    rounded = integer_grid_round(X, layout)
    torch.testing.assert_close(rounded[:, 0], u, atol=0.0, rtol=0.0)  # the float column
    for col in layout.integers:
        before = decode_integer(X[:, col.column], col)
        after = decode_integer(rounded[:, col.column], col)
        # float32 carries ~1e-7 relative error through exp(log 100 u), hence 1e-4 at 100.
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        torch.testing.assert_close(after, after.round(), atol=tol, rtol=0.0)
        assert bool(((after - before).abs() <= 0.5 + tol).all())
    torch.testing.assert_close(integer_grid_round(rounded, layout), rounded, atol=1e-6, rtol=0.0)
    # u = 0.08 is 1.445 on 1..100 (log): 1 on the integer scale, though on the encoded scale
    # the grid point of 2 (0.151) is nearer than that of 1 (0).
    X = torch.tensor([[0.5, 0.5, 0.08]], dtype=dtype)
    assert float(integer_grid_round(X, layout)[0, 2]) == 0.0


def test_integer_grid_round_keeps_inactive_entries():
    # Row 2 of CANONICAL has k active; with a = 0 (row 0) k is inactive at 0.5, which would
    # round to 6 (encoded 5/9) if it were treated as active.
    X = _rows([CANONICAL[0], [2, 2, 0.5, 0.5, 0.6, 0.9]])
    rounded = integer_grid_round(X, NESTED)
    assert float(rounded[0, 3]) == INACTIVE_NUMERIC
    torch.testing.assert_close(rounded[1, 3], encode_integer(torch.tensor(6.0,
                               dtype=torch.float64), K_COLUMN), atol=1e-12, rtol=0.0)


@pytest.mark.parametrize("col", [IntegerColumn(0, 1, 10, False), IntegerColumn(0, -3, 4, False),
                                 IntegerColumn(0, 1, 100, True), IntegerColumn(0, 2, 4096, True)],
                         ids=["linear", "negative", "log", "log-wide"])
def test_encode_decode_integer_round_trip(col, dtype):
    v = torch.arange(col.low, col.high + 1, dtype=dtype)
    u = encode_integer(v, col)
    assert bool(((u >= 0) & (u <= 1)).all())
    assert float(u[0]) == 0.0 and float(u[-1]) == pytest.approx(1.0, abs=1e-6)
    assert bool((u.diff() > 0).all())
    back = decode_integer(u, col)
    torch.testing.assert_close(back.round(), v, atol=0.0, rtol=0.0)
    if dtype == torch.float64:
        torch.testing.assert_close(back, v, atol=1e-9, rtol=0.0)
    # Out-of-range inputs clamp to the ends.
    ends = decode_integer(torch.tensor([-0.5, 1.5], dtype=dtype), col)
    torch.testing.assert_close(ends, torch.tensor([col.low, col.high], dtype=dtype),
                               atol=1e-9 * col.high, rtol=0.0)
    clamped = encode_integer(torch.tensor([col.low - 5.0, col.high + 5.0], dtype=dtype), col)
    torch.testing.assert_close(clamped, torch.tensor([0.0, 1.0], dtype=dtype), atol=1e-6,
                               rtol=0.0)


def test_log_integer_encoding_is_logarithmic():
    col = IntegerColumn(0, 1, 100, True)
    u = encode_integer(torch.tensor([10.0], dtype=torch.float64), col)
    assert float(u) == pytest.approx(math.log(10) / math.log(100), abs=1e-15)  # = 0.5


def test_inactive_fill_values_and_caching(dtype):
    first = inactive_fill(NESTED, dtype=dtype, device=torch.device("cpu"))
    expected = torch.tensor([3, 2, 0.5, 0.5, 0.5, 0.5], dtype=dtype)
    assert first.dtype == dtype and first.shape == (NESTED.d,)
    torch.testing.assert_close(first, expected, atol=0.0, rtol=0.0)
    again = inactive_fill(NESTED, dtype=dtype, device=torch.device("cpu"))
    torch.testing.assert_close(again, first, atol=0.0, rtol=0.0)
    # An equal layout built anew (a new cache key object) gives equal values.
    rebuilt = Layout(d=6, continuous=(2, 3, 4, 5), integers=(K_COLUMN, LOG_COLUMN),
                     categorical=(0, 1), categorical_sizes=(3, 2),
                     conditions=NESTED.conditions)
    assert rebuilt == NESTED
    torch.testing.assert_close(inactive_fill(rebuilt, dtype=dtype, device=torch.device("cpu")),
                               expected, atol=0.0, rtol=0.0)
