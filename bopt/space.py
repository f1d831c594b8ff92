"""Search spaces: a `Space` of parameters, config validation, and the map between configs
and encoded points.

A configuration ("config") is a mapping from parameter name to value holding exactly the
parameters that are active. `Space.encode` turns configs into `n x d` points (conventions
in `bopt.layout`); `Space.decode` turns any point of the unit cube back into a valid config.
The parameter types and their conditions (`when=...`) live in `bopt.params`; they are
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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
from bopt.params import (
    _PARAM_TYPES,
    Categorical,
    Choice,
    Float,
    Int,
    Param,
    _check_condition,
    _check_value,
    _describe,
    _did_you_mean,
    _float_from_unit,
    _float_to_unit,
    _integer_from_uniform,
    _plain_value,
    _raw_value,
    _type_name,
)
from bopt.sobol import sobol_points
from bopt.validation import check_int

__all__ = ["Categorical", "Choice", "Float", "Int", "Param", "Space"]

_FORMAT = "bopt.space"
_VERSION = 1
_TYPE_TAGS = {Float: "float", Int: "int", Categorical: "categorical"}


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

    def __str__(self) -> str:
        """One parameter a line: what `print(space)` shows."""
        lines = [f"Space with {len(self)} parameters:"]
        for p in self._params:
            what = (f"one of {list(p.choices)!r}" if isinstance(p, Categorical) else
                    f"{type(p).__name__.lower()} in [{p.low!r}, {p.high!r}]"
                    + (", log scale" if p.log else ""))
            when = "" if p.parent is None else f"  (when {p.parent} in {list(p.allowed)!r})"
            lines.append(f"  {p.name}: {what}{when}")
        return "\n".join(lines)

    # ----- configs

    def _inactive_reason(self, p: Param, config: Mapping[str, Any]) -> str | None:
        """Why `p` is inactive given the (validated) values of its ancestors; None if active."""
        if p.is_active(config):
            return None
        if p.parent not in config:
            return f"its parent {p.parent!r} is inactive"
        return (f"{p.parent!r} = {config[p.parent]!r} (it is used only when {p.parent!r} is "
                f"one of {list(p.allowed)!r})")

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

    def active_config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The active parameters of `values`, in column order (parents first).

        Trusts `values` (no validation): each parameter is kept when it `is_active` given
        the ones kept before it.

        Args:
            values: a value for every active parameter; values of inactive parameters, or
                of names outside the space, may be present and are dropped.

        Returns:
            `{name: value}` of the active parameters.
        """
        config: dict[str, Any] = {}
        for p in self._params:
            if p.is_active(config):
                config[p.name] = values[p.name]
        return config

    def key(self, config: Mapping[str, Any], *, validated: bool = False) -> tuple:
        """Hashable canonical key of a config: `(name, value)` pairs of the active parameters
        in column order, categoricals keyed by choice index so that `True` and `1` differ,
        numbers by their normalized `float` / `int` value.

        Args:
            config: the config; validated first unless `validated`.
            validated: trust that `config` is valid and normalized in column order (as
                `validate`, `decode`, `from_unit`, `sample`, `sobol` and `grid` return it)
                and skip the check; the key is the same.

        Raises:
            ParameterError: if the config is invalid (only when not `validated`).
        """
        items = []
        for name, value in (config if validated else self.validate(config)).items():
            p = self._params[self._index[name]]
            items.append((name, p.index(value) if isinstance(p, Categorical) else value))
        return tuple(items)

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
                math.prod(count(c) for c in children.get(p.name, ()) if c.allows(choice))
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
            if not p.is_active(partial):
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
        n, seed = _check_count("sample", n, seed)
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
        n, seed = _check_count("sobol", n, seed)
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


def _check_count(caller: str, n: Any, seed: Any) -> tuple[int, int]:
    """`(n, seed)` as plain ints, or ParameterError naming `caller` and the argument."""
    return (check_int(n, f"{caller}(): n", low=0, error=ParameterError),
            check_int(seed, f"{caller}(): seed", error=ParameterError))


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
