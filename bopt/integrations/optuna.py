"""`BoptSampler`: bopt's Gaussian process as an Optuna sampler.

    import optuna
    from bopt.integrations.optuna import BoptSampler

    study = optuna.create_study(sampler=BoptSampler(seed=0))
    study.optimize(objective, n_trials=60)

Each `sample_relative` rebuilds a fresh in-memory `bopt.Optimizer` from the study's trials
(as Optuna's storage holds them) and asks it for one configuration, so the sampler keeps no
state between trials: any number of processes may share a study through Optuna's RDB
storage, each with its own sampler. The user guide is docs/optuna.md.

The map between the two spaces, per parameter of Optuna's joint (intersection) space:

    FloatDistribution(low, high, log)       --> bopt Float(low, high, log)
    IntDistribution(low, high, log, step=1) --> bopt Int(low, high, log)
    Float / Int with step s                 --> bopt Int(0, k) over the grid index,
                                                value = low + index * s
    CategoricalDistribution(choices)        --> bopt Categorical(0, ..., len(choices) - 1),
                                                value = choices[index] (any hashable)
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

try:
    import optuna
except ImportError as err:  # pragma: no cover - exercised only without Optuna
    raise ImportError(
        f"bopt.integrations.optuna needs Optuna, which is not installed ({err}); install it "
        "with: pip install 'bopt[optuna]'") from err

import numpy as np
from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                  FloatDistribution, IntDistribution)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from bopt.engine import Optimizer
from bopt.errors import ArgumentError, SearchSpaceError, SpaceExhaustedError
from bopt.space import Categorical, Float, Int, Space
from bopt.trial import Trial

__all__ = ["BoptSampler"]

# A trial's proposal, written to its system attributes as soon as it is chosen, so that
# other workers see it as a pending point before the objective has asked for every
# parameter. JSON of {name: Optuna's internal representation}, split into chunks
# "bopt:params:0", "bopt:params:1", ... (RDB schemas of older Optuna versions cap a value
# near 2048 characters).
_PARAMS_KEY = "bopt:params"
_CHUNK = 2000
# What the round did: {"source", "observed", "pending", "running", "failed", "unsampled"}.
ROUND_KEY = "bopt:round"
# At most this many earlier trials that are still choosing their configuration get a
# stand-in pending point (see `BoptSampler`, "Several workers").
_MAX_UNSAMPLED = 8

_logger = optuna.logging.get_logger("optuna.bopt")

BoptParam = Union[Float, Int, Categorical]


# --------------------------------------------------------------------------- one parameter


@dataclass(frozen=True)
class _Dimension:
    """One Optuna distribution as one bopt parameter, with the value maps both ways.

    Attributes:
        name: the parameter's name, the same in both spaces.
        distribution: Optuna's distribution.
        param: the bopt parameter modelling it.
        step: the grid step when `param` is an index over Optuna's stepped grid, else None.
    """

    name: str
    distribution: BaseDistribution
    param: BoptParam
    step: float | int | None = None

    def internal(self, external: Any) -> float:
        """Optuna's internal representation of a value; categorical choices are matched by
        type as well as value, so `True`, `1` and `1.0` stay apart."""
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            for i, choice in enumerate(dist.choices):
                if choice is external or (type(choice) is type(external) and choice == external):
                    return float(i)
        return float(dist.to_internal_repr(external))

    def to_bopt(self, internal: float) -> Any:
        """The bopt value of Optuna's internal representation `internal`."""
        dist = self.distribution
        if isinstance(self.param, Categorical):
            return int(internal)
        if self.step is not None:
            index = round((internal - dist.low) / self.step)
            return min(max(index, 0), self.param.high)
        if isinstance(self.param, Int):
            return min(max(int(round(internal)), dist.low), dist.high)
        return min(max(float(internal), dist.low), dist.high)

    def to_optuna(self, value: Any) -> Any:
        """Optuna's external value of the bopt value `value`."""
        dist = self.distribution
        if isinstance(self.param, Categorical):
            return dist.choices[value]
        if self.step is not None:
            if isinstance(dist, IntDistribution):
                return int(dist.low + value * self.step)
            return float(min(dist.low + value * self.step, dist.high))
        return int(value) if isinstance(dist, IntDistribution) else float(value)


