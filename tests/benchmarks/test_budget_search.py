"""benchmarks/budget_search.py on a tiny run: records, resuming, ablations and the report."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, load_script):
    script = load_script("budget_search")
    out = tmp_path_factory.mktemp("budget")
    methods = "gp-asha,gp-asha-level,random-asha,gp-full,tpe-sha"
    args = ["--task", "augmented_branin", "--max-budget", "9", "--total", "4", "--seeds", "2",
            "--methods", methods, "--out", str(out)]
    assert script.main(args) == 0
    return script, out, args, methods.split(",")


def test_every_method_and_seed_is_recorded_with_its_budget_spent(finished):
    _, out, _, methods = finished
    records = [json.loads(line) for line in (out / "augmented_branin.jsonl").read_text()
               .splitlines()]
    assert sorted((r["method"], r["seed"]) for r in records) == sorted(
        (m, s) for m in methods for s in range(2))
    for r in records:
        spent = [e[0] for e in r["events"]]
        assert spent == sorted(spent) and spent[-1] == pytest.approx(36)  # 4 x 9, not more
        bests = [e[2] for e in r["events"] if math.isfinite(e[2])]
        assert bests == sorted(bests, reverse=True)  # the best so far only improves
        assert r["machine"] and r["commit"]
        if r["method"] == "gp-full":
            assert r["num_trials"] == r["num_full"] == 4
    asha = [r for r in records if r["method"] == "random-asha"]
    assert all(r["num_trials"] > r["num_full"] for r in asha)  # ASHA stopped some trials


def test_a_rerun_skips_what_is_recorded(finished):
    script, out, args, _ = finished
    before = (out / "augmented_branin.jsonl").read_text()
    assert script.main(args) == 0
    assert (out / "augmented_branin.jsonl").read_text() == before


def test_the_report_has_the_table_and_both_targets(finished):
    script, out, _, methods = finished
    assert script.main(["--report", str(out)]) == 0
    report = (out / "report.md").read_text()
    for method in methods:
        assert f"| {method} |" in report
    assert "no worse than the best reference" in report
    assert "full-budget BO's final median" in report
    assert (out / "augmented_branin_budget.png").stat().st_size > 0


def test_an_unknown_method_is_refused(load_script, tmp_path):
    script = load_script("budget_search")
    with pytest.raises(SystemExit):
        script.main(["--methods", "gp-magic", "--out", str(tmp_path), "--seeds", "1"])


def test_replay_reads_the_budgets_from_the_records_and_flags_a_difference(finished, load_script,
                                                                          tmp_path):
    _, out, _, _ = finished
    replay = load_script("budget_search_replay")
    result = tmp_path / "replay.json"
    args = ["--folder", str(out), "--tasks", "augmented_branin", "--methods", "gp-asha,random-asha",
            "--seeds", "0-1", "--out", str(result)]
    assert replay.main(args) == 0  # max budget 9 and total 4 x 9 read from the records
    rows = json.loads(result.read_text())
    assert [(r["method"], r["seed"], r["max_budget"], r["equal"]) for r in rows] == [
        ("gp-asha", 0, 9, True), ("gp-asha", 1, 9, True),
        ("random-asha", 0, 9, True), ("random-asha", 1, 9, True)]
    records = [json.loads(line) for line in (out / "augmented_branin.jsonl").read_text()
               .splitlines()]
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    target = next(r for r in records if r["method"] == "gp-asha" and r["seed"] == 0)
    target["best_params"] = {**target["best_params"], "x0": -1.0}
    (tampered / "augmented_branin.jsonl").write_text(json.dumps(target) + "\n")
    args = ["--folder", str(tampered), "--tasks", "augmented_branin", "--seeds", "0",
            "--out", str(result)]
    assert replay.main(args) == 1
    assert json.loads(result.read_text())[0]["equal"] is False
    assert replay.seed_range("0-2,5") == [0, 1, 2, 5]
