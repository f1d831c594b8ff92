"""The benchmark report: a markdown table per problem and its plots, from `runs.jsonl`."""

from __future__ import annotations

import json
import shutil

import matplotlib
import pytest

from bopt.acquisition.registry import STRATEGIES
from bopt.benchmarks import report
from bopt.benchmarks.records import RUNS_FILE, read_runs
from bopt.benchmarks.references import REFERENCE_METHODS
from bopt.benchmarks.report import method_colors, write_report


@pytest.fixture
def bench_copy(bench, tmp_path):
    """The shared benchmark's records in a folder of this test's own (the report writes there)."""
    shutil.copy(bench.out / RUNS_FILE, tmp_path / RUNS_FILE)
    return tmp_path


def _write_branin_only(bench, path, **overrides) -> None:
    records = [{**r, **overrides} for r in read_runs(bench.out / RUNS_FILE)
               if r["problem"] == "branin"]
    (path / RUNS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))


def test_report_has_a_table_row_per_method_and_plots(bench, bench_copy):
    text = write_report(bench_copy).read_text()
    for problem in bench.problems:
        assert f"## {problem}" in text
        for png in (f"{problem}_regret.png", f"{problem}_suggest_seconds.png"):
            assert (bench_copy / png).stat().st_size > 1000
            assert f"]({png})" in text
    for method in bench.methods:
        assert text.count(f"| `{method}` | {bench.num_seeds} |") == len(bench.problems)
    assert "median final regret" in text and "model-based" in text
    assert "torch.set_num_threads(1)" in text and "logical cores" in text


def test_report_without_known_optimum_shows_values(bench, tmp_path):
    _write_branin_only(bench, tmp_path, optimum=None, regret=None)
    text = write_report(tmp_path).read_text()
    assert "median final value" in text and "optimum unknown" in text
    assert (tmp_path / "branin_regret.png").stat().st_size > 1000


def test_report_without_runs_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs in .*runs.jsonl"):
        write_report(tmp_path)


def test_report_leaves_the_backend_and_pyplot_figures_alone(bench, tmp_path):
    import matplotlib.pyplot as plt

    _write_branin_only(bench, tmp_path)
    previous = matplotlib.get_backend()
    plt.switch_backend("template")  # not Agg, so that a switch to Agg would show
    try:
        before = plt.get_fignums()
        write_report(tmp_path)
        assert matplotlib.get_backend() == "template"
        assert plt.get_fignums() == before
        assert (tmp_path / "branin_regret.png").stat().st_size > 1000
    finally:
        plt.switch_backend(previous)


def test_bopt_methods_are_drawn_solid_and_the_references_dashed():
    assert [report._style(m) for m in STRATEGIES] == ["-"] * len(STRATEGIES)
    assert [report._style(m) for m in (*REFERENCE_METHODS, "other")] == ["--"] * 4


def test_method_colors_follow_strategies_then_references():
    palette = matplotlib.colormaps["tab10"].colors
    colors = method_colors(["zz-new", "botorch", "ei", "sobol"])
    assert colors == {"ei": palette[0], "sobol": palette[5], "botorch": palette[6],
                      "zz-new": palette[9]}
