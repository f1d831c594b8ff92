"""The trial ledger: every trial of a study, its status, and what the model needs of it.

`Ledger` keeps the trials in memory with what is computed once per trial: its key (for
"never propose a configuration twice"), its encoded row, and its round's diagnostics. Two
kinds share that index and differ only in where a change is committed:

- `MemoryLedger`: the process's memory is the study.
- `SQLiteLedger`: every change is committed to a `bopt.storage.SQLiteStorage` study first,
  then read back (`sync`), so several processes on one file see each other's trials.

A batch of new trials is built outside the ledger and handed to `commit` whole: a batch that
fails or is refused changes nothing.
"""

from __future__ import annotations

import collections
import numbers
import time
from collections.abc import Collection, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from torch import Tensor

from bopt.errors import StorageError, TrialError
from bopt.space import Space
from bopt.storage import SQLiteStorage, StudyRecord, TrialRow
from bopt.trial import RoundInfo, Trial

# With storage, a suggestion computed while another process added trials is recomputed: the
# first attempts insist on having seen every trial (so the believer saw all pending points),
# later ones only on not clashing with a configuration stored meanwhile.
STRICT_COMMIT_ATTEMPTS = 3
MAX_COMMIT_ATTEMPTS = 20


class SeenKeys(Collection):
    """The keys of the ledger's trials plus those of a batch being built (a live view)."""

    def __init__(self, counts: collections.Counter, extra: set[tuple]):
        self._counts, self._extra = counts, extra

    def __contains__(self, key: object) -> bool:
        return key in self._counts or key in self._extra

    def __len__(self) -> int:
        return len(self._counts) + len(self._extra)

    def __iter__(self) -> Iterator[tuple]:
        yield from self._counts
        yield from self._extra


class Ledger:
    """The in-memory index of a study's trials; subclasses decide how changes commit."""

    def __init__(self, space: Space):
        self.space = space
        self._trials: dict[int, Trial] = {}
        self._keys: collections.Counter[tuple] = collections.Counter()  # configs in any trial
        self._key_of: dict[int, tuple] = {}
        self._encoded: dict[int, Tensor] = {}  # trial id -> `d` encoded row (CPU)
        self._retried: set[int] = set()  # stale trials that already have a retry
        self._rounds: dict[int, RoundInfo] = {}  # trial id -> its round
        self._reports: dict[int, list[tuple[float, float]]] = {}  # id -> (budget, value), ...
        self._decisions: dict[int, list[tuple[float, float, bool]]] = {}  # (rung, value, stop)
        self._rung_values: dict[float, list[float]] = {}  # rung -> values recorded there

    # ------------------------------------------------------------------ reading
    def get(self, trial_id: int) -> Trial | None:
        """The trial with this id, or None."""
        return self._trials.get(trial_id)

    def trials(self) -> list[Trial]:
        """Every trial, in id order."""
        return [self._trials[i] for i in sorted(self._trials)]

    def rounds(self) -> list[RoundInfo]:
        """Every recorded round, in trial order."""
        return [self._rounds[i] for i in sorted(self._rounds)]

    def with_status(self, *statuses: str) -> list[Trial]:
        """The trials with one of `statuses`, in the order they joined the ledger."""
        return [t for t in self._trials.values() if t.status in statuses]

    def encoded(self, trials: list[Trial]) -> list[Tensor]:
        """Each trial's `d` encoded row (computed once, on the CPU)."""
        return [self._encoded[t.id] for t in trials]

    def num_distinct(self, trials: list[Trial]) -> int:
        """How many distinct configurations `trials` hold."""
        return len({self._key_of[t.id] for t in trials})

    def seen(self, extra: set[tuple] | None = None) -> SeenKeys:
        """Keys of every configuration in the study (any status), plus `extra`."""
        return SeenKeys(self._keys, extra if extra is not None else set())

    def reports(self, trial_id: int) -> list[tuple[float, float]]:
        """The trial's `(budget, value)` reports, by budget."""
        return list(self._reports.get(trial_id, ()))

    def decisions(self, trial_id: int) -> list[tuple[float, float, bool]]:
        """The schedule's `(rung, value, stop)` decisions for the trial, by rung."""
        return list(self._decisions.get(trial_id, ()))

    def rung_values(self, rung: float) -> list[float]:
        """Every value recorded at `rung`, from all trials."""
        return list(self._rung_values.get(rung, ()))

    def next_id(self) -> int:
        return max(self._trials) + 1 if self._trials else 0

    def stale_to_retry(self, taken: Collection[int] = ()) -> Trial | None:
        """The oldest stale trial without a retry yet (a retry itself is not retried), and
        not among `taken` (retries already in the batch being built)."""
        for tid in sorted(self._trials):
            t = self._trials[tid]
            if (t.status == "stale" and t.retry_of is None and tid not in self._retried
                    and tid not in taken):
                return t
        return None

    def pending_trial(self, trial: Any, verb: str) -> Trial:
        """The pending or stale trial that `trial` (a Trial or an id) names.

        Raises:
            TrialError: not a trial or id, an unknown id, or a trial already reported.
        """
        tid = trial.id if isinstance(trial, Trial) else trial
        if isinstance(tid, (bool, np.bool_)) or not isinstance(tid, numbers.Integral):
            accepted = "a Trial, a trial id or a config dict" if verb == "observe" else \
                "a Trial or a trial id"
            raise TrialError(f"{verb}(): expected {accepted}; got {trial!r}.")
        tid = int(tid)  # numpy integers too
        if tid not in self._trials:
            raise TrialError(f"{verb}(): no trial with id {tid}; ids run 0..{len(self._trials) - 1}.")
        known = self._trials[tid]
        if known.status not in ("pending", "stale"):
            raise TrialError(f"{verb}(): trial {tid} is already {known.status} "
                             f"(value={known.value!r}); each trial is reported once.")
        return known

    # ------------------------------------------------------------------ the index
    def _store(self, trial: Trial, round_info: RoundInfo | None = None) -> None:
        """Add or update one trial in memory (its key and encoding computed once)."""
        if trial.id not in self._trials:
            key = self.space.key(trial.params, validated=True)
            self._key_of[trial.id] = key
            self._keys[key] += 1
            self._encoded[trial.id] = self.space.encode([trial.params])[0]
        self._trials[trial.id] = trial
        if trial.retry_of is not None:
            self._retried.add(trial.retry_of)
        if round_info is not None and trial.id not in self._rounds:
            self._rounds[trial.id] = replace(round_info, trial_id=trial.id)

    def _store_report(self, trial_id: int, budget: float, value: float) -> None:
        self._reports.setdefault(trial_id, []).append((budget, value))

    def _store_decision(self, trial_id: int, rung: float, value: float, stop: bool) -> None:
        self._decisions.setdefault(trial_id, []).append((rung, value, stop))
        self._rung_values.setdefault(rung, []).append(value)

    # ------------------------------------------------------------------ changes
    def add_report(self, trial: Trial, budget: float, value: float, *, rungs: tuple[float, ...],
                   decide) -> None:
        """Record a report and the decision at each rung it crosses (see
        `SQLiteStorage.add_report`: all or nothing, each decision once)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Catch up with what other processes committed (nothing to do in memory)."""

    def commit(self, trials: list[Trial], rounds: list[RoundInfo], *, strict: bool,
               state: dict | None) -> list[Trial] | None:
        """Add a batch of new pending trials with their rounds, all or nothing.

        Args:
            trials: the new trials, with the ids `next_id()` gave.
            rounds: one round per trial.
            strict: refuse when another process added any trial since the last sync.
            state: model state to store with the study (None: keep the stored one).

        Returns:
            The trials as committed (their ids may differ with storage), or None when
            another process got in first: sync, recompute and try again.
        """
        raise NotImplementedError

    def add_external(self, params: dict, value: float, sem: float | None = None) -> Trial:
        """Record an observation of a configuration that was never suggested."""
        raise NotImplementedError

    def finish(self, pending: Trial, status: str, value: float | None, note: str | None,
               verb: str, sem: float | None = None) -> Trial:
        """Complete or fail a pending (or stale) trial."""
        raise NotImplementedError

    def mark_stale(self, cutoff: float) -> None:
        """Mark pending trials created before time `cutoff` stale."""
        raise NotImplementedError


