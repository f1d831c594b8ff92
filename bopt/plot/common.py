"""What the plot modules share: colours, pyplot on demand, and reading trials and rounds from
an optimizer's public state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bopt.engine import Optimizer
from bopt.errors import ArgumentError
from bopt.trial import RoundInfo, Trial
from bopt.validation import check_choice

SOBOL_COLOR, MODEL_COLOR, BEST_COLOR, NEXT_COLOR = "0.55", "C0", "C3", "m"


def pyplot():
    """`matplotlib.pyplot`, imported on first use (`import bopt` never needs matplotlib)."""
    import matplotlib.pyplot as plt

    return plt


def trials_and_direction(opt_or_trials: Any, direction: str | None,
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
    direction = check_choice(direction, "direction", ("minimize", "maximize"))
    return sorted(trials, key=lambda t: t.id), direction


def completed(trials: Sequence[Trial], caller: str, *, at_least: int = 1) -> list[Trial]:
    """The completed trials, or ArgumentError when there are fewer than `at_least`."""
    done = [t for t in trials if t.status == "complete"]
    if len(done) < at_least:
        raise ArgumentError(f"{caller}: needs at least {at_least} completed trial(s), got "
                            f"{len(done)}; observe more values first.")
    return done


def initial_design_ids(trials: Sequence[Trial]) -> list[int]:
    """Ids of the leading run of Sobol trials (the initial design), in id order."""
    ids = []
    for t in trials:
        if t.source != "sobol":
            break
        ids.append(t.id)
    return ids


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return repr(value)


def last_model_round(opt: Optimizer) -> RoundInfo | None:
    """The latest round that fitted a GP, or None."""
    return next((r for r in reversed(opt.diagnostics) if r.lengthscales), None)
