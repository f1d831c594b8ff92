"""Durable studies in SQLite: every trial is committed before `suggest`/`observe` returns.

One database file holds any number of named studies. Each study stores its search space,
the settings it was created with, the optimizer's model state (the last fitted
hyperparameters, so a reopened study warm-starts exactly where it stopped) and its trials.

Several processes may share a file. The database runs in WAL mode, so readers never block the
writer. Every write is one short ``BEGIN IMMEDIATE`` transaction, and each study keeps a
version counter that every write increments. A trial row records the version of its last
change, so a process catches up by reading only the rows newer than the version it last saw.
Trial ids are assigned inside the writing transaction, which makes them unique across
processes.

This module knows rows and JSON, not models: `bopt.engine.Optimizer` decides what to write.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from bopt.errors import StorageError

# 2 added trials.sem, the status 'pruned', and the reports and decisions of training-budget
# schedules; a schema-1 file is migrated when opened.
SCHEMA_VERSION = 2

_TRIALS = """
CREATE TABLE IF NOT EXISTS trials (
    study_id INTEGER NOT NULL REFERENCES studies(id),
    trial_id INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'failed', 'stale', 'pruned')),
    value REAL,
    sem REAL,
    source TEXT NOT NULL,
    note TEXT,
    retry_of INTEGER,
    round TEXT,
    created REAL NOT NULL,
    completed REAL,
    version INTEGER NOT NULL,
    PRIMARY KEY (study_id, trial_id)
)"""
_SCHEMA_1_COLUMNS = ("study_id, trial_id, params, status, value, source, note, retry_of, round, "
                     "created, completed, version")

_SCHEMA = _TRIALS + """;
CREATE TABLE IF NOT EXISTS bopt_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    space TEXT NOT NULL,
    settings TEXT NOT NULL,
    state TEXT,
    version INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_by_version ON trials (study_id, version);
CREATE UNIQUE INDEX IF NOT EXISTS one_retry_per_trial ON trials (study_id, retry_of)
    WHERE retry_of IS NOT NULL;
CREATE TABLE IF NOT EXISTS reports (
    study_id INTEGER NOT NULL REFERENCES studies(id),
    trial_id INTEGER NOT NULL,
    budget REAL NOT NULL,
    value REAL NOT NULL,
    created REAL NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (study_id, trial_id, budget)
);
CREATE INDEX IF NOT EXISTS reports_by_version ON reports (study_id, version);
CREATE TABLE IF NOT EXISTS decisions (
    study_id INTEGER NOT NULL REFERENCES studies(id),
    trial_id INTEGER NOT NULL,
    rung REAL NOT NULL,
    value REAL NOT NULL,
    stop INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (study_id, trial_id, rung)
);
CREATE INDEX IF NOT EXISTS decisions_by_version ON decisions (study_id, version);
"""

# How long a call waits for another process's write transaction before giving up. Writes are
# a few milliseconds each, so only a stuck or suspended process holds the lock this long.
BUSY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class TrialRow:
    """One trial as stored; `params` and `round` are decoded JSON."""

    trial_id: int
    params: dict
    status: str
    value: float | None
    source: str
    note: str | None
    retry_of: int | None
    round: dict | None
    created: float
    completed: float | None
    sem: float | None = None


@dataclass(frozen=True)
class ReportRow:
    """An intermediate value a trial reported at a training budget."""

    trial_id: int
    budget: float
    value: float
    created: float


@dataclass(frozen=True)
class DecisionRow:
    """A schedule's decision when a trial reached a rung: its value there and whether it
    was to stop."""

    trial_id: int
    rung: float
    value: float
    stop: bool


@dataclass(frozen=True)
class Changes:
    """What was written to a study after some version, read in one snapshot."""

    version: int
    trials: list[TrialRow]
    reports: list[ReportRow]
    decisions: list[DecisionRow]


# decide(rung, value, values the rung recorded before) -> stop?
Decide = Callable[[float, float, list[float]], bool]


@dataclass(frozen=True)
class StudyRecord:
    """A study's identity and what was stored with it."""

    id: int
    name: str
    space: dict
    settings: dict
    state: dict | None


class _Abort(Exception):
    """Roll the transaction back and report "not done" (None) to the caller."""


