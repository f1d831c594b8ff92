"""The benchmark harness end to end: records, resume, parallel workers, references, report."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import pytest

from bopt.benchmarks import references
from bopt.benchmarks.references import MissingDependencyError, require
from bopt.benchmarks.report import write_report
from bopt.benchmarks.runner import (RUNS_FILE, RunSpec, add_bench_arguments, execute_run,
                                    parse_budget, read_runs, run_bench_from_args, run_benchmark)

PROBLEMS = ["branin", "mixed_cat3"]  # continuous d = 2 (5 Sobol points), mixed d = 6 (7)
METHODS = ["ei", "random", "sobol"]
BUDGET = 8
FIELDS = {"problem", "method", "seed", "budget", "values", "best_so_far", "regret",
          "suggest_seconds", "fit_seconds", "acquisition_seconds", "num_observations",
          "model_based", "device", "versions", "wall_seconds", "host", "n_initial"}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """A finished 2 problems x 3 methods x 2 seeds benchmark, budget 8."""
    out = tmp_path_factory.mktemp("bench")
    run_benchmark(PROBLEMS, METHODS, 2, BUDGET, out, progress=False)
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_one_line_per_run_with_every_field(bench_dir):
    records = [json.loads(line) for line in _lines(bench_dir / RUNS_FILE)]
    assert len(records) == len(PROBLEMS) * len(METHODS) * 2
    assert {(r["problem"], r["method"], r["seed"]) for r in records} == {
        (p, m, s) for p in PROBLEMS for m in METHODS for s in (0, 1)}
    for r in records:
        assert FIELDS <= set(r)
        for trace in ("values", "best_so_far", "regret", "suggest_seconds", "fit_seconds",
                      "acquisition_seconds", "model_based"):
            assert len(r[trace]) == BUDGET, trace
        assert r["num_observations"] == list(range(BUDGET))
        assert all(a >= b for a, b in zip(r["best_so_far"], r["best_so_far"][1:]))
        assert min(r["regret"]) >= -1e-9  # noiseless problems: regret is non-negative
        assert r["host"]["torch_threads"] == 1 and r["host"]["cores"] >= 1
        assert r["versions"]["torch"] and r["versions"]["botorch"]
        assert r["device"] == "cpu"
    ei = {r["problem"]: r for r in records if r["method"] == "ei" and r["seed"] == 0}
    # Rounds after the Sobol design, max(5, d + 1) points, are model-based and timed in parts.
    assert sum(ei["branin"]["model_based"]) == BUDGET - 5
    assert sum(ei["mixed_cat3"]["model_based"]) == BUDGET - 7
    assert all(f is not None for f, m in zip(ei["branin"]["fit_seconds"],
                                              ei["branin"]["model_based"]) if m)


def test_rerun_skips_every_recorded_run(bench_dir):
    before = (bench_dir / RUNS_FILE).read_text()
    assert run_benchmark(PROBLEMS, METHODS, 2, BUDGET, bench_dir, progress=False) == []
    assert (bench_dir / RUNS_FILE).read_text() == before


def test_interrupted_benchmark_resumes_in_worker_processes(bench_dir, tmp_path):
    lines = _lines(bench_dir / RUNS_FILE)
    missing = [json.loads(line) for line in lines if '"method": "random"' in line]
    kept = [line for line in lines if '"method": "random"' not in line]
    # An interrupted write leaves half a line behind; it is skipped and the run redone.
    (tmp_path / RUNS_FILE).write_text("\n".join(kept) + "\n" + kept[0][:40])
    finished = run_benchmark(PROBLEMS, METHODS, 2, BUDGET, tmp_path, workers=2,
                             progress=False)
    assert sorted((r["problem"], r["seed"]) for r in finished) == sorted(
        (r["problem"], r["seed"]) for r in missing)
    assert all(r["workers"] == 2 and r["host"]["torch_threads"] == 1 for r in finished)
    assert len(read_runs(tmp_path / RUNS_FILE)) == len(lines)
    again = {(r["problem"], r["seed"]): r["values"] for r in finished}
    assert again == {(r["problem"], r["seed"]): r["values"] for r in missing}  # seeded


def test_report_has_a_table_row_per_method_and_plots(bench_dir):
    report = write_report(bench_dir)
    text = report.read_text()
    for problem in PROBLEMS:
        assert f"## {problem}" in text
        for png in (f"{problem}_regret.png", f"{problem}_suggest_seconds.png"):
            assert (bench_dir / png).stat().st_size > 1000
            assert f"]({png})" in text
    for method in METHODS:
        assert text.count(f"| `{method}` | 2 |") == len(PROBLEMS)
    assert "median final regret" in text and "model-based" in text
    assert "torch.set_num_threads(1)" in text and "logical cores" in text


def test_report_without_known_optimum_shows_values(bench_dir, tmp_path):
    records = [r for r in read_runs(bench_dir / RUNS_FILE) if r["problem"] == "branin"]
    for r in records:
        r["optimum"], r["regret"] = None, None
    (tmp_path / RUNS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    text = write_report(tmp_path).read_text()
    assert "median final value" in text and "optimum unknown" in text
    assert (tmp_path / "branin_regret.png").stat().st_size > 1000


def test_report_without_runs_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs in .*runs.jsonl"):
        write_report(tmp_path)


@pytest.mark.parametrize("method", ["botorch", "optuna-tpe"])
def test_reference_method_completes_a_branin_run(method):
    record = execute_run(RunSpec("branin", method, 0, 7))
    assert len(record["values"]) == 7 and len(record["suggest_seconds"]) == 7
    assert record["regret"][-1] >= 0
    if method == "botorch":  # Sobol design of bopt's size, then two LogEI rounds
        assert record["model_based"] == [False] * 5 + [True] * 2
        assert record["n_initial"] == 5 and all(f > 0 for f in record["fit_seconds"][5:])
        bopt_design = execute_run(RunSpec("branin", "sobol", 0, 5))["values"]
        assert record["values"][:5] == bopt_design


def test_optuna_sees_only_active_conditional_parameters():
    from bopt.benchmarks import get_problem

    space = get_problem("conditional").space
    loop = references.OptunaLoop(space, "optuna-tpe", seed=0)
    for i in range(12):
        config, _ = loop.ask()
        assert space.validate(config) == config  # raises if an inactive one was asked
        loop.tell(config, float(i))


def test_missing_optional_library_names_the_extra(monkeypatch):
    real = importlib.import_module

    def fake_import(name, *args):
        if name == "optuna":
            raise ImportError("No module named 'optuna'")
        return real(name, *args)

    monkeypatch.setattr(references.importlib, "import_module", fake_import)
    with pytest.raises(MissingDependencyError, match=r"'optuna-gp' needs the 'optuna'.*"
                                                      r"pip install 'bopt\[bench\]'"):
        require("optuna", "optuna-gp")
    with pytest.raises(ImportError, match="bopt\\[bench\\]"):
        run_benchmark(["branin"], ["optuna-tpe"], 1, 3, "unused", progress=False)


def test_bad_names_and_budgets_are_rejected_before_running(tmp_path):
    with pytest.raises(ValueError, match=r"unknown methods \['gp-ei'\]; choose from"):
        run_benchmark(["branin"], ["gp-ei"], 1, 5, tmp_path)
    with pytest.raises(ValueError, match="unknown problem 'branen'.*did you mean 'branin'"):
        run_benchmark(["branen"], ["ei"], 1, 5, tmp_path)
    with pytest.raises(ValueError, match="no budget for 'hartmann6'"):
        run_benchmark(["branin", "hartmann6"], ["ei"], 1, None, tmp_path,
                      budgets={"branin": 5})
    with pytest.raises(ValueError, match=r"budgets names \['ackley6'\]"):
        run_benchmark(["branin"], ["ei"], 1, 5, tmp_path, budgets={"ackley6": 5})
    with pytest.raises(ValueError, match="workers must be an int >= 1; got 0"):
        run_benchmark(["branin"], ["ei"], 1, 5, tmp_path, workers=0)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto'; got 'tpu'"):
        run_benchmark(["branin"], ["ei"], 1, 5, tmp_path, device="tpu")
    assert not (tmp_path / RUNS_FILE).exists()


def test_parse_budget():
    assert parse_budget("80") == (80, {})
    assert parse_budget("branin:40,hartmann6:80") == (None, {"branin": 40, "hartmann6": 80})
    assert parse_budget("60, branin:40") == (60, {"branin": 40})
    with pytest.raises(ValueError, match="--budget: 'branin:0' is not a positive int"):
        parse_budget("branin:0")


def test_command_line_runs_then_reports(tmp_path, capsys):
    parser = add_bench_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--problems", "branin", "--methods", "random,sobol", "--seeds",
                              "2", "--budget", "branin:4", "--out", str(tmp_path),
                              "--quiet"])
    assert run_bench_from_args(args) == 0
    assert len(read_runs(tmp_path / RUNS_FILE)) == 4
    assert (tmp_path / "report.md").exists()
    assert "report written to" in capsys.readouterr().out
    defaults = parser.parse_args([])
    assert (defaults.seeds, defaults.budget, defaults.workers, defaults.device,
            defaults.no_report) == (10, "80", 1, "cpu", False)


def test_equal_seeds_give_equal_runs():
    first = execute_run(RunSpec("branin", "optuna-tpe", 3, 12))
    second = execute_run(RunSpec("branin", "optuna-tpe", 3, 12))
    assert first["values"] == second["values"]


