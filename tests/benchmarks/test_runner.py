"""The benchmark harness: planned runs recorded one line each, resume, parallel workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bopt.acquisition.registry import STRATEGIES
from bopt.benchmarks import runner
from bopt.benchmarks.errors import BenchmarkArgumentError, BenchmarkError
from bopt.benchmarks.records import RUNS_FILE, read_runs
from bopt.benchmarks.references import REFERENCE_METHODS
from bopt.benchmarks.runner import run_benchmark

FIELDS = {"problem", "method", "seed", "budget", "values", "best_so_far", "regret",
          "suggest_seconds", "fit_seconds", "acquisition_seconds", "num_observations",
          "model_based", "device", "versions", "wall_seconds", "host", "n_initial"}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_method_names_come_from_the_registry():
    assert runner.BOPT_METHODS == STRATEGIES
    assert runner.METHODS == STRATEGIES + REFERENCE_METHODS


def test_one_line_per_run_with_every_field(bench):
    records = [json.loads(line) for line in _lines(bench.out / RUNS_FILE)]
    assert len(records) == len(bench.problems) * len(bench.methods) * bench.num_seeds
    assert {(r["problem"], r["method"], r["seed"]) for r in records} == {
        (p, m, s) for p in bench.problems for m in bench.methods for s in (0, 1)}
    for r in records:
        assert FIELDS <= set(r)
        for trace in ("values", "best_so_far", "regret", "suggest_seconds", "fit_seconds",
                      "acquisition_seconds", "model_based"):
            assert len(r[trace]) == bench.budget, trace
        assert r["num_observations"] == list(range(bench.budget))
        assert all(a >= b for a, b in zip(r["best_so_far"], r["best_so_far"][1:]))
        assert min(r["regret"]) >= -1e-9  # noiseless problems: regret is non-negative
        assert r["host"]["torch_threads"] == 1 and r["host"]["cores"] >= 1
        assert r["versions"]["torch"] and r["versions"]["botorch"]
        assert r["device"] == "cpu"
    ei = {r["problem"]: r for r in records if r["method"] == "ei" and r["seed"] == 0}
    # Rounds after the Sobol design are model-based and timed in parts: max(5, d + 1) points,
    # max(10, d + 1) with categoricals.
    assert bench.budget > 10
    assert sum(ei["branin"]["model_based"]) == bench.budget - 5
    assert sum(ei["mixed_cat3"]["model_based"]) == bench.budget - 10
    assert ei["branin"]["n_initial"] == 5 and ei["mixed_cat3"]["n_initial"] == 10
    assert all(f is not None for f, m in zip(ei["branin"]["fit_seconds"],
                                              ei["branin"]["model_based"]) if m)
    sobol = next(r for r in records if r["method"] == "sobol")
    assert sobol["n_initial"] is None and not any(sobol["model_based"])


def test_rerun_skips_every_recorded_run(bench):
    before = (bench.out / RUNS_FILE).read_text()
    assert run_benchmark(list(bench.problems), list(bench.methods), bench.num_seeds,
                         bench.budget, bench.out, progress=False) == []
    assert (bench.out / RUNS_FILE).read_text() == before


def test_interrupted_benchmark_resumes_in_worker_processes(bench, tmp_path):
    lines = _lines(bench.out / RUNS_FILE)
    missing = [json.loads(line) for line in lines if '"method": "random"' in line]
    kept = [line for line in lines if '"method": "random"' not in line]
    # An interrupted write leaves half a line behind; it is skipped and the run redone.
    (tmp_path / RUNS_FILE).write_text("\n".join(kept) + "\n" + kept[0][:40])
    finished = run_benchmark(list(bench.problems), list(bench.methods), bench.num_seeds,
                             bench.budget, tmp_path, workers=2, progress=False)
    assert sorted((r["problem"], r["seed"]) for r in finished) == sorted(
        (r["problem"], r["seed"]) for r in missing)
    assert all(r["workers"] == 2 and r["host"]["torch_threads"] == 1 for r in finished)
    assert len(read_runs(tmp_path / RUNS_FILE)) == len(lines)
    again = {(r["problem"], r["seed"]): r["values"] for r in finished}
    assert again == {(r["problem"], r["seed"]): r["values"] for r in missing}  # seeded


def test_an_in_process_run_restores_the_torch_thread_count(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # anything but the runs' 1, so that a leak would show
    try:
        [record] = run_benchmark(["branin"], ["sobol"], [0], 2, tmp_path, progress=False)
        assert record["host"]["torch_threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_bad_names_and_budgets_are_rejected_before_running(tmp_path):
    with pytest.raises(BenchmarkArgumentError, match=r"unknown methods \['gp-ei'\]; choose from"):
        run_benchmark(["branin"], ["gp-ei"], 1, 5, tmp_path)
    with pytest.raises(ValueError, match="unknown problem 'branen'.*did you mean 'branin'"):
        run_benchmark(["branen"], ["ei"], 1, 5, tmp_path)
    with pytest.raises(BenchmarkArgumentError, match="no budget for 'hartmann6'"):
        run_benchmark(["branin", "hartmann6"], ["ei"], 1, None, tmp_path,
                      budgets={"branin": 5})
    with pytest.raises(BenchmarkArgumentError, match=r"budgets names \['ackley6'\]"):
        run_benchmark(["branin"], ["ei"], 1, 5, tmp_path, budgets={"ackley6": 5})
    with pytest.raises(BenchmarkArgumentError, match="workers must be an int >= 1; got 0"):
        run_benchmark(["branin"], ["ei"], 1, 5, tmp_path, workers=0)
    with pytest.raises(BenchmarkArgumentError,
                       match="device must be 'cpu', 'cuda' or 'auto'; got 'tpu'"):
        run_benchmark(["branin"], ["ei"], 1, 5, tmp_path, device="tpu")
    assert not (tmp_path / RUNS_FILE).exists()


def test_failed_runs_are_reported_and_retried_alone(tmp_path, monkeypatch):
    real = runner.execute_run

    def flaky(spec):
        if spec.method == "random":
            raise RuntimeError("objective crashed")
        return real(spec)

    monkeypatch.setattr(runner, "execute_run", flaky)
    with pytest.raises(BenchmarkError, match=r"1 of 2 runs failed .*rerun to retry.*\n"
                                             r"  branin/random/seed 0: RuntimeError: "
                                             r"objective crashed"):
        run_benchmark(["branin"], ["random", "sobol"], [0], 2, tmp_path, progress=False)
    assert [r["method"] for r in read_runs(tmp_path / RUNS_FILE)] == ["sobol"]
    monkeypatch.setattr(runner, "execute_run", real)
    retried = run_benchmark(["branin"], ["random", "sobol"], [0], 2, tmp_path, progress=False)
    assert [r["method"] for r in retried] == ["random"]
