"""Tests for bopt.export: a study's history as records, CSV, JSON and a DataFrame.

The module functions are tested on trials built by hand; the `Optimizer` methods that call
them, on real (in-memory and stored) studies.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from bopt import Categorical, Float, Int, Optimizer, Space, Trial
from bopt.export import TRIAL_FIELDS, record_columns, to_dataframe, trial_records, write_csv, write_json


def _space() -> Space:
    return Space([Float("x", -2.0, 2.0), Float("lr", 1e-4, 1e-1, log=True), Int("k", 1, 5),
                  Categorical("c", ["a", "b", "c"])])


def _trials() -> list[Trial]:
    return [Trial(0, {"x": 0.5, "flag": True}, "complete", 1.25, "sobol", created=1.0,
                  completed=2.0),
            Trial(1, {"x": -1.0}, "failed", None, "ei", note="oom", created=3.0)]


def test_records_hold_the_trial_fields_then_every_parameter():
    records = trial_records(_trials(), ("x", "flag"))
    assert list(records[0]) == list(TRIAL_FIELDS) + ["x", "flag"]
    assert records[0]["flag"] is True and records[1]["flag"] is None
    assert (records[1]["status"], records[1]["note"], records[1]["value"]) == ("failed", "oom", None)


def test_columns_are_prefixed_only_when_a_name_clashes():
    assert record_columns(("x", "k"))[-2:] == ["x", "k"]
    assert record_columns(("value", "k"))[-2:] == ["param_value", "param_k"]


def test_csv_to_a_stream_has_a_header_and_one_row_per_trial():
    stream = io.StringIO()
    write_csv(trial_records(_trials(), ("x", "flag")), stream, record_columns(("x", "flag")))
    rows = list(csv.DictReader(io.StringIO(stream.getvalue())))
    assert [r["id"] for r in rows] == ["0", "1"] and rows[0]["flag"] == "True"
    assert rows[1]["value"] == "" and rows[1]["flag"] == ""


def test_json_keeps_exact_types_and_refuses_nan(tmp_path):
    path = tmp_path / "h.json"
    write_json(path, study="s", direction="maximize", space=_space().to_dict(), trials=_trials())
    doc = json.loads(path.read_text())
    assert doc["study"] == "s" and doc["direction"] == "maximize"
    assert doc["trials"][0]["params"] == {"x": 0.5, "flag": True}
    assert Space.from_dict(doc["space"]) == _space()
    bad = [Trial(0, {"x": float("nan")}, "complete", 1.0, "sobol")]
    with pytest.raises(ValueError):
        write_json(io.StringIO(), study="s", direction="minimize", space={}, trials=bad)


def test_dataframe_from_records_is_indexed_by_trial_id():
    pytest.importorskip("pandas")
    frame = to_dataframe(trial_records(_trials(), ("x", "flag")), record_columns(("x", "flag")))
    assert list(frame.index) == [0, 1] and frame.loc[0, "x"] == 0.5


def test_export_records_csv_and_json(tmp_path):
    space = Space([Categorical("opt", ["sgd", "adam"]),
                   Float("momentum", 0.0, 0.99, when={"opt": ["sgd"]})])
    opt = Optimizer(space, acquisition="random", seed=2, storage=tmp_path / "s.db")
    for _ in range(6):
        t = opt.suggest()
        opt.observe(t, 1.0 + t.params.get("momentum", 0.5))
    opt.fail(opt.suggest(), reason="oom")
    records = opt.export()
    assert [r["id"] for r in records] == list(range(7))
    assert records[-1]["status"] == "failed" and records[-1]["note"] == "oom"
    for r, t in zip(records, opt.history):
        assert r["momentum"] == t.params.get("momentum") and r["opt"] == t.params["opt"]
    opt.to_csv(tmp_path / "h.csv")
    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["value"]) for r in rows[:-1]] == [r["value"] for r in records[:-1]]
    assert rows[-1]["value"] == "" and list(rows[0])[-2:] == ["opt", "momentum"]
    opt.to_json(tmp_path / "h.json")
    doc = json.loads((tmp_path / "h.json").read_text())
    assert Space.from_dict(doc["space"]) == space and doc["direction"] == "minimize"
    assert [t["params"] for t in doc["trials"]] == [t.params for t in opt.history]


def test_export_prefixes_parameters_that_clash_with_trial_fields():
    opt = Optimizer(Space([Float("value", 0, 1), Int("id", 0, 3)]), acquisition="random")
    opt.observe(opt.suggest(), 0.5)
    assert {"param_value", "param_id", "value", "id"} <= set(opt.export()[0])


def test_to_dataframe():
    pd = pytest.importorskip("pandas")
    opt = Optimizer(_space(), acquisition="random")
    for _ in range(3):
        opt.observe(opt.suggest(), 1.0)
    frame = opt.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == [0, 1, 2]
    assert frame["k"].tolist() == [t.params["k"] for t in opt.history]

def test_export_of_an_empty_study_and_to_a_stream(tmp_path):
    import io

    opt = Optimizer(Space([Int("k", 0, 3), Categorical("c", ["x", "y"])]), acquisition="random")
    stream = io.StringIO()
    opt.to_csv(stream)
    assert stream.getvalue().strip() == "id,status,value,sem,source,note,retry_of,created,completed,k,c"
    opt.observe(opt.suggest(), 1.0)
    opt.to_csv(stream)  # appends: the stream is the caller's
    assert stream.getvalue().count("\nid,") == 1 and len(stream.getvalue().splitlines()) == 3

def test_dataframe_keeps_inactive_integers_integer():
    pytest.importorskip("pandas")
    space = Space([Categorical("deep", [False, True]), Int("layers", 2, 9, when={"deep": [True]})])
    opt = Optimizer(space, acquisition="random", seed=0)
    for _ in range(6):
        opt.observe(opt.suggest(), 1.0)
    frame = opt.to_dataframe()
    assert str(frame["layers"].dtype) == "Int64"
    assert frame["layers"].isna().sum() == sum("layers" not in t.params for t in opt.history)
    assert list(Optimizer(space).to_dataframe().columns)[-2:] == ["deep", "layers"]