class MemoryLedger(Ledger):
    """A study that lives in this process's memory."""

    def commit(self, trials, rounds, *, strict, state):
        for trial, info in zip(trials, rounds):
            self._store(trial, info)
        return [self._trials[t.id] for t in trials]

    def add_external(self, params, value, sem=None):
        now = time.time()
        trial = Trial(self.next_id(), params, "complete", value, "external",
                      created=now, completed=now, sem=sem)
        self._store(trial)
        return trial

    def finish(self, pending, status, value, note, verb, sem=None):
        done = replace(pending, status=status, value=value, completed=time.time(), sem=sem,
                       note=note if note is not None else pending.note)
        self._store(done)
        return done

    def mark_stale(self, cutoff):
        for t in list(self._trials.values()):
            if t.status == "pending" and t.created < cutoff:
                self._trials[t.id] = replace(t, status="stale")

    def add_report(self, trial, budget, value, *, rungs, decide):
        last = self._reports[trial.id][-1][0] if self._reports.get(trial.id) else None
        crossed = [r for r in rungs if (last is None or last < r) and r <= budget]
        stops = [decide(r, value, self.rung_values(r)) for r in crossed]  # decide, then store
        self._store_report(trial.id, budget, value)
        for rung, stop in zip(crossed, stops):
            self._store_decision(trial.id, rung, value, stop)


