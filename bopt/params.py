"""Parameter types: Float, Int and Categorical, their declaration checks, value checks and
numeric maps.

`bopt.space.Space` assembles parameters into a search space; this module knows nothing of
spaces (`bopt.space` imports it, never the reverse).

Conditional parameters: `when={"optimizer": ["sgd", "momentum"]}` makes a parameter active
only when the categorical `optimizer` is active and takes one of those values
(`_Param.allows`, `_Param.is_active`). Categorical values compare by type as well as value,
so `True`, `1` and `1.0` are three different choices.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Union

import numpy as np
import torch
from torch import Tensor

from bopt.errors import ParameterError, SearchSpaceError

Choice = Union[str, int, float, bool]

# Int bounds must survive encode/decode exactly: a linear span up to 2**50 keeps the float64
# error of low + u * span under 0.25, and log values up to 2**40 keep exp(...)'s error (about
# value * ln(high) * eps) under 0.01. Beyond that, use a Float with log=True.
_MAX_LINEAR_INT = 2**49
_MAX_LOG_INT = 2**40
_UNSUPPORTED = object()


# --------------------------------------------------------------------------- value helpers


def _as_choice(value: Any) -> Any:
    """Plain `bool`, `int`, `float` or `str` of `value` (numpy scalars unwrapped), or
    `_UNSUPPORTED`."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return _UNSUPPORTED


def _typed(value: Choice) -> tuple[type, Choice]:
    """Type-aware identity of a choice: `True`, `1` and `1.0` stay apart."""
    return (type(value), value)


