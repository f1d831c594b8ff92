"""Tests for bopt.space: space declaration, validation, activity, encode/decode, designs,
storage and keys. The parameter types themselves are tested in tests/test_params.py.

Also covers the layout helpers (`active_mask`, `canonicalize`, `integer_grid_round`) on the
layout a conditional space produces.
"""

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from botorch.utils.transforms import normalize

from bopt.errors import ParameterError, SearchSpaceError
from bopt.layout import (
    INACTIVE_NUMERIC,
    Condition,
    IntegerColumn,
    active_mask,
    canonicalize,
    integer_grid_round,
)
from bopt.space import Categorical, Float, Int, Space


def _atol(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-6


def typed_space() -> Space:
    """Finite and conditional, with True, 1, 1.0 and "1" as four choices of one parent;
    12 configs: flag True (n: 3), 1 and "1" (m False: 1, m 0: k 2, m 0.0: 1), 1.0 (1)."""
    return Space([
        Categorical("flag", [True, 1, 1.0, "1"]),
        Int("n", 1, 3, when={"flag": True}),
        Categorical("m", [False, 0, 0.0], when={"flag": [1, "1"]}),
        Int("k", 1, 2, when={"m": 0}),
    ])


def typed_items(config):
    """`(name, type, value)` triples, so that True, 1 and 1.0 compare apart."""
    return [(name, type(value), value) for name, value in config.items()]


def mixed_space() -> Space:
    """Mixed conditional space, declared out of order; chain optimizer -> nesterov -> warmup.

    Column order after sorting: lr, optimizer, momentum, nesterov, warmup, layers, dropout.
    """
    return Space([
        Float("momentum", 0.0, 0.99, when={"optimizer": ["sgd", "rmsprop"]}),
        Float("lr", 1e-5, 1e-1, log=True),
        Categorical("optimizer", ["sgd", "adam", "rmsprop"]),
        Categorical("nesterov", [True, False], when={"optimizer": "sgd"}),
        Int("warmup", 1, 1000, log=True, when={"nesterov": True}),
        Int("layers", 1, 4),
        Float("dropout", 0.0, 0.5),
    ])


MIXED_CONFIGS = [
    {"lr": 1e-3, "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "warmup": 10,
     "layers": 2, "dropout": 0.1},
    {"lr": 1e-5, "optimizer": "sgd", "momentum": 0.0, "nesterov": False, "layers": 1,
     "dropout": 0.5},
    {"lr": 1e-1, "optimizer": "adam", "layers": 4, "dropout": 0.0},
    {"lr": 0.02, "optimizer": "rmsprop", "momentum": 0.5, "layers": 3, "dropout": 0.25},
    {"lr": 3e-4, "optimizer": "sgd", "momentum": 0.99, "nesterov": True, "warmup": 1000,
     "layers": 3, "dropout": 0.3},
]


def assert_configs_equal(space, got, expected, *, rel=1e-12):
    """Same keys; ints and choices equal with equal types; floats within `rel`."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert set(g) == set(e)
        for name, value in e.items():
            p = space[name]
            if isinstance(p, Float):
                assert type(g[name]) is float
                scale = abs(p.low) + abs(p.high)
                assert math.isclose(g[name], value, rel_tol=rel, abs_tol=rel * scale), name
            else:
                assert type(g[name]) is type(value) and g[name] == value, name


# --------------------------------------------------------------------------- declaration


def _cat(name, choices=("a", "b"), **kw):
    return Categorical(name, list(choices), **kw)


@pytest.mark.parametrize("params, match", [
    ([], r"Space\(\) got no parameters"),
    (Float("x", 0, 1), r"Space\(\) takes a list of parameters, got Float"),
    ([Float("x", 0, 1), "y"], r"item #1 is str 'y'; expected Float, Int or Categorical"),
    ([Float("x", 0, 1), Int("x", 0, 3)], r"the name 'x' is used twice"),
    ([_cat("optimizer"), Float("lr", 0, 1, when={"optimiser": "a"})],
     r"Float\('lr'\): `when` names the parent 'optimiser', which is not in the space "
     r"\(did you mean 'optimizer'\?\)"),
    ([Int("n", 0, 3), Float("x", 0, 1, when={"n": 1})],
     r"Float\('x'\): `when` names 'n', a Int; a parent must be a Categorical"),
    ([_cat("c"), Float("x", 0, 1, when={"c": ["a", "z"]})],
     r"when\['c'\] allows 'z', which is not a choice of 'c' \['a', 'b'\]"),
    ([_cat("c", [1, 2]), Float("x", 0, 1, when={"c": True})],
     r"when\['c'\] allows True, which is not a choice of 'c' \[1, 2\]"),
    ([_cat("a", when={"b": "a"}), _cat("b", when={"a": "a"})],
     r"the conditions form a cycle 'a' -> 'b' -> 'a'"),
    ([_cat("a", when={"a": "b"})], r"the conditions form a cycle 'a' -> 'a'"),
    ([_cat("r"), _cat("a", when={"c": "a"}), _cat("b", when={"a": "a"}),
      _cat("c", when={"b": "a"}), _cat("leaf", when={"a": "b"})],
     r"cycle 'a' -> 'c' -> 'b' -> 'a'"),
])
def test_space_declaration_errors(params, match):
    with pytest.raises(SearchSpaceError, match=match):
        Space(params)


def test_errors_are_also_value_errors():
    with pytest.raises(ValueError):
        Float("x", 1, 0)
    with pytest.raises(ValueError):
        mixed_space().validate({})


def test_parents_come_first_in_stable_order():
    space = mixed_space()
    assert space.names == ("lr", "optimizer", "momentum", "nesterov", "warmup", "layers",
                           "dropout")
    ordered = [Float("a", 0, 1), _cat("b"), Int("c", 0, 2, when={"b": "a"})]
    assert Space(ordered).params == tuple(ordered)


def test_container_protocol():
    space = mixed_space()
    assert len(space) == 7
    assert [p.name for p in space] == list(space.names)
    assert space["warmup"] == Int("warmup", 1, 1000, log=True, when={"nesterov": True})
    assert space["warmup"].parent == "nesterov" and space["warmup"].allowed == (True,)
    assert "lr" in space and "nope" not in space
    with pytest.raises(ParameterError, match=r"unknown parameter 'layer' \(did you mean 'layers'"):
        space["layer"]
    assert space == mixed_space() and hash(space) == hash(mixed_space())
    assert space != Space([Float("lr", 1e-5, 1e-1, log=True)])


def test_layout_of_mixed_conditional_space():
    layout = mixed_space().layout
    assert layout.d == 7
    assert layout.continuous == (0, 2, 4, 5, 6)
    assert layout.integers == (IntegerColumn(4, 1, 1000, True), IntegerColumn(5, 1, 4, False))
    assert layout.categorical == (1, 3)
    assert layout.categorical_sizes == (3, 2)
    assert layout.conditions == (
        Condition(column=2, parent=1, allowed=(0, 2)),  # momentum: sgd or rmsprop
        Condition(column=3, parent=1, allowed=(0,)),  # nesterov: sgd
        Condition(column=4, parent=3, allowed=(0,)),  # warmup: nesterov is True
    )
    assert layout.categorical_levels == (3, 3)  # nesterov gains an inactive level
    assert layout.conditions


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("config, match", [
    ({"lr": 1e-3, "optimizer": "adam", "layers": 2},
     r"missing parameter 'dropout'; add a float in \[0.0, 0.5\]"),
    ({"lr": 1e-3, "optimizer": "sgd", "momentum": 0.5, "layers": 2, "dropout": 0.1},
     r"missing parameter 'nesterov' \(active because 'optimizer' = 'sgd'\); add one of "
     r"\[True, False\]"),
    ({"lr": 1e-3, "optimizer": "adam", "layers": 2, "dropout": 0.1, "dropuot": 0.1},
     r"unknown parameter 'dropuot' \(did you mean 'dropout'\?\)"),
    ({"lr": 1e-3, "optimizer": "adam", "momentum": 0.5, "layers": 2, "dropout": 0.1},
     r"parameter 'momentum' is inactive because 'optimizer' = 'adam' \(it is used only when "
     r"'optimizer' is one of \['sgd', 'rmsprop'\]\); drop it"),
    ({"lr": 1e-3, "optimizer": "adam", "warmup": 3, "layers": 2, "dropout": 0.1},
     r"parameter 'warmup' is inactive because its parent 'nesterov' is inactive"),
    ({"lr": True, "optimizer": "adam", "layers": 2, "dropout": 0.1},
     r"parameter 'lr' must be a float in \[1e-05, 0.1\] \(log scale\), got bool True"),
    ({"lr": "0.01", "optimizer": "adam", "layers": 2, "dropout": 0.1},
     r"parameter 'lr' must be a float .* got str '0.01'"),
    ({"lr": 1e-3, "optimizer": "adam", "layers": 2.5, "dropout": 0.1},
     r"parameter 'layers' = 2.5 is not an integer; pass an int in \[1, 4\]"),
    ({"lr": 1e-3, "optimizer": "adam", "layers": 2, "dropout": math.nan},
     r"parameter 'dropout' = nan is not finite"),
    ({"lr": 1e-3, "optimizer": "adam", "layers": math.inf, "dropout": 0.1},
     r"parameter 'layers' = inf is not finite"),
    ({"lr": 1e-3, "optimizer": "adam", "layers": 5, "dropout": 0.1},
     r"parameter 'layers' = 5 is outside \[1, 4\]; clip it or widen the bounds"),
    ({"lr": 0.5, "optimizer": "adam", "layers": 2, "dropout": 0.1},
     r"parameter 'lr' = 0.5 is outside \[1e-05, 0.1\]"),
    ({"lr": 1e-3, "optimizer": "Adam", "layers": 2, "dropout": 0.1},
     r"parameter 'optimizer' = 'Adam' \(str\) is not among its choices "
     r"\['sgd', 'adam', 'rmsprop'\]"),
    ({"lr": 1e-3, "optimizer": "sgd", "momentum": 0.1, "nesterov": 1, "layers": 2,
      "dropout": 0.1},
     r"parameter 'nesterov' = 1 \(int\) is not among its choices \[True, False\]"),
    (["lr"], r"a config must be a mapping \{name: value\}, got list"),
])
def test_validate_errors(config, match):
    space = mixed_space()
    with pytest.raises(ParameterError, match=match):
        space.validate(config)
    assert not space.contains(config)


def test_validate_normalizes_types_and_order():
    space = mixed_space()
    config = {"dropout": np.float32(0.25), "layers": 3.0, "optimizer": np.str_("sgd"),
              "nesterov": np.bool_(True), "warmup": np.int64(7), "momentum": 0,
              "lr": np.float64(1e-3)}
    valid = space.validate(config)
    assert list(valid) == ["lr", "optimizer", "momentum", "nesterov", "warmup", "layers",
                           "dropout"]
    assert valid == {"lr": 1e-3, "optimizer": "sgd", "momentum": 0.0, "nesterov": True,
                     "warmup": 7, "layers": 3, "dropout": 0.25}
    assert [type(v) for v in valid.values()] == [float, str, float, bool, int, int, float]
    assert space.contains(config)


# --------------------------------------------------------------------------- encode / decode


def test_encode_linear_floats_matches_botorch_normalize(dtype):
    space = Space([Float("a", -2.0, 3.0), Float("b", 10.0, 10.5)])
    values = torch.tensor([[-2.0, 10.0], [3.0, 10.5], [0.7, 10.123], [1.1, 10.4]],
                          dtype=torch.float64)  # n x d
    configs = [{"a": a, "b": b} for a, b in values.tolist()]
    bounds = torch.tensor([[-2.0, 10.0], [3.0, 10.5]], dtype=torch.float64)  # 2 x d
    X = space.encode(configs, dtype=dtype)
    assert X.dtype == dtype and X.shape == (4, 2)
    torch.testing.assert_close(X, normalize(values, bounds).to(dtype), atol=_atol(dtype),
                               rtol=0.0)


def test_encode_closed_forms(dtype):
    space = Space([Float("lr", 1e-4, 1.0, log=True), Int("n", 2, 10), Int("m", 1, 64, log=True),
                   Categorical("c", ["x", "y", "z"])])
    X = space.encode([{"lr": 1e-2, "n": 4, "m": 8, "c": "z"},
                      {"lr": 1e-4, "n": 10, "m": 1, "c": "x"}], dtype=dtype)
    expected = torch.tensor([
        [0.5, (4 - 2) / 8, math.log(8) / math.log(64), 2.0],  # log10: -2 is halfway to -4..0
        [0.0, 1.0, 0.0, 0.0],
    ], dtype=dtype)
    torch.testing.assert_close(X, expected, atol=_atol(dtype), rtol=0.0)


def test_encode_inactive_values():
    space = mixed_space()
    X = space.encode(MIXED_CONFIGS)  # 5 x 7
    # Config 2 is adam: momentum, nesterov (k = 2) and warmup are inactive.
    assert X[2, 2].item() == INACTIVE_NUMERIC
    assert X[2, 3].item() == 2.0
    assert X[2, 4].item() == INACTIVE_NUMERIC
    # Config 1 is sgd with nesterov False: only warmup is inactive.
    assert X[1, 3].item() == 1.0 and X[1, 4].item() == INACTIVE_NUMERIC
    # Config 4: warmup 1000 is the top of its log range; nesterov True is index 0.
    assert X[4, 4].item() == pytest.approx(1.0, abs=1e-12) and X[4, 3].item() == 0.0
    assert space.encode([]).shape == (0, 7)


def test_encode_validates_every_config():
    space = mixed_space()
    with pytest.raises(ParameterError, match=r"config #1: parameter 'layers' = 9 is outside"):
        space.encode([MIXED_CONFIGS[0], {**MIXED_CONFIGS[2], "layers": 9}])
    with pytest.raises(ParameterError, match=r"encode\(\) takes a sequence of configs, got a "
                                             r"single mapping"):
        space.encode(MIXED_CONFIGS[0])


def test_round_trip_every_type_and_nesting(dtype):
    space = mixed_space()
    X = space.encode(MIXED_CONFIGS, dtype=dtype)
    rel = 1e-12 if dtype == torch.float64 else 1e-5  # float32 keeps ~7 digits
    assert_configs_equal(space, space.decode(X), MIXED_CONFIGS, rel=rel)


def test_round_trip_bool_int_float_str_choices():
    space = Space([Categorical("c", [True, 1, 1.0, "1", False, 0])])
    configs = [{"c": c} for c in space["c"].choices]
    assert_configs_equal(space, space.decode(space.encode(configs)), configs)


def test_decode_clips_rounds_and_omits_inactive():
    space = Space([Float("x", 1.0, 3.0), Int("n", 1, 4), Int("m", 1, 100, log=True),
                   Categorical("c", ["a", "b", "c"]),
                   Float("y", 0.0, 1.0, when={"c": "b"})])
    X = torch.tensor([
        [-0.5, -3.0, -1.0, -2.0, 0.3],  # below the cube: lows, first choice, y inactive
        [1.5, 7.0, 2.0, 7.3, 0.3],  # above: highs, last choice
        [0.5, 0.49, 0.5, 1.4, 1.7],  # n: 1 + 0.49 * 3 = 2.47 -> 2; m: 10; c: b; y clipped
        [0.25, 0.51, 0.49, 0.6, -0.2],  # n: 2.53 -> 3; m: 100**0.49 = 9.55 -> 10
    ], dtype=torch.float64)
    configs = space.decode(X)
    assert configs == [
        {"x": 1.0, "n": 1, "m": 1, "c": "a"},
        {"x": 3.0, "n": 4, "m": 100, "c": "c"},
        {"x": 2.0, "n": 2, "m": 10, "c": "b", "y": 1.0},
        {"x": 1.5, "n": 3, "m": 10, "c": "b", "y": 0.0},
    ]
    for config in configs:
        assert {type(v) for k, v in config.items() if k in "xy"} <= {float}
        assert type(config["n"]) is int and type(config["m"]) is int
        assert space.contains(config)


def test_decode_inactive_follows_decoded_parent():
    space = mixed_space()
    x = space.encode([MIXED_CONFIGS[0]])  # sgd, nesterov True, warmup active
    x[0, 3] = 0.8  # nesterov index rounds to 1 = False: warmup goes, momentum stays
    (config,) = space.decode(x)
    assert config["nesterov"] is False and "warmup" not in config and "momentum" in config
    x[0, 1] = 0.9  # optimizer rounds to adam: momentum, nesterov and warmup go
    (config,) = space.decode(x)
    assert set(config) == {"lr", "optimizer", "layers", "dropout"}


@pytest.mark.parametrize("X, match", [
    (torch.zeros(3), r"decode\(\) expects an `n x d` tensor with d=2, got \(3,\)"),
    (torch.zeros(2, 3), r"got \(2, 3\)"),
    ([[0.0, 0.0]], r"got list"),
    (torch.tensor([[0.0, 0.1], [math.nan, 0.0]]), r"non-finite entries in rows \[1\]"),
])
def test_decode_bad_input(X, match):
    space = Space([Float("x", 0, 1), Int("n", 0, 3)])
    with pytest.raises(ParameterError, match=match):
        space.decode(X)


def test_decode_accepts_float32_and_gradients():
    space = Space([Float("x", 0, 1), Int("n", 0, 3)])
    X = torch.tensor([[0.25, 1.0]], dtype=torch.float32, requires_grad=True)
    assert space.decode(X) == [{"x": 0.25, "n": 3}]


# --------------------------------------------------------------------------- designs


@pytest.mark.parametrize("method", ["sample", "sobol"])
def test_designs_are_valid_deterministic_and_seeded(method):
    space = mixed_space()
    draw = getattr(space, method)
    configs = draw(32, seed=4)
    assert len(configs) == 32 and all(space.contains(c) for c in configs)
    assert configs == draw(32, seed=4) == draw(np.int64(32), seed=np.int64(4))
    assert configs != draw(32, seed=5)
    assert draw(0, seed=0) == []
    state = torch.random.get_rng_state()
    draw(8, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("method", ["sample", "sobol"])
@pytest.mark.parametrize("n, seed, match", [
    (-1, 0, r"n must be an int >= 0; got -1"),
    (2.0, 0, r"n must be an int >= 0; got 2.0"),
    (True, 0, r"n must be an int >= 0; got True"),
    (4, None, r"seed must be an int; got None"),
    (4, 1.0, r"seed must be an int; got 1.0"),
])
def test_design_bad_arguments(method, n, seed, match):
    with pytest.raises(ParameterError, match=rf"{method}\(\): {match}"):
        getattr(Space([Float("x", 0, 1)]), method)(n, seed)


def test_sobol_covers_each_integer_equally():
    space = Space([Int("n", 1, 4), Categorical("c", ["a", "b", "c", "d"]), Float("x", 0, 1)])
    configs = space.sobol(64, seed=0)
    for name in ["n", "c"]:
        counts = Counter(c[name] for c in configs)
        assert len(counts) == 4
        assert all(abs(k - 16) <= 2 for k in counts.values()), counts


def test_sample_is_uniform_over_integers_and_choices():
    space = Space([Int("n", 1, 3), Categorical("c", ["a", "b", "c"])])
    configs = space.sample(3000, seed=0)
    # Each level expects 1000 with standard deviation ~26; 100 is ~4 sigma.
    for name in ["n", "c"]:
        counts = Counter(c[name] for c in configs)
        assert len(counts) == 3
        assert all(abs(k - 1000) <= 100 for k in counts.values()), counts


def test_from_unit_closed_forms():
    space = Space([Int("n", 1, 4), Int("m", 1, 999, log=True), Categorical("c", ["a", "b"]),
                   Float("lr", 1e-4, 1.0, log=True)])
    U = torch.tensor([[0.0, 0.0, 0.0, 0.0],
                      [0.2499, 0.5, 0.4999, 0.5],  # m: floor(1000**0.5) = 31
                      [0.25, 1.0 / 3.0, 0.5, 0.25],  # m: floor(10) with rounding: 9 or 10
                      [0.9999, 0.9999, 0.9999, 1.0]], dtype=torch.float64)
    configs = space.from_unit(U)
    assert [c["n"] for c in configs] == [1, 1, 2, 4]
    assert [c["c"] for c in configs] == ["a", "a", "b", "b"]
    assert [c["m"] for c in configs][:2] == [1, 31] and configs[2]["m"] in (9, 10)
    assert configs[3]["m"] == 999
    assert [c["lr"] for c in configs] == pytest.approx([1e-4, 1e-2, 1e-3, 1.0], rel=1e-12)


def test_sample_log_float_is_uniform_in_log():
    space = Space([Float("lr", 1e-6, 1.0, log=True)])
    logs = torch.tensor([math.log10(c["lr"]) for c in space.sample(4000, seed=1)])
    # Uniform on [-6, 0]: mean -3, fraction below -3 is 1/2 (sd 0.008).
    assert abs(logs.mean().item() + 3.0) < 0.1
    assert abs((logs < -3.0).double().mean().item() - 0.5) < 0.04


# --------------------------------------------------------------------------- storage, keys


def test_to_dict_from_dict_round_trip_through_json():
    space = Space(list(mixed_space().params) + [
        Categorical("flags", [True, 1, 1.0, "1"]),
        Float("w", 0, 1, when={"flags": [1, True]}),
    ])
    data = json.loads(json.dumps(space.to_dict()))
    again = Space.from_dict(data)
    assert again == space and again.names == space.names
    assert [type(c) for c in again["flags"].choices] == [bool, int, float, str]
    assert [type(v) for v in again["w"].allowed] == [int, bool]
    assert again.layout == space.layout


def test_json_keeps_bool_and_int_spaces_apart():
    bools = Space([Categorical("c", [True, False])])
    ints = Space([Categorical("c", [1, 0])])
    assert Space.from_dict(json.loads(json.dumps(bools.to_dict()))) != ints


@pytest.mark.parametrize("data, match", [
    ([], r"expected the output of Space.to_dict\(\)"),
    ({"format": "bopt.space", "version": 99, "params": []}, r"unsupported version 99"),
    ({"format": "bopt.space", "version": 1, "params": [{"type": "bool", "name": "x"}]},
     r"params\[0\] = .* needs 'type' in \['float', 'int', 'categorical'\]"),
    ({"format": "bopt.space", "version": 1,
      "params": [{"type": "float", "name": "x", "low": 0, "hi": 1}]},
     r"params\[0\] \(float\) has unknown keys \['hi'\] and lacks \['high'\]"),
    ({"format": "bopt.space", "version": 1,
      "params": [{"type": "float", "name": "x", "low": 2, "high": 1}]},
     r"Float\('x'\): need low < high"),
])
def test_from_dict_errors(data, match):
    with pytest.raises(SearchSpaceError, match=match):
        Space.from_dict(data)


def test_grid_size_counts_conditional_configurations():
    space = Space([
        Int("k", 1, 2),
        Categorical("a", ["x", "y"]),
        Int("n", 1, 3, when={"a": "x"}),
        Categorical("b", ["p", "q", "r"], when={"a": "y"}),
        Int("m", 1, 2, when={"b": ["p", "q"]}),
    ])
    # k (2) x [a=x: n (3) + a=y: (p: 2 + q: 2 + r: 1)] = 2 x 8
    assert space.grid_size == 16
    distinct = {space.key(c) for c in space.sample(2000, seed=0)}
    assert len(distinct) == 16
    assert mixed_space().grid_size is None
    assert Space([Int("n", 1, 4, log=True)]).grid_size == 4


def test_grid_lists_each_configuration_once_parents_slowest():
    space = typed_space()
    grid = list(space.grid())
    assert len(grid) == space.grid_size == 12

    def with_m(flag):
        return [{"flag": flag, "m": False}, {"flag": flag, "m": 0, "k": 1},
                {"flag": flag, "m": 0, "k": 2}, {"flag": flag, "m": 0.0}]

    expected = ([{"flag": True, "n": n} for n in (1, 2, 3)] + with_m(1) + [{"flag": 1.0}]
                + with_m("1"))
    assert [typed_items(c) for c in grid] == [typed_items(c) for c in expected]
    assert len({space.key(c) for c in grid}) == 12
    with pytest.raises(SearchSpaceError, match=r"grid\(\) needs a finite space"):
        mixed_space().grid()


def test_key_is_canonical_and_type_aware():
    space = mixed_space()
    config = MIXED_CONFIGS[0]
    assert space.key(config) == space.key({**config, "layers": 2.0, "dropout": np.float64(0.1)})
    assert space.key(config) != space.key({**config, "dropout": 0.2})
    hash(space.key(config))
    flags = Space([Float("x", 0, 1), Categorical("c", [True, 1])])
    assert flags.key({"x": 0.5, "c": True}) != flags.key({"x": 0.5, "c": 1})
    with pytest.raises(ParameterError, match=r"missing parameter 'dropout'"):
        space.key({"lr": 1e-3, "optimizer": "adam", "layers": 2})
    with pytest.raises(ParameterError, match=r"parameter 'x' = 5.0 is outside"):
        flags.key({"x": 5.0, "c": 1})
    # validated=True trusts the config (keyword only): out of range passes unchecked.
    assert flags.key({"x": 5.0, "c": 1}, validated=True) == (("x", 5.0), ("c", 1))
    with pytest.raises(TypeError):
        flags.key({"x": 0.5, "c": 1}, True)


def _space_configs(space: Space) -> list[dict]:
    """Configs as the space itself returns them: decoded, from_unit, sampled, Sobol, grid."""
    generator = torch.Generator().manual_seed(0)
    X = torch.rand(64, len(space), generator=generator, dtype=torch.float64)  # n x d
    configs = (space.decode(1.2 * X - 0.1) + space.from_unit(X) + space.sample(64, seed=1)
               + space.sobol(32, seed=2))
    return configs + (list(space.grid()) if space.grid_size is not None else [])


@pytest.mark.parametrize("make", [mixed_space, typed_space])
def test_configs_of_the_space_agree_with_key_active_config_and_is_active(make):
    space = make()
    fill = {p.name: p.choices[-1] if isinstance(p, Categorical) else p.high for p in space}
    validated = [space.validate(c) for c in MIXED_CONFIGS] if make is mixed_space else []
    for config in _space_configs(space) + validated:
        fast, checked = space.key(config, validated=True), space.key(config)
        assert fast == checked and repr(fast) == repr(checked)  # repr: True, 1, 1.0 apart
        assert typed_items(space.active_config({**fill, **config})) == typed_items(config)
        assert [p.is_active(config) for p in space] == [name in config for name in space.names]


# --------------------------------------------------------------------------- activity


def test_active_config_follows_nested_conditions():
    space = mixed_space()
    adam = {"lr": 1e-3, "optimizer": "adam", "layers": 2, "dropout": 0.1}
    values = {**dict(reversed(MIXED_CONFIGS[0].items())), "not_a_parameter": 1}
    got = space.active_config(values)
    assert list(got.items()) == list(MIXED_CONFIGS[0].items())  # column order, extras dropped
    assert list(space.active_config({**values, "nesterov": False})) == [
        "lr", "optimizer", "momentum", "nesterov", "layers", "dropout"]
    # adam: momentum and nesterov go, and warmup with them although values["nesterov"] is True.
    assert space.active_config({**values, **adam}) == adam
    assert space.active_config(adam) == adam  # inactive parameters may be left out
    assert space.active_config({**adam, "layers": 99})["layers"] == 99  # trusted, unchecked


def test_active_config_compares_choices_by_type():
    def active(**values):
        return typed_items(typed_space().active_config({"n": 2, "m": 0, "k": 1, **values}))

    assert active(flag=True) == [("flag", bool, True), ("n", int, 2)]
    assert active(flag=1) == [("flag", int, 1), ("m", int, 0), ("k", int, 1)]
    assert active(flag=1.0) == [("flag", float, 1.0)]
    assert active(flag="1", m=0.0) == [("flag", str, "1"), ("m", float, 0.0)]
    assert active(flag=1, m=False) == [("flag", int, 1), ("m", bool, False)]


# --------------------------------------------------------------------------- encodings agree with the layout


def test_active_mask_matches_config_keys():
    space = mixed_space()
    configs = MIXED_CONFIGS + space.sample(64, seed=2)
    mask = active_mask(space.encode(configs), space.layout)  # n x d
    expected = torch.tensor([[name in c for name in space.names] for c in configs])
    assert torch.equal(mask, expected)


def test_canonicalize_resets_inactive_entries_only():
    space = mixed_space()
    X = space.encode(MIXED_CONFIGS + space.sample(32, seed=3))  # n x d
    assert torch.equal(canonicalize(X, space.layout), X)
    noise = torch.rand(X.shape, generator=torch.Generator().manual_seed(0), dtype=X.dtype)
    mask = active_mask(X, space.layout)
    perturbed = torch.where(mask, X, noise)  # garbage where inactive
    assert torch.equal(canonicalize(perturbed, space.layout), X)


def test_integer_grid_round_snaps_active_integers():
    space = mixed_space()
    X = space.encode(MIXED_CONFIGS + space.sample(32, seed=6))  # n x d
    mask = active_mask(X, space.layout)
    columns = [col.column for col in space.layout.integers]
    jitter = torch.zeros_like(X)
    jitter[:, columns] = 1e-4  # well under half a grid step of both integer columns
    rounded = integer_grid_round(X + jitter, space.layout)
    torch.testing.assert_close(rounded[mask], X[mask], atol=1e-12, rtol=0.0)
    other = [j for j in range(len(space)) if j not in columns]
    assert torch.equal(rounded[:, other], (X + jitter)[:, other])
    # Rounding then canonicalizing lands back on the encoding exactly as produced.
    torch.testing.assert_close(canonicalize(rounded, space.layout), X, atol=1e-12, rtol=0.0)


def test_integer_grid_round_keeps_encodings_fixed():
    space = Space([Categorical("c", ["a", "b"]), Int("n", 1, 4, when={"c": "a"})])
    X = space.encode([{"c": "b"}])
    assert torch.equal(integer_grid_round(X, space.layout), X)


# Property tests over random spaces live in tests/test_properties.py.


def test_print_shows_one_parameter_a_line():
    space = Space([Float("lr", 1e-5, 1e-1, log=True), Categorical("opt", ["adam", "sgd"]),
                   Float("momentum", 0.0, 0.99, when={"opt": "sgd"}), Int("depth", 1, 8)])
    assert str(space).splitlines() == [
        "Space with 4 parameters:",
        "  lr: float in [1e-05, 0.1], log scale",
        "  opt: one of ['adam', 'sgd']",
        "  momentum: float in [0.0, 0.99]  (when opt in ['sgd'])",
        "  depth: int in [1, 8]",
    ]
    assert repr(space).startswith("Space([Float(name='lr'")  # repr stays exact
