"""The encoded layout of a search space: which column is what.

`Layout` is the only description of a space that kernels and the acquisition optimizer see.
It is a leaf module: it imports nothing from bopt, so `bopt.kernels` and `bopt.acquisition`
may depend on it without depending on the space, the model or the loop.

Encoding conventions (owned by `bopt.space.Space.encode`):

- floats and integers map to [0, 1] (log first where declared);
- a categorical with `k` choices is one index column holding 0, 1, ..., k-1;
- an inactive conditional parameter holds `INACTIVE_NUMERIC` (numbers) or the extra index
  `k` (categoricals), so the GP always sees the same input for "not in play".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

INACTIVE_NUMERIC = 0.5


@dataclass(frozen=True)
class IntegerColumn:
    """An integer parameter's column and the grid it lives on."""

    column: int
    low: int
    high: int
    log: bool


@dataclass(frozen=True)
class Condition:
    """Column `column` is active only when column `parent` holds one of `allowed` indices."""

    column: int
    parent: int
    allowed: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    """Column indices of an encoded space of width `d`.

    Attributes:
        d: encoded width, one column per parameter.
        continuous: columns of floats and integers (both scaled to [0, 1]); the Matern part.
        integers: the integer columns among `continuous`, with their grids.
        categorical: index columns; the overlap-kernel part.
        categorical_sizes: number of choices of each categorical column, in the same order.
        conditions: activity rules, parents before children.
    """

    d: int
    continuous: tuple[int, ...] = ()
    integers: tuple[IntegerColumn, ...] = ()
    categorical: tuple[int, ...] = ()
    categorical_sizes: tuple[int, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def _extra_level(self, column: int) -> int:
        return int(any(cond.column == column for cond in self.conditions))

    @property
    def categorical_levels(self) -> tuple[int, ...]:
        """Index values each categorical column can hold: its choices plus an inactive level
        when the column is conditional."""
        return tuple(k + self._extra_level(c) for c, k in
                     zip(self.categorical, self.categorical_sizes))


def active_mask(X: Tensor, layout: Layout) -> Tensor:
    """Which entries of `X` are active under the layout's conditions.

    Args:
        X: `... x d` encoded points (categorical columns hold integral indices).
        layout: the space's layout.

    Returns:
        `... x d` boolean mask, True where the parameter is in play.
    """
    mask = torch.ones(X.shape, dtype=torch.bool, device=X.device)
    for cond, table in zip(layout.conditions, _condition_tables(layout, X.device)):
        # parents come first, so nesting resolves in one pass
        parent_index = X[..., cond.parent].round().long().clamp(0, table.numel() - 1)
        mask[..., cond.column] = mask[..., cond.parent] & table[parent_index]
    return mask


@functools.lru_cache(maxsize=64)
def _condition_tables(layout: Layout, device: torch.device) -> tuple[Tensor, ...]:
    """Per condition, a boolean table over the parent's index values (its inactive level last)
    that is True where the child is allowed; built once per layout and device."""
    sizes = dict(zip(layout.categorical, layout.categorical_sizes))
    tables = []
    for cond in layout.conditions:
        table = torch.zeros(sizes[cond.parent] + 1, dtype=torch.bool)
        table[list(cond.allowed)] = True
        tables.append(table.to(device))
    return tuple(tables)


def fill_activated(X: Tensor, layout: Layout, fill: Tensor) -> Tensor:
    """Give a value to every active entry still holding its inactive placeholder.

    A parent that changed (a discrete move, a perturbation) can switch a child on while the
    child still holds the placeholder. Such entries take their value from `fill`; then
    integers go back on their grid and newly inactive entries are pinned.

    Args:
        X: `... x d` encoded points.
        fill: `... x d` valid encoded values to draw replacements from.

    Returns:
        `... x d` valid, canonical points.
    """
    if not layout.conditions:
        return X
    placeholder = inactive_fill(layout, dtype=X.dtype, device=X.device)
    X = X.clone()
    for cond in layout.conditions:  # parent-first: a repaired parent activates its children
        active = active_mask(X, layout)[..., cond.column]
        stuck = active & (X[..., cond.column] == placeholder[cond.column])
        X[..., cond.column] = torch.where(stuck, fill[..., cond.column], X[..., cond.column])
    return canonicalize(integer_grid_round(X, layout), layout)


@functools.lru_cache(maxsize=64)
def inactive_fill(layout: Layout, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """`d` vector of the value each column holds when inactive (cached: do not modify)."""
    fill = torch.full((layout.d,), INACTIVE_NUMERIC, dtype=dtype, device=device)
    for column, size in zip(layout.categorical, layout.categorical_sizes):
        fill[column] = float(size)
    return fill


def canonicalize(X: Tensor, layout: Layout) -> Tensor:
    """Set inactive entries to their fixed value, so equal configurations encode equally.

    Args:
        X: `... x d` encoded points.

    Returns:
        `... x d` points with every inactive entry replaced by its inactive value.
    """
    if not layout.conditions:
        return X
    fill = inactive_fill(layout, dtype=X.dtype, device=X.device)
    return torch.where(active_mask(X, layout), X, fill)


def integer_grid_round(X: Tensor, layout: Layout) -> Tensor:
    """Move every active integer entry to the encoding of its nearest integer value.

    Rounding happens on the integer scale (as `Space.decode` does), also for log integers.
    Inactive entries keep their fixed value.

    Args:
        X: `... x d` encoded points in [0, 1] on the numeric columns.

    Returns:
        `... x d` copy with active integer entries on their grid.
    """
    if not layout.integers:
        return X
    rounded = X.clone()
    for col in layout.integers:
        u = X[..., col.column]
        rounded[..., col.column] = encode_integer(decode_integer(u, col).round(), col)
    return torch.where(active_mask(X, layout), rounded, X)


def decode_integer(u: Tensor, col: IntegerColumn) -> Tensor:
    """Map encoded `u` in [0, 1] to the (unrounded) integer scale of `col`."""
    if col.log:
        lo, hi = math.log(col.low), math.log(col.high)
        return torch.exp(lo + u.clamp(0, 1) * (hi - lo)).clamp(col.low, col.high)
    return col.low + u.clamp(0, 1) * (col.high - col.low)


def encode_integer(v: Tensor, col: IntegerColumn) -> Tensor:
    """Inverse of `decode_integer`: integer-scale `v` to [0, 1] (clamped: torch's log and
    Python's differ in the last bit for some bounds, e.g. 9170)."""
    v = v.clamp(col.low, col.high)
    if col.log:
        lo, hi = math.log(col.low), math.log(col.high)
        return ((torch.log(v) - lo) / (hi - lo)).clamp(0.0, 1.0)
    return (v - col.low) / (col.high - col.low)