def _as_real(value: Any) -> float | None:
    """`float(value)` for real numbers (numpy scalars included); None for bools and the rest."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:  # a Python int beyond the float range (copysign would overflow too)
        return math.inf if value > 0 else -math.inf


def _type_name(value: Any) -> str:
    return type(value).__name__


def _did_you_mean(name: Any, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- parameter types


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise SearchSpaceError(
            f"{kind}(name={name!r}): the name must be a non-empty str, got "
            f"{_type_name(name)} {name!r}; pass a name such as 'learning_rate'."
        )


def _check_bound(label: str, which: str, value: Any, *, integer: bool) -> float | int:
    real = _as_real(value)
    if real is None:
        raise SearchSpaceError(
            f"{label}: {which} must be a real number, got {_type_name(value)} {value!r}."
        )
    if not math.isfinite(real):
        raise SearchSpaceError(
            f"{label}: bounds must be finite, got {which}={value!r}; pass a finite range."
        )
    if not integer:
        return real
    if not isinstance(value, numbers.Integral) and not real.is_integer():
        raise SearchSpaceError(
            f"{label}: bounds must be integers, got {which}={value!r}; round it, or use "
            "Float for a real-valued parameter."
        )
    whole = int(value) if isinstance(value, numbers.Integral) else int(real)
    if abs(whole) > _MAX_LINEAR_INT:
        raise SearchSpaceError(
            f"{label}: bounds must lie within +-2**49 (so every integer survives the float64 "
            f"encoding), got {which}={value!r}; use a Float with log=True for such ranges."
        )
    return whole


def _check_bounds(label: str, low: Any, high: Any, log: Any, *,
                  integer: bool) -> tuple[Any, Any, bool]:
    """Validated `(low, high, log)`, as ints when `integer` else floats."""
    if not isinstance(log, (bool, np.bool_)):
        raise SearchSpaceError(f"{label}: log must be True or False, got {log!r}.")
    low = _check_bound(label, "low", low, integer=integer)
    high = _check_bound(label, "high", high, integer=integer)
    if not low < high:
        raise SearchSpaceError(
            f"{label}: need low < high, got low={low!r}, high={high!r}; swap them, or leave "
            "a constant out of the space."
        )
    if log and low <= 0:
        raise SearchSpaceError(
            f"{label}: log=True needs low > 0, got low={low!r}; raise low or use log=False."
        )
    if integer and log and high > _MAX_LOG_INT:
        raise SearchSpaceError(
            f"{label}: a log-scale Int needs high <= 2**40 (so every integer survives the "
            f"float64 encoding), got high={high!r}; use a Float with log=True for such ranges."
        )
    return low, high, bool(log)


def _normalize_when(label: str, when: Any) -> dict[str, tuple[Choice, ...]] | None:
    """`{parent: (value, ...)}` with duplicates dropped, or None."""
    if when is None:
        return None
    if not isinstance(when, Mapping) or len(when) != 1:
        raise SearchSpaceError(
            f"{label}: `when` must map exactly one parent to its allowed value(s), e.g. "
            f"when={{'optimizer': ['sgd', 'momentum']}}; got {when!r}."
        )
    ((parent, values),) = when.items()
    if not isinstance(parent, str) or not parent:
        raise SearchSpaceError(
            f"{label}: the parent in `when` must be a parameter name (str), got {parent!r}."
        )
    raw = list(values) if isinstance(values, (list, tuple)) else [values]
    if not raw:
        raise SearchSpaceError(
            f"{label}: when={{{parent!r}: {values!r}}} allows no value; list at least one "
            f"choice of {parent!r}."
        )
    allowed: list[Choice] = []
    for value in raw:
        choice = _as_choice(value)
        if choice is _UNSUPPORTED:
            raise SearchSpaceError(
                f"{label}: when[{parent!r}] holds {_type_name(value)} {value!r}; allowed "
                "values are choices of the parent (str, int, float or bool)."
            )
        if _typed(choice) not in {_typed(a) for a in allowed}:
            allowed.append(choice)
    return {parent: tuple(allowed)}


class _Param:
    """Shared behaviour of Float, Int and Categorical (type-aware equality, conditions)."""

    name: str
    when: dict[str, tuple[Choice, ...]] | None

    @property
    def parent(self) -> str | None:
        """Name of the categorical this parameter depends on, or None if unconditional."""
        return None if self.when is None else next(iter(self.when))

    @property
    def allowed(self) -> tuple[Choice, ...]:
        """Parent values under which this parameter is active; () if unconditional."""
        return () if self.when is None else next(iter(self.when.values()))

    def allows(self, parent_value: Any) -> bool:
        """Whether the parent taking `parent_value` leaves this parameter active (True when
        unconditional). Type-aware: `True`, `1` and `1.0` differ; numpy scalars unwrapped."""
        if self.when is None:
            return True
        key = _typed(_as_choice(parent_value))
        return any(_typed(v) == key for v in self.allowed)

    def is_active(self, config: Mapping[str, Any]) -> bool:
        """Whether this parameter is active in `config`: it is unconditional, or its parent
        is in `config` (which holds only active parameters) with a value it `allows`."""
        return self.parent is None or (self.parent in config
                                       and self.allows(config[self.parent]))

    def _fields_key(self) -> tuple:
        raise NotImplementedError

    def _key(self) -> tuple:
        return (self._fields_key(), self.parent, tuple(_typed(v) for v in self.allowed))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))


@dataclass(frozen=True, eq=False)
class _Numeric(_Param):
    """Fields and checks shared by Float and Int; `_integer` tells them apart."""

    name: str
    low: float
    high: float
    _: KW_ONLY
    log: bool = False
    when: dict[str, tuple[Choice, ...]] | None = None
    _integer: ClassVar[bool] = False

    @property
    def _kind(self) -> str:
        return "Int" if self._integer else "Float"

    def __post_init__(self) -> None:
        _check_name(self._kind, self.name)
        label = f"{self._kind}({self.name!r})"
        low, high, log = _check_bounds(label, self.low, self.high, self.log,
                                       integer=self._integer)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "when", _normalize_when(label, self.when))

    def _fields_key(self) -> tuple:
        return (self._kind, self.name, self.low, self.high, self.log)


@dataclass(frozen=True, eq=False)
class Float(_Numeric):
    """A real parameter on `[low, high]`, searched on a log scale when `log`.

    Attributes:
        name: unique name within the space.
        low: finite lower bound (> 0 when `log`).
        high: finite upper bound, > `low`.
        log: encode `log(value)` linearly instead of `value`.
        when: `{parent: value or [values]}`; active only when the categorical `parent` is
            active and takes one of the values. Stored as `{parent: (values, ...)}`.

    Raises:
        SearchSpaceError: on a bad name, bounds, `log` or `when`.
    """


@dataclass(frozen=True, eq=False)
class Int(_Numeric):
    """An integer parameter on `[low, high]` (both included), on a log scale when `log`.

    Attributes:
        name: unique name within the space.
        low: integer lower bound (>= 1 when `log`); integral floats such as 1.0 are accepted.
        high: integer upper bound, > `low`.
        log: encode `log(value)` linearly instead of `value`.
        when: as for `Float`.

    Raises:
        SearchSpaceError: on a bad name, bounds, `log` or `when`.
    """

    low: int
    high: int
    _integer: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class Categorical(_Param):
    """An unordered choice among `choices` (str, int, float or bool, compared by type).

    Attributes:
        name: unique name within the space.
        choices: distinct choices, stored as a tuple; encoded as their index.
        when: as for `Float`.

    Raises:
        SearchSpaceError: on a bad name, empty, duplicate or unsupported choices, or `when`.
    """

    name: str
    choices: tuple[Choice, ...]
    _: KW_ONLY
    when: dict[str, tuple[Choice, ...]] | None = None

    def __post_init__(self) -> None:
        _check_name("Categorical", self.name)
        label = f"Categorical({self.name!r})"
        choices = self.choices
        if not isinstance(choices, Sequence) or isinstance(choices, (str, bytes)):
            raise SearchSpaceError(
                f"{label}: choices must be a list or tuple, got {_type_name(choices)} "
                f"{choices!r}; e.g. choices=['adam', 'sgd']."
            )
        if not choices:
            raise SearchSpaceError(f"{label}: choices is empty; list at least one choice.")
        lookup: dict[tuple[type, Choice], int] = {}
        for i, value in enumerate(choices):
            choice = _as_choice(value)
            if choice is _UNSUPPORTED:
                raise SearchSpaceError(
                    f"{label}: choice #{i} is {_type_name(value)} {value!r}; choices must be "
                    "str, int, float or bool (map other objects to names)."
                )
            if isinstance(choice, float) and not math.isfinite(choice):
                raise SearchSpaceError(f"{label}: choice #{i} is {choice!r}; use finite numbers.")
            if _typed(choice) in lookup:
                raise SearchSpaceError(
                    f"{label}: choice {choice!r} appears twice (#{lookup[_typed(choice)]} and "
                    f"#{i}); list each choice once."
                )
            lookup[_typed(choice)] = i
        object.__setattr__(self, "choices", tuple(k[1] for k in lookup))
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "when", _normalize_when(label, self.when))

    def index(self, value: Any) -> int | None:
        """Index of `value` in `choices` (type-aware; numpy scalars unwrapped), or None."""
        choice = _as_choice(value)
        return None if choice is _UNSUPPORTED else self._lookup.get(_typed(choice))

    def _fields_key(self) -> tuple:
        return ("Categorical", self.name, tuple(_typed(c) for c in self.choices))


Param = Union[Float, Int, Categorical]
_PARAM_TYPES = (Float, Int, Categorical)


def _check_condition(p: Param, by_name: Mapping[str, Param]) -> None:
    """Raise SearchSpaceError unless `p.when` names a categorical among `by_name` (the
    parameters of a space, by name) and values it can take."""
    if p.parent is None:
        return
    label = f"{type(p).__name__}({p.name!r})"
    parent = by_name.get(p.parent)
    if parent is None:
        raise SearchSpaceError(
            f"{label}: `when` names the parent {p.parent!r}, which is not in the space"
            f"{_did_you_mean(p.parent, list(by_name))}; add it or fix the name."
        )
    if not isinstance(parent, Categorical):
        raise SearchSpaceError(
            f"{label}: `when` names {p.parent!r}, a {type(parent).__name__}; a parent must be "
            "a Categorical."
        )
    for value in p.allowed:
        if parent.index(value) is None:
            raise SearchSpaceError(
                f"{label}: when[{p.parent!r}] allows {value!r}, which is not a choice of "
                f"{p.parent!r} {list(parent.choices)!r} (choices compare by type too)."
            )


# --------------------------------------------------------------------------- values


def _describe(p: Param) -> str:
    """The expectation for a value of `p`, for error messages."""
    if isinstance(p, Categorical):
        return f"one of {list(p.choices)!r}"
    kind = "a float" if isinstance(p, Float) else "an int"
    return f"{kind} in [{p.low!r}, {p.high!r}]" + (" (log scale)" if p.log else "")


def _check_value(p: Param, value: Any) -> Choice:
    """Normalized `value` of `p`, or ParameterError."""
    if isinstance(p, Categorical):
        index = p.index(value)
        if index is None:
            raise ParameterError(
                f"parameter {p.name!r} = {value!r} ({_type_name(value)}) is not among its "
                f"choices {list(p.choices)!r}; choices compare by type, so True != 1 != 1.0."
            )
        return p.choices[index]
    real = _as_real(value)
    if real is None:
        raise ParameterError(
            f"parameter {p.name!r} must be {_describe(p)}, got {_type_name(value)} {value!r}; "
            "pass a number (bool is not one)."
        )
    if not math.isfinite(real):
        raise ParameterError(
            f"parameter {p.name!r} = {value!r} is not finite; pass {_describe(p)}."
        )
    if isinstance(p, Int):
        if isinstance(value, numbers.Integral):
            real = int(value)
        elif real.is_integer():
            real = int(real)
        else:
            raise ParameterError(
                f"parameter {p.name!r} = {value!r} is not an integer; pass {_describe(p)} "
                "(3 or 3.0), rounding first if needed."
            )
    if not p.low <= real <= p.high:
        raise ParameterError(
            f"parameter {p.name!r} = {value!r} is outside [{p.low!r}, {p.high!r}]; clip it or "
            "widen the bounds."
        )
    return real


def _raw_value(p: Param, value: Any) -> float:
    """Number stored in the raw value matrix: the value, or the choice index; NaN if None."""
    if value is None:
        return math.nan
    if isinstance(p, Categorical):
        return float(p.index(value))
    return float(value)


def _plain_value(p: Param, value: float) -> Choice:
    """Config value of `p` from a raw-matrix entry (integral for Int and Categorical)."""
    if isinstance(p, Float):
        return float(value)
    if isinstance(p, Int):
        return int(value)
    return p.choices[int(value)]


# --------------------------------------------------------------------------- numeric maps


def _float_to_unit(v: Tensor, p: Float) -> Tensor:
    """`n` values of `p` (validated: in `[low, high]`) to `n` encoded values in [0, 1];
    clamped, because torch's log and Python's can differ in the last bit (the lower bound
    0.7501707274674178 of a log float encoded to -2.4e-17)."""
    if p.log:
        lo, hi = math.log(p.low), math.log(p.high)
        return ((torch.log(v) - lo) / (hi - lo)).clamp(0.0, 1.0)
    return ((v - p.low) / (p.high - p.low)).clamp(0.0, 1.0)


def _float_from_unit(u: Tensor, p: Float) -> Tensor:
    """`n` encoded values (clipped to [0, 1]) to `n` values of `p` in `[low, high]`; the
    ends of the unit interval give the bounds exactly (exp(log(1e-6)) is 1.0000000000000004e-06)."""
    u = u.clamp(0.0, 1.0)
    if p.log:
        lo, hi = math.log(p.low), math.log(p.high)
        v = torch.exp(lo + u * (hi - lo))
    else:
        v = p.low + u * (p.high - p.low)
    v = v.clamp(p.low, p.high)
    return torch.where(u <= 0.0, p.low, torch.where(u >= 1.0, p.high, v))


def _integer_from_uniform(u: Tensor, p: Int) -> Tensor:
    """`n` uniform draws in [0, 1) to `n` integer values of `p`, each integer one bin:
    equal bins when linear; bins `[log v, log(v + 1))` when log (log-uniform, then floor)."""
    if p.log:
        lo, hi = math.log(p.low), math.log(p.high + 1)
        v = torch.floor(torch.exp(lo + u * (hi - lo)))
    else:
        v = p.low + torch.floor(u * (p.high - p.low + 1))
    return v.clamp(p.low, p.high)