def _abortable(method: Callable) -> Callable:
    """`method`, returning None instead of raising `_Abort` (after its rollback)."""
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _Abort:
            return None
    return run


def _dumps(obj: Any) -> str:
    # allow_nan=False: a NaN or inf that slipped through would not round-trip as JSON.
    return json.dumps(obj, sort_keys=True, allow_nan=False)


class SQLiteStorage:
    """A SQLite file holding bopt studies.

    Args:
        path: the database file.
        create: create the file (and its folder) when missing; with False a missing file is
            a StorageError (reopening a study should not conjure an empty one from a typo).

    The object may be shared by threads (calls are serialised by a lock) and survives a
    fork: a child process opens its own connection on first use. A SQLite file that other
    software made (tables, but not bopt's) is refused, not modified.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        if not isinstance(path, (str, os.PathLike)):
            raise StorageError(f"storage must be a file path or a SQLiteStorage; got {path!r}.")
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StorageError(f"no study file at {self.path}; check the path (a new study is "
                               "created by Optimizer(space, storage=path, study=name)).")
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._connection()  # fail now, with the path in the message, if it cannot be opened

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # ------------------------------------------------------------------ connection
    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                   isolation_level=None, check_same_thread=False)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "bopt_meta" not in tables:
                conn.close()
                raise StorageError(
                    f"{self.path} is a SQLite database of another program (tables "
                    f"{sorted(tables)}), not a bopt study file; it was left untouched. Use a "
                    "new file for bopt studies.")
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns, so even a power cut loses no
            # observation; a trial costs far more than the fsync.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            with _transaction(conn):
                _prepare_schema(conn, self.path)
        except sqlite3.DatabaseError as err:
            raise StorageError(f"cannot open {self.path} as a bopt study database: {err}.") from err
        self._conn, self._pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ studies
    def study_names(self) -> list[str]:
        """Names of the studies in this file, oldest first."""
        with self._lock:
            rows = self._connection().execute("SELECT name FROM studies ORDER BY id").fetchall()
        return [r[0] for r in rows]

    def open_study(self, name: str, space: dict, settings: dict, *,
                   check: Callable[[StudyRecord], None] | None = None) -> StudyRecord:
        """The study called `name`, created with `space` and `settings` if it does not exist.

        Args:
            check: called with an existing study's record inside the transaction; raise
                to refuse it (e.g. a different space).
        """
        with self._lock, _transaction(self._connection()) as conn:
            record = self._read_study(conn, name)
            if record is None:
                conn.execute("INSERT INTO studies (name, space, settings, created) "
                             "VALUES (?, ?, ?, ?)", (name, _dumps(space), _dumps(settings), time.time()))
                record = self._read_study(conn, name)
            elif check is not None:
                check(record)
        return record

    def load_study(self, name: str) -> StudyRecord:
        """An existing study, or StorageError listing the ones there are."""
        with self._lock:
            record = self._read_study(self._connection(), name)
        if record is None:
            names = self.study_names()
            raise StorageError(f"{self.path} has no study {name!r}; it has "
                               f"{names if names else 'no studies yet'}.")
        return record

    @staticmethod
    def _read_study(conn: sqlite3.Connection, name: str) -> StudyRecord | None:
        row = conn.execute("SELECT id, name, space, settings, state FROM studies WHERE name=?",
                           (name,)).fetchone()
        if row is None:
            return None
        return StudyRecord(row[0], row[1], json.loads(row[2]), json.loads(row[3]),
                           None if row[4] is None else json.loads(row[4]))

    # ------------------------------------------------------------------ trials
    def changes(self, study_id: int, since: int) -> Changes:
        """The study's version and the trials (by id), reports and decisions written after
        version `since`."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")  # one snapshot for every read
            try:
                return Changes(_version(conn, study_id), _rows_since(conn, study_id, since),
                               [ReportRow(*r) for r in conn.execute(
                                   "SELECT trial_id, budget, value, created FROM reports "
                                   "WHERE study_id=? AND version>? ORDER BY trial_id, budget",
                                   (study_id, since))],
                               [DecisionRow(r[0], r[1], r[2], bool(r[3])) for r in conn.execute(
                                   "SELECT trial_id, rung, value, stop FROM decisions "
                                   "WHERE study_id=? AND version>? ORDER BY trial_id, rung",
                                   (study_id, since))])
            finally:
                conn.execute("COMMIT")

    def add_report(self, study_id: int, trial_id: int, budget: float, value: float, *,
                   rungs: Sequence[float], decide: Decide) -> int:
        """Store a report and, in the same transaction, the decision at every rung it is the
        trial's first report at or beyond, so that no decision is lost or made twice.

        Args:
            rungs: the trial's rungs, ascending.
            decide: the schedule's rule, given the values the rung recorded before.

        Returns:
            The study's new version.

        Raises:
            StorageError: the trial is not pending (or stale), or `budget` does not exceed
                its last reported budget.
        """
        with self._lock, _transaction(self._connection()) as conn:
            status = conn.execute("SELECT status FROM trials WHERE study_id=? AND trial_id=?",
                                  (study_id, trial_id)).fetchone()
            if status is None or status[0] not in ("pending", "stale"):
                raise StorageError(f"report(): trial {trial_id} is "
                                   f"{'unknown' if status is None else status[0]}; only pending "
                                   "trials report.")
            last = conn.execute("SELECT MAX(budget) FROM reports WHERE study_id=? AND "
                                "trial_id=?", (study_id, trial_id)).fetchone()[0]
            if last is not None and budget <= last:
                raise StorageError(f"report(): trial {trial_id} already reported budget "
                                   f"{last!r}; budgets must increase, got {budget!r}.")
            version = _version(conn, study_id) + 1
            conn.execute("INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?)",
                         (study_id, trial_id, budget, value, time.time(), version))
            for rung in (r for r in rungs if (last is None or last < r) and r <= budget):
                recorded = [v for (v,) in conn.execute(
                    "SELECT value FROM decisions WHERE study_id=? AND rung=?", (study_id, rung))]
                conn.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                             (study_id, trial_id, rung, value,
                              int(decide(rung, value, recorded)), version))
            self._bump(conn, study_id, version, None)
        return version

    @_abortable
    def add_trials(self, study_id: int, trials: Sequence[dict], *, since: int,
                   accept: Callable[[list[TrialRow]], bool], state: dict | None = None
                   ) -> tuple[int, list[int]] | None:
        """Insert trials atomically, with ids assigned here.

        Args:
            trials: dicts with keys params and source, and optionally status (default
                "pending"), value, sem, note, retry_of and round.
            since: the study version the caller's proposals were computed from.
            accept: called with the trials written after `since` (none when nothing was);
                returning False aborts the insert, so the caller can catch up and retry.
            state: the optimizer's model state to store with the study, or None to keep it.

        Returns:
            The study's new version and the assigned ids, or None when `accept` refused or
            another process took a trial's retry first.
        """
        with self._lock, _transaction(self._connection()) as conn:
            version = _version(conn, study_id)
            newer = _rows_since(conn, study_id, since) if version != since else []
            if not accept(newer):
                raise _Abort
            first = conn.execute("SELECT COALESCE(MAX(trial_id) + 1, 0) FROM trials WHERE study_id=?",
                                 (study_id,)).fetchone()[0]
            version += 1
            now = time.time()
            ids = list(range(first, first + len(trials)))
            try:
                conn.executemany(
                    "INSERT INTO trials (study_id, trial_id, params, status, value, sem, source, "
                    "note, retry_of, round, created, completed, version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(study_id, tid, _dumps(t["params"]), t.get("status", "pending"),
                      t.get("value"), t.get("sem"), t["source"], t.get("note"), t.get("retry_of"),
                      None if t.get("round") is None else _dumps(t["round"]), now,
                      None if t.get("status", "pending") == "pending" else now, version)
                     for tid, t in zip(ids, trials)])
            except sqlite3.IntegrityError:  # another process retried the same stale trial
                raise _Abort from None
            self._bump(conn, study_id, version, state)
        return version, ids

    @_abortable
    def finish_trial(self, study_id: int, trial_id: int, status: str, value: float | None,
                     note: str | None, *, allowed: Iterable[str], sem: float | None = None
                     ) -> tuple[int, TrialRow] | None:
        """Set a trial's final status and value if its stored status is in `allowed`.

        Returns:
            The new study version and the updated row, or None when the trial is missing or
            its status is not allowed (the caller reads it to say why).
        """
        allowed = tuple(allowed)
        with self._lock, _transaction(self._connection()) as conn:
            version = _version(conn, study_id) + 1
            marks = ",".join("?" * len(allowed))
            cursor = conn.execute(
                f"UPDATE trials SET status=?, value=?, sem=?, note=COALESCE(?, note), completed=?, "
                f"version=? WHERE study_id=? AND trial_id=? AND status IN ({marks})",
                (status, value, sem, note, time.time(), version, study_id, trial_id, *allowed))
            if cursor.rowcount != 1:
                raise _Abort
            self._bump(conn, study_id, version, None)
            row = conn.execute(f"SELECT {_COLUMNS} FROM trials WHERE study_id=? AND trial_id=?",
                               (study_id, trial_id)).fetchone()
        return version, _row(row)

    def mark_stale(self, study_id: int, older_than: float) -> int:
        """Mark pending trials created before the time `older_than` stale; their count."""
        with self._lock, _transaction(self._connection()) as conn:
            version = _version(conn, study_id) + 1
            count = conn.execute(
                "UPDATE trials SET status='stale', version=? "
                "WHERE study_id=? AND status='pending' AND created<?",
                (version, study_id, older_than)).rowcount
            if count:  # nothing changed: leave the version alone
                self._bump(conn, study_id, version, None)
        return count

    @staticmethod
    def _bump(conn: sqlite3.Connection, study_id: int, version: int, state: dict | None) -> None:
        if state is None:
            conn.execute("UPDATE studies SET version=? WHERE id=?", (version, study_id))
        else:
            conn.execute("UPDATE studies SET version=?, state=? WHERE id=?",
                         (version, _dumps(state), study_id))

    def integrity_check(self) -> str:
        """SQLite's own consistency check: "ok" for a healthy file."""
        with self._lock:
            return self._connection().execute("PRAGMA integrity_check").fetchone()[0]


