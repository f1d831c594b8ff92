"""`benchmarks/suite_check.py`: the "no worse than the committed median by more than its
IQR" rule, on hand-made records."""

from __future__ import annotations

from pathlib import Path

import pytest

from bopt.benchmarks.records import append_record

@pytest.fixture(scope="module")
def check(load_script):
    return load_script("suite_check")


def _write(path: Path, finals: dict[str, list[float]]) -> Path:
    for problem, values in finals.items():
        for seed, value in enumerate(values):
            append_record(path, {"problem": problem, "method": "ei", "seed": seed,
                                 "regret": [10.0, value]})
    return path


def test_a_median_within_the_committed_iqr_passes_and_one_beyond_fails(check, tmp_path):
    old = _write(tmp_path / "old.jsonl", {"a": [1.0, 2.0, 3.0, 4.0, 5.0],
                                          "b": [1.0, 1.1, 1.2, 1.3, 1.4]})
    new = _write(tmp_path / "new.jsonl", {"a": [1.0, 2.0, 3.0, 4.0, 9.0],  # same median
                                          "b": [2.0, 2.1, 2.2, 2.3, 2.4]})  # 1.0 worse
    rows = {r["problem"]: r for r in check.compare(check.finals(new, "ei"),
                                                   check.finals(old, "ei"))}
    assert rows["a"]["ok"] and rows["a"]["equal_seeds"] == 4
    assert not rows["b"]["ok"] and rows["b"]["old_iqr"] == pytest.approx((1.1, 1.3))
