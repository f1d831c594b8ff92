"""The `bopt bench` command-line glue: options, budgets, run then report."""

from __future__ import annotations

import argparse

import pytest

from bopt.benchmarks import runner
from bopt.benchmarks.cli import add_bench_arguments, parse_budget, run_bench_from_args
from bopt.benchmarks.errors import BenchmarkArgumentError
from bopt.benchmarks.records import RUNS_FILE, read_runs
from bopt.benchmarks.runner import METHODS
from bopt.cli import main


def test_parse_budget():
    assert parse_budget("80") == (80, {})
    assert parse_budget("branin:40,hartmann6:80") == (None, {"branin": 40, "hartmann6": 80})
    assert parse_budget("60, branin:40") == (60, {"branin": 40})
    with pytest.raises(BenchmarkArgumentError,
                       match="--budget: 'branin:0' is not a positive int"):
        parse_budget("branin:0")
    with pytest.raises(BenchmarkArgumentError, match="--budget: 'lots' is not a positive int"):
        parse_budget("lots")


def test_defaults_run_every_method():
    defaults = add_bench_arguments(argparse.ArgumentParser()).parse_args([])
    assert (defaults.seeds, defaults.budget, defaults.workers, defaults.device,
            defaults.no_report, defaults.out) == (10, "80", 1, "cpu", False, "results")
    assert defaults.methods.split(",") == list(METHODS)


def test_command_line_runs_then_reports(tmp_path, capsys):
    parser = add_bench_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--problems", "branin", "--methods", "random,sobol", "--seeds",
                              "2", "--budget", "branin:4", "--out", str(tmp_path),
                              "--quiet"])
    assert run_bench_from_args(args) == 0
    assert len(read_runs(tmp_path / RUNS_FILE)) == 4
    assert (tmp_path / "report.md").exists()
    assert "report written to" in capsys.readouterr().out


def test_bopt_bench_reaches_the_glue(tmp_path, capsys):
    argv = ["bench", "--problems", "branin", "--methods", "sobol", "--seeds", "1", "--out",
            str(tmp_path), "--quiet", "--no-report"]
    assert main(argv + ["--budget", "2"]) == 0
    assert [r["budget"] for r in read_runs(tmp_path / RUNS_FILE)] == [2]
    assert not (tmp_path / "report.md").exists()
    assert main(argv + ["--budget", "0"]) == 2
    assert "bopt: error: --budget: '0' is not a positive int" in capsys.readouterr().err


def test_failed_runs_exit_1_and_are_still_reported(tmp_path, monkeypatch, capsys):
    real = runner.execute_run
    monkeypatch.setattr(runner, "execute_run",
                        lambda spec: real(spec) if spec.method == "sobol" else 1 / 0)
    args = add_bench_arguments(argparse.ArgumentParser()).parse_args(
        ["--problems", "branin", "--methods", "random,sobol", "--seeds", "1", "--budget", "2",
         "--out", str(tmp_path), "--quiet"])
    assert run_bench_from_args(args) == 1
    assert "bopt bench: 1 of 2 runs failed" in capsys.readouterr().err
    assert "| `sobol` | 1 |" in (tmp_path / "report.md").read_text()


def test_a_missing_optional_library_exits_2_before_running(tmp_path, without_optuna, capsys):
    assert main(["bench", "--problems", "branin", "--methods", "sobol,optuna-tpe", "--seeds",
                 "1", "--budget", "2", "--out", str(tmp_path), "--quiet"]) == 2
    assert ("bopt bench: error: benchmark method 'optuna-tpe' needs the 'optuna' package"
            in capsys.readouterr().err)
    assert not (tmp_path / RUNS_FILE).exists()
