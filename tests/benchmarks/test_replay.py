"""`benchmarks/replay.py`: recorded runs replayed and compared value by value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bopt.benchmarks.errors import BenchmarkArgumentError
from bopt.benchmarks.records import RUNS_FILE, append_record
from bopt.benchmarks.runner import RunSpec, execute_run

@pytest.fixture(scope="module")
def replay(load_script):
    return load_script("replay")


@pytest.fixture
def runs(tmp_path) -> Path:
    """One recorded 4-evaluation Sobol run on branin, seed 1, with its third value altered."""
    record = execute_run(RunSpec("branin", "sobol", 1, 4))
    record["values"][2] += 1.0
    append_record(tmp_path / RUNS_FILE, record)
    return tmp_path / RUNS_FILE


def test_parse_item_takes_an_optional_budget(replay):
    assert replay.parse_item("branin:ei:3") == ("branin", "ei", 3, None)
    assert replay.parse_item("branin:ei:3:12") == ("branin", "ei", 3, 12)
    for bad in ("branin:ei", "branin:ei:x", "branin:ei:0:1:2", "branin:ei:0:0"):
        with pytest.raises(BenchmarkArgumentError, match=f"--select item '{bad}'"):
            replay.parse_item(bad)


def test_a_budget_compares_only_the_first_values(replay, runs, tmp_path, capsys):
    out = tmp_path / "replay.json"
    assert replay.main(["--runs", str(runs), "--select", "branin:sobol:1:2",
                        "--out", str(out)]) == 0
    assert "branin/sobol/seed 1: 2/2 equal" in capsys.readouterr().out
    assert [(r["budget"], r["equal"]) for r in json.loads(out.read_text())] == [(2, 2)]
    assert replay.main(["--runs", str(runs), "--select", "branin:sobol:1"]) == 1
    assert "branin/sobol/seed 1: 2/4 equal" in capsys.readouterr().out


def test_bad_items_exit_2_before_replaying(replay, runs, capsys):
    assert replay.main(["--runs", str(runs), "--select", "branin:sobol:1:5"]) == 2
    assert "the record has only 4 evaluations" in capsys.readouterr().err
    assert replay.main(["--runs", str(runs), "--select", "branin:sobol:2"]) == 2
    assert "branin:sobol:2: not in" in capsys.readouterr().err
    assert replay.main(["--runs", str(runs), "--select", "branin:sobol"]) == 2
    assert "write problem:method:seed" in capsys.readouterr().err
