"""Batched multistart maximisation of an acquisition over an encoded mixed space.

1. Score `r` raw candidates (scrambled Sobol plus perturbations of given seed points) in
   one batch; pick `b` starts: the best, and the rest drawn with Boltzmann weights.
2. Continuous ascent of all starts together (`bopt.optim.minimize_batched`), integers
   relaxed, categoricals held.
3. Round integers, then alternate discrete moves (every categorical combination when there
   are few, else one-column changes; integer neighbours +-1) with continuous ascent of the
   float columns, until no start moves. Every move is evaluated for all starts in one batch.

The optimizer is acquisition-agnostic: `score` maps `... x q x d` points to `...` values.
"""

from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import Tensor

from bopt.errors import ArgumentError
from bopt.optim import minimize_batched
from bopt.layout import (Layout, active_mask, canonicalize, decode_integer, encode_integer,
                         fill_activated, integer_grid_round)

Score = Callable[[Tensor], Tensor]
# Starts whose score trails the best start's by more than this (log units for log EI, the
# targets' standard deviations for UCB and Thompson sampling) no longer hold the ascent up.
DOMINATED = 2.0
# The ascent's line search: step lengths tried at once, as fractions of the quasi-Newton step
# (longer than it too: all of them cost one batched evaluation).
_STEPS = (2.0, 1.0, 0.5, 0.2, 0.05)
# A numeric column whose lengthscale (unit cube) exceeds this is one the model finds nearly
# flat: a Matern-5/2 correlation of 0.85 across the whole range. `multistart_maximize` draws
# it (in `perturb`) and leaves it out of the ascent.
FLAT_LENGTHSCALE = 3.0


def _unit_values(U: Tensor, layout: Layout) -> Tensor:
    """Uniform `... x d` in [0, 1) -> a valid value in every column, active or not:
    categorical indices floor(u k), numbers (integers relaxed) unchanged."""
    X = U.clone()
    for col, k in zip(layout.categorical, layout.categorical_sizes):
        X[..., col] = (U[..., col] * k).floor().clamp(max=k - 1)
    return X


def unit_to_layout(U: Tensor, layout: Layout) -> Tensor:
    """Map uniform `... x d` points in [0, 1) to valid encoded points (integers relaxed,
    inactive entries at their fixed value)."""
    return canonicalize(_unit_values(U, layout), layout)


def _column_bounds(layout: Layout, dtype, device) -> tuple[Tensor, Tensor]:
    lower = torch.zeros(layout.d, dtype=dtype, device=device)
    upper = torch.ones(layout.d, dtype=dtype, device=device)
    for col, levels in zip(layout.categorical, layout.categorical_levels):
        upper[col] = levels - 1
    return lower, upper


def _numeric_mask(layout: Layout, *, integers: bool, device) -> Tensor:
    """`d` mask of the columns gradient ascent may move."""
    mask = torch.zeros(layout.d, dtype=torch.bool, device=device)
    mask[list(layout.continuous)] = True
    if not integers:
        mask[[c.column for c in layout.integers]] = False
    return mask


def perturb(seeds: Tensor, num: int, layout: Layout, generator: torch.Generator,
            flat: Tensor | None = None) -> Tensor:
    """`m x d` seed points -> `num x d` random neighbours of them: numeric columns moved by
    N(0, 0.05^2) (integers relaxed), each categorical redrawn with probability 0.2, children
    that a changed parent switches on given random valid values.

    Columns of the `d` mask `flat` (`flat_columns`: the model's lengthscale there exceeds
    `FLAT_LENGTHSCALE`) are redrawn uniformly instead: the model says the score barely
    changes along them, so the seed's value there (often a bound, copied from one good
    observation to the next) is no better than any other, and keeping it would never show
    whether the column matters."""
    pick = torch.randint(0, seeds.shape[0], (num,), generator=generator, device=seeds.device)
    X = seeds[pick].clone()
    noise = 0.05 * torch.randn(X.shape, generator=generator, dtype=X.dtype, device=X.device)
    numeric = _numeric_mask(layout, integers=True, device=X.device)
    X = torch.where(numeric, (X + noise).clamp(0, 1), X)
    if flat is not None:
        U = torch.rand(X.shape, generator=generator, dtype=X.dtype, device=X.device)
        X = torch.where(flat, U, X)
    for col, k in zip(layout.categorical, layout.categorical_sizes):
        flip = torch.rand(num, generator=generator, dtype=X.dtype, device=X.device) < 0.2
        draw = torch.randint(0, k, (num,), generator=generator, device=X.device).to(X.dtype)
        X[:, col] = torch.where(flip, draw, X[:, col])
    # A changed parent may switch children on: give them random valid values.
    U = torch.rand(X.shape, generator=generator, dtype=X.dtype, device=X.device)
    return fill_activated(X, layout, _unit_values(U, layout))


