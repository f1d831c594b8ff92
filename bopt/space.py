"""Search spaces: parameter types, validation, and the map between configs and encoded points.

A configuration ("config") is a mapping from parameter name to value holding exactly the
parameters that are active. `Space.encode` turns configs into `n x d` points (conventions
in `bopt.layout`); `Space.decode` turns any point of the unit cube back into a valid config.

Conditional parameters: `when={"optimizer": ["sgd", "momentum"]}` makes a parameter active
only when the categorical `optimizer` is active and takes one of those values. Categorical
values compare by type as well as value, so `True`, `1` and `1.0` are three different
choices.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from bopt.errors import ParameterError, SearchSpaceError
from bopt.layout import (
    Condition,
    IntegerColumn,
    Layout,
    active_mask,
    decode_integer,
    encode_integer,
    inactive_fill,
)
from bopt.sobol import sobol_points

Choice = Union[str, int, float, bool]

_FORMAT = "bopt.space"
_VERSION = 1
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
class Float(_Param):
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

    name: str
    low: float
    high: float
    _: KW_ONLY
    log: bool = False
    when: dict[str, tuple[Choice, ...]] | None = None

    def __post_init__(self) -> None:
        _check_name("Float", self.name)
        label = f"Float({self.name!r})"
        low, high, log = _check_bounds(label, self.low, self.high, self.log, integer=False)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "when", _normalize_when(label, self.when))

    def _fields_key(self) -> tuple:
        return ("Float", self.name, self.low, self.high, self.log)


@dataclass(frozen=True, eq=False)
class Int(_Param):
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

    name: str
    low: int
    high: int
    _: KW_ONLY
    log: bool = False
    when: dict[str, tuple[Choice, ...]] | None = None

    def __post_init__(self) -> None:
        _check_name("Int", self.name)
        label = f"Int({self.name!r})"
        low, high, log = _check_bounds(label, self.low, self.high, self.log, integer=True)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "when", _normalize_when(label, self.when))

    def _fields_key(self) -> tuple:
        return ("Int", self.name, self.low, self.high, self.log)


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
_TYPE_TAGS = {Float: "float", Int: "int", Categorical: "categorical"}


def _describe(p: Param) -> str:
    """The expectation for a value of `p`, for error messages."""
    if isinstance(p, Categorical):
        return f"one of {list(p.choices)!r}"
    kind = "a float" if isinstance(p, Float) else "an int"
    return f"{kind} in [{p.low!r}, {p.high!r}]" + (" (log scale)" if p.log else "")


# --------------------------------------------------------------------------- numeric maps


def _float_to_unit(v: Tensor, p: Float) -> Tensor:
    """`n` values of `p` to `n` encoded values in [0, 1]."""
    if p.log:
        lo, hi = math.log(p.low), math.log(p.high)
        return (torch.log(v) - lo) / (hi - lo)
    return (v - p.low) / (p.high - p.low)


def _float_from_unit(u: Tensor, p: Float) -> Tensor:
    """`n` encoded values (clipped to [0, 1]) to `n` values of `p` in `[low, high]`."""
    u = u.clamp(0.0, 1.0)
    if p.log:
        lo, hi = math.log(p.low), math.log(p.high)
        v = torch.exp(lo + u * (hi - lo))
    else:
        v = p.low + u * (p.high - p.low)
    return v.clamp(p.low, p.high)


def _integer_from_uniform(u: Tensor, p: Int) -> Tensor:
    """`n` uniform draws in [0, 1) to `n` integer values of `p`, each integer one bin:
    equal bins when linear; bins `[log v, log(v + 1))` when log (log-uniform, then floor)."""
    if p.log:
        lo, hi = math.log(p.low), math.log(p.high + 1)
        v = torch.floor(torch.exp(lo + u * (hi - lo)))
    else:
        v = p.low + torch.floor(u * (p.high - p.low + 1))
    return v.clamp(p.low, p.high)


# --------------------------------------------------------------------------- the space


def _parent_first(params: Sequence[Param]) -> tuple[Param, ...]:
    """Stable topological order: repeatedly take the earliest-declared parameter whose parent
    is already placed (declaration order when it is already parent-first)."""
    order: list[Param] = []
    placed: set[str] = set()
    remaining = list(params)
    while remaining:
        for i, p in enumerate(remaining):
            if p.parent is None or p.parent in placed:
                order.append(remaining.pop(i))
                placed.add(p.name)
                break
        else:  # every remaining parameter waits on another remaining one: a cycle
            by_name = {p.name: p for p in remaining}
            path = [remaining[0].name]  # every remaining parent is itself remaining
            while (step := by_name[path[-1]].parent) not in path:
                path.append(step)
            path = path[path.index(step):] + [step]
            cycle = " -> ".join(repr(name) for name in path)
            raise SearchSpaceError(
                f"Space(): the conditions form a cycle {cycle} (each `when` names the next); "
                "a parameter cannot be its own ancestor. Remove one of these `when`s."
            )
    return tuple(order)


class Space:
    """An ordered set of parameters, parents before children.

    Column `i` of every encoded point is parameter `self.params[i]`.

    Args:
        params: the parameters, in any order where parents may follow their children.

    Raises:
        SearchSpaceError: on an empty space, duplicate names, or a `when` naming an unknown
            or non-categorical parent, values the parent cannot take, or a cycle.
    """

    def __init__(self, params: Sequence[Param]) -> None:
        if isinstance(params, _PARAM_TYPES) or not isinstance(params, Sequence):
            raise SearchSpaceError(
                f"Space() takes a list of parameters, got {_type_name(params)} {params!r}; "
                "wrap it: Space([...])."
            )
        if not params:
            raise SearchSpaceError("Space() got no parameters; declare at least one.")
        by_name: dict[str, Param] = {}
        for i, p in enumerate(params):
            if not isinstance(p, _PARAM_TYPES):
                raise SearchSpaceError(
                    f"Space(): item #{i} is {_type_name(p)} {p!r}; expected Float, Int or "
                    "Categorical."
                )
            if p.name in by_name:
                raise SearchSpaceError(
                    f"Space(): the name {p.name!r} is used twice; names must be unique, "
                    "rename one of them."
                )
            by_name[p.name] = p
        for p in params:
            _check_condition(p, by_name)
        self._params = _parent_first(params)
        self._index = {p.name: i for i, p in enumerate(self._params)}
        self._layout = self._build_layout()

    def _build_layout(self) -> Layout:
        continuous, integers, categorical, sizes, conditions = [], [], [], [], []
        for i, p in enumerate(self._params):
            if isinstance(p, Categorical):
                categorical.append(i)
                sizes.append(len(p.choices))
            else:
                continuous.append(i)
            if isinstance(p, Int):
                integers.append(IntegerColumn(i, p.low, p.high, p.log))
            if p.parent is not None:
                parent = self[p.parent]
                allowed = tuple(sorted(parent.index(v) for v in p.allowed))
                conditions.append(Condition(i, self._index[p.parent], allowed))
        return Layout(d=len(self._params), continuous=tuple(continuous),
                      integers=tuple(integers), categorical=tuple(categorical),
                      categorical_sizes=tuple(sizes), conditions=tuple(conditions))

    # ----- container protocol

    @property
    def params(self) -> tuple[Param, ...]:
        """The parameters in column order (parents before children)."""
        return self._params

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names in column order."""
        return tuple(p.name for p in self._params)

    @property
    def layout(self) -> Layout:
        """Column description of the encoded space, for kernels and the optimizer."""
        return self._layout

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self._params)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Param:
        if name not in self._index:
            raise ParameterError(
                f"unknown parameter {name!r}{_did_you_mean(name, self.names)}; the space has "
                f"{list(self.names)!r}."
            )
        return self._params[self._index[name]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self._params == other._params

    def __hash__(self) -> int:
        return hash(self._params)

    def __repr__(self) -> str:
        return f"Space({list(self._params)!r})"

    # ----- configs

    def _inactive_reason(self, p: Param, config: Mapping[str, Any]) -> str | None:
        """Why `p` is inactive given the (validated) values of its ancestors; None if active."""
        if p.parent is None:
            return None
        if p.parent not in config:
            return f"its parent {p.parent!r} is inactive"
        value = config[p.parent]
        if _typed(value) in {_typed(v) for v in p.allowed}:
            return None
        return (f"{p.parent!r} = {value!r} (it is used only when {p.parent!r} is one of "
                f"{list(p.allowed)!r})")

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a config and return a normalized copy in column order.

        Ints come back as `int`, floats as `float`, categoricals as the declared choice
        object; numpy scalars are accepted, as are integral floats (3.0) for an Int.

        Args:
            config: `{name: value}` holding exactly the active parameters.

        Returns:
            The normalized config.

        Raises:
            ParameterError: naming the parameter that is unknown, missing, inactive but
                present, of the wrong type, non-finite, out of range or not a choice.
        """
        if not isinstance(config, Mapping):
            raise ParameterError(
                f"a config must be a mapping {{name: value}}, got {_type_name(config)} "
                f"{config!r}."
            )
        for name in config:
            if name not in self._index:
                raise ParameterError(
                    f"unknown parameter {name!r}{_did_you_mean(name, self.names)}; the space "
                    f"has {list(self.names)!r}. Remove it from the config."
                )
        out: dict[str, Any] = {}
        for p in self._params:
            reason = self._inactive_reason(p, out)
            if reason is not None:
                if p.name in config:
                    raise ParameterError(
                        f"parameter {p.name!r} is inactive because {reason}; drop it from "
                        "the config."
                    )
                continue
            if p.name not in config:
                why = ("" if p.parent is None
                       else f" (active because {p.parent!r} = {out[p.parent]!r})")
                raise ParameterError(
                    f"missing parameter {p.name!r}{why}; add {_describe(p)}."
                )
            out[p.name] = _check_value(p, config[p.name])
        return out

    def contains(self, config: Mapping[str, Any]) -> bool:
        """Whether `validate(config)` would succeed."""
        try:
            self.validate(config)
        except ParameterError:
            return False
        return True

    def key(self, config: Mapping[str, Any]) -> tuple:
        """Hashable canonical key of a config (validated first): `(name, value)` pairs of the
        active parameters in column order, categoricals keyed by choice index so that `True`
        and `1` differ, numbers by their normalized `float` / `int` value.

        Raises:
            ParameterError: if the config is invalid.
        """
        items = self.validate(config).items()
        return tuple((name, self[name].index(value) if isinstance(self[name], Categorical)
                      else value) for name, value in items)

    @property
    def grid_size(self) -> int | None:
        """Number of distinct configs when every parameter is Int or Categorical (an
        inactive parameter contributes no factor); None when any parameter is a Float."""
        if any(isinstance(p, Float) for p in self._params):
            return None
        children: dict[str | None, list[Param]] = {}
        for p in self._params:
            children.setdefault(p.parent, []).append(p)

        def count(p: Param) -> int:
            if isinstance(p, Int):
                return p.high - p.low + 1
            return sum(
                math.prod(count(c) for c in children.get(p.name, ())
                          if _typed(choice) in {_typed(v) for v in c.allowed})
                for choice in p.choices
            )

        return math.prod(count(p) for p in children[None])

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every configuration of a finite space, in a fixed order (parents vary slowest).

        Raises:
            SearchSpaceError: when the space has a Float (it is not finite).
        """
        if self.grid_size is None:
            raise SearchSpaceError("grid() needs a finite space (only Int and Categorical "
                                   "parameters); this one has Floats.")

        def values(p: Param) -> Sequence[Any]:
            return range(p.low, p.high + 1) if isinstance(p, Int) else p.choices

        def extend(i: int, partial: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(self._params):
                yield dict(partial)
                return
            p = self._params[i]
            if p.parent is not None and (p.parent not in partial or _typed(partial[p.parent])
                                         not in {_typed(v) for v in p.allowed}):
                yield from extend(i + 1, partial)
                return
            for value in values(p):
                partial[p.name] = value
                yield from extend(i + 1, partial)
            del partial[p.name]

        return extend(0, {})

    # ----- encoding

    def encode(self, configs: Sequence[Mapping[str, Any]], *, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> Tensor:
        """Validate and encode configs.

        Floats and ints map to [0, 1] (`(v - low) / (high - low)`, on `log` first when
        declared); a categorical maps to its choice index. Inactive parameters hold
        `INACTIVE_NUMERIC` (numbers) or the index `k` (categoricals with `k` choices).

        Args:
            configs: `n` configs.
            dtype: floating dtype of the result.
            device: device of the result.

        Returns:
            `n x d` encoded points.

        Raises:
            ParameterError: naming the config (by position) and parameter that do not fit.
        """
        if isinstance(configs, Mapping):
            raise ParameterError(
                "encode() takes a sequence of configs, got a single mapping; wrap it: "
                "space.encode([config])."
            )
        rows = []
        for i, config in enumerate(configs):
            try:
                valid = self.validate(config)
            except ParameterError as error:
                raise ParameterError(f"config #{i}: {error}") from None
            rows.append([_raw_value(p, valid.get(p.name)) for p in self._params])
        V = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(self))  # n x d
        return self._encode_values(V).to(dtype=dtype, device=device)

    def _encode_values(self, V: Tensor) -> Tensor:
        """`n x d` raw values (NaN where inactive) to `n x d` encoded points."""
        X = torch.empty_like(V)
        integer_columns = {col.column: col for col in self._layout.integers}
        for j, p in enumerate(self._params):
            if isinstance(p, Float):
                X[:, j] = _float_to_unit(V[:, j], p)
            elif isinstance(p, Int):
                X[:, j] = encode_integer(V[:, j], integer_columns[j])
            else:
                X[:, j] = V[:, j]
        fill = inactive_fill(self._layout, dtype=V.dtype, device=V.device)  # d
        return torch.where(V.isnan(), fill, X)  # n x d

    def decode(self, X: Tensor) -> list[dict[str, Any]]:
        """Map encoded points to configs.

        Numeric columns are clipped to [0, 1] and mapped back (exp when `log`); Floats are
        clamped to `[low, high]`, Ints rounded to the nearest integer, categorical indices
        rounded and clamped to `[0, k - 1]`. Activity follows the decoded parent values and
        inactive parameters are omitted. Values are plain `float`, `int` or the choice.

        Args:
            X: `n x d` points (any float dtype or device).

        Returns:
            `n` valid configs.

        Raises:
            ParameterError: if `X` is not `n x d` or holds non-finite entries.
        """
        X = self._check_points(X, "decode")
        V = torch.empty_like(X)
        integer_columns = {col.column: col for col in self._layout.integers}
        for j, p in enumerate(self._params):
            if isinstance(p, Float):
                V[:, j] = _float_from_unit(X[:, j], p)
            elif isinstance(p, Int):
                V[:, j] = decode_integer(X[:, j], integer_columns[j]).round()
            else:
                V[:, j] = X[:, j].round().clamp(0, len(p.choices) - 1)
        return self._configs_from_values(V)

    def from_unit(self, U: Tensor) -> list[dict[str, Any]]:
        """Map uniform draws in the unit cube to configs, uniformly per column.

        Floats map as in `decode` (uniform on the log scale when `log`); a linear Int takes
        `low + floor(u (high - low + 1))`, so each integer is equally likely; a log Int takes
        `floor(exp(U(log low, log(high + 1))))`; a categorical takes `floor(u k)`.

        Args:
            U: `n x d` points in [0, 1).

        Returns:
            `n` valid configs.

        Raises:
            ParameterError: if `U` is not `n x d` or holds non-finite entries.
        """
        U = self._check_points(U, "from_unit").clamp(0.0, 1.0)
        V = torch.empty_like(U)
        for j, p in enumerate(self._params):
            if isinstance(p, Float):
                V[:, j] = _float_from_unit(U[:, j], p)
            elif isinstance(p, Int):
                V[:, j] = _integer_from_uniform(U[:, j], p)
            else:
                V[:, j] = torch.floor(U[:, j] * len(p.choices)).clamp(0, len(p.choices) - 1)
        return self._configs_from_values(V)

    def _check_points(self, X: Any, caller: str) -> Tensor:
        """`n x d` float64 CPU copy of `X`, or ParameterError."""
        d = len(self)
        if not isinstance(X, Tensor) or X.dim() != 2 or X.shape[-1] != d:
            shape = tuple(X.shape) if isinstance(X, Tensor) else _type_name(X)
            raise ParameterError(
                f"{caller}() expects an `n x d` tensor with d={d}, got {shape}; "
                "use X.reshape(-1, d) for a batch or X.unsqueeze(0) for one point."
            )
        X = X.detach().to(device="cpu", dtype=torch.float64)
        if not torch.isfinite(X).all():
            rows = torch.nonzero(~torch.isfinite(X).all(dim=-1)).flatten().tolist()
            raise ParameterError(
                f"{caller}() got non-finite entries in rows {rows[:5]}; pass finite points."
            )
        return X

    def _configs_from_values(self, V: Tensor) -> list[dict[str, Any]]:
        """`n x d` raw values (categorical columns hold valid indices) to `n` configs."""
        active = active_mask(V, self._layout).tolist()  # n x d
        configs = []
        for row, row_active in zip(V.tolist(), active):
            config: dict[str, Any] = {}
            for p, value, is_active in zip(self._params, row, row_active):
                if is_active:
                    config[p.name] = _plain_value(p, value)
            configs.append(config)
        return configs

    # ----- designs

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        """Draw `n` configs uniformly at random (uniform in each column, see `from_unit`).

        Args:
            n: number of configs.
            seed: seed of a private `torch.Generator`; the global RNG is untouched.

        Returns:
            `n` valid configs; equal seeds give equal configs.
        """
        _check_count("sample", n, seed)
        generator = torch.Generator().manual_seed(seed)
        U = torch.rand(n, len(self), generator=generator, dtype=torch.float64)  # n x d
        return self.from_unit(U)

    def sobol(self, n: int, seed: int) -> list[dict[str, Any]]:
        """Draw `n` configs from a scrambled Sobol sequence mapped by `from_unit`.

        Args:
            n: number of configs; powers of two keep the design balanced.
            seed: scrambling seed.

        Returns:
            `n` valid configs; equal seeds give equal configs.
        """
        _check_count("sobol", n, seed)
        return self.from_unit(sobol_points(n, len(self), seed))

    # ----- serialization

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description; `Space.from_dict(space.to_dict()) == space`.

        Choices keep their type through JSON (`true`, `1`, `1.0` and `"1"` all differ).
        """
        entries = []
        for p in self._params:
            entry: dict[str, Any] = {"type": _TYPE_TAGS[type(p)], "name": p.name}
            if isinstance(p, Categorical):
                entry["choices"] = list(p.choices)
            else:
                entry.update(low=p.low, high=p.high, log=p.log)
            if p.when is not None:
                entry["when"] = {p.parent: list(p.allowed)}
            entries.append(entry)
        return {"format": _FORMAT, "version": _VERSION, "params": entries}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """Rebuild a space from `to_dict()` output.

        Raises:
            SearchSpaceError: if `data` is not such a description, or describes a bad space.
        """
        if (not isinstance(data, Mapping) or data.get("format") != _FORMAT
                or not isinstance(data.get("params"), list)):
            raise SearchSpaceError(
                f"Space.from_dict(): expected the output of Space.to_dict() "
                f"({{'format': {_FORMAT!r}, 'version': {_VERSION}, 'params': [...]}}), got "
                f"{data!r:.200}."
            )
        if data.get("version") != _VERSION:
            raise SearchSpaceError(
                f"Space.from_dict(): unsupported version {data.get('version')!r}; this bopt "
                f"reads version {_VERSION}."
            )
        return cls([_param_from_dict(i, entry) for i, entry in enumerate(data["params"])])


# --------------------------------------------------------------------------- space helpers


def _check_condition(p: Param, by_name: Mapping[str, Param]) -> None:
    """Raise SearchSpaceError unless `p.when` names a categorical of the space and values
    it can take."""
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


def _check_count(caller: str, n: Any, seed: Any) -> None:
    for what, value, low in (("n", n, 0), ("seed", seed, None)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
                low is not None and value < low):
            need = "a non-negative int" if low is not None else "an int"
            raise ParameterError(f"{caller}(): {what} must be {need}, got {value!r}.")


def _param_from_dict(i: int, entry: Any) -> Param:
    """One parameter from its `to_dict()` entry, or SearchSpaceError naming entry `#i`."""
    fields = {"float": ("name", "low", "high", "log", "when"),
              "int": ("name", "low", "high", "log", "when"),
              "categorical": ("name", "choices", "when")}
    kind = entry.get("type") if isinstance(entry, Mapping) else None
    if kind not in fields:
        raise SearchSpaceError(
            f"Space.from_dict(): params[{i}] = {entry!r:.200} needs 'type' in "
            f"{list(fields)!r}."
        )
    extra = set(entry) - set(fields[kind]) - {"type"}
    missing = {"name", "choices"} if kind == "categorical" else {"name", "low", "high"}
    missing -= set(entry)
    if extra or missing:
        raise SearchSpaceError(
            f"Space.from_dict(): params[{i}] ({kind}) has unknown keys {sorted(extra)} and "
            f"lacks {sorted(missing)}; expected keys {list(fields[kind])!r}."
        )
    kwargs = {k: v for k, v in entry.items() if k != "type"}
    cls = {"float": Float, "int": Int, "categorical": Categorical}[kind]
    return cls(**kwargs)
