"""The optimisation loop: `Optimizer.suggest()` and `Optimizer.observe()`.

This is the only module that sees the whole loop: the space encodes, the model fits, the
acquisition scores and the multistart optimizer proposes; the engine keeps the trials,
standardises values, handles pending points with a believer strategy, falls back
gracefully on numerical trouble and records what each round did.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import numbers
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import IO, Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from bopt.acquisition import (draw_posterior_path, log_expected_improvement,
                              multistart_maximize, ucb_beta, upper_confidence_bound)
from bopt.errors import (ArgumentError, ObservationError, SpaceExhaustedError, StorageError,
                         TrialError)
from bopt.model import BoptGP, FitError, fit_gp
from bopt.space import Space
from bopt.storage import SQLiteStorage, StudyRecord, TrialRow
from bopt.warp import OutputTransform, transform_outputs

logger = logging.getLogger("bopt")

STRATEGIES = ("ei", "ucb", "ts", "random", "sobol")
_GP_STRATEGIES = ("ei", "ucb", "ts")
# Below this many observations a CPU suggest uses one torch thread: its tensors are too small
# for intra-op parallelism to pay, and on a busy machine (the objective running beside it)
# OpenMP threads waiting on each other made small ops up to 70x slower in our measurements.
_SINGLE_THREAD_BELOW = 1000


_THREADS_LOCK = threading.Lock()  # torch's thread count is process-wide
# With storage, a suggestion computed while another process added trials is recomputed: the
# first attempts insist on having seen every trial (so the believer saw all pending points),
# later ones only on not clashing with a configuration stored meanwhile.
_STRICT_COMMIT_ATTEMPTS = 3
_MAX_COMMIT_ATTEMPTS = 20


_MANY_DRAWS = 8192  # random draws before an infinite space is declared used up


class _Retry(Exception):
    """Another process stored trials first; undo the batch and compute it again."""


@contextlib.contextmanager
def _torch_threads(num: int | None):
    """Run the block with `num` torch intra-op threads (None: leave as is), then restore.

    Blocks that change the count run one at a time, so optimizers in several threads cannot
    restore each other's values out of order.
    """
    if num is None:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(num)
        try:
            yield
        finally:
            torch.set_num_threads(before)


@dataclass(frozen=True)
class Trial:
    """One configuration to evaluate, and what became of it.

    Attributes:
        id: unique within the study, increasing in creation order.
        params: the configuration (inactive conditional parameters omitted).
        status: "pending", "complete", "failed" or "stale" (pending longer than the
            optimizer's `pending_timeout`; a late `observe` still completes it).
        value: the observed objective value once complete.
        source: how it was proposed: "sobol", "random", "ei", "ucb", "ts", "external"
            (observed without a suggestion), "retry" (a stale trial's configuration again)
            or "fallback-..." after numerical trouble.
        note: why it failed, or what it retries, when there is something to say.
        retry_of: the id of the stale trial this one retries.
        created: when it was suggested (seconds since the epoch); not compared.
        completed: when it was observed or failed; not compared.
    """

    id: int
    params: dict
    status: str = "pending"
    value: float | None = None
    source: str = "sobol"
    note: str | None = None
    retry_of: int | None = None
    created: float | None = field(default=None, compare=False)
    completed: float | None = field(default=None, compare=False)


@dataclass
class RoundInfo:
    """Diagnostics of one suggestion round (one proposed trial)."""

    trial_id: int
    strategy: str
    num_observations: int
    device: str
    suggest_seconds: float = 0.0
    fit_seconds: float = 0.0
    acquisition_seconds: float = 0.0
    lengthscales: dict[str, float] = field(default_factory=dict)
    outputscales: tuple[float, ...] = ()
    noise: float | None = None
    log_marginal_likelihood: float | None = None
    warp_lambda: float | None = None
    best_acquisition: float | None = None
    num_starts: int = 0
    num_outliers: int = 0
    num_duplicates: int = 0
    fallback: str | None = None
    refit: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready dict (the form stored with each trial)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundInfo:
        """The inverse of `to_dict`; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        info = cls(**{k: v for k, v in data.items() if k in known})
        info.outputscales = tuple(info.outputscales)
        return info


_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _release_cached_memory(device: torch.device) -> None:
    """Give the caching allocator's free blocks back after an out-of-memory error."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _as_storage(storage: Any, *, create: bool = True) -> SQLiteStorage:
    return storage if isinstance(storage, SQLiteStorage) else SQLiteStorage(storage, create=create)


def _space_difference(stored: Space, given: Space) -> str:
    """A short account of how two spaces differ, for error messages."""
    if stored.names != given.names:
        return f"stored parameters {list(stored.names)}, given {list(given.names)}"
    for name in stored.names:
        a, b = stored[name], given[name]
        if a != b:
            return f"stored {a!r}, given {b!r}"
    return "the spaces' settings differ"


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise ArgumentError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device; got {device!r}.")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ArgumentError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device; "
                            f"got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device={device!r} but CUDA is not available here; "
                         "use device='auto' to fall back to the CPU.")
    return dev


def _check_value(value: Any, where: str) -> float:
    """A finite real number as float, or ObservationError naming `where`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
            value = value.item()
            if isinstance(value, bool):
                raise ObservationError(f"{where}: value is a bool tensor; pass a finite number.")
        else:
            raise ObservationError(f"{where}: value is {value!r} ({type(value).__name__}); "
                                   "only finite real numbers are accepted.")
    try:
        value = float(value)
    except OverflowError:
        raise ObservationError(f"{where}: value is {value!r}, too large for a float; "
                               "only finite numbers are accepted.") from None
    if not math.isfinite(value):
        raise ObservationError(f"{where}: value is {value!r}; only finite numbers are accepted. "
                               "Use fail(trial) for an evaluation that broke.")
    return value


class Optimizer:
    """Bayesian optimisation over a search space, one `suggest`/`observe` at a time.

    Args:
        space: the search space.
        acquisition: "ei" (log expected improvement), "ucb", "ts" (Thompson sampling),
            "random" or "sobol".
        n_initial: Sobol points before the GP takes over (default: max(5, d + 1)).
        seed: seeds every random choice; equal seeds and histories give equal suggestions.
        device: "auto" (CUDA when available), "cpu", "cuda" or a torch.device.
        direction: "minimize" or "maximize".
        num_restarts: starts of the multistart acquisition ascent.
        num_raw_samples: raw candidates scored to choose the starts.
        beta: UCB's weight on the standard deviation (default: a schedule growing with n).
        num_threads: torch threads during `suggest` on the CPU. "auto" uses one thread below
            1000 observations (small tensors gain nothing from more, and lose much when the
            machine is busy) and leaves torch's setting alone above; None never changes it.
            The setting is process-wide and restored when `suggest` returns.
        storage: a SQLite file (path or `bopt.storage.SQLiteStorage`) that keeps the study:
            every suggest, observe and fail is committed before it returns, and several
            processes may share the file. None keeps the study in memory.
        study: the study's name within `storage`. An existing study is resumed; it must
            have the same space and direction.
        pending_timeout: seconds after which a pending trial counts as stale (its worker
            presumably died): `suggest` then proposes its configuration once more, as a
            "retry" trial. None never marks trials stale.
        refit_growth: re-estimate the GP's hyperparameters only once the observations have
            grown by this fraction since they were last estimated; in between, the GP is
            conditioned on all observations with the last estimate (one Cholesky factor,
            no optimisation). The default 0 re-estimates every round. 0.02 still does
            below 100 observations, and every 40th round at 2,000, where a fit takes
            seconds; the kept estimate fits the grown data less well (README.md).
    """

    def __init__(self, space: Space, acquisition: str = "ei", *, n_initial: int | None = None,
                 seed: int = 0, device: str | torch.device = "auto",
                 direction: str = "minimize", num_restarts: int = 10,
                 num_raw_samples: int = 512, beta: float | None = None,
                 num_threads: int | str | None = "auto",
                 storage: str | os.PathLike | SQLiteStorage | None = None,
                 study: str = "default", pending_timeout: float | None = None,
                 refit_growth: float = 0.0):
        if not isinstance(space, Space):
            raise ArgumentError(f"space must be a bopt.Space; got {type(space).__name__}.")
        if acquisition not in STRATEGIES:
            raise ArgumentError(f"acquisition must be one of {STRATEGIES}; got {acquisition!r}.")
        if direction not in ("minimize", "maximize"):
            raise ArgumentError(f"direction must be 'minimize' or 'maximize'; got {direction!r}.")
        if n_initial is None:
            n_initial = max(5, len(space) + 1)
        for name, v, lo in (("n_initial", n_initial, 1), ("num_restarts", num_restarts, 1),
                            ("num_raw_samples", num_raw_samples, 2), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ArgumentError(f"{name} must be an int >= {lo}; got {v!r}.")
        if beta is not None and (isinstance(beta, bool) or not isinstance(beta, numbers.Real)
                                 or not 0 <= beta < math.inf):
            raise ArgumentError(f"beta must be a finite non-negative number; got {beta!r}.")
        if not (num_threads is None or num_threads == "auto" or (
                isinstance(num_threads, int) and not isinstance(num_threads, bool)
                and num_threads >= 1)):
            raise ArgumentError(f"num_threads must be 'auto', None or an int >= 1; got {num_threads!r}.")
        if pending_timeout is not None and (
                isinstance(pending_timeout, bool) or not isinstance(pending_timeout, numbers.Real)
                or not 0 < pending_timeout < math.inf):
            raise ArgumentError(f"pending_timeout must be a positive number of seconds or None; "
                                f"got {pending_timeout!r}.")
        if (isinstance(refit_growth, bool) or not isinstance(refit_growth, numbers.Real)
                or not 0 <= refit_growth <= 1):
            raise ArgumentError(f"refit_growth must be a number in [0, 1]; got {refit_growth!r}.")
        if not isinstance(study, str) or not study:
            raise ArgumentError(f"study must be a non-empty string; got {study!r}.")
        self.space = space
        self.acquisition = acquisition
        self.n_initial = n_initial
        self.seed = seed
        self.device = _resolve_device(device)
        self.direction = direction
        self.num_restarts = num_restarts
        self.num_raw_samples = num_raw_samples
        self.beta = None if beta is None else float(beta)  # plain floats: they are stored as JSON
        self.num_threads = num_threads
        self.pending_timeout = None if pending_timeout is None else float(pending_timeout)
        self.refit_growth = float(refit_growth)
        self.study = study
        self._trials: dict[int, Trial] = {}
        self._encoded: dict[int, Tensor] = {}  # trial id -> `d` encoded row (CPU)
        self._keys: collections.Counter[tuple] = collections.Counter()  # configs in any trial
        self._retried: set[int] = set()  # stale trials that already have a retry
        self._sobol: list[dict] = []
        self._sobol_used = 0
        self._theta: Tensor | None = None  # last good log hyperparameters
        self._theta_n = -1  # observations they were fitted on
        self._diagnostics: dict[int, RoundInfo] = {}  # trial id -> its round
        self._lock = threading.RLock()
        self.storage: SQLiteStorage | None = None
        self._study_id = -1
        self._version = 0  # the study version this process has read up to
        if storage is not None:
            self._open_study(storage)

    @classmethod
    def load(cls, storage: str | os.PathLike | SQLiteStorage, study: str = "default",
             **overrides: Any) -> Optimizer:
        """Reopen a stored study with the space and settings it was created with.

        Args:
            storage: the SQLite file (or storage object) holding the study.
            study: its name.
            overrides: constructor arguments to change (e.g. `device="cuda"`,
                `acquisition="ucb"`); `space` and `direction` cannot change.

        Raises:
            StorageError: no such study, or an override of space or direction.
        """
        store = _as_storage(storage, create=False)
        record = store.load_study(study)
        for fixed in ("space", "direction", "storage", "study"):
            if fixed in overrides:
                raise StorageError(f"Optimizer.load(): {fixed!r} is fixed by the stored study "
                                   f"{study!r}; remove it from the arguments.")
        settings = {**record.settings, **overrides}
        return cls(Space.from_dict(record.space), storage=store, study=study, **settings)

    def _settings(self) -> dict:
        """What `load` needs besides the space: the constructor's portable arguments."""
        return {"acquisition": self.acquisition, "n_initial": self.n_initial, "seed": self.seed,
                "direction": self.direction, "num_restarts": self.num_restarts,
                "num_raw_samples": self.num_raw_samples, "beta": self.beta,
                "pending_timeout": self.pending_timeout, "refit_growth": self.refit_growth}

    def _open_study(self, storage: str | os.PathLike | SQLiteStorage) -> None:
        store = _as_storage(storage)

        def check(record: StudyRecord) -> None:
            stored = Space.from_dict(record.space)
            if stored != self.space:
                raise StorageError(
                    f"study {self.study!r} in {store.path} was created with a different space "
                    f"({_space_difference(stored, self.space)}); open it with its own space "
                    f"(Optimizer.load({str(store.path)!r}, {self.study!r})) or use a new study name.")
            if record.settings["direction"] != self.direction:
                raise StorageError(
                    f"study {self.study!r} in {store.path} was created with "
                    f"direction={record.settings['direction']!r}, not {self.direction!r}; its "
                    "values would be read the wrong way round.")

        record = store.open_study(self.study, self.space.to_dict(), self._settings(), check=check)
        self.storage, self._study_id = store, record.id
        if record.state and record.state.get("theta") is not None:
            self._theta = torch.tensor(record.state["theta"], dtype=torch.float64,
                                       device=self.device)
            self._theta_n = int(record.state["theta_n"])
        self._sync()

    # ----------------------------------------------------------------- public reading
    @property
    def history(self) -> list[Trial]:
        """Every trial, in id order (copies: editing them changes nothing here).

        With storage, this includes what other processes wrote to the study.
        """
        with self._lock:
            self._sync()
            return [self._public(self._trials[i]) for i in sorted(self._trials)]

    @property
    def diagnostics(self) -> list[RoundInfo]:
        """What each suggestion round did, in trial order (stored rounds included)."""
        with self._lock:
            self._sync()
            return [self._diagnostics[i] for i in sorted(self._diagnostics)]

    @property
    def best(self) -> Trial | None:
        """The completed trial with the best value (None before any observation)."""
        done = [t for t in self.history if t.status == "complete"]
        if not done:
            return None
        pick = min if self.direction == "minimize" else max
        return pick(done, key=lambda t: t.value)

    # ----------------------------------------------------------------- the loop
    def suggest(self, n: int | None = None) -> Trial | list[Trial]:
        """Propose the next configuration(s) to evaluate.

        Args:
            n: how many distinct configurations; None returns one `Trial`, an int a list.

        Returns:
            Pending trial(s); report each with `observe` or `fail`.

        Raises:
            SpaceExhaustedError: a finite space has no unseen configuration left.
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ArgumentError(f"suggest(n): n must be a positive int or None; got {n!r}.")
        with self._lock, _torch_threads(self._threads_for_suggest()):
            for attempt in range(_MAX_COMMIT_ATTEMPTS):
                if self.pending_timeout is not None:
                    self.mark_stale(self.pending_timeout)  # catches up with storage too
                else:
                    self._sync()
                trials = self._suggest_batch(1 if n is None else n, attempt)
                if trials is not None:
                    break
            else:
                raise StorageError(
                    f"suggest(): other processes kept adding trials to study {self.study!r}; "
                    f"gave up after {_MAX_COMMIT_ATTEMPTS} attempts. Nothing was stored.")
        trials = [self._public(t) for t in trials]
        return trials[0] if n is None else trials

    def _suggest_batch(self, count: int, attempt: int) -> list[Trial] | None:
        """`count` new trials, stored; None when another process got in first (retry)."""
        saved = (self._sobol, self._sobol_used, self._theta, self._theta_n, set(self._retried))
        trials, ids = [], None
        try:
            for _ in range(count):
                trials.append(self._suggest_one())
            if self.storage is None:
                return trials
            refit = self._theta is not saved[2]
            ids = self._store_batch(trials, strict=attempt < _STRICT_COMMIT_ATTEMPTS,
                                    with_state=refit)
        except BaseException as err:  # all or nothing: undo the partial batch
            self._undo(trials, saved)
            if isinstance(err, SpaceExhaustedError) and trials:
                raise SpaceExhaustedError(
                    f"suggest({count}): only {len(trials)} unseen configuration(s) remain; "
                    f"ask for at most {len(trials)}.") from err
            raise
        if ids is None:
            self._undo(trials, saved)
            return None
        # Stored: from here on nothing is undone. Should the adoption below be interrupted,
        # the next sync reads the rows back (and their rounds) from the database.
        return self._adopt(trials, ids)

    def _undo(self, trials: list[Trial], saved: tuple) -> None:
        for trial in trials:
            self._forget(trial.id)
        (self._sobol, self._sobol_used, self._theta, self._theta_n, self._retried) = saved

    def _store_batch(self, trials: list[Trial], *, strict: bool, with_state: bool
                     ) -> list[int] | None:
        """Write tentative trials; their assigned ids, or None when refused (retry).

        `strict` refuses if any other process added a trial since our last sync (our
        believer did not see it); otherwise only a clash of configurations refuses.
        `with_state` also stores this round's hyperparameters (only a process that fitted
        should overwrite the study's model state).
        """
        keys = {self.space.key(t.params) for t in trials}
        known = set(self._trials) - {t.id for t in trials}

        def accept(newer: list[TrialRow]) -> bool:
            added = [r for r in newer if r.trial_id not in known]
            if strict:
                return not added
            return not any(self.space.key(r.params) in keys for r in added)

        rows = [{"params": t.params, "source": t.source, "note": t.note, "retry_of": t.retry_of,
                 "round": self._diagnostics[t.id].to_dict()} for t in trials]
        state = None
        if with_state and self._theta is not None:
            state = {"theta": self._theta.tolist(), "theta_n": self._theta_n}
        done = self.storage.add_trials(self._study_id, rows, since=self._version, accept=accept,
                                       state=state)
        return None if done is None else done[1]

    def _adopt(self, trials: list[Trial], ids: list[int]) -> list[Trial]:
        """Replace tentative trials by the stored ones (whose ids the database chose)."""
        rounds = {new: self._diagnostics[t.id] for new, t in zip(ids, trials)}
        for trial in trials:
            self._forget(trial.id)
        self._sync()
        for new, info in rounds.items():
            info.trial_id = new
            self._diagnostics[new] = info
        return [self._trials[i] for i in ids]

    def observe(self, trial: Trial | int | Mapping[str, Any], value: Any) -> Trial:
        """Record the objective value of a suggested trial, or of any configuration.

        Args:
            trial: a pending `Trial`, its id, or a configuration dict (outside data).
            value: a finite real number.

        Returns:
            The completed trial.

        Raises:
            TrialError: unknown trial id, or a trial that is no longer pending.
            ParameterError: a configuration that does not fit the space.
            ObservationError: a value that is not a finite real number.
        """
        with self._lock:
            self._sync()
            if isinstance(trial, Mapping):
                params = self.space.validate(trial)
                value = _check_value(value, f"observe({params!r})")
                return self._public(self._add_external(params, value))
            pending = self._pending_trial(trial, "observe")
            value = _check_value(value, f"observe(trial {pending.id})")
            return self._public(self._finish(pending, "complete", value, None, "observe"))

    def fail(self, trial: Trial | int, reason: str | None = None) -> Trial:
        """Mark a pending (or stale) trial as failed; its configuration is not proposed again.

        Args:
            trial: the trial or its id.
            reason: a note kept with the trial (e.g. the exception the objective raised).
        """
        if reason is not None and not isinstance(reason, str):
            raise ArgumentError(f"fail(): reason must be a string or None; got {reason!r}.")
        with self._lock:
            self._sync()
            pending = self._pending_trial(trial, "fail")
            return self._public(self._finish(pending, "failed", None, reason, "fail"))

    def mark_stale(self, older_than: float) -> list[Trial]:
        """Mark pending trials suggested more than `older_than` seconds ago as stale.

        A stale trial leaves the set of pending points the model believes in; the next
        `suggest` proposes its configuration once more (a "retry" trial); a late `observe`
        of the stale trial itself is still accepted. With storage this covers every
        process's trials, which is how a dead worker's trials come back.

        Returns:
            The trials marked stale by this call.
        """
        if isinstance(older_than, bool) or not isinstance(older_than, numbers.Real) or not (
                0 <= older_than < math.inf):
            raise ArgumentError(f"mark_stale(): older_than must be a non-negative number of "
                                f"seconds; got {older_than!r}.")
        with self._lock:
            self._sync()
            before = {i for i, t in self._trials.items() if t.status == "stale"}
            cutoff = time.time() - older_than
            if self.storage is not None:
                self.storage.mark_stale(self._study_id, cutoff)
                self._sync()
            else:
                for t in list(self._trials.values()):
                    if t.status == "pending" and t.created < cutoff:
                        self._trials[t.id] = replace(t, status="stale")
            return [self._public(t) for i, t in sorted(self._trials.items())
                    if t.status == "stale" and i not in before]

    def export(self) -> list[dict]:
        """The history as flat dicts: id, status, value, source, note, retry_of, created,
        completed, then one key per parameter (None where inactive). See `bopt.export`."""
        from bopt.export import trial_records
        return trial_records(self.history, self.space.names)

    def to_csv(self, path: str | os.PathLike | IO[str]) -> None:
        """Write `export()` as CSV, one row per trial, to a path or an open text stream.
        CSV is lossy (None and "" look alike); `to_json` keeps exact values."""
        from bopt.export import record_columns, write_csv
        write_csv(self.export(), path, record_columns(self.space.names))

    def to_json(self, path: str | os.PathLike | IO[str]) -> None:
        """Write the history as JSON: the space, the direction and every trial."""
        from bopt.export import write_json
        write_json(self, path)

    def to_dataframe(self):
        """`export()` as a pandas DataFrame indexed by trial id (needs pandas)."""
        from bopt.export import record_columns, to_dataframe
        return to_dataframe(self.export(), record_columns(self.space.names))

    def minimize(self, func: Callable[[dict], float], n_trials: int, *,
                 progress: bool = True) -> Trial | None:
        """Run the loop: suggest, evaluate `func(params)`, observe, `n_trials` times.

        `func` receives the configuration as one dict (`lambda p: train(**p)` adapts a
        keyword function). A call that returns NaN, inf or a non-number marks its trial
        failed (with a logged warning) and the loop goes on; an exception marks it failed and
        propagates. A finite space that runs out ends the loop early. Works for either
        `direction`; the name follows the common case.

        Returns:
            The best trial (None if no trial completed).
        """
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
            raise ArgumentError(f"n_trials must be a non-negative int; got {n_trials!r}.")
        from tqdm.auto import tqdm

        bar = tqdm(range(n_trials), disable=not progress, desc="bopt", unit="trial")
        for _ in bar:
            try:
                trial = self.suggest()
            except SpaceExhaustedError as err:
                logger.info("stopping early: %s", err)
                break
            try:
                value = func(dict(trial.params))
            except BaseException as err:
                self.fail(trial, reason=f"the objective raised {type(err).__name__}: {err}")
                raise
            try:
                self.observe(trial, value)
            except ObservationError as err:
                self.fail(trial, reason=f"rejected: {err}")
                logger.warning("trial %d failed: %s", trial.id, err)
            best = self.best
            if best is not None:
                bar.set_postfix(best=f"{best.value:.6g}", refresh=False)
        return self.best

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _public(trial: Trial) -> Trial:
        """A copy whose `params` the caller may edit without touching the record."""
        return replace(trial, params=dict(trial.params))

    def _pending_trial(self, trial: Trial | int, verb: str) -> Trial:
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

    def _next_id(self) -> int:
        return max(self._trials) + 1 if self._trials else 0

    def _threads_for_suggest(self) -> int | None:
        if self.device.type != "cpu" or self.num_threads is None:
            return None
        if self.num_threads == "auto":
            return 1 if len(self._encoded) < _SINGLE_THREAD_BELOW else None
        return self.num_threads

    def _encode(self, params: dict) -> Tensor:
        return self.space.encode([params])[0]

    def _store(self, trial: Trial) -> None:
        """Add or update one trial in memory."""
        old = self._trials.get(trial.id)
        if old is None:
            self._keys[self.space.key(trial.params)] += 1
        self._trials[trial.id] = trial
        if trial.status == "complete" and trial.id not in self._encoded:
            self._encoded[trial.id] = self._encode(trial.params)
        if trial.retry_of is not None:
            self._retried.add(trial.retry_of)

    def _forget(self, tid: int) -> None:
        """Remove a tentative trial (and its round) from memory."""
        trial = self._trials.pop(tid, None)
        if trial is None:
            return
        key = self.space.key(trial.params)
        self._keys[key] -= 1
        if self._keys[key] <= 0:
            del self._keys[key]
        self._encoded.pop(tid, None)
        self._diagnostics.pop(tid, None)
        if trial.retry_of is not None:
            self._retried.discard(trial.retry_of)

    def _sync(self) -> None:
        """Catch up with the study's stored trials (no-op without storage)."""
        if self.storage is None:
            return
        version, rows = self.storage.changes(self._study_id, self._version)
        for row in rows:
            self._apply_row(row)
        self._version = version

    def _apply_row(self, row: TrialRow) -> None:
        try:
            params = self.space.validate(row.params)
        except Exception as err:
            raise StorageError(f"study {self.study!r}: stored trial {row.trial_id} does not fit "
                               f"the space ({err}); the file was edited or corrupted.") from err
        self._store(Trial(row.trial_id, params, row.status, row.value, row.source, row.note,
                          row.retry_of, row.created, row.completed))
        if row.round is not None and row.trial_id not in self._diagnostics:
            info = RoundInfo.from_dict(row.round)
            info.trial_id = row.trial_id
            self._diagnostics[row.trial_id] = info

    def _add_external(self, params: dict, value: float) -> Trial:
        """Record an observation of a configuration that was never suggested."""
        if self.storage is None:
            now = time.time()
            trial = Trial(self._next_id(), params, "complete", value, "external",
                          created=now, completed=now)
            self._store(trial)
            return trial
        row = {"params": params, "source": "external", "status": "complete", "value": value}
        _, ids = self.storage.add_trials(self._study_id, [row], since=self._version,
                                         accept=lambda newer: True)
        self._sync()
        return self._trials[ids[0]]

    def _finish(self, pending: Trial, status: str, value: float | None, note: str | None,
                verb: str) -> Trial:
        """Complete or fail a pending trial, in storage first when there is one."""
        if self.storage is None:
            done = replace(pending, status=status, value=value, completed=time.time(),
                           note=note if note is not None else pending.note)
            self._store(done)
            return done
        stored = self.storage.finish_trial(self._study_id, pending.id, status, value, note,
                                           allowed=("pending", "stale"))
        self._sync()
        if stored is None:  # another process reported it since our last look
            self._pending_trial(pending.id, verb)  # raises, saying what it became
            raise StorageError(f"{verb}(): trial {pending.id} could not be updated.")
        return self._trials[pending.id]

    def _generator(self, trial_id: int, device: torch.device) -> torch.Generator:
        """Randomness for one round, a function of (seed, trial id) alone."""
        g = torch.Generator(device=device)
        g.manual_seed(self.seed * 1_000_003 + trial_id)
        return g

    def _next_sobol(self) -> dict | None:
        """The next unused initial-design point not seen yet, or None if exhausted."""
        while True:
            if self._sobol_used >= len(self._sobol):
                size = max(2 * len(self._sobol), self.n_initial, 8)
                self._sobol = self.space.sobol(size, seed=self.seed)
                if len(self._sobol) <= self._sobol_used:
                    return None
            config = self._sobol[self._sobol_used]
            self._sobol_used += 1
            if self.space.key(config) not in self._keys:
                return config
            if self._sobol_used > 64 * max(self.n_initial, 8):
                return None

    def _suggest_one(self) -> Trial:
        start = time.perf_counter()
        tid = self._next_id()
        complete = [t for t in self._trials.values() if t.status == "complete"]
        info = RoundInfo(trial_id=tid, strategy=self.acquisition,
                         num_observations=len(complete), device=str(self.device))
        note = retry_of = None
        stale = self._stale_to_retry()
        if stale is not None:
            params, source = stale.params, "retry"
            note, retry_of = f"retry of stale trial {stale.id}", stale.id
        else:
            params, source = self._propose(tid, complete, info)
        info.strategy = source
        trial = Trial(tid, dict(params), "pending", None, source, note, retry_of,
                      created=time.time())
        self._store(trial)
        info.suggest_seconds = time.perf_counter() - start
        self._diagnostics[tid] = info
        logger.debug("round %d: %s", tid, info)
        return trial

    def _stale_to_retry(self) -> Trial | None:
        """The oldest stale trial without a retry yet (a retry itself is not retried)."""
        for tid in sorted(self._trials):
            t = self._trials[tid]
            if t.status == "stale" and t.retry_of is None and tid not in self._retried:
                return t
        return None

    def _propose(self, tid: int, complete: list[Trial], info: RoundInfo) -> tuple[dict, str]:
        """A configuration and its source, by the acquisition or a fallback."""
        params, source = None, self.acquisition
        if self.acquisition == "sobol" or (
                self.acquisition in _GP_STRATEGIES and len(complete) < max(self.n_initial, 2)):
            params, source = self._next_sobol(), "sobol"
        elif self.acquisition in _GP_STRATEGIES:
            params = self._model_round(tid, complete, info)
            if params is None:
                source = f"fallback-{info.fallback or 'random'}"
        if params is None:
            params = self._random_unseen(tid)
            source = "random" if self.acquisition == "random" else source
        return params, source

    def _model_round(self, tid: int, complete: list[Trial], info: RoundInfo) -> dict | None:
        """The GP's proposal; on the CPU when the device runs out of memory; None on failure."""
        try:
            return self._gp_proposal(tid, complete, info, self.device)
        except _OUT_OF_MEMORY as err:
            if self.device.type == "cpu":
                return self._round_failed(tid, info, err)
            logger.warning("trial %d: out of memory on %s; running this round on the CPU",
                           tid, self.device)
            info.warnings.append(f"out of memory on {self.device} ({err}); this round ran on the CPU")
            info.fallback = "cpu"
            _release_cached_memory(self.device)
            try:
                return self._gp_proposal(tid, complete, info, torch.device("cpu"))
            except RuntimeError as err2:
                return self._round_failed(tid, info, err2)
        except RuntimeError as err:  # linalg failures and the like: degrade, don't crash
            return self._round_failed(tid, info, err)

    @staticmethod
    def _round_failed(tid: int, info: RoundInfo, err: BaseException) -> None:
        logger.warning("trial %d: model round failed; proposing a random configuration",
                       tid, exc_info=err)
        info.warnings.append(f"model round failed: {type(err).__name__}: {err}")
        info.fallback = "random"
        return None

    def _random_unseen(self, tid: int) -> dict:
        """A random configuration not suggested or observed yet."""
        for attempt in range(200):
            config = self.space.sample(1, seed=self.seed * 7919 + tid * 211 + attempt)[0]
            if self.space.key(config) not in self._keys:
                return config
        size = self.space.grid_size
        if size is None:
            # Infinite in principle, yet what is unseen may sit in a rarely drawn branch (a
            # Float active under one of 300 choices) or a Float range may hold few floats:
            # draw many at once before calling the space used up.
            draws = self.space.sample(_MANY_DRAWS, seed=self.seed * 7919 + tid * 211 + 200)
            for config in draws:
                if self.space.key(config) not in self._keys:
                    return config
            raise SpaceExhaustedError(
                f"no unseen configuration in {200 + _MANY_DRAWS} random draws: what is left of "
                "this space (e.g. a Float range holding few distinct floats) is used up.")
        if len(self._keys) < size:  # finite and not exhausted: list what is left
            unseen = [c for c in self.space.grid() if self.space.key(c) not in self._keys]
            g = torch.Generator().manual_seed(self.seed * 7919 + tid)
            return unseen[int(torch.randint(len(unseen), (1,), generator=g))]
        raise SpaceExhaustedError(
            f"all {size} configurations of this space have been suggested or observed; "
            "there is nothing new to propose.")

    def _training_data(self, complete: list[Trial], device: torch.device
                       ) -> tuple[Tensor, Tensor, OutputTransform, list[str], int]:
        """Encoded inputs `n x d` and targets `n x 1` (see `bopt.warp.transform_outputs`),
        the transform, its warnings and how many values it compressed as outliers."""
        X = torch.stack([self._encoded[t.id] for t in complete]).to(device)
        y = torch.tensor([t.value for t in complete], dtype=torch.float64, device=device)
        Y, transform, warnings, num_outliers = transform_outputs(
            y, maximize=self.direction == "maximize")
        return X, Y, transform, warnings, num_outliers

    def _reuse_hyperparameters(self, n: int) -> bool:
        """Whether `n` observations are few enough more than the last fit's to keep its
        hyperparameters (always, on the same data: e.g. the 2nd..nth point of suggest(n))."""
        if self._theta is None:
            return False
        grown = n - self._theta_n
        return 0 <= grown < max(1, int(self.refit_growth * self._theta_n))

    def _fit(self, X: Tensor, Y: Tensor, info: RoundInfo) -> BoptGP | None:
        start = time.perf_counter()
        model = None
        reuse = kept = self._reuse_hyperparameters(X.shape[0])
        grown = reuse and self._theta_n != X.shape[0]  # kept across new data, not one batch
        try:
            warm = None if self._theta is None else self._theta.to(X.device)
            try:
                model, theta, report = fit_gp(X, Y, self.space.layout, warm_start=warm,
                                              max_iter=0 if reuse else None)
                if grown and report.jitter:
                    raise FitError(f"the covariance needed jitter {report.jitter:g}")
            except FitError as err:
                if not grown:  # a fresh fit, or the same data: it would fail again
                    raise
                # The kept hyperparameters do not suit the grown data: re-estimate from the
                # prior (a warm start at a point that does not factorise cannot move).
                info.warnings.append(f"kept hyperparameters failed on the new data ({err}); "
                                     "re-estimated them")
                reuse = False
                model, theta, report = fit_gp(X, Y, self.space.layout)
            if not reuse:
                self._theta, self._theta_n = theta, X.shape[0]
            info.refit = info.refit or not reuse  # a rerun on the CPU after OOM keeps True
            info.warnings += report.warnings
            info.log_marginal_likelihood = report.log_marginal_likelihood
        except FitError as err:
            info.warnings.append(f"GP fit failed ({err})")
            if self._theta is not None and not kept:  # kept ones were tried: they failed
                try:
                    model, _, _ = fit_gp(X, Y, self.space.layout,
                                         warm_start=self._theta.to(X.device), max_iter=0)
                    info.fallback = "last-good-hyperparameters"
                except FitError as err2:
                    info.warnings.append(f"last good hyperparameters failed too ({err2})")
        info.fit_seconds = time.perf_counter() - start
        if model is not None:
            hypers = model.hypers
            numeric = [self.space.names[c] for c in self.space.layout.continuous]
            categorical = [self.space.names[c] for c in self.space.layout.categorical]
            info.lengthscales = dict(zip(numeric + categorical,
                                         torch.cat([hypers.lengthscale, hypers.cat_lengthscale])
                                         .tolist()))
            info.outputscales = tuple(hypers.scales.tolist())
            info.noise = float(model.noise)
        return model

    def _gp_proposal(self, tid: int, complete: list[Trial], info: RoundInfo,
                     device: torch.device) -> dict | None:
        info.device = str(device)
        X, Y, transform, warnings, info.num_outliers = self._training_data(complete, device)
        info.warp_lambda = transform.lam
        info.warnings += warnings
        info.num_duplicates = len(complete) - len({self.space.key(t.params) for t in complete})
        if info.num_duplicates:
            info.warnings.append(f"{info.num_duplicates} observation(s) repeat an observed "
                                 "configuration; the model treats them as noisy replicates")
        model = self._fit(X, Y, info)
        if model is None:
            info.fallback = "random"
            logger.warning("trial %d: no usable GP (%s); proposing a random configuration",
                           tid, "; ".join(info.warnings))
            return None
        start = time.perf_counter()
        pending = [t for t in self._trials.values() if t.status == "pending"]
        if pending:  # Kriging believer: pending points take their posterior mean.
            Xp = torch.stack([self._encode(t.params) for t in pending]).to(device)
            with torch.no_grad():
                mean, _ = model.mean_std(Xp.unsqueeze(-2))
            try:
                model = model.condition_on(Xp, mean)
            except FitError as err:
                info.warnings.append(f"pending points ignored ({err})")
        generator = self._generator(tid, device)
        score = self._score(model, Y, generator)
        seeds = X[Y.squeeze(-1).argsort(descending=True)[:5]]
        cands, values = multistart_maximize(
            score, self.space.layout, generator=generator, num_restarts=self.num_restarts,
            num_raw_samples=self.num_raw_samples, seeds=seeds, device=device)
        info.acquisition_seconds = time.perf_counter() - start
        info.num_starts = cands.shape[0]
        finite = torch.isfinite(cands).all(-1).all(-1) & torch.isfinite(values)  # b
        if not bool(finite.all()):
            bad = int((~finite).sum())
            info.warnings.append(f"the acquisition optimizer returned {bad} of {finite.numel()} "
                                 "candidates with non-finite entries or scores; they were dropped")
            cands, values = cands[finite], values[finite]
        for config, value in zip(self.space.decode(cands[:, 0, :].cpu()), values.tolist()):
            if self.space.key(config) not in self._keys:
                info.best_acquisition = value
                return config
        if cands.shape[0]:
            info.warnings.append("every optimized candidate was already seen")
        info.fallback = "random"
        return None

    def _score(self, model: BoptGP, Y: Tensor, generator: torch.Generator):
        """The acquisition as a function `... x q x d -> ...`."""
        if self.acquisition == "ei":
            best_f = Y.max()
            return lambda Z: log_expected_improvement(*model.mean_std(Z), best_f).sum(-1)
        if self.acquisition == "ucb":
            beta = self.beta if self.beta is not None else ucb_beta(Y.shape[0], self.space.layout.d)
            return lambda Z: upper_confidence_bound(*model.mean_std(Z), beta).sum(-1)
        path = draw_posterior_path(model, generator=generator)
        return lambda Z: path(Z).sum(-1)