class SQLiteLedger(Ledger):
    """A study kept in SQLite: each change commits there first, then is read back.

    Args:
        space: the study's space.
        storage: the open database.
        record: the study as `SQLiteStorage.open_study` returned it.
    """

    def __init__(self, space: Space, storage: SQLiteStorage, record: StudyRecord):
        super().__init__(space)
        self.storage, self.study_id, self.name = storage, record.id, record.name
        self.stored_state = record.state  # the model state at opening
        self.stored_settings = record.settings  # the settings the study was created with
        self._version = 0  # the study version this process has read up to
        self.sync()

    def pending_warning(self) -> str | None:
        """What to say when a reopened study has pending trials, or None."""
        pending = self.with_status("pending")
        if not pending:
            return None
        age = time.time() - min(t.created for t in pending)
        return (f"study {self.name!r} has {len(pending)} pending trial(s), the oldest "
                f"suggested {age:.0f} s ago. If their workers died, reopen it with "
                "pending_timeout=SECONDS (or call opt.mark_stale(SECONDS)) so they are "
                "retried; live workers can still report them.")

    def sync(self):
        changes = self.storage.changes(self.study_id, self._version)
        for row in changes.trials:
            self._apply_row(row)
        for report in changes.reports:
            self._store_report(report.trial_id, report.budget, report.value)
        for decision in changes.decisions:
            self._store_decision(decision.trial_id, decision.rung, decision.value, decision.stop)
        self._version = changes.version

    def add_report(self, trial, budget, value, *, rungs, decide):
        self.storage.add_report(self.study_id, trial.id, budget, value, rungs=rungs,
                                decide=decide)
        self.sync()

    def _apply_row(self, row: TrialRow) -> None:
        try:
            params = self.space.validate(row.params)
        except Exception as err:
            raise StorageError(f"study {self.name!r}: stored trial {row.trial_id} does not fit "
                               f"the space ({err}); the file was edited or corrupted.") from err
        info = None if row.round is None else RoundInfo.from_dict(row.round)
        self._store(Trial(row.trial_id, params, row.status, row.value, row.source, row.note,
                          row.retry_of, row.created, row.completed, row.sem), info)

    def commit(self, trials, rounds, *, strict, state):
        keys = {self.space.key(t.params, validated=True) for t in trials}
        known = set(self._trials)

        def accept(newer: list[TrialRow]) -> bool:
            added = [r for r in newer if r.trial_id not in known]
            if strict:
                return not added
            return not any(self.space.key(r.params) in keys for r in added)

        rows = [{"params": t.params, "source": t.source, "note": t.note, "retry_of": t.retry_of,
                 "round": info.to_dict()} for t, info in zip(trials, rounds)]
        done = self.storage.add_trials(self.study_id, rows, since=self._version, accept=accept,
                                       state=state)
        if done is None:
            return None
        # Stored: from here on nothing is undone; the rows (and rounds) are read back.
        self.sync()
        return [self._trials[i] for i in done[1]]

    def add_external(self, params, value, sem=None):
        row = {"params": params, "source": "external", "status": "complete", "value": value,
               "sem": sem}
        _, ids = self.storage.add_trials(self.study_id, [row], since=self._version,
                                         accept=lambda newer: True)
        self.sync()
        return self._trials[ids[0]]

    def finish(self, pending, status, value, note, verb, sem=None):
        stored = self.storage.finish_trial(self.study_id, pending.id, status, value, note,
                                           allowed=("pending", "stale"), sem=sem)
        self.sync()
        if stored is None:  # another process reported it since our last look
            self.pending_trial(pending.id, verb)  # raises, saying what it became
            raise StorageError(f"{verb}(): trial {pending.id} could not be updated.")
        return self._trials[pending.id]

    def mark_stale(self, cutoff):
        self.storage.mark_stale(self.study_id, cutoff)
        self.sync()


def _space_difference(stored: Space, given: Space) -> str:
    """A short account of how two spaces differ, for error messages."""
    if stored.names != given.names:
        return f"stored parameters {list(stored.names)}, given {list(given.names)}"
    for name in stored.names:
        a, b = stored[name], given[name]
        if a != b:
            return f"stored {a!r}, given {b!r}"
    return "the spaces' settings differ"


def open_stored(storage: SQLiteStorage, study: str, space: Space, settings: dict
                ) -> SQLiteLedger:
    """The study `study` in `storage`, created with `space` and `settings` if missing.

    Raises:
        StorageError: the study exists with another space or direction.
    """
    def check(record: StudyRecord) -> None:
        stored = Space.from_dict(record.space)
        if stored != space:
            raise StorageError(
                f"study {study!r} in {storage.path} was created with a different space "
                f"({_space_difference(stored, space)}); open it with its own space "
                f"(Optimizer.load({str(storage.path)!r}, {study!r})) or use a new study name.")
        if record.settings["direction"] != settings["direction"]:
            raise StorageError(
                f"study {study!r} in {storage.path} was created with "
                f"direction={record.settings['direction']!r}, not {settings['direction']!r}; "
                "its values would be read the wrong way round.")

    record = storage.open_study(study, space.to_dict(), settings, check=check)
    return SQLiteLedger(space, storage, record)


def as_storage(storage: Any, *, create: bool = True) -> SQLiteStorage:
    """A `SQLiteStorage` for a path, or the storage object itself."""
    return storage if isinstance(storage, SQLiteStorage) else SQLiteStorage(storage, create=create)


__all__ = ["Ledger", "MAX_COMMIT_ATTEMPTS", "MemoryLedger", "SQLiteLedger",
           "STRICT_COMMIT_ATTEMPTS", "SeenKeys", "as_storage", "open_stored"]
