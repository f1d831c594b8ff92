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