def _dimension(name: str, dist: BaseDistribution) -> _Dimension | None:
    """The bopt view of one distribution, or None when bopt cannot model it (an unknown
    distribution type, or an Int range beyond what bopt encodes exactly)."""
    try:
        if isinstance(dist, CategoricalDistribution):
            indices = tuple(range(len(dist.choices)))
            return _Dimension(name, dist, Categorical(name, indices))
        if isinstance(dist, FloatDistribution) and dist.step is None:
            return _Dimension(name, dist, Float(name, dist.low, dist.high, log=dist.log))
        if isinstance(dist, IntDistribution) and dist.step == 1:
            return _Dimension(name, dist, Int(name, dist.low, dist.high, log=dist.log))
        if isinstance(dist, (FloatDistribution, IntDistribution)):
            size = int(round((dist.high - dist.low) / dist.step))  # Optuna aligns high
            return _Dimension(name, dist, Int(name, 0, size), step=dist.step)
    except SearchSpaceError as err:
        _logger.debug("BoptSampler leaves %r to the independent sampler: %s", name, err)
    return None


def _dimensions(search_space: dict[str, BaseDistribution]) -> list[_Dimension]:
    """The modelled parameters of a relative search space, by name."""
    dims = (_dimension(name, dist) for name, dist in sorted(search_space.items()))
    return [d for d in dims if d is not None]


# --------------------------------------------------------------------------- the study


@dataclass
class _History:
    """What the study holds, in bopt's terms, for one proposal.

    Attributes:
        observed: `(config, value)` of complete (and, when used, pruned) trials.
        pending: configurations the GP should believe pending: other workers' running
            trials and failed trials.
        num_running: how many of `pending` are running trials.
        num_failed: how many of `pending` are failed trials.
        num_unsampled: earlier running trials whose configuration is not known yet.
    """

    observed: list[tuple[dict, float]] = field(default_factory=list)
    pending: list[dict] = field(default_factory=list)
    num_running: int = 0
    num_failed: int = 0
    num_unsampled: int = 0


def _published(trial: FrozenTrial) -> dict[str, float] | None:
    """The proposal a sampler wrote to the trial's system attributes, or None."""
    chunks = []
    while (chunk := trial.system_attrs.get(f"{_PARAMS_KEY}:{len(chunks)}")) is not None:
        chunks.append(chunk)
    return json.loads("".join(chunks)) if chunks else None


def _config(trial: FrozenTrial, dims: Sequence[_Dimension]) -> dict | None:
    """The trial's configuration in bopt's terms, or None when it lacks a parameter (or
    drew it from another distribution). A running trial's published proposal fills in the
    parameters its objective has not asked for yet."""
    proposal = None if trial.state.is_finished() else _published(trial)
    config = {}
    for d in dims:
        if trial.distributions.get(d.name) == d.distribution:
            config[d.name] = d.to_bopt(d.internal(trial.params[d.name]))
        elif d.name not in trial.distributions and proposal and d.name in proposal:
            config[d.name] = d.to_bopt(proposal[d.name])
        else:
            return None
    return config


def _observed_value(trial: FrozenTrial, *, use_pruned: bool) -> float | None:
    """A complete trial's value; a pruned trial's last intermediate value when
    `use_pruned`; None otherwise (and for NaN)."""
    value = None
    if trial.state == TrialState.COMPLETE:
        value = trial.value
    elif use_pruned and trial.state == TrialState.PRUNED and trial.last_step is not None:
        value = trial.intermediate_values[trial.last_step]
    return None if value is None or math.isnan(value) else float(value)