def flat_columns(layout: Layout, lengthscales: Tensor | None, device) -> Tensor | None:
    """`d` mask of the numeric columns whose lengthscale exceeds `FLAT_LENGTHSCALE`, or None
    without lengthscales (`lengthscales`: one per `layout.continuous` column)."""
    if lengthscales is None or not layout.continuous:
        return None
    flat = torch.zeros(layout.d, dtype=torch.bool, device=device)
    flat[list(layout.continuous)] = lengthscales.to(device) > FLAT_LENGTHSCALE
    return flat


def _select_starts(values: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """Indices of `num` starts: the best raw candidate plus Boltzmann draws (eta = 2)."""
    values = torch.nan_to_num(values, nan=-float("inf"))
    finite = torch.isfinite(values)
    v = torch.where(finite, values, values[finite].min() if bool(finite.any()) else 0.0)
    z = (v - v.mean()) / v.std().clamp_min(1e-12)
    weights = torch.exp(2.0 * z.clamp(max=20)) * finite + 1e-12
    best = values.argmax()
    if num <= 1:
        return best.reshape(1)
    weights[best] = 0.0
    rest = torch.multinomial(weights, min(num, values.numel()) - 1, replacement=False,
                             generator=generator)
    return torch.cat([best.reshape(1), rest])


def _ascend(score: Score, X: Tensor, layout: Layout, *, integers: bool,
            max_iter: int, frozen: Tensor | None = None) -> Tensor:
    """Continuous ascent of `b x q x d` starts on the active numeric columns (but the `d`
    `frozen` ones)."""
    b, q, d = X.shape
    lower, upper = _column_bounds(layout, X.dtype, X.device)
    free = _numeric_mask(layout, integers=integers, device=X.device) & active_mask(X, layout)
    if frozen is not None:
        free = free & ~frozen
    if not bool(free.any()):
        return X
    closed_form = getattr(score, "value_and_grad", None)

    def value_and_grad(z: Tensor) -> tuple[Tensor, Tensor]:
        value, grad = closed_form(z.reshape(*z.shape[:-1], q, d))
        return -value, -grad.reshape(z.shape)

    x, _, _ = minimize_batched(
        lambda z: -score(z.reshape(*z.shape[:-1], q, d)),
        X.reshape(b, q * d), lower.repeat(q), upper.repeat(q),
        free=free.reshape(b, q * d),
        project=lambda z: canonicalize(z.reshape(*z.shape[:-1], q, d), layout).reshape(z.shape),
        max_iter=max_iter, tol=1e-3, dominated=DOMINATED, steps=_STEPS, patience=1,
        value_and_grad=value_and_grad if closed_form is not None else None,
        graph="ascent" if closed_form is not None else None)
    return x.reshape(b, q, d)


def _categorical_patterns(layout: Layout, X: Tensor, enumerate_limit: int) -> tuple[Tensor, Tensor]:
    """Replacement patterns for categorical moves: `m x d` values and `m x d` mask.

    All joint assignments when there are at most `enumerate_limit`, else every single-column
    change.
    """
    d, cols, sizes = layout.d, layout.categorical, layout.categorical_sizes
    kw = dict(dtype=X.dtype, device=X.device)
    total = 1
    for k in sizes:
        total *= k
    if total <= enumerate_limit:
        combos = torch.tensor(list(itertools.product(*[range(k) for k in sizes])), **kw)
        values = torch.zeros(total, d, **kw)
        values[:, list(cols)] = combos
        mask = torch.zeros(total, d, dtype=torch.bool, device=X.device)
        mask[:, list(cols)] = True
        return values, mask
    rows_v, rows_m = [], []
    for col, k in zip(cols, sizes):
        for level in range(k):
            v = torch.zeros(d, **kw)
            v[col] = level
            m = torch.zeros(d, dtype=torch.bool, device=X.device)
            m[col] = True
            rows_v.append(v)
            rows_m.append(m)
    return torch.stack(rows_v), torch.stack(rows_m)


def _integer_neighbours(X: Tensor, layout: Layout) -> Tensor:
    """`b x d` points -> `b x 2i x d`: each integer column moved one value down and up."""
    out = []
    for col in layout.integers:
        value = decode_integer(X[:, col.column], col).round()
        for step in (-1.0, 1.0):
            Y = X.clone()
            Y[:, col.column] = encode_integer(value + step, col)
            out.append(Y)
    return torch.stack(out, dim=1)


def _first_levels(layout: Layout, like: Tensor) -> Tensor:
    """`... x d` points at index 0 on categorical columns and mid-range elsewhere."""
    fill = torch.full(like.shape, 0.5, dtype=like.dtype, device=like.device)
    fill[..., list(layout.categorical)] = 0.0
    return fill


def _discrete_move(score: Score, X: Tensor, layout: Layout, enumerate_limit: int) -> Tensor:
    """Move each of the `b x 1 x d` points to its best discrete neighbour if that scores higher."""
    x = X[:, 0, :]  # b x d
    parts = []
    if layout.categorical:
        values, mask = _categorical_patterns(layout, x, enumerate_limit)
        parts.append(torch.where(mask, values, x[:, None, :]))  # b x m x d
    if layout.integers:
        parts.append(_integer_neighbours(x, layout))
    N = torch.cat(parts, dim=1)  # b x m x d
    # Children a move switches on take their first level (categoricals) or stay mid-range.
    N = fill_activated(N, layout, _first_levels(layout, N))
    cand = torch.cat([x[:, None, :], N], dim=1)  # b x (m+1) x d, current point first
    values = score(cand.unsqueeze(-2))  # b x (m+1)
    values = torch.nan_to_num(values, nan=-float("inf"))
    best = values.argmax(dim=1)  # ties keep the current point
    return cand[torch.arange(x.shape[0], device=x.device), best].unsqueeze(1)


def _raw_candidates(layout: Layout, generator: torch.Generator, *, q: int, num: int,
                    seeds: Tensor | None, dtype: torch.dtype, device,
                    flat: Tensor | None = None) -> Tensor:
    """`r x q x d` raw candidates: `num` scrambled Sobol sets, then (q = 1) `num // 4`
    perturbations of the `m x d` seed points (`perturb`, redrawing the `flat` columns)."""
    d = layout.d
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device))
    sobol = torch.quasirandom.SobolEngine(d * q, scramble=True, seed=seed)
    U = sobol.draw(num, dtype=dtype).to(device).reshape(num, q, d)
    raw = unit_to_layout(U, layout)
    if seeds is not None and seeds.shape[0] > 0 and q == 1:
        extra = perturb(seeds.to(dtype=dtype, device=device), num // 4, layout, generator,
                        flat)
        raw = torch.cat([raw, extra.unsqueeze(1)])
    return raw


