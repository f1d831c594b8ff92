"""Spaces, objectives and loops shared by the optimizer tests (imported by the test modules;
pytest puts this folder on the path, see `pythonpath` in pyproject.toml)."""

from __future__ import annotations

import math

from bopt import Categorical, Float, Int, Optimizer, Space, Trial

FAST = dict(n_initial=3, num_restarts=4, num_raw_samples=64, device="cpu")
GP_ACQUISITIONS = ["ei", "ucb", "ts", "nei"]
ALL_ACQUISITIONS = ["ei", "ucb", "ts", "nei", "random", "sobol"]


# --------------------------------------------------------------------------- helpers


def continuous_space() -> Space:
    return Space([Float("x", 0.0, 1.0), Float("y", -2.0, 2.0)])


def conditional_space() -> Space:
    """`kind` gates `y`."""
    return Space([
        Categorical("kind", ["a", "b"]),
        Float("x", 0.0, 1.0),
        Float("y", 0.0, 1.0, when={"kind": "b"}),
    ])


def nested_space() -> Space:
    """Nested conditions: opt gates momentum and nesterov; nesterov gates warmup."""
    return Space([
        Float("lr", 1e-4, 1e-1, log=True),
        Categorical("opt", ["sgd", "adam", "rmsprop"]),
        Float("momentum", 0.0, 0.99, when={"opt": ["sgd", "rmsprop"]}),
        Categorical("nesterov", [True, False], when={"opt": "sgd"}),
        Int("warmup", 1, 100, log=True, when={"nesterov": True}),
    ])


def mixed_space() -> Space:
    return Space([
        Float("x", -1.0, 1.0),
        Int("layers", 1, 6),
        Int("width", 8, 512, log=True),
        Categorical("flag", [True, False]),
        Categorical("k", [1, 2, 3]),
        Categorical("act", ["relu", "tanh", "gelu"]),
    ])


def grid_space() -> Space:
    """15 configurations: 5 integers x 3 categories."""
    return Space([Int("i", 0, 4), Categorical("c", ["p", "q", "r"])])


def objective(params: dict) -> float:
    """A deterministic, non-constant function of any config of the spaces above."""
    total = 0.0
    for j, (name, value) in enumerate(sorted(params.items())):
        if isinstance(value, str):
            value = len(value) + ord(value[0]) / 100.0
        total += (j + 1) * math.sin(3.0 * float(value) + j) + 0.1 * float(value) ** 2
    return total


def typed(config: dict) -> list:
    """Config as `(name, type, value)` triples, so that True, 1 and 1.0 stay apart."""
    return [(k, type(v), v) for k, v in config.items()]


def assert_valid(space: Space, params: dict) -> None:
    assert typed(space.validate(params)) == typed(params)


def run_loop(opt: Optimizer, n: int, func=objective) -> list[Trial]:
    trials = []
    for _ in range(n):
        trial = opt.suggest()
        trials.append(opt.observe(trial, func(trial.params)))
    return trials


def key(space: Space, params: dict) -> tuple:
    return space.key(params)
