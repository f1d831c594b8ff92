"""Tests for bopt.params: declaration checks, type-aware values and equality, the shared
numeric base, and the activity rule of conditional parameters (`allows`, `is_active`).

Space-level behaviour (validation, encode/decode, designs, storage) is in tests/test_space.py.
"""

import ast
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import bopt.params
import bopt.space
from bopt.errors import ParameterError, SearchSpaceError
from bopt.params import Categorical, Float, Int
from bopt.space import Space


# --------------------------------------------------------------------------- declaration


@pytest.mark.parametrize("make, match", [
    (lambda: Float("", 0, 1), r"Float\(name=''\): the name must be a non-empty str"),
    (lambda: Int(3, 0, 1), r"Int\(name=3\): the name must be a non-empty str, got int"),
    (lambda: Float("x", 1.0, 1.0), r"Float\('x'\): need low < high, got low=1.0, high=1.0"),
    (lambda: Int("n", 5, 2), r"Int\('n'\): need low < high, got low=5, high=2"),
    (lambda: Float("x", 0, math.inf), r"bounds must be finite, got high=inf"),
    (lambda: Float("x", math.nan, 1), r"bounds must be finite, got low=nan"),
    (lambda: Float("x", "0", 1), r"low must be a real number, got str '0'"),
    (lambda: Float("x", True, 2), r"low must be a real number, got bool True"),
    (lambda: Float("x", 0.0, 1.0, log=True), r"log=True needs low > 0, got low=0.0"),
    (lambda: Int("n", 0, 8, log=True), r"Int\('n'\): log=True needs low > 0, got low=0"),
    (lambda: Float("x", 1, 2, log="yes"), r"log must be True or False, got 'yes'"),
    (lambda: Int("n", 0.5, 3), r"Int\('n'\): bounds must be integers, got low=0.5"),
    (lambda: Int("n", 0, 2**60), r"bounds must lie within \+-2\*\*49"),
    (lambda: Categorical("c", []), r"Categorical\('c'\): choices is empty"),
    (lambda: Categorical("c", "abc"), r"choices must be a list or tuple, got str"),
    (lambda: Categorical("c", {"a", "b"}), r"choices must be a list or tuple, got set"),
    (lambda: Categorical("c", ["a", "b", "a"]), r"choice 'a' appears twice \(#0 and #2\)"),
    (lambda: Categorical("c", [1, 2, 1]), r"choice 1 appears twice"),
    (lambda: Categorical("c", ["a", None]), r"choice #1 is NoneType None; choices must be str"),
    (lambda: Categorical("c", [1.0, math.nan]), r"choice #1 is nan; use finite numbers"),
    (lambda: Float("x", 0, 1, when={"a": "u", "b": "v"}), r"`when` must map exactly one"),
    (lambda: Float("x", 0, 1, when={}), r"`when` must map exactly one parent"),
    (lambda: Float("x", 0, 1, when=["a"]), r"`when` must map exactly one parent"),
    (lambda: Float("x", 0, 1, when={"a": []}), r"when=\{'a': \[\]\} allows no value"),
    (lambda: Float("x", 0, 1, when={1: "a"}), r"the parent in `when` must be a parameter name"),
    (lambda: Int("n", 1, 2, when={"a": [None]}), r"when\['a'\] holds NoneType None"),
])
def test_parameter_declaration_errors(make, match):
    with pytest.raises(SearchSpaceError, match=match):
        make()


def test_parameters_normalize_and_compare_by_type():
    assert Int("n", 1.0, np.int64(4)) == Int("n", 1, 4)
    assert type(Int("n", 1.0, 4).low) is int
    assert type(Float("x", 0, 1).low) is float
    assert Float("x", 0, 1, when={"c": "a"}).when == {"c": ("a",)}
    assert Float("x", 0, 1, when={"c": ["a", "a", "b"]}).allowed == ("a", "b")
    # True, 1 and 1.0 are distinct choices, and spaces with them are distinct.
    assert Categorical("c", [True, 1, 1.0]).choices == (True, 1, 1.0)
    assert Categorical("c", [True, False]) != Categorical("c", [1, 0])
    assert hash(Categorical("c", ["a"])) == hash(Categorical("c", ("a",)))
    assert Float("x", 0, 1, when={"c": True}) != Float("x", 0, 1, when={"c": 1})
    assert Categorical("c", [np.str_("a"), np.bool_(True)]).choices == ("a", True)


def test_parameters_are_frozen():
    p = Float("x", 0, 1)
    with pytest.raises(AttributeError):
        p.low = 0.5


# --------------------------------------------------------------------------- values


def test_categorical_values_compare_by_type():
    c = Categorical("c", [1, True, 1.0, "1"])
    assert [c.index(v) for v in [1, True, 1.0, "1", np.int64(1), np.bool_(True), False]] == [
        0, 1, 2, 3, 0, 1, None]
    space = Space([c])
    for value in [1, True, 1.0, "1"]:
        got = space.validate({"c": value})["c"]
        assert type(got) is type(value)
    with pytest.raises(ParameterError, match=r"'c' = False \(bool\) is not among"):
        space.validate({"c": False})


# --------------------------------------------------------------------------- Float and Int