def multistart_maximize(
    score: Score,
    layout: Layout,
    *,
    generator: torch.Generator,
    q: int = 1,
    num_restarts: int = 10,
    num_raw_samples: int = 512,
    seeds: Tensor | None = None,
    seed_lengthscales: Tensor | None = None,
    max_iter: int = 100,
    num_alternations: int = 3,
    enumerate_limit: int = 64,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Maximise `score` over the encoded space from many starts at once.

    Args:
        score: maps `... x q x d` encoded points to `...` values (higher is better).
        layout: the space's column layout.
        generator: source of randomness, on `device`.
        q: points per candidate set (only 1 when the layout has discrete columns).
        num_restarts: starts `b` advanced together.
        num_raw_samples: raw candidates `r` scored to choose the starts.
        seeds: optional `m x d` points whose perturbations join the raw candidates.
        seed_lengthscales: the model's lengthscales of the numeric columns, or None:
            columns it finds flat are drawn, not optimised (`flat_columns`).
        max_iter: iteration cap of each continuous ascent.
        num_alternations: rounds of discrete moves and continuous ascent.
        enumerate_limit: enumerate all categorical combinations up to this many.

    Returns:
        `b x q x d` candidate sets, best first, and their `b` scores.
    """
    device = generator.device if device is None else device
    discrete = bool(layout.categorical or layout.integers)
    if q > 1 and discrete:
        raise ArgumentError(f"multistart_maximize(q={q}): q > 1 needs a purely continuous layout; "
                         "suggest batches one point at a time instead.")
    frozen = flat_columns(layout, seed_lengthscales, device)  # d, or None
    raw = _raw_candidates(layout, generator, q=q, num=num_raw_samples, seeds=seeds,
                          dtype=dtype, device=device, flat=frozen)  # r x q x d
    with torch.no_grad():
        raw_values = score(raw)  # r
    X = raw[_select_starts(raw_values, num_restarts, generator)]  # b x q x d
    X = _ascend(score, X, layout, integers=True, max_iter=max_iter, frozen=frozen)
    if discrete:
        X = integer_grid_round(X, layout)
        for i in range(num_alternations):
            with torch.no_grad():
                moved = _discrete_move(score, X, layout, enumerate_limit)
            if i > 0 and torch.equal(moved, X):  # one sync: nothing moved since an ascent
                break
            X = _ascend(score, moved, layout, integers=False, max_iter=max_iter, frozen=frozen)
        X = integer_grid_round(X, layout)  # idempotent; guards children switched on late
    with torch.no_grad():
        values = score(X)
    order = values.argsort(descending=True)
    return X[order].detach(), values[order].detach()
