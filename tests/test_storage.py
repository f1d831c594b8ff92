"""Durable studies: `bopt.storage.SQLiteStorage` and the optimizer's use of it.

Multi-process and SIGKILL tests live in tests/integration/test_durability.py.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time

import pytest

from bopt import Categorical, Float, Int, Optimizer, Space
from bopt.engine import RoundInfo
from bopt.errors import ObservationError, StorageError, TrialError
from bopt.storage import SQLiteStorage


def _space() -> Space:
    return Space([Float("x", -2.0, 2.0), Float("lr", 1e-4, 1e-1, log=True), Int("k", 1, 5),
                  Categorical("c", ["a", "b", "c"])])


def _objective(p: dict) -> float:
    return (p["x"] - 0.3) ** 2 + 0.1 * math.log10(p["lr"]) ** 2 + 0.2 * p["k"] + (p["c"] == "b")


def _run(opt: Optimizer, n: int) -> None:
    for _ in range(n):
        trial = opt.suggest()
        opt.observe(trial, _objective(trial.params))


def _rows(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT trial_id, status, value, params FROM trials "
                            "ORDER BY trial_id").fetchall()


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("acquisition", ["ei", "ts"])
def test_reopened_study_proposes_what_an_uninterrupted_one_would(tmp_path, acquisition):
    """Same seed and history: the stored warm start makes the continuation identical."""
    kwargs = dict(acquisition=acquisition, seed=3, n_initial=4, num_raw_samples=64)
    ref = Optimizer(_space(), **kwargs)
    _run(ref, 9)
    first = Optimizer(_space(), storage=tmp_path / "s.db", study="s", **kwargs)
    _run(first, 6)
    pending = first.suggest()  # open at the crash: resumed as pending
    del first
    again = Optimizer.load(tmp_path / "s.db", "s")
    assert again.acquisition == acquisition and again.seed == 3
    again.observe(pending.id, _objective(pending.params))
    _run(again, 2)
    assert [t.params for t in again.history] == [t.params for t in ref.history]
    assert [t.value for t in again.history] == [t.value for t in ref.history]


def test_reopened_study_keeps_the_refit_schedule(tmp_path):
    """Rounds that keep the last hyperparameter estimate resume identically too: the stored
    state says which data size the estimate was fitted on."""
    kwargs = dict(seed=5, n_initial=4, num_raw_samples=64, refit_growth=0.5)
    ref = Optimizer(_space(), **kwargs)
    _run(ref, 11)
    assert {r.refit for r in ref.diagnostics[4:]} == {True, False}
    first = Optimizer(_space(), storage=tmp_path / "s.db", study="s", **kwargs)
    _run(first, 7)  # the last fit was at n = 6; n = 7 and 8 keep it
    again = Optimizer.load(tmp_path / "s.db", "s")
    assert again.refit_growth == 0.5
    _run(again, 4)
    assert [t.params for t in again.history] == [t.params for t in ref.history]
    assert [r.refit for r in again.diagnostics] == [r.refit for r in ref.diagnostics]


def test_a_study_stored_before_refit_growth_loads_with_the_default(tmp_path):
    Optimizer(_space(), storage=tmp_path / "s.db", study="s", refit_growth=0.3)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        (settings,) = conn.execute("SELECT settings FROM studies").fetchone()
        settings = json.loads(settings)
        assert settings.pop("refit_growth") == 0.3
        conn.execute("UPDATE studies SET settings=?", (json.dumps(settings),))
    assert Optimizer.load(tmp_path / "s.db", "s").refit_growth == 0.0


def test_a_reopened_study_keeps_its_design_size_when_none_is_given(tmp_path):
    """A study made when the default design was smaller (5 points on this space with a
    categorical, now 10) stays in its model phase when workers reopen it without
    `n_initial`, by the constructor or by `load`; an explicit `n_initial` still wins."""
    path = tmp_path / "s.db"
    assert Optimizer(_space()).n_initial == 10  # the default on this space
    _run(Optimizer(_space(), seed=1, n_initial=5, storage=path, study="s"), 7)
    by_constructor = Optimizer(_space(), seed=1, storage=path, study="s")
    assert by_constructor.n_initial == Optimizer.load(path, "s").n_initial == 5
    trial = by_constructor.suggest()
    assert trial.source == "ei"  # not back to the Sobol design
    assert Optimizer(_space(), seed=1, n_initial=9, storage=path, study="s").n_initial == 9
    assert Optimizer(_space(), storage=path, study="new").n_initial == 10


def test_a_fresh_model_state_changes_the_continuation(tmp_path):
    """The previous test is not vacuous: without the stored hyperparameters the next
    proposal differs (a cold fit lands elsewhere)."""
    opt = Optimizer(_space(), seed=3, n_initial=4, storage=tmp_path / "s.db", study="s")
    _run(opt, 8)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE studies SET state=NULL")
    warm = Optimizer.load(tmp_path / "s.db", "s")
    cold_next = warm.suggest().params
    assert cold_next != opt.suggest().params


def test_every_call_is_committed_before_it_returns(tmp_path):
    path = tmp_path / "s.db"
    opt = Optimizer(_space(), acquisition="random", storage=path)
    trial = opt.suggest()
    assert _rows(path) == [(trial.id, "pending", None, json.dumps(trial.params, sort_keys=True))]
    opt.observe(trial, 1.5)
    assert _rows(path)[0][1:3] == ("complete", 1.5)
    opt.fail(opt.suggest(), reason="simulation diverged")
    opt.observe({"x": 0.0, "lr": 0.01, "k": 2, "c": "a"}, 2.5)
    rows = _rows(path)
    assert [r[1:3] for r in rows] == [("complete", 1.5), ("failed", None), ("complete", 2.5)]
    # A second reader sees everything, including the failure's reason.
    other = Optimizer.load(path)
    assert other.history == opt.history
    assert other.history[1].note == "simulation diverged"


def test_values_round_trip_exactly(tmp_path):
    opt = Optimizer(_space(), acquisition="random", storage=tmp_path / "s.db")
    values = [1e300, -1e-300, 0.1 + 0.2, 5e-324, 2.0, 123456789.123456789]
    for v in values:
        opt.observe(opt.suggest(), v)
    got = [t.value for t in Optimizer.load(tmp_path / "s.db").history]
    assert got == values and all(type(v) is float for v in got)


def test_diagnostics_survive_a_reload(tmp_path):
    opt = Optimizer(_space(), seed=1, n_initial=3, storage=tmp_path / "s.db")
    _run(opt, 5)
    again = Optimizer.load(tmp_path / "s.db")
    assert [d.to_dict() for d in again.diagnostics] == [d.to_dict() for d in opt.diagnostics]
    assert again.diagnostics[-1].lengthscales and again.diagnostics[-1].strategy == "ei"


def test_round_info_dict_round_trip():
    info = RoundInfo(trial_id=3, strategy="ei", num_observations=5, device="cpu",
                     lengthscales={"x": 0.5}, outputscales=(1.0, 2.0, 0.5), warnings=["w"])
    assert RoundInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert RoundInfo.from_dict({**info.to_dict(), "from_a_newer_bopt": 1}) == info


# --------------------------------------------------------------------------- what is stored


def test_reopening_with_a_different_space_is_a_clear_error(tmp_path):
    Optimizer(_space(), storage=tmp_path / "s.db", study="lr-sweep")
    changed = Space([Float("x", -2.0, 3.0), Float("lr", 1e-4, 1e-1, log=True), Int("k", 1, 5),
                     Categorical("c", ["a", "b", "c"])])
    with pytest.raises(StorageError, match=r"study 'lr-sweep' in .*s\.db was created with a "
                                           r"different space \(stored Float\(name='x'.*given Float\(name='x'"):
        Optimizer(changed, storage=tmp_path / "s.db", study="lr-sweep")
    with pytest.raises(StorageError, match=r"stored parameters \['x', 'lr', 'k', 'c'\], given \['x'\]"):
        Optimizer(Space([Float("x", -2.0, 2.0)]), storage=tmp_path / "s.db", study="lr-sweep")
    Optimizer(changed, storage=tmp_path / "s.db", study="other")  # a new name is fine


def test_reopening_with_another_direction_is_an_error(tmp_path):
    Optimizer(_space(), storage=tmp_path / "s.db")
    with pytest.raises(StorageError, match="direction='minimize', not 'maximize'"):
        Optimizer(_space(), storage=tmp_path / "s.db", direction="maximize")


def test_other_settings_may_differ_between_processes(tmp_path):
    """Workers may use their own seeds or acquisitions; `load` uses the stored ones."""
    Optimizer(_space(), seed=5, acquisition="ucb", storage=tmp_path / "s.db")
    worker = Optimizer(_space(), seed=6, acquisition="ei", storage=tmp_path / "s.db")
    assert worker.seed == 6
    loaded = Optimizer.load(tmp_path / "s.db")
    assert (loaded.seed, loaded.acquisition) == (5, "ucb")
    assert Optimizer.load(tmp_path / "s.db", acquisition="ts").acquisition == "ts"


def test_load_errors_name_what_is_there(tmp_path):
    Optimizer(_space(), storage=tmp_path / "s.db", study="a")
    with pytest.raises(StorageError, match=r"has no study 'b'; it has \['a'\]"):
        Optimizer.load(tmp_path / "s.db", "b")
    with pytest.raises(StorageError, match=r"'space' is fixed by the stored study 'a'"):
        Optimizer.load(tmp_path / "s.db", "a", space=_space())
    assert SQLiteStorage(tmp_path / "s.db").study_names() == ["a"]


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not sqlite " * 200)
    with pytest.raises(StorageError, match=r"cannot open .*notes\.txt as a bopt study database"):
        Optimizer(_space(), storage=path)


def test_a_newer_schema_is_refused(tmp_path):
    SQLiteStorage(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE bopt_meta SET value='99' WHERE key='schema'")
    with pytest.raises(StorageError, match="storage schema 99; this bopt reads schema 2"):
        SQLiteStorage(tmp_path / "s.db")


def test_storage_argument_is_checked():
    with pytest.raises(StorageError, match="storage must be a file path or a SQLiteStorage; got 3"):
        Optimizer(_space(), storage=3)


def test_bad_input_leaves_the_database_unchanged(tmp_path):
    path = tmp_path / "s.db"
    opt = Optimizer(_space(), acquisition="random", storage=path)
    trial = opt.suggest()
    opt.observe(opt.suggest(), 1.0)
    before = _rows(path)
    for bad in (math.nan, math.inf, None, "1.0"):
        with pytest.raises(ObservationError):
            opt.observe(trial, bad)
    with pytest.raises(TrialError, match="no trial with id 9"):
        opt.observe(9, 1.0)
    with pytest.raises(TrialError, match="trial 1 is already complete"):
        opt.fail(1)
    assert _rows(path) == before


# --------------------------------------------------------------------------- several writers


def test_two_optimizers_on_one_file_share_trials(tmp_path):
    a = Optimizer(_space(), acquisition="random", seed=1, storage=tmp_path / "s.db")
    b = Optimizer(_space(), acquisition="random", seed=1, storage=tmp_path / "s.db")
    ta, tb = a.suggest(), b.suggest()
    assert (ta.id, tb.id) == (0, 1)
    assert ta.params != tb.params  # same seed, but b saw a's pending trial
    b.observe(ta, 1.0)  # any worker may report any trial
    with pytest.raises(TrialError, match="trial 0 is already complete"):
        a.observe(ta, 2.0)
    assert a.history[0].value == 1.0
    batch = a.suggest(3)
    assert [t.id for t in batch] == [2, 3, 4]
    assert len({json.dumps(t.params, sort_keys=True) for t in a.history}) == 5


def test_a_batch_computed_while_another_writer_stored_is_recomputed(tmp_path):
    """Trials stored by another process between our sync and our commit make the batch
    start over (and take new ids) instead of duplicating a configuration."""
    path = tmp_path / "s.db"
    # num_threads=None: b's suggest runs inside a's, and the thread-count guard is one lock.
    a = Optimizer(_space(), acquisition="sobol", seed=1, storage=path, num_threads=None)
    b = Optimizer(_space(), acquisition="sobol", seed=1, storage=path, num_threads=None)
    real_changes, calls = a.storage.changes, []

    def changes_then_race(*args, **kwargs):
        result = real_changes(*args, **kwargs)
        if not calls:  # after a's first read, b stores the config a is about to propose
            calls.append(b.suggest())
        return result

    a.storage.changes = changes_then_race
    mine = a.suggest()
    assert calls[0].id == 0 and mine.id == 1
    assert mine.params != calls[0].params


# --------------------------------------------------------------------------- stale trials


@pytest.mark.parametrize("stored", [False, True])
def test_stale_pending_trials_are_retried_once(tmp_path, stored):
    storage = tmp_path / "s.db" if stored else None
    opt = Optimizer(_space(), acquisition="random", storage=storage, pending_timeout=0.05)
    lost = opt.suggest()
    time.sleep(0.1)
    retry = opt.suggest()
    assert retry.source == "retry" and retry.retry_of == lost.id
    assert retry.params == lost.params and retry.note == f"retry of stale trial {lost.id}"
    assert opt.history[lost.id].status == "stale"
    time.sleep(0.1)  # now the retry is stale too: it is not retried again
    fresh = opt.suggest()
    assert fresh.source == "random" and fresh.params != lost.params
    assert opt.history[retry.id].status == "stale"
    late = opt.observe(lost, 3.0)  # a slow worker's result still counts
    assert late.status == "complete" and late.value == 3.0


def test_mark_stale_by_hand(tmp_path):
    a = Optimizer(_space(), acquisition="random", storage=tmp_path / "s.db")
    t = a.suggest()
    b = Optimizer(_space(), acquisition="random", storage=tmp_path / "s.db")
    assert b.mark_stale(3600) == []
    stale = b.mark_stale(0)
    assert [s.id for s in stale] == [t.id] and stale[0].status == "stale"
    assert [r.retry_of for r in b.suggest(2)] == [t.id, None]
    assert a.suggest().retry_of is None  # b took the retry; a does not repeat it
    with pytest.raises(Exception, match=r"older_than \(seconds\) must be a finite number >= 0"):
        b.mark_stale(-1)


def test_pending_timeout_is_checked():
    with pytest.raises(Exception, match=r"pending_timeout \(seconds\) must be a finite number > 0"):
        Optimizer(_space(), pending_timeout=0)


# --------------------------------------------------------------------------- review findings


def test_an_interrupt_after_the_commit_keeps_the_stored_trials(tmp_path, monkeypatch):
    """Ctrl-C between the commit and the return: the interrupt propagates as it is, the
    stored rows stay (they are real trials now), and the next call sees them."""
    opt = Optimizer(_space(), acquisition="random", storage=tmp_path / "s.db")
    real_add, real_changes = opt.storage.add_trials, opt.storage.changes
    armed, shots = [], [1]  # interrupt once, after the first commit only

    def add_then_arm(*args, **kwargs):
        if shots:
            armed.append(shots.pop())
        return real_add(*args, **kwargs)

    def changes(*args, **kwargs):
        if armed:
            armed.clear()
            raise KeyboardInterrupt("Ctrl-C right after the commit")
        return real_changes(*args, **kwargs)

    monkeypatch.setattr(opt.storage, "add_trials", add_then_arm)
    monkeypatch.setattr(opt.storage, "changes", changes)
    with pytest.raises(KeyboardInterrupt, match="right after the commit"):  # not a KeyError
        opt.suggest(2)
    assert [r[:2] for r in _rows(tmp_path / "s.db")] == [(0, "pending"), (1, "pending")]
    assert [t.id for t in opt.history] == [0, 1]
    assert [t.id for t in opt.suggest(1)] == [2]


def test_numpy_settings_are_stored_as_plain_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    opt = Optimizer(_space(), beta=np.float32(2.0), pending_timeout=np.int64(60),
                    storage=tmp_path / "s.db")
    loaded = Optimizer.load(tmp_path / "s.db")
    assert (loaded.beta, loaded.pending_timeout) == (2.0, 60.0) == (opt.beta, opt.pending_timeout)


def test_load_does_not_create_a_file_from_a_typo(tmp_path):
    typo = tmp_path / "typo" / "stduy.db"
    with pytest.raises(StorageError, match=r"no study file at .*stduy\.db; check the path"):
        Optimizer.load(typo)
    assert not typo.exists() and not typo.parent.exists()


def test_another_programs_database_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(StorageError, match=r"another program \(tables \['users'\]\), not a bopt "
                                           r"study file; it was left untouched"):
        Optimizer(_space(), storage=path)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


# --------------------------------------------------------------------------- standard errors


_SCHEMA_1_TRIALS = """CREATE TABLE trials (study_id INTEGER NOT NULL REFERENCES studies(id),
    trial_id INTEGER NOT NULL, params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'failed', 'stale')),
    value REAL, source TEXT NOT NULL, note TEXT, retry_of INTEGER, round TEXT,
    created REAL NOT NULL, completed REAL, version INTEGER NOT NULL,
    PRIMARY KEY (study_id, trial_id))"""


def test_a_schema_1_file_is_migrated_and_keeps_its_trials(tmp_path):
    path = tmp_path / "old.db"
    opt = Optimizer(_space(), acquisition="random", storage=path)
    _run(opt, 3)
    opt.storage.close()
    with sqlite3.connect(path) as conn:  # rebuild the trials table as schema 1 had it
        rows = conn.execute("SELECT study_id, trial_id, params, status, value, source, note, "
                            "retry_of, round, created, completed, version FROM trials").fetchall()
        conn.execute("DROP TABLE trials")
        conn.execute(_SCHEMA_1_TRIALS)
        conn.executemany("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE bopt_meta SET value='1' WHERE key='schema'")
    reopened = Optimizer.load(path)
    assert [t.value for t in reopened.history] == [t.value for t in opt.history]
    assert all(t.sem is None for t in reopened.history)
    trial = reopened.suggest()
    assert reopened.observe(trial, 1.5, sem=0.25).sem == 0.25
    assert Optimizer.load(path).history[-1].sem == 0.25
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM bopt_meta WHERE key='schema'").fetchone()[0] == "2"


def test_standard_errors_are_stored_and_exported(tmp_path):
    opt = Optimizer(_space(), acquisition="random", storage=tmp_path / "s.db")
    trial = opt.suggest()
    opt.observe(trial, 2.0, sem=0.1)
    opt.observe({"x": 0.0, "lr": 0.01, "k": 2, "c": "a"}, 3.0, sem=0.2)
    assert [t.sem for t in Optimizer.load(tmp_path / "s.db").history] == [0.1, 0.2]
    assert [r["sem"] for r in opt.export()] == [0.1, 0.2]
