"""The `bopt` command line."""

import pytest

from bopt.cli import main


def test_demo_reports_best_configuration_value_regret_and_time(capsys):
    assert main(["demo", "--problem", "branin", "--budget", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    for expected in ("bopt demo: branin", "best configuration:", "x0 = ", "best value: ",
                     "regret: ", "time in suggest (this run): "):
        assert expected in out


@pytest.mark.parametrize("acquisition, per", [("ei", "per model-based suggestion"),
                                               ("random", "per suggestion")])
def test_demo_states_a_meaningful_time_per_suggestion(acquisition, per, capsys):
    assert main(["demo", "--problem", "branin", "--budget", "7", "--quiet",
                 "--acquisition", acquisition]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "time in suggest" in ln)
    median = line.split("median ")[1].split(" per")[0]
    assert per in line and not median.startswith("0.000") and not median.startswith("0 ")


@pytest.mark.parametrize("argv, message", [
    (["demo", "--budget", "0"], "--budget: must be a positive integer, got 0"),
    (["demo", "--acquisition", "nope"], "invalid choice: 'nope'"),
])
def test_demo_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_demo_reports_bad_device_and_problem_without_a_traceback(capsys):
    assert main(["demo", "--device", "gpu", "--quiet"]) == 2
    assert "device must be 'auto', 'cpu', 'cuda'" in capsys.readouterr().err
    assert main(["demo", "--problem", "nope", "--quiet"]) == 2
    assert "unknown problem 'nope'" in capsys.readouterr().err


def test_demo_with_storage_resumes_up_to_the_budget(tmp_path, capsys):
    db = str(tmp_path / "demo.db")
    argv = ["demo", "--problem", "branin", "--acquisition", "random", "--quiet", "--storage", db]
    assert main(argv + ["--budget", "3"]) == 0
    assert main(argv + ["--budget", "5"]) == 0
    assert "study 'demo-branin-random-seed0' in" in capsys.readouterr().out
    from bopt import Optimizer
    assert len(Optimizer.load(db, "demo-branin-random-seed0").history) == 5


def test_export_writes_csv_and_json(tmp_path, capsys):
    import csv
    import json

    db = str(tmp_path / "demo.db")
    main(["demo", "--problem", "branin", "--acquisition", "random", "--quiet", "--budget", "4",
          "--storage", db])
    assert main(["export", db, "--out", str(tmp_path / "h.csv")]) == 0
    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["0", "1", "2", "3"] and "x0" in rows[0]
    assert main(["export", db, "--format", "json", "--out", str(tmp_path / "h.json")]) == 0
    assert len(json.loads((tmp_path / "h.json").read_text())["trials"]) == 4


def test_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.db")]) == 2
    assert "no study file at" in capsys.readouterr().err
    db = str(tmp_path / "two.db")
    for seed in ("0", "1"):
        main(["demo", "--problem", "branin", "--acquisition", "random", "--quiet",
              "--budget", "2", "--seed", seed, "--storage", db])
    capsys.readouterr()
    assert main(["export", db]) == 2
    assert "holds 2 studies" in capsys.readouterr().err
    assert main(["export", db, "--study", "nope"]) == 2
    assert "has no study 'nope'" in capsys.readouterr().err


def test_export_to_standard_output_appends_when_redirected(tmp_path, capsys):
    db = str(tmp_path / "demo.db")
    main(["demo", "--problem", "branin", "--acquisition", "random", "--quiet", "--budget", "3",
          "--storage", db])
    capsys.readouterr()
    assert main(["export", db]) == 0 and main(["export", db]) == 0
    out = capsys.readouterr().out
    assert out.count("id,status,value") == 2 and len(out.splitlines()) == 8


def test_export_refuses_a_database_of_another_program(tmp_path, capsys):
    import sqlite3

    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    assert main(["export", str(path)]) == 2
    assert "not a bopt study file" in capsys.readouterr().err


def test_demo_resume_redoes_the_interrupted_trial(tmp_path, capsys):
    from bopt import Optimizer
    from bopt.benchmarks import get_problem

    db = str(tmp_path / "demo.db")
    problem = get_problem("branin")
    opt = Optimizer(problem.space, "random", storage=db, study="demo-branin-random-seed0")
    for _ in range(2):
        t = opt.suggest()
        opt.observe(t, problem(t.params))
    lost = opt.suggest()  # the process died while evaluating this one
    assert main(["demo", "--problem", "branin", "--acquisition", "random", "--quiet",
                 "--budget", "4", "--storage", db]) == 0
    history = Optimizer.load(db, "demo-branin-random-seed0").history
    assert history[lost.id].status == "stale"
    assert [t.retry_of for t in history if t.source == "retry"] == [lost.id]
    assert sum(t.status == "complete" for t in history) == 4


def test_export_into_a_closed_pipe_exits_quietly(tmp_path):
    import subprocess
    import sys

    db = str(tmp_path / "demo.db")
    main(["demo", "--problem", "branin", "--acquisition", "random", "--quiet", "--budget", "30",
          "--storage", db])
    proc = subprocess.run(f"{sys.executable} -m bopt export {db} | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("id,status,value")
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr


def test_demo_with_its_budget_used_says_so(tmp_path, capsys):
    db = str(tmp_path / "demo.db")
    argv = ["demo", "--problem", "branin", "--acquisition", "random", "--quiet", "--budget", "3",
            "--storage", db]
    main(argv)
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "the budget of 3 trials is already used" in out
    assert "time in suggest (this run): 0.00 s in all" in out
