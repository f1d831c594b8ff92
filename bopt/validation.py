"""Argument checks at the public boundary, written once.

Each check returns the normalised value (a plain `int` or `float`) or raises the given
`BoptError` subclass with a message that names the argument, the expectation and what
arrived. Inner functions trust their arguments and never call these.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bopt.errors import ArgumentError, ObservationError


def check_int(value: Any, what: str, *, low: int | None = None,
              error: type[Exception] = ArgumentError) -> int:
    """`value` as an int (numpy integers too, never a bool), at least `low` when given.

    Args:
        value: what the caller passed.
        what: how the message names it, e.g. "suggest(n): n" or "n_initial".
        low: the smallest value allowed, or None.
        error: the exception type to raise.
    """
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)
            or (low is not None and value < low)):
        need = "an int" if low is None else f"an int >= {low}"
        raise error(f"{what} must be {need}; got {value!r}.")
    return int(value)


def check_number(value: Any, what: str, *, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, error: type[Exception] = ArgumentError) -> float:
    """`value` as a finite float in `[low, high]` (`(low, high]` with `low_open`).

    Args:
        value: what the caller passed (a real number, never a bool).
        what: how the message names it.
        low, high: the allowed range.
        low_open: exclude `low` itself.
        error: the exception type to raise.
    """
    ok = (not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)
          and math.isfinite(value) and (low < value if low_open else low <= value)
          and value <= high)
    if not ok:
        if high == math.inf:
            need = f"{'>' if low_open else '>='} {low:g}"
        else:
            need = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise error(f"{what} must be a finite number {need}; got {value!r}.")
    return float(value)


def check_choice(value: Any, what: str, choices: Sequence[str], *,
                 error: type[Exception] = ArgumentError) -> str:
    """`value` if it is one of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise error(f"{what} must be one of {tuple(choices)}; got {value!r}.")
    return value


def finite_value(value: Any, where: str) -> float:
    """An observed objective value as a finite float, or ObservationError naming `where`.

    Accepts real numbers, numpy scalars and one-element real tensors; refuses bools,
    complex numbers, strings, NaN and infinities.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
        if isinstance(value, bool):
            raise ObservationError(f"{where}: value is a bool tensor; pass a finite number.")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ObservationError(f"{where}: value is {value!r} ({type(value).__name__}); "
                               "only finite real numbers are accepted.")
    try:
        value = float(value)
    except OverflowError:
        raise ObservationError(f"{where}: value is {value!r}, too large for a float; "
                               "only finite numbers are accepted.") from None
    if not math.isfinite(value):
        raise ObservationError(f"{where}: value is {value!r}; only finite numbers are accepted. "
                               "Use fail(trial) for an evaluation that broke.")
    return value


def check_sem(sem: Any, where: str) -> float | None:
    """An observation's standard error: None, or a finite number >= 0."""
    if sem is None:
        return None
    return check_number(sem, f"{where}: sem (the value's standard error)", low=0.0,
                        error=ObservationError)
