"""The optimisation loop: `Optimizer.suggest()` and `Optimizer.observe()`.

A thin orchestrator over the pieces of the data flow. Per suggested trial it picks the
strategy (a stale trial's retry, the Sobol design, a model round, or a random unseen
configuration), asks `bopt.proposal.propose` for the model round, and hands the finished
batch to the trial ledger (`bopt.ledger`), which keeps the study in memory or in SQLite.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import IO, Any, Callable

import numpy as np
import torch
from torch import Tensor

from bopt.acquisition.registry import STRATEGIES, is_model_based
from bopt.design import SobolCursor, default_n_initial, next_sobol, random_unseen
from bopt.errors import ArgumentError, SpaceExhaustedError, StorageError
from bopt.fidelity import budget_round_data
from bopt.ledger import (MAX_COMMIT_ATTEMPTS, STRICT_COMMIT_ATTEMPTS, Ledger, MemoryLedger,
                         SQLiteLedger, SeenKeys, as_storage, open_stored)
from bopt.proposal import (RoundData, RoundSettings, SurrogateCache, WarmStart,
                           posterior_in_objective_units, propose, reported_sems)
from bopt.runtime import check_threads, resolve_device, suggest_threads, torch_threads
from bopt.schedulers import (Scheduler, check_scheduler, prune_if_stopped, record_report,
                             scheduler_to_dict, summarize_rungs)
from bopt.space import Space
from bopt.storage import SQLiteStorage
from bopt.trial import Recommendation, RoundInfo, Trial
from bopt.validation import check_choice, check_int, check_number, check_sem, finite_value

logger = logging.getLogger("bopt")

_DIRECTIONS = ("minimize", "maximize")


def _public(trial: Trial) -> Trial:
    """A copy whose `params` the caller may edit without touching the record."""
    return replace(trial, params=dict(trial.params))


class Optimizer:
    """Bayesian optimisation over a search space, one `suggest`/`observe` at a time.

    Args:
        space: the search space.
        acquisition: "ei" (log expected improvement), "ucb", "ts" (Thompson sampling),
            "random" or "sobol" (`bopt.acquisition.STRATEGIES`).
        n_initial: Sobol points before the GP takes over (default: max(5, d + 1), or
            max(10, d + 1) with a categorical of two choices or more;
            `bopt.design.default_n_initial`). A stored study reopened without it
            keeps the size it was created with.
        seed: seeds every random choice; equal seeds and histories give equal suggestions.
        device: "auto" (CUDA when available), "cpu", "cuda" or a torch.device.
        direction: "minimize" or "maximize".
        num_restarts: starts of the multistart acquisition ascent.
        num_raw_samples: raw candidates scored to choose the starts.
        beta: UCB's weight on the standard deviation (default: a schedule growing with n).
        num_threads: torch threads during `suggest` on the CPU. "auto": one below 1000
            observations (small tensors lose much on a busy machine), torch's own above;
            None never changes it. Process-wide, restored when `suggest` returns.
        storage: a SQLite file (path or `bopt.storage.SQLiteStorage`) that keeps the study:
            every suggest, observe and fail is committed before it returns, and several
            processes may share the file. None keeps the study in memory.
        study: the study's name within `storage`. An existing study is resumed; it must
            have the same space and direction.
        pending_timeout: seconds after which a pending trial counts as stale (its worker
            presumably died): `suggest` then proposes its configuration once more, as a
            "retry" trial. None never marks trials stale.
        refit_growth: re-estimate the GP's hyperparameters only once the observations have
            grown by this fraction since; in between the GP is conditioned on all of them
            with the last estimate (one Cholesky factor). 0 (default) re-estimates every
            round; 0.02 every 40th round at 2,000 observations (README.md).
        scheduler: `bopt.ASHA(...)` or `bopt.Hyperband(...)` for training-budget search
            (`report` / `should_stop`); the GP then models configuration and budget from
            every trial's reports (`bopt.fidelity`); `recommend` and `predict` still use
            the completed (full-budget) trials. None: every trial runs to the end.
    """

    def __init__(self, space: Space, acquisition: str = "ei", *, n_initial: int | None = None,
                 seed: int = 0, device: str | torch.device = "auto",
                 direction: str = "minimize", num_restarts: int = 10,
                 num_raw_samples: int = 512, beta: float | None = None,
                 num_threads: int | str | None = "auto",
                 storage: str | os.PathLike | SQLiteStorage | None = None,
                 study: str = "default", pending_timeout: float | None = None,
                 refit_growth: float = 0.0, scheduler: Scheduler | dict | None = None):
        if not isinstance(space, Space):
            raise ArgumentError(f"space must be a bopt.Space; got {type(space).__name__}.")
        self.space = space
        self.acquisition = check_choice(acquisition, "acquisition", STRATEGIES)
        self.direction = check_choice(direction, "direction", _DIRECTIONS)
        self.n_initial = check_int(default_n_initial(space) if n_initial is None else n_initial,
                                   "n_initial", low=1)
        self.num_restarts = check_int(num_restarts, "num_restarts", low=1)
        self.num_raw_samples = check_int(num_raw_samples, "num_raw_samples", low=2)
        self.seed = check_int(seed, "seed", low=0)
        self.device = resolve_device(device)
        # plain floats and ints throughout: the settings are stored as JSON
        self.beta = None if beta is None else check_number(beta, "beta", low=0.0)
        self.num_threads = check_threads(num_threads)
        self.pending_timeout = None if pending_timeout is None else check_number(
            pending_timeout, "pending_timeout (seconds)", low=0.0, low_open=True)
        self.refit_growth = check_number(refit_growth, "refit_growth", low=0.0, high=1.0)
        if not isinstance(study, str) or not study:
            raise ArgumentError(f"study must be a non-empty string; got {study!r}.")
        self.study = study
        self.scheduler = check_scheduler(scheduler)
        self._lock = threading.RLock()
        self._cursor = SobolCursor()
        self._ledger: Ledger = MemoryLedger(space) if storage is None else open_stored(
            as_storage(storage), study, space, self._settings())
        if n_initial is None and isinstance(self._ledger, SQLiteLedger):  # workers agree on it
            self.n_initial = check_int(self._ledger.stored_settings.get(
                "n_initial", self.n_initial), "the stored study's n_initial", low=1)
        stored = self._ledger.stored_state if isinstance(self._ledger, SQLiteLedger) else None
        self._warm = WarmStart.from_state(stored, self.device)
        if isinstance(self._ledger, SQLiteLedger) and self.pending_timeout is None:
            warning = self._ledger.pending_warning()  # a dead worker's trials wait forever
            if warning:
                logger.warning(warning)
        self._surrogates = SurrogateCache()  # for predict and recommend

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
        store = as_storage(storage, create=False)
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
                "pending_timeout": self.pending_timeout, "refit_growth": self.refit_growth,
                "scheduler": scheduler_to_dict(self.scheduler)}

    # ----------------------------------------------------------------- public reading
    @property
    def storage(self) -> SQLiteStorage | None:
        """The study's database, or None for a study in memory."""
        return self._ledger.storage if isinstance(self._ledger, SQLiteLedger) else None

    @property
    def history(self) -> list[Trial]:
        """Every trial, in id order (copies: editing them changes nothing here).

        With storage, this includes what other processes wrote to the study.
        """
        with self._lock:
            self._ledger.sync()
            return [_public(t) for t in self._ledger.trials()]

    @property
    def diagnostics(self) -> list[RoundInfo]:
        """What each suggestion round did, in trial order (stored rounds included)."""
        with self._lock:
            self._ledger.sync()
            return self._ledger.rounds()

    @property
    def best(self) -> Trial | None:
        """The completed trial with the best value (None before any observation)."""
        done = [t for t in self.history if t.status == "complete"]
        if not done:
            return None
        pick = min if self.direction == "minimize" else max
        return pick(done, key=lambda t: t.value)

    def recommend(self) -> Recommendation | None:
        """The completed trial with the best posterior mean: what to deploy.

        `best` is the best *observed* value; on a noisy objective (a cross-validated score,
        a seeded training run) that is often the luckiest draw. `recommend` asks the GP,
        which pools every observation, which configuration is best in expectation. On a
        deterministic objective the two mostly agree.

        Returns:
            None before any observation. When no GP can be fitted, the best observed trial
            with `std` NaN (and a logged warning).
        """
        with self._lock:
            self._ledger.sync()
            done = self._ledger.with_status("complete")
            if not done:
                return None
            mean, std = self._posterior(done, self._ledger.encoded(done))
        pick = max if self.direction == "maximize" else min
        k = pick(range(len(done)), key=lambda i: float(mean[i]))
        t = done[k]
        return Recommendation(t.id, dict(t.params), float(mean[k]), float(std[k]), t.value)

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """The GP's posterior of the noise-free objective at `configs`, in its units.

        Args:
            configs: configurations of the space (validated).

        Returns:
            `n` posterior medians and `n` half-widths of the central 68% bands (one
            standard deviation for a normal), as float64 arrays.

        Raises:
            ParameterError: a configuration that does not fit the space.
            ArgumentError: nothing observed yet, or no GP could be fitted.
        """
        X = self.space.encode(configs)  # validates every config
        with self._lock:
            self._ledger.sync()
            done = self._ledger.with_status("complete")
            if not done:
                raise ArgumentError("predict(): no completed trial yet; observe values first.")
            mean, std = self._posterior(done, list(X), strict=True)
        return mean.cpu().numpy(), std.cpu().numpy()

    def _posterior(self, done: list[Trial], rows: list[Tensor], *, strict: bool = False
                   ) -> tuple[Tensor, Tensor]:
        """The posterior at the encoded `rows` from a GP fitted as a round would fit it
        (the optimizer's warm start is read, not changed)."""
        with torch_threads(self._threads()):
            surrogate = self._surrogates.get(
                done, self._ledger.encoded(done), self.space.layout, self.device,
                maximize=self.direction == "maximize", refit_growth=self.refit_growth,
                warm_start=self._warm if self.scheduler is None else WarmStart())  # no budget
        if surrogate.model is None:
            reason = "; ".join(surrogate.warnings)
            if strict:
                raise ArgumentError(f"predict(): no usable GP on these observations ({reason}).")
            logger.warning("recommend(): no usable GP (%s); recommending the best observed "
                           "trial", reason)
            values = torch.tensor([t.value for t in done], dtype=torch.float64)
            return values, torch.full_like(values, math.nan)
        return posterior_in_objective_units(surrogate, torch.stack(rows).to(self.device))

    @property
    def warm_start(self) -> WarmStart:
        """The last re-estimated GP hyperparameters, where the next round's fit starts."""
        return self._warm

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
        count = 1 if n is None else check_int(n, "suggest(n): n", low=1)
        with self._lock, torch_threads(self._threads()):
            for attempt in range(MAX_COMMIT_ATTEMPTS):
                if self.pending_timeout is not None:
                    self.mark_stale(self.pending_timeout)  # catches up with storage too
                else:
                    self._ledger.sync()
                trials = self._suggest_batch(count, strict=attempt < STRICT_COMMIT_ATTEMPTS)
                if trials is not None:
                    break
            else:
                raise StorageError(
                    f"suggest(): other processes kept adding trials to study {self.study!r}; "
                    f"gave up after {MAX_COMMIT_ATTEMPTS} attempts. Nothing was stored.")
        trials = [_public(t) for t in trials]
        return trials[0] if n is None else trials

    def _suggest_batch(self, count: int, *, strict: bool) -> list[Trial] | None:
        """`count` new trials, committed all or nothing; None when another process got in
        first (then nothing changed here either: sync and try again)."""
        batch: list[Trial] = []
        rounds: list[RoundInfo] = []
        rows: list[Tensor] = []  # the batch's encodings: later members believe them pending
        keys: set[tuple] = set()
        cursor, warm = self._cursor, self._warm
        try:
            for _ in range(count):
                trial, info, cursor, warm = self._suggest_one(batch, rows, keys, cursor, warm)
                batch.append(trial)
                rounds.append(info)
                rows.append(self.space.encode([trial.params])[0])
                keys.add(self.space.key(trial.params, validated=True))
        except SpaceExhaustedError as err:
            if batch:
                raise SpaceExhaustedError(
                    f"suggest({count}): only {len(batch)} unseen configuration(s) remain; "
                    f"ask for at most {len(batch)}.") from err
            raise
        # Only a process that re-estimated should overwrite the study's stored model state.
        state = warm.to_state() if any(r.refit for r in rounds) else None
        committed = self._ledger.commit(batch, rounds, strict=strict, state=state)
        if committed is not None:
            self._cursor, self._warm = cursor, warm
        return committed

    def _suggest_one(self, batch: list[Trial], rows: list[Tensor], keys: set[tuple],
                     cursor: SobolCursor, warm: WarmStart
                     ) -> tuple[Trial, RoundInfo, SobolCursor, WarmStart]:
        """The next member of a batch, its round, and the design and model state after it."""
        start = time.perf_counter()
        tid = self._ledger.next_id() + len(batch)
        seen = self._ledger.seen(keys)
        stale = self._ledger.stale_to_retry(taken={t.retry_of for t in batch})
        note = retry_of = None
        if stale is not None:
            params, source = stale.params, "retry"
            note, retry_of = f"retry of stale trial {stale.id}", stale.id
            info = self._plain_round(tid)
        else:
            params, source, info, cursor, warm = self._propose(tid, batch, rows, seen,
                                                               cursor, warm)
        trial = Trial(tid, dict(params), "pending", None, source, note, retry_of,
                      created=time.time())
        info = replace(info, strategy=source, suggest_seconds=time.perf_counter() - start)
        logger.debug("round %d: %s", tid, info)
        return trial, info, cursor, warm

    def _plain_round(self, tid: int) -> RoundInfo:
        """The diagnostics of a round that fits no model."""
        return RoundInfo(trial_id=tid, strategy=self.acquisition, device=str(self.device),
                         num_observations=len(self._ledger.with_status("complete")))

    def _propose(self, tid: int, batch: list[Trial], rows: list[Tensor], seen: SeenKeys,
                 cursor: SobolCursor, warm: WarmStart
                 ) -> tuple[dict, str, RoundInfo, SobolCursor, WarmStart]:
        """A configuration and its source, by the strategy or a fallback."""
        params, source, info = None, self.acquisition, self._plain_round(tid)
        model_based = is_model_based(self.acquisition)
        data = self._round_data(tid, batch, rows) if model_based else None
        if self.acquisition == "sobol" or (model_based and data is None):
            source = "sobol"
            params, cursor = next_sobol(cursor, self.space, n_initial=self.n_initial,
                                        seed=self.seed, seen=seen)
        elif data is not None:
            proposal = propose(self.space, data, self._round_settings(), warm_start=warm,
                               seed=self.seed * 1_000_003 + tid, round_id=tid, seen=seen,
                               device=self.device)
            params, info, warm = proposal.params, proposal.info, proposal.warm_start
            if params is None:
                source = f"fallback-{info.fallback or 'random'}"
        if params is None:
            params = random_unseen(self.space, seed=self.seed, round_id=tid, seen=seen)
            source = "random" if self.acquisition == "random" else source
        return params, source, info, cursor, warm

    def _round_data(self, tid: int, batch: list[Trial], rows: list[Tensor]
                    ) -> RoundData | None:
        """The encoded history, the pending points (this batch's included) and the
        duplicate count, as CPU tensors; None while there are too few observations for a
        model. With a scheduler, over configuration and budget (`bopt.fidelity`)."""
        if self.scheduler is not None:
            return budget_round_data(self.scheduler, self._ledger.trials(), self._ledger.reports,
                                     self._ledger.encoded, rows, max(self.n_initial, 2),
                                     bracket=self.scheduler.bracket_of(tid))
        done = self._ledger.with_status("complete")
        if len(done) < max(self.n_initial, 2):
            return None
        pending = self._ledger.encoded(self._ledger.with_status("pending")) + rows
        return RoundData(
            train_X=torch.stack(self._ledger.encoded(done)),
            values=torch.tensor([t.value for t in done], dtype=torch.float64),
            pending_X=torch.stack(pending) if pending else torch.empty(
                0, self.space.layout.d, dtype=torch.float64),
            num_duplicates=len(done) - self._ledger.num_distinct(done),
            sems=reported_sems([t.sem for t in done], torch.device("cpu")))

    def _round_settings(self) -> RoundSettings:
        return RoundSettings(self.acquisition, maximize=self.direction == "maximize",
                             refit_growth=self.refit_growth, beta=self.beta,
                             num_restarts=self.num_restarts,
                             num_raw_samples=self.num_raw_samples)

    def _threads(self) -> int | None:
        return suggest_threads(self.device, self.num_threads,
                               len(self._ledger.with_status("complete")))

    def observe(self, trial: Trial | int | Mapping[str, Any], value: Any, *,
                sem: float | None = None) -> Trial:
        """Record the objective value of a suggested trial, or of any configuration.

        Args:
            trial: a pending `Trial`, its id, or a configuration dict (outside data).
            value: a finite real number.
            sem: the value's standard error, when it is known (e.g. the spread of the
                cross-validation folds divided by sqrt(folds)): the GP adds its variance to
                that observation's noise, on top of the noise it fits.

        Returns:
            The completed trial.

        Raises:
            TrialError: unknown trial id, or a trial that is no longer pending.
            ParameterError: a configuration that does not fit the space.
            ObservationError: a value that is not a finite real number.
        """
        with self._lock:
            self._ledger.sync()
            if isinstance(trial, Mapping):
                params = self.space.validate(trial)
                where = f"observe({params!r})"
                value, sem = finite_value(value, where), check_sem(sem, where)
                return _public(self._ledger.add_external(params, value, sem))
            pending = self._ledger.pending_trial(trial, "observe")
            where = f"observe(trial {pending.id})"
            value, sem = finite_value(value, where), check_sem(sem, where)
            return _public(self._ledger.finish(pending, "complete", value, None, "observe", sem))

    def attach(self, params: Mapping[str, Any]) -> Trial:
        """Register a configuration evaluated elsewhere (an Optuna or Ray Tune trial) as a
        pending trial, until it is observed or failed by id. ParameterError if it does not
        fit the space."""
        params = self.space.validate(params)
        with self._lock:
            for _ in range(MAX_COMMIT_ATTEMPTS):
                self._ledger.sync()
                tid = self._ledger.next_id()
                trial = Trial(tid, dict(params), "pending", None, "external", created=time.time())
                done = self._ledger.commit([trial], [self._plain_round(tid)], strict=False,
                                           state=None)
                if done is not None:
                    return _public(done[0])
        raise StorageError(f"attach(): other processes kept adding this configuration to "
                           f"study {self.study!r}; nothing was stored.")

    def fail(self, trial: Trial | int, reason: str | None = None) -> Trial:
        """Mark a pending (or stale) trial as failed; its configuration is not proposed again.

        Args:
            trial: the trial or its id.
            reason: a note kept with the trial (e.g. the exception the objective raised).
        """
        if reason is not None and not isinstance(reason, str):
            raise ArgumentError(f"fail(): reason must be a string or None; got {reason!r}.")
        with self._lock:
            self._ledger.sync()
            pending = self._ledger.pending_trial(trial, "fail")
            return _public(self._ledger.finish(pending, "failed", None, reason, "fail"))

    def report(self, trial: Trial | int, value: Any, *, budget: Any) -> None:
        """Record an intermediate value of a running trial at a training budget.

        The report is committed (with storage) before this returns. With a `scheduler`, the
        first report at or past each of the trial's rungs is decided there and then, from
        every worker's values at that rung; `should_stop` says whether it was stopped.

        Args:
            trial: a pending trial (or its id).
            value: a finite number, e.g. the validation loss after `budget` epochs.
            budget: the training budget spent so far; it must grow from report to report.

        Raises:
            TrialError: not a pending trial. ObservationError: a value that is not finite.
            ArgumentError: a budget that is not a positive number, not larger than the
                trial's last one, or beyond the schedule's `max_budget`.
        """
        with self._lock:
            self._ledger.sync()
            record_report(self._ledger, self.scheduler, trial, value, budget,
                          maximize=self.direction == "maximize")

    def should_stop(self, trial: Trial | int) -> bool:
        """Whether the schedule stopped the trial at a rung it reached.

        A stopped trial is recorded as "pruned" (its last report kept as its value) and is
        not proposed again; stop training it. Without a scheduler this is always False.
        """
        with self._lock:
            self._ledger.sync()
            return prune_if_stopped(self._ledger, trial)

    def rung_summary(self) -> list[dict]:
        """Per bracket and rung of the schedule: how many trials entered it, went on, and
        were stopped there (every worker's, with storage), and how well the rung's values
        rank the completed trials as their full-budget values do (`agreement`, see
        `bopt.schedulers.summarize_rungs`); [] without a scheduler."""
        if self.scheduler is None:
            return []
        with self._lock:
            self._ledger.sync()
            trials = self._ledger.trials()
            decided = {t.id: self._ledger.decisions(t.id) for t in trials}
        finals = {t.id: t.value for t in trials if t.status == "complete"}
        return summarize_rungs(self.scheduler, decided, finals)

    def curve(self, trial: Trial | int) -> list[tuple[float, float]]:
        """The trial's `(budget, value)` reports, by budget (every worker's, with storage)."""
        tid = trial.id if isinstance(trial, Trial) else trial
        with self._lock:
            self._ledger.sync()
            return self._ledger.reports(tid)

    def interrupt(self, trial: Trial | int, reason: str = "interrupted") -> Trial:
        """Mark a pending trial stale now: its evaluation was interrupted, which says
        nothing against its configuration, so the next `suggest` proposes it again (a
        "retry" trial); a late `observe` of it is still accepted."""
        with self._lock:
            self._ledger.sync()
            pending = self._ledger.pending_trial(trial, "interrupt")
            return _public(self._ledger.finish(pending, "stale", None, reason, "interrupt"))

    def mark_stale(self, older_than: float) -> list[Trial]:
        """Mark pending trials suggested more than `older_than` seconds ago as stale.

        A stale trial is no longer a pending point; the next `suggest` proposes it once
        more (a "retry" trial); a late `observe` of it is still accepted. With storage this
        covers every process's trials: how a dead worker's trials come back.

        Returns:
            The trials marked stale by this call.
        """
        older_than = check_number(older_than, "mark_stale(): older_than (seconds)", low=0.0)
        with self._lock:
            self._ledger.sync()
            before = {t.id for t in self._ledger.with_status("stale")}
            self._ledger.mark_stale(time.time() - older_than)
            return [_public(t) for t in self._ledger.trials()
                    if t.status == "stale" and t.id not in before]

    # ----------------------------------------------------------------- export
    def export(self) -> list[dict]:
        """The history as flat dicts, one key per field and parameter (`bopt.export`)."""
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
        with self._lock:  # one read of the study for the trials and their curves
            self._ledger.sync()
            trials = [_public(t) for t in self._ledger.trials()]
            curves = {t.id: self._ledger.reports(t.id) for t in trials}
        write_json(path, study=self.study, direction=self.direction, space=self.space.to_dict(),
                   trials=trials, curves=curves)

    def to_dataframe(self):
        """`export()` as a pandas DataFrame indexed by trial id (needs pandas)."""
        from bopt.export import record_columns, to_dataframe
        return to_dataframe(self.export(), record_columns(self.space.names))

    def minimize(self, func: Callable[..., Any], n_trials: int, *, progress: bool = True,
                 timeout: float | None = None, callbacks: Sequence[Callable] = (),
                 n_jobs: int = 1) -> Trial | None:
        """Run the loop: suggest, evaluate `func(params)`, observe, `n_trials` times.

        `func` receives the configuration as one dict. With a `scheduler` it is called as
        `func(params, report)`: `report(value, budget)` records an intermediate value and
        returns True when the schedule stops the trial; return then. NaN, inf or a
        non-number fails the trial and the loop goes on; an exception fails it and
        propagates, except Ctrl-C, which marks it stale (proposed again). Details and
        either `direction`: `bopt.minimize`.

        Args:
            func: the objective.
            n_trials: how many trials to run at most.
            progress: a progress bar on a terminal, a line every tenth of the trials
                elsewhere (CI, a log file).
            timeout: start no trial after this many seconds.
            callbacks: each called as `callback(opt, trial)` after every finished trial.
            n_jobs: threads evaluating trials at once on this optimizer (with storage,
                processes on other machines can share the study too).

        Returns:
            The best completed trial (None if no trial completed).
        """
        from bopt.minimize import run_minimize
        return run_minimize(self, func, n_trials, progress=progress, timeout=timeout,
                            callbacks=callbacks, n_jobs=n_jobs)
