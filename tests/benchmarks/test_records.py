"""The run-records format: one JSON line per run, keyed by problem, method, seed and budget."""

from __future__ import annotations

import json

from bopt.benchmarks.records import (KEY_FIELDS, RUNS_FILE, append_record, read_runs,
                                     record_key, recorded_keys)
from bopt.benchmarks.runner import RunSpec


def _record(seed: int, budget: int = 3) -> dict:
    return {"problem": "branin", "method": "ei", "seed": seed, "budget": budget,
            "values": [float(seed)] * budget}


def test_read_runs_skips_a_truncated_last_line(tmp_path, capsys):
    path = tmp_path / RUNS_FILE
    full = [json.dumps(_record(s)) for s in (0, 1)]
    path.write_text(full[0] + "\n" + full[1] + "\n" + json.dumps(_record(2))[:25])
    assert read_runs(path) == [_record(0), _record(1)]
    assert "skipping an unreadable line" in capsys.readouterr().err


def test_read_runs_of_a_missing_file_or_blank_lines(tmp_path):
    assert read_runs(tmp_path / RUNS_FILE) == []
    (tmp_path / RUNS_FILE).write_text("\n" + json.dumps(_record(4)) + "\n\n")
    assert read_runs(tmp_path / RUNS_FILE) == [_record(4)]


def test_append_record_starts_a_fresh_line_after_a_truncated_one(tmp_path):
    path = tmp_path / RUNS_FILE
    append_record(path, _record(0))  # creates the file
    with path.open("a") as f:
        f.write(json.dumps(_record(1))[:30])  # an interrupted write
    append_record(path, _record(2))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and path.read_text().endswith("\n")
    assert [json.loads(lines[0]), json.loads(lines[2])] == [_record(0), _record(2)]
    assert read_runs(path) == [_record(0), _record(2)]


def test_a_record_and_its_run_spec_share_one_key(tmp_path):
    spec = RunSpec("branin", "ei", 3, 8, device="cuda", workers=4)  # device, workers: no part
    assert KEY_FIELDS == ("problem", "method", "seed", "budget")
    assert spec.key == record_key(_record(3, budget=8)) == ("branin", "ei", 3, 8)
    assert record_key({"problem": "branin"}) == ("branin", None, None, None)
    for record in (_record(3, budget=8), _record(3, budget=5)):
        append_record(tmp_path / RUNS_FILE, record)
    assert recorded_keys(tmp_path / RUNS_FILE) == {("branin", "ei", 3, 8), ("branin", "ei", 3, 5)}
