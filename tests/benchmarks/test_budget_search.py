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