def _finite(observed: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
    """Infinite values replaced by the largest (+inf) or smallest (-inf) finite value
    observed; all of them dropped when no value is finite."""
    finite = [v for _, v in observed if math.isfinite(v)]
    if not finite:
        return []
    low, high = min(finite), max(finite)
    return [(c, v if math.isfinite(v) else (high if v > 0 else low)) for c, v in observed]


def _read_history(trials: Sequence[FrozenTrial], current: FrozenTrial,
                  dims: Sequence[_Dimension], *, use_pruned: bool) -> _History:
    """Every trial but `current`, sorted into observations, pending points and counts."""
    history = _History()
    for t in trials:
        if t.number == current.number or t.state == TrialState.WAITING:
            continue
        value = _observed_value(t, use_pruned=use_pruned)
        if value is None and t.state not in (TrialState.RUNNING, TrialState.FAIL):
            continue
        config = _config(t, dims)
        if config is None:
            unsampled = t.state == TrialState.RUNNING and t.number < current.number
            history.num_unsampled += int(unsampled and _published(t) is None)
        elif value is not None:
            history.observed.append((config, value))
        else:
            history.pending.append(config)
            history.num_running += int(t.state == TrialState.RUNNING)
            history.num_failed += int(t.state == TrialState.FAIL)
    history.observed = _finite(history.observed)
    history.num_unsampled = min(history.num_unsampled, _MAX_UNSAMPLED)
    return history


def _publish(study: Study, trial: FrozenTrial, dims: Sequence[_Dimension], chosen: Trial,
             history: _History) -> None:
    """Write the proposal and the round's counts to the trial's system attributes."""
    internal = {d.name: d.internal(d.to_optuna(chosen.params[d.name])) for d in dims}
    text = json.dumps(internal)
    # Optuna's own samplers write system attributes through the study's storage, too.
    storage, trial_id = study._storage, trial._trial_id
    for i in range(0, len(text), _CHUNK):
        storage.set_trial_system_attr(trial_id, f"{_PARAMS_KEY}:{i // _CHUNK}",
                                      text[i:i + _CHUNK])
    storage.set_trial_system_attr(trial_id, ROUND_KEY, {
        "source": chosen.source, "observed": len(history.observed),
        "pending": len(history.pending) + history.num_unsampled,
        "running": history.num_running, "failed": history.num_failed,
        "unsampled": history.num_unsampled})


def _derived_seed(seed: int, number: int, name: str) -> int:
    """A seed for one trial's one parameter, equal in every process."""
    entropy = [seed, number, zlib.crc32(name.encode("utf-8"))]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


# --------------------------------------------------------------------------- validation


def _check_options(seed: Any, n_startup_trials: Any, independent_sampler: Any,
                   flags: dict[str, Any]) -> int:
    """The seed to use (drawn when None); ArgumentError on a bad option."""
    for name, value in [("seed", seed), ("n_startup_trials", n_startup_trials)]:
        low, high = (0, 2**32 - 1) if name == "seed" else (1, 2**31)
        if value is not None and (isinstance(value, (bool, np.bool_))
                                  or not isinstance(value, (int, np.integer))
                                  or not low <= value <= high):
            raise ArgumentError(
                f"BoptSampler({name}={value!r}): {name} must be None or an int in "
                f"[{low}, {high}]; got {type(value).__name__} {value!r}.")
    if independent_sampler is not None and not isinstance(independent_sampler, BaseSampler):
        raise ArgumentError(
            f"BoptSampler(independent_sampler={independent_sampler!r}): expected None or an "
            f"optuna.samplers.BaseSampler instance, got {type(independent_sampler).__name__}; "
            "pass e.g. optuna.samplers.RandomSampler(seed=0).")
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ArgumentError(f"BoptSampler({name}={value!r}): {name} must be True or "
                                f"False; got {type(value).__name__} {value!r}.")
    return secrets.randbelow(2**31) if seed is None else int(seed)


def _check_bopt_options(acquisition: Any, device: Any, seed: int) -> None:
    """ArgumentError, naming the option, unless bopt accepts `acquisition` and `device`."""
    try:
        Optimizer(Space([Float("x", 0.0, 1.0)]), acquisition, seed=seed, device=device)
    except ArgumentError as err:
        raise ArgumentError(f"BoptSampler(acquisition={acquisition!r}, device={device!r}): "
                            f"{err}") from None


def _check_single_objective(study: Study) -> None:
    if len(study.directions) != 1:
        names = ", ".join(d.name.lower() for d in study.directions)
        raise ArgumentError(
            f"BoptSampler optimizes a single objective; this study has "
            f"{len(study.directions)} ({names}). Use a multi-objective sampler such as "
            "optuna.samplers.NSGAIISampler, or combine the objectives into one value.")


# --------------------------------------------------------------------------- the sampler


class BoptSampler(BaseSampler):
    """An Optuna sampler that proposes each trial with bopt's Gaussian process.

    The joint space is Optuna's `IntersectionSearchSpace`: the parameters every complete
    trial (and every pruned one, with `use_pruned_trials`) drew from one distribution.
    bopt proposes those together; a define-by-run parameter outside them (one that only
    some branches of the objective ask for) goes to the independent sampler, with a logged
    warning.

    Each proposal rebuilds bopt's view from `study.get_trials()`, so nothing carries over
    between trials and every process sharing a study sees the same history:

    - COMPLETE trials are observations (minimised or maximised as `study.direction` says).
    - PRUNED trials are observations too, at their last intermediate value, when
      `use_pruned_trials` (the default). A pruner stops a trial because its curve looked
      worse than its peers' at that step; for a loss curve that value is also worse than
      where the trial would have finished, so the GP learns "not here" instead of
      proposing the region again. Those values come from shorter runs, which the GP treats
      as noise. Pass False to learn from complete trials only (Optuna's GPSampler does
      that), e.g. when intermediate values are on another scale than the final value.
      Pruned trials without any intermediate value are ignored.
    - RUNNING trials of every worker, the one being sampled excepted, are pending points:
      bopt believes them at the posterior mean (kriging believer) and proposes nothing
      next to them. A trial's proposal is written to its system attributes (key
      "bopt:params:0", ...) when it is chosen, so other workers see it before the
      objective has asked for all of it.
    - FAILED trials give the GP no value: a crash says nothing reliable about the
      objective. Their configurations stay pending points, so the sampler does not
      propose the same point, or one right next to it, again (with the same history the
      GP would otherwise propose it at once). WAITING (enqueued) trials are ignored.

    Several workers: two workers that sample at the same moment see the same history.
    So that they do not propose the same point, each earlier-numbered running trial
    whose proposal is not published yet gets a stand-in: bopt proposes a batch (up to 8
    such stand-ins, then this trial's point) and this trial takes the last member, the
    point the batch gives once the others are believed pending. Within one process,
    proposals are made one at a time (a lock), so `study.optimize(n_jobs=k)` threads
    always see each other's points.

    Startup: the first trial has no joint space yet, so the independent sampler picks
    it. After that bopt proposes every point of the joint space: its scrambled Sobol
    design (skipping points the study already holds) until `n_startup_trials`
    observations exist, then the GP.

    Args:
        seed: seeds bopt's design and acquisition and the default independent sampler;
            equal seeds and equal histories give equal proposals. None draws one at
            construction (different in every process).
        acquisition: bopt's strategy: "ei" (log expected improvement), "ucb", "ts"
            (Thompson sampling), "random" or "sobol".
        device: where bopt fits the GP: "auto" (CUDA when available), "cpu" or "cuda".
        n_startup_trials: observations before the GP takes over from the Sobol design;
            None uses bopt's default, max(5, d + 1) for d joint parameters
            (max(10, d + 1) when one is a categorical of two choices or more).
        independent_sampler: samples the parameters outside the joint space. None: a
            `RandomSampler` seeded from `seed`, the trial number and the parameter name
            (so it too is stateless, and workers with equal seeds do not collide).
        use_pruned_trials: use pruned trials' last intermediate values as observations.
        warn_independent_sampling: log a warning when a parameter of a trial is sampled
            outside the joint space.

    Raises:
        ArgumentError: a bad option (a `ValueError`). A multi-objective study raises it
            when a trial starts.
    """

    def __init__(self, *, seed: int | None = None, acquisition: str = "ei",
                 device: str = "auto", n_startup_trials: int | None = None,
                 independent_sampler: BaseSampler | None = None,
                 use_pruned_trials: bool = True, warn_independent_sampling: bool = True):
        flags = {"use_pruned_trials": use_pruned_trials,
                 "warn_independent_sampling": warn_independent_sampling}
        self._seed = _check_options(seed, n_startup_trials, independent_sampler, flags)
        _check_bopt_options(acquisition, device, self._seed)
        self._acquisition = acquisition
        self._device = device
        self._n_startup_trials = n_startup_trials
        self._independent_sampler = independent_sampler
        self._use_pruned = bool(use_pruned_trials)
        self._warn = bool(warn_independent_sampling)
        self._intersection = IntersectionSearchSpace(include_pruned=self._use_pruned)
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; a copy gets its own
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    @property
    def seed(self) -> int:
        """The seed in use (the drawn one when constructed with None)."""
        return self._seed

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        """The joint space: the intersection's parameters that take more than one value
        and that bopt can model, by name."""
        _check_single_objective(study)
        with self._lock:
            joint = self._intersection.calculate(study)
        return {name: dist for name, dist in joint.items()
                if not dist.single() and _dimension(name, dist) is not None}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """bopt's proposal over `search_space`, as Optuna's external values; {} when the
        space is empty or used up (the independent sampler then takes over)."""
        dims = _dimensions(search_space)
        if not dims:
            return {}
        maximize = study.direction == StudyDirection.MAXIMIZE
        with self._lock:  # one proposal at a time: n_jobs threads see each other's points
            history = _read_history(study.get_trials(deepcopy=False), trial, dims,
                                    use_pruned=self._use_pruned)
            chosen = self._propose(dims, history, maximize=maximize)
            if chosen is None:
                return {}
            _publish(study, trial, dims, chosen, history)
        return {d.name: d.to_optuna(chosen.params[d.name]) for d in dims}

    def _propose(self, dims: Sequence[_Dimension], history: _History, *,
                 maximize: bool) -> Trial | None:
        """bopt's next trial for `history`, or None when the space has nothing new."""
        opt = Optimizer(Space([d.param for d in dims]), self._acquisition,
                        n_initial=self._n_startup_trials, seed=self._seed, device=self._device,
                        direction="maximize" if maximize else "minimize")
        for config, value in history.observed:
            opt.observe(config, value)
        for config in history.pending:
            opt.attach(config)
        # With stand-ins, a batch whose last member is this trial's point; if a finite
        # space cannot fill it, this trial's point alone (fromkeys drops a repeated 1).
        for count in dict.fromkeys((history.num_unsampled + 1, 1)):
            try:
                return opt.suggest(count)[-1]
            except SpaceExhaustedError:
                continue
        _logger.warning("BoptSampler: every configuration of the joint space %s is in the "
                        "study already; the independent sampler picks this trial.",
                        [d.name for d in dims])
        return None

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        """A value of a parameter outside the joint space, from the independent sampler."""
        if self._warn:
            self._warn_independent(study, trial, param_name, param_distribution)
        sampler = self._independent_sampler
        if sampler is None:
            sampler = RandomSampler(seed=_derived_seed(self._seed, trial.number, param_name))
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def _warn_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                          param_distribution: BaseDistribution) -> None:
        """Log why `param_name` is sampled without the GP, unless the joint space is still
        empty (the first trial) or the parameter was in it (a fallback already logged)."""
        with self._lock:
            joint = self._intersection.calculate(study)
        if not joint:
            return
        if param_name not in joint:
            reason = ("not every earlier trial asked for it with this distribution (a "
                      "define-by-run parameter outside the joint search space)")
        elif _dimension(param_name, param_distribution) is None:
            reason = f"bopt cannot model its distribution {param_distribution}"
        else:
            return
        name = type(self._independent_sampler).__name__ if self._independent_sampler else \
            "RandomSampler"
        _logger.warning(
            f"BoptSampler: trial #{trial.number} draws parameter {param_name!r} with {name}, "
            f"not with bopt's GP, because {reason}. Pass warn_independent_sampling=False to "
            "BoptSampler to silence this warning.")

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self._independent_sampler is not None:
            self._independent_sampler.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        if self._independent_sampler is not None:
            self._independent_sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Reseed a user-given independent sampler. bopt's proposals are pure functions of
        the seed and the study, so `n_jobs` threads need no reseeding to differ."""
        if self._independent_sampler is not None:
            self._independent_sampler.reseed_rng()
