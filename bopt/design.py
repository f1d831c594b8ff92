"""Configurations chosen without a model: the Sobol initial design and random unseen ones.

Both skip configurations already in the study. `seen` is any container of `Space.key`s
(with `len`, the number of distinct configurations it holds). Everything is a pure
function of its arguments: the cursor is a value, so a batch that is undone simply keeps
the old one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch

from bopt.errors import SpaceExhaustedError
from bopt.space import Space

_MANY_DRAWS = 8192  # random draws before an infinite space is declared used up
_QUICK_DRAWS = 200  # one at a time first: a fresh space almost never needs more than one


def default_n_initial(space: Space) -> int:
    """The initial design's size when the user names none: `max(5, d + 1)` for `d`
    parameters, and `max(10, d + 1)` when a categorical has two choices or more.

    A categorical's level is judged by the few design points that drew it, at whatever
    floats those points had: on svm_digits the `poly` kernel is the best there is, but only
    with a large gamma, and a design whose two or three `poly` points had small gammas
    taught the model that `poly` is bad everywhere; the run then refined `rbf` to the end.
    Ten points (Optuna's GPSampler starts with 10) reached svm_digits' best error on 43 of
    60 seeds against 35, freed mixed_int's three 0.3 traps (30 of 30 seeds solved against 27)
    and were level on conditional and mixed_cat3. Without categoricals the larger design
    only costs model rounds (michalewicz5's and griewank6's medians were worse at 60
    evaluations), so continuous spaces keep the smaller one.
    benchmarks/results/initial_design/ has the runs.
    """
    if any(size > 1 for size in space.layout.categorical_sizes):
        return max(10, len(space) + 1)
    return max(5, len(space) + 1)


@dataclass(frozen=True)
class SobolCursor:
    """How far the initial design has been consumed.

    Attributes:
        points: the design drawn so far (configs), grown by doubling when used up.
        keys: their `Space.key`s, computed once.
        used: how many of them were taken or skipped.
    """

    points: tuple[dict, ...] = ()
    keys: tuple[tuple, ...] = ()
    used: int = 0


def next_sobol(cursor: SobolCursor, space: Space, *, n_initial: int, seed: int,
               seen: Collection[tuple]) -> tuple[dict | None, SobolCursor]:
    """The next design point not in `seen`, and the advanced cursor.

    Returns:
        The config, or None when the design has nothing new left (a small finite space, or
        64 times the initial design skipped), and the cursor to use next.
    """
    points, keys, used = cursor.points, cursor.keys, cursor.used
    while True:
        if used >= len(points):
            size = max(2 * len(points), n_initial, 8)
            points = tuple(space.sobol(size, seed=seed))
            keys = tuple(space.key(c, validated=True) for c in points)
            if len(points) <= used:
                return None, SobolCursor(points, keys, used)
        config, config_key = points[used], keys[used]
        used += 1
        if config_key not in seen:
            return config, SobolCursor(points, keys, used)
        if used > 64 * max(n_initial, 8):
            return None, SobolCursor(points, keys, used)


def random_unseen(space: Space, *, seed: int, round_id: int, seen: Collection[tuple]) -> dict:
    """A uniformly random configuration not in `seen`.

    Args:
        space: the search space.
        seed: the optimizer's seed; with `round_id` it fixes every draw.
        round_id: the trial id being proposed.
        seen: keys of the configurations already in the study.

    Raises:
        SpaceExhaustedError: nothing unseen is left (finite spaces), or none turned up in
            many draws (a space whose remainder is tiny).
    """
    base = seed * 7919 + round_id * 211
    for attempt in range(_QUICK_DRAWS):
        config = space.sample(1, seed=base + attempt)[0]
        if space.key(config, validated=True) not in seen:
            return config
    size = space.grid_size
    if size is None:
        # Infinite in principle, yet what is unseen may sit in a rarely drawn branch (a
        # Float active under one of 300 choices) or a Float range may hold few floats:
        # draw many at once before calling the space used up.
        for config in space.sample(_MANY_DRAWS, seed=base + _QUICK_DRAWS):
            if space.key(config, validated=True) not in seen:
                return config
        raise SpaceExhaustedError(
            f"no unseen configuration in {_QUICK_DRAWS + _MANY_DRAWS} random draws: what is "
            "left of this space (e.g. a Float range holding few distinct floats) is used up.")
    if len(seen) < size:  # finite and not exhausted: list what is left
        unseen = [c for c in space.grid() if space.key(c, validated=True) not in seen]
        g = torch.Generator().manual_seed(seed * 7919 + round_id)
        return unseen[int(torch.randint(len(unseen), (1,), generator=g))]
    raise SpaceExhaustedError(
        f"all {size} configurations of this space have been suggested or observed; "
        "there is nothing new to propose.")
