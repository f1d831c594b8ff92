"""Real processes on one stored study: parallel workers, and workers killed with SIGKILL.

The workers run `study_worker.py`, which prints a line after every suggest and observe
returns; whatever a worker printed must be in the database, whenever it died.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bopt import Optimizer
from bopt.storage import SQLiteStorage

WORKER = Path(__file__).with_name("study_worker.py")
_spec = importlib.util.spec_from_file_location("study_worker", WORKER)
study_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study_worker)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")


def _start(db: Path, study: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), str(db), study, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _parse(lines: list[str]) -> tuple[set[int], dict[int, float]]:
    suggested, observed = set(), {}
    for line in lines:
        kind, tid, *rest = line.split()
        if kind == "S":
            suggested.add(int(tid))
        else:
            observed[int(tid)] = float(rest[0])
    return suggested, observed


def _check_study(db: Path, study: str, suggested: set[int], observed: dict[int, float]) -> list:
    """Everything the workers reported is stored, once, with the right value."""
    assert SQLiteStorage(db).integrity_check() == "ok"
    history = Optimizer.load(db, study).history
    ids = [t.id for t in history]
    assert ids == list(range(len(ids)))  # unique, gap-free ids
    stored = {t.id: t for t in history}
    assert suggested <= set(stored)
    for tid, value in observed.items():
        assert stored[tid].status == "complete" and stored[tid].value == value
    for t in history:  # no value attached to the wrong configuration
        if t.status == "complete":
            assert t.value == study_worker.objective(t.params)
    return history


def test_four_workers_share_a_study_without_losing_or_duplicating_anything(tmp_path):
    db, per_worker, workers = tmp_path / "study.db", 75, 4
    procs = [_start(db, "par", "--trials", str(per_worker), "--seed", str(i))
             for i in range(workers)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    suggested, observed = _parse([l for out, _ in outputs for l in out.splitlines()])
    history = _check_study(db, "par", suggested, observed)
    assert len(history) == len(observed) == workers * per_worker
    assert all(t.status == "complete" for t in history)
    configs = [json.dumps(t.params, sort_keys=True) for t in history]
    assert len(set(configs)) == len(configs)  # every worker saw the others' trials


def test_model_based_workers_propose_distinct_trials(tmp_path):
    """Four EI workers: each suggestion accounts for the others' pending trials, so no two
    trials share a configuration and the study keeps improving."""
    db = tmp_path / "study.db"
    procs = [_start(db, "ei", "--acquisition", "ei", "--trials", "6", "--seed", "0")
             for _ in range(4)]  # the same seed everywhere: only the shared state separates them
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    suggested, observed = _parse([l for out, _ in outputs for l in out.splitlines()])
    history = _check_study(db, "ei", suggested, observed)
    assert len(history) == 24
    configs = [json.dumps(t.params, sort_keys=True) for t in history]
    assert len(set(configs)) == 24
    assert sum(t.source == "ei" for t in history) >= 16


def test_sigkill_loses_no_observed_value(tmp_path):
    """Kill a model-based worker at random moments (mostly inside suggest, where it spends
    its time) three times, restarting it on the same file each time."""
    db = tmp_path / "study.db"
    lines: list[str] = []
    delays = (0.37, 0.11, 0.23)  # seconds after the 4th, 8th, 12th observation
    for round_, delay in enumerate(delays):
        proc = _start(db, "kill", "--acquisition", "ei", "--seed", "2")
        observed = 0
        while observed < 4:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
            observed += line.startswith("O")
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        lines += out.splitlines()
        assert proc.returncode == -signal.SIGKILL
    suggested, observed = _parse(lines)
    history = _check_study(db, "kill", suggested, observed)
    # At most one observe per kill can have committed without its line being printed.
    complete = sum(t.status == "complete" for t in history)
    assert len(observed) <= complete <= len(observed) + len(delays)
    # The study carries on: stale trials of the dead workers come back as retries.
    opt = Optimizer.load(db, "kill", pending_timeout=1e-3)
    dead = [t.id for t in opt.history if t.status == "pending"]
    retries = [opt.suggest() for _ in dead]
    assert sorted(r.retry_of for r in retries) == dead
    for r in retries:
        opt.observe(r, study_worker.objective(r.params))
    assert opt.suggest().source in ("ei", "fallback-random")


def test_workers_under_asha_decide_every_rung_once_from_all_reports(tmp_path):
    """Two processes train trials under one ASHA schedule: every report a worker printed is
    stored; every rung a trial reached has exactly one decision; and replaying the
    decisions in commit order with ASHA's rule gives the same verdicts, so each was made
    from every worker's values at that rung."""
    import sqlite3

    from bopt.schedulers import ASHA, continues

    db = tmp_path / "asha.db"
    Optimizer(study_worker.space(), storage=db, study="asha", scheduler=ASHA(1, 9, 3))
    workers = [_start(db, "asha", "--asha", "--trials", "8", "--seed", str(s)) for s in (1, 2)]
    printed = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        printed += [line.split() for line in out.splitlines() if line.startswith("R ")]
    with sqlite3.connect(db) as conn:
        reports = set(conn.execute("SELECT trial_id, budget FROM reports").fetchall())
        decisions = conn.execute("SELECT trial_id, rung, value, stop FROM decisions "
                                 "ORDER BY version").fetchall()
    assert {(int(t), float(b)) for _, t, b in printed} <= reports
    reached = {(t, r) for t, b in reports for r in (1.0, 3.0) if b >= r}
    assert sorted((t, r) for t, r, _, _ in decisions) == sorted(reached)  # none lost, none twice
    at_rung: dict[float, list[float]] = {}
    for _, rung, value, stop in decisions:
        assert bool(stop) == (not continues(value, at_rung.get(rung, []), 3, maximize=False))
        at_rung.setdefault(rung, []).append(value)
    assert any(stop for *_, stop in decisions)  # the schedule did stop some trials