def test_float_and_int_keep_their_repr_fields_and_docstrings():
    assert repr(Float("lr", 1e-5, 0.1, log=True)) == (
        "Float(name='lr', low=1e-05, high=0.1, log=True, when=None)")
    assert repr(Int("n", 1.0, 4, when={"c": "a"})) == (
        "Int(name='n', low=1, high=4, log=False, when={'c': ('a',)})")
    for cls in (Float, Int):
        assert [f.name for f in dataclasses.fields(cls)] == ["name", "low", "high", "log",
                                                              "when"]
        assert cls.__match_args__ == ("name", "low", "high")
    assert Float.__doc__.startswith("A real parameter") and Int.__doc__.startswith("An integer")


def test_float_and_int_differ_by_type():
    assert Float("x", 0, 1) != Int("x", 0, 1)
    assert len({Float("x", 0, 1), Int("x", 0, 1), Float("x", 0.0, 1.0)}) == 2
    assert Int("n", 0, 3) == Int("n", 0.0, 3) and hash(Int("n", 0, 3)) == hash(Int("n", 0.0, 3))
    assert Float("x", 0, 1, log=False) != Float("x", 0, 1, when={"c": "a"})


def test_log_and_when_are_keyword_only():
    with pytest.raises(TypeError):
        Float("x", 1, 2, True)
    with pytest.raises(TypeError):
        Int("n", 1, 2, False, {"c": "a"})


def test_replace_revalidates_and_keeps_the_type():
    p = Int("n", 1, 3, when={"c": ["a", "b"]})
    q = dataclasses.replace(p, high=5.0)
    assert type(q) is Int and q == Int("n", 1, 5, when={"c": ("a", "b")})
    assert type(q.high) is int
    assert dataclasses.replace(Float("x", 1, 2), log=True).log is True
    with pytest.raises(SearchSpaceError, match=r"Int\('n'\): bounds must be integers, got "
                                               r"high=5.5"):
        dataclasses.replace(p, high=5.5)
    with pytest.raises(SearchSpaceError, match=r"Float\('x'\): log=True needs low > 0"):
        dataclasses.replace(Float("x", 0, 1), log=True)


def test_space_reexports_the_parameter_types():
    assert (bopt.space.Float, bopt.space.Int, bopt.space.Categorical, bopt.space.Param) == (
        Float, Int, Categorical, bopt.params.Param)


def test_params_never_imports_space():
    tree = ast.parse(Path(bopt.params.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert "bopt.space" not in imported and "bopt" not in imported


# --------------------------------------------------------------------------- conditions


@pytest.mark.parametrize("make", [
    lambda when: Float("x", 0, 1, when=when),
    lambda when: Int("n", 1, 3, when=when),
    lambda when: Categorical("k", ["u", "v"], when=when),
])
def test_allows_is_type_aware(make):
    p = make({"c": [True, 2.0, "a"]})
    assert p.allows(True) and p.allows(np.bool_(True))
    assert p.allows(2.0) and p.allows(np.float64(2.0))
    assert p.allows("a") and p.allows(np.str_("a"))
    for value in [1, 1.0, 2, "True", "A", False, None, [True]]:
        assert not p.allows(value), value
    assert make(None).allows("anything")  # no condition: every parent value allows it


def test_is_active_needs_the_parent_present_with_an_allowed_value():
    unconditional = Float("x", 0, 1)
    assert unconditional.is_active({}) and unconditional.is_active({"c": 1})
    p = Int("n", 1, 3, when={"c": [1, "b"]})
    assert not p.is_active({})  # parent absent, i.e. inactive
    assert not p.is_active({"x": 0.5, "n": 2})
    assert p.is_active({"c": 1}) and p.is_active({"c": "b", "x": 0.5})
    assert not p.is_active({"c": True}) and not p.is_active({"c": 1.0})
    assert not p.is_active({"c": "a"})


@pytest.mark.parametrize("param", [Float("lr", 1e-6, 1e3, log=True), Float("w", 0.1, 0.3),
                                   Float("z", -7.3, 1e-9)])
def test_the_ends_of_the_unit_interval_decode_to_the_bounds_exactly(param):
    space = Space([param])
    ends = space.decode(torch.tensor([[0.0], [1.0], [-0.5], [1.5]], dtype=torch.float64))
    assert [c[param.name] for c in ends] == [param.low, param.high, param.low, param.high]
    assert space.decode(space.encode([{param.name: param.high}]))[0][param.name] == param.high


@pytest.mark.parametrize("low, high", [(0.7501707274674178, 7.501707274674177), (1e-6, 1e3),
                                       (3.0, 3.0000000001)])
def test_a_log_float_encodes_its_bounds_to_exactly_zero_and_one(low, high):
    """torch's log and Python's differ in the last bit for some bounds (the lower bound
    here once encoded to -2.4e-17, outside the unit cube the GP and the ascent assume)."""
    space = Space([Float("p", low, high, log=True)])
    X = space.encode([{"p": low}, {"p": high}, {"p": (low * high) ** 0.5}])
    assert X[0, 0].item() == 0.0 and X[1, 0].item() == 1.0
    assert 0.0 < X[2, 0].item() < 1.0


@pytest.mark.parametrize("low, high", [(9170, 91700), (19143, 30000), (1, 1000)])
def test_a_log_int_encodes_its_bounds_to_exactly_zero_and_one(low, high):
    """The same last-bit difference for integers (9170's log differs between torch and
    Python: the lower bound encoded to -7.7e-16)."""
    space = Space([Int("n", low, high, log=True)])
    X = space.encode([{"n": low}, {"n": high}])
    assert X[0, 0].item() == 0.0 and X[1, 0].item() == 1.0
