"""The optimisation loop: `Optimizer.suggest()` and `Optimizer.observe()`.

This is the only module that sees the whole loop: the space encodes, the model fits, the
acquisition scores and the multistart optimizer proposes; the engine keeps the trials,
standardises values, handles pending points with a believer strategy, falls back
gracefully on numerical trouble and records what each round did.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from bopt.acquisition import (draw_posterior_path, log_expected_improvement,
                              multistart_maximize, ucb_beta, upper_confidence_bound)
from bopt.errors import ArgumentError, ObservationError, SpaceExhaustedError, TrialError
from bopt.model import BoptGP, FitError, fit_gp
from bopt.space import Space
from bopt.warp import warp_standardized

logger = logging.getLogger("bopt")

STRATEGIES = ("ei", "ucb", "ts", "random", "sobol")
_GP_STRATEGIES = ("ei", "ucb", "ts")
# Below this many observations a CPU suggest uses one torch thread: its tensors are too small
# for intra-op parallelism to pay, and on a busy machine (the objective running beside it)
# OpenMP threads waiting on each other made small ops up to 70x slower in our measurements.
_SINGLE_THREAD_BELOW = 1000


_THREADS_LOCK = threading.Lock()  # torch's thread count is process-wide


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
        id: unique within the optimizer, increasing in creation order.
        params: the configuration (inactive conditional parameters omitted).
        status: "pending", "complete" or "failed".
        value: the observed objective value once complete.
        source: how it was proposed: "sobol", "random", "ei", "ucb", "ts", "external"
            (observed without a suggestion) or "fallback-..." after numerical trouble.
    """

    id: int
    params: dict
    status: str = "pending"
    value: float | None = None
    source: str = "sobol"


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
    fallback: str | None = None
    warnings: list[str] = field(default_factory=list)


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
    """

    def __init__(self, space: Space, acquisition: str = "ei", *, n_initial: int | None = None,
                 seed: int = 0, device: str | torch.device = "auto",
                 direction: str = "minimize", num_restarts: int = 10,
                 num_raw_samples: int = 512, beta: float | None = None,
                 num_threads: int | str | None = "auto"):
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
        self.space = space
        self.acquisition = acquisition
        self.n_initial = n_initial
        self.seed = seed
        self.device = _resolve_device(device)
        self.direction = direction
        self.num_restarts = num_restarts
        self.num_raw_samples = num_raw_samples
        self.beta = beta
        self.num_threads = num_threads
        self._trials: dict[int, Trial] = {}
        self._encoded: dict[int, Tensor] = {}  # trial id -> `d` encoded row (CPU)
        self._keys: set[tuple] = set()  # configurations suggested or observed
        self._sobol: list[dict] = []
        self._sobol_used = 0
        self._theta: Tensor | None = None  # last good log hyperparameters
        self._theta_n = -1  # observations they were fitted on
        self._diagnostics: list[RoundInfo] = []
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- public reading
    @property
    def history(self) -> list[Trial]:
        """Every trial, in creation order (copies: editing them changes nothing here)."""
        with self._lock:
            return [self._public(t) for t in self._trials.values()]

    @property
    def diagnostics(self) -> list[RoundInfo]:
        """What each suggestion round did, in order."""
        with self._lock:
            return list(self._diagnostics)

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
            saved = (self._sobol, self._sobol_used, self._theta, self._theta_n,
                     len(self._diagnostics))
            trials = []
            try:
                for _ in range(1 if n is None else n):
                    trials.append(self._suggest_one())
            except BaseException as err:  # all or nothing: undo the partial batch
                for trial in trials:
                    del self._trials[trial.id]
                    self._keys.discard(self.space.key(trial.params))
                (self._sobol, self._sobol_used, self._theta, self._theta_n, num_rounds) = saved
                del self._diagnostics[num_rounds:]
                if isinstance(err, SpaceExhaustedError) and trials:
                    raise SpaceExhaustedError(
                        f"suggest({n}): only {len(trials)} unseen configuration(s) remain; "
                        f"ask for at most {len(trials)}.") from err
                raise
        trials = [self._public(t) for t in trials]
        return trials[0] if n is None else trials

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
            if isinstance(trial, Mapping):
                params = self.space.validate(trial)
                value = _check_value(value, f"observe({params!r})")
                done = Trial(self._next_id(), params, "complete", value, "external")
                self._store(done)
                return self._public(done)
            pending = self._pending_trial(trial, "observe")
            value = _check_value(value, f"observe(trial {pending.id})")
            done = replace(pending, status="complete", value=value)
            self._trials[done.id] = done
            self._encoded[done.id] = self._encode(done.params)
            return self._public(done)

    def fail(self, trial: Trial | int) -> Trial:
        """Mark a pending trial as failed; its configuration is not proposed again."""
        with self._lock:
            pending = self._pending_trial(trial, "fail")
            failed = replace(pending, status="failed")
            self._trials[failed.id] = failed
            return self._public(failed)

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
            except BaseException:
                self.fail(trial)
                raise
            try:
                self.observe(trial, value)
            except ObservationError as err:
                self.fail(trial)
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
        if isinstance(tid, bool) or not isinstance(tid, int):
            raise TrialError(f"{verb}(): expected a Trial, a trial id or a config dict; "
                             f"got {trial!r}.")
        if tid not in self._trials:
            raise TrialError(f"{verb}(): no trial with id {tid}; ids run 0..{len(self._trials) - 1}.")
        known = self._trials[tid]
        if known.status != "pending":
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
        self._trials[trial.id] = trial
        self._keys.add(self.space.key(trial.params))
        if trial.status == "complete":
            self._encoded[trial.id] = self._encode(trial.params)

    def _generator(self, trial_id: int) -> torch.Generator:
        """Randomness for one round, a function of (seed, trial id) alone."""
        g = torch.Generator(device=self.device)
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
        params, source = None, self.acquisition
        if self.acquisition == "sobol" or (
                self.acquisition in _GP_STRATEGIES and len(complete) < max(self.n_initial, 2)):
            params, source = self._next_sobol(), "sobol"
        elif self.acquisition in _GP_STRATEGIES:
            try:
                params = self._gp_proposal(tid, complete, info)
            except RuntimeError as err:  # linalg failures, out of memory: degrade, don't crash
                logger.warning("trial %d: model round failed; proposing a random configuration",
                               tid, exc_info=True)
                info.warnings.append(f"model round failed: {type(err).__name__}: {err}")
                info.fallback = "random"
                params = None
            if params is None:
                source = f"fallback-{info.fallback or 'random'}"
        if params is None:
            params = self._random_unseen(tid)
            source = "random" if self.acquisition == "random" else source
        info.strategy = source
        trial = Trial(tid, dict(params), "pending", None, source)
        self._store(trial)
        info.suggest_seconds = time.perf_counter() - start
        self._diagnostics.append(info)
        logger.debug("round %d: %s", tid, info)
        return trial

    def _random_unseen(self, tid: int) -> dict:
        """A random configuration not suggested or observed yet."""
        for attempt in range(200):
            config = self.space.sample(1, seed=self.seed * 7919 + tid * 211 + attempt)[0]
            if self.space.key(config) not in self._keys:
                return config
        size = self.space.grid_size
        if size is None:  # a Float makes repeats measure-zero; 200 misses mean broken sampling
            raise RuntimeError("200 random configurations were all seen before")
        if len(self._keys) < size:  # finite and not exhausted: list what is left
            unseen = [c for c in self.space.grid() if self.space.key(c) not in self._keys]
            g = torch.Generator().manual_seed(self.seed * 7919 + tid)
            return unseen[int(torch.randint(len(unseen), (1,), generator=g))]
        raise SpaceExhaustedError(
            f"all {size} configurations of this space have been suggested or observed; "
            "there is nothing new to propose.")

    def _training_data(self, complete: list[Trial]) -> tuple[Tensor, Tensor, float, list[str]]:
        """Encoded inputs `n x d`, maximisation-signed targets `n x 1` (standardised, then
        warped by `bopt.warp`), the warp's lambda, and warnings."""
        warnings = []
        X = torch.stack([self._encoded[t.id] for t in complete]).to(self.device)
        y = torch.tensor([t.value for t in complete], dtype=torch.float64, device=self.device)
        if self.direction == "minimize":
            y = -y
        # Scale by the largest magnitude first, so values near 1e300 or 1e-300 neither
        # overflow nor underflow; "flat" is then a purely relative judgement.
        y = y / y.abs().max().clamp_min(torch.finfo(y.dtype).tiny)
        std = y.std() if y.numel() > 1 else torch.zeros((), dtype=y.dtype, device=y.device)
        if not bool(std > 1e-12):
            warnings.append("all observed values are equal; the model sees a flat objective")
            std = torch.ones((), dtype=y.dtype, device=y.device)
        Y = ((y - y.mean()) / std).unsqueeze(-1)
        Y, lam = warp_standardized(Y)
        return X, Y, lam, warnings

    def _fit(self, X: Tensor, Y: Tensor, info: RoundInfo) -> BoptGP | None:
        start = time.perf_counter()
        model = None
        # Nothing new since the last fit (e.g. the 2nd..nth point of suggest(n)): reuse it.
        same_data = self._theta is not None and self._theta_n == X.shape[0]
        try:
            model, theta, report = fit_gp(X, Y, self.space.layout, warm_start=self._theta,
                                          max_iter=0 if same_data else None)
            self._theta, self._theta_n = theta, X.shape[0]
            info.warnings += report.warnings
            info.log_marginal_likelihood = report.log_marginal_likelihood
        except FitError as err:
            info.warnings.append(f"GP fit failed ({err})")
            if self._theta is not None and not same_data:  # same data: it would fail again
                try:
                    model, _, _ = fit_gp(X, Y, self.space.layout, warm_start=self._theta,
                                         max_iter=0)
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

    def _gp_proposal(self, tid: int, complete: list[Trial], info: RoundInfo) -> dict | None:
        X, Y, info.warp_lambda, warnings = self._training_data(complete)
        info.warnings += warnings
        model = self._fit(X, Y, info)
        if model is None:
            info.fallback = "random"
            logger.warning("trial %d: no usable GP (%s); proposing a random configuration",
                           tid, "; ".join(info.warnings))
            return None
        start = time.perf_counter()
        pending = [t for t in self._trials.values() if t.status == "pending"]
        if pending:  # Kriging believer: pending points take their posterior mean.
            Xp = torch.stack([self._encode(t.params) for t in pending]).to(self.device)
            with torch.no_grad():
                mean, _ = model.mean_std(Xp.unsqueeze(-2))
            try:
                model = model.condition_on(Xp, mean)
            except FitError as err:
                info.warnings.append(f"pending points ignored ({err})")
        generator = self._generator(tid)
        score = self._score(model, Y, generator)
        seeds = X[Y.squeeze(-1).argsort(descending=True)[:5]]
        cands, values = multistart_maximize(
            score, self.space.layout, generator=generator, num_restarts=self.num_restarts,
            num_raw_samples=self.num_raw_samples, seeds=seeds, device=self.device)
        info.acquisition_seconds = time.perf_counter() - start
        info.num_starts = cands.shape[0]
        for config, value in zip(self.space.decode(cands[:, 0, :].cpu()), values.tolist()):
            if self.space.key(config) not in self._keys:
                info.best_acquisition = value
                return config
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