_COLUMNS = ("trial_id, params, status, value, source, note, retry_of, round, created, "
            "completed, sem")


def _prepare_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create bopt's tables, or check (and migrate) an existing file's schema."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM bopt_meta WHERE key='schema'").fetchone()
    if row is None:
        conn.execute("INSERT INTO bopt_meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    elif int(row[0]) == 1:  # no standard errors, no 'pruned': rebuild the trials table
        conn.execute("ALTER TABLE trials RENAME TO trials_schema_1")
        conn.execute(_TRIALS)
        conn.execute(f"INSERT INTO trials ({_SCHEMA_1_COLUMNS}) "
                     f"SELECT {_SCHEMA_1_COLUMNS} FROM trials_schema_1")
        conn.execute("DROP TABLE trials_schema_1")  # and its indexes: made again below
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("UPDATE bopt_meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
    elif int(row[0]) != SCHEMA_VERSION:
        raise StorageError(
            f"{path}: written by a bopt with storage schema {row[0]}; this bopt "
            f"reads schema {SCHEMA_VERSION}. Use the matching bopt version.")


def _version(conn: sqlite3.Connection, study_id: int) -> int:
    return conn.execute("SELECT version FROM studies WHERE id=?", (study_id,)).fetchone()[0]


def _rows_since(conn: sqlite3.Connection, study_id: int, since: int) -> list[TrialRow]:
    """The study's trials written after version `since`, by id."""
    return [_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM trials WHERE study_id=? AND version>? ORDER BY trial_id",
        (study_id, since)).fetchall()]


def _row(r: tuple) -> TrialRow:
    value = r[3]
    if value is not None and not math.isfinite(value):  # never written by bopt
        raise StorageError(f"trial {r[0]} holds the non-finite value {value!r}.")
    return TrialRow(r[0], json.loads(r[1]), r[2], value, r[4], r[5], r[6],
                    None if r[7] is None else json.loads(r[7]), r[8], r[9], r[10])


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ROLLBACK and re-raise on any exception."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, err, tb) -> bool:
        if kind is None:
            self.conn.execute("COMMIT")
            return False
        self.conn.execute("ROLLBACK")
        return False
