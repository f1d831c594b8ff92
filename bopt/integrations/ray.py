"""`BoptSearch`: bopt's GP as a Ray Tune searcher (`pip install "bopt[ray]"`).

    search = ConcurrencyLimiter(BoptSearch(seed=0), max_concurrent=4)
    tune.Tuner(train, param_space={"lr": tune.loguniform(1e-4, 1e-1), "epochs": 27},
               tune_config=tune.TuneConfig(search_alg=search, metric="loss", mode="min",
                                           scheduler=ASHAScheduler(max_t=27))).fit()

The searcher lives in the driver: each `suggest` fits the GP there (on its GPU with
`device="cuda"`), trials still running are its pending points. `TuneSpace` maps the space:
`uniform`, `loguniform`, `randint`, `lograndint`, `choice` to `Float`, `Int`, `Categorical`;
`quniform`, `qloguniform`, `qrandint`, `qlograndint` to an `Int` over the step index `k`
(value `k * q`); constants pass through; nested dicts are searched as "outer/inner".

An errored trial is failed (never proposed again); one that ended before any report is
interrupted (it may be proposed again); any other is observed at its last reported value,
also when a scheduler stopped it early at a lower budget (`budgets` keeps the
`training_iteration`). ASHA stops a trial because it ranked among the worst at that budget,
and for a metric that improves with training that value is a pessimistic estimate of the
full-budget one: the GP learns the region is poor, as the scheduler found. Failing such
trials would hide those regions, and leave the GP few points (ASHA stops most trials). The
price: mixed budgets look like noise, and slow starters look worse than they are.

`save` pickles the space, settings, every trial's configuration and outcome, and the Tune
trials still running; `restore` replays them into a new `Optimizer` (their `source` then
reads "external"). Tune calls both: `tune.Tuner.restore(path, trainable)` continues an
interrupted experiment with the same history, resumed trials completing their pending points.

With Ray, use Tune's schedulers (`ASHAScheduler`, `HyperBandScheduler`): they stop trials,
this searcher only proposes. bopt's `bopt.schedulers.ASHA` / `Hyperband` decide the same for
bopt's own loop (`Optimizer.report` / `should_stop`, `minimize`) and SQLite studies shared by
workers. Tune's `ASHAScheduler` and bopt's `ASHA` are both the stopping variant of
asynchronous successive halving (Li et al. 2020); Tune's `HyperBandScheduler` is synchronous
(it pauses trials until a rung fills), bopt's `Hyperband` runs its brackets asynchronously.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

try:
    from ray import cloudpickle
    from ray.tune.search import Searcher
    from ray.tune.search.sample import Categorical as TuneCategorical
    from ray.tune.search.sample import Domain, LogUniform, Quantized, Uniform
    from ray.tune.search.sample import Float as TuneFloat, Integer as TuneInteger
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('bopt.integrations.ray needs Ray Tune: pip install "bopt[ray]" '
                      '(or pip install "ray[tune]").') from exc

from bopt.engine import Optimizer
from bopt.errors import ArgumentError, ParameterError, SearchSpaceError, SpaceExhaustedError
from bopt.space import Categorical, Float, Int, Space
from bopt.trial import Trial

__all__ = ["BoptSearch", "TuneSpace"]

logger = logging.getLogger("bopt")

_MODES = {"min": "minimize", "max": "maximize"}
_BUDGET = "training_iteration"  # the budget Tune's schedulers count by default
_FORMAT, _VERSION = "bopt.integrations.ray", 1


@dataclass(frozen=True)
class _Dim:
    """One searched entry of a Tune config: its `path` of keys from the root, the bopt
    `param` (named `"/".join(path)`) and how values map: a quantization `step` (`param`
    counts steps, the value is `k * step`, rounded to `digits` decimals for a float step) or
    a categorical's `choices` (Tune's categories, in the order of `param.choices`)."""

    path: tuple
    param: Float | Int | Categorical
    step: float | int | None = None
    digits: int | None = None
    choices: tuple | None = None


def _same(a: Any, b: Any) -> bool:
    """Equal and of one type (`True`, `1` and `1.0` differ); identity where `==` fails."""
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):  # e.g. numpy arrays
        return a is b


def _categorical(path: tuple, name: str, categories: Sequence) -> _Dim:
    """A Tune `choice`: its categories themselves, or labels when bopt cannot hold them."""
    if _contains_domain(list(categories)):
        raise SearchSpaceError(f"Tune space entry {name!r}: a choice holds a Tune search "
                               "domain; BoptSearch cannot search inside choices. Make it "
                               "separate entries.")
    unique: list = []
    for value in categories:  # a repeat (Tune's way to weight a choice) is one choice here
        if not any(_same(value, u) for u in unique):
            unique.append(value)
    plain = (str, int, bool)  # what bopt holds as a choice unchanged, with finite floats
    if all(type(c) in plain or (type(c) is float and math.isfinite(c)) for c in unique):
        param = Categorical(name, unique)
    else:  # None, lists or objects: search labels, hand back the objects
        param = Categorical(name, [f"{i}: {c!r}" for i, c in enumerate(unique)])
    return _Dim(path, param, choices=tuple(unique))


def _grid_range(lower: float, upper: float, step: float) -> tuple[int, int]:
    """The first and last `k` with `lower <= k * step <= upper` (bounds within rounding
    error of a multiple count as that multiple)."""
    def index(bound: float, rounding) -> int:
        scaled = bound / step
        return round(scaled) if math.isclose(scaled, round(scaled)) else int(rounding(scaled))
    return index(lower, math.ceil), index(upper, math.floor)


def _step_digits(step: float) -> int:
    """How many decimals a multiple of `step` needs, e.g. 2 for 0.05 (at most 15)."""
    exponent = Decimal(repr(float(step))).normalize().as_tuple().exponent
    return min(15, max(0, -int(exponent)))


def _numeric(path: tuple, name: str, domain: Domain) -> _Dim | tuple[Any]:
    """A Tune float or integer domain as a bopt parameter, or `(value,)` when it holds one
    value only."""
    where, sampler = f"Tune space entry {name!r}", domain.get_sampler()
    step = sampler.q if isinstance(sampler, Quantized) else None
    base = sampler.get_sampler() if step is not None else sampler
    if not isinstance(base, (Uniform, LogUniform)):
        kind = type(base).__name__.lstrip("_")
        raise SearchSpaceError(f"{where}: {kind} sampling is not supported; BoptSearch needs "
                               "a bounded range (tune.uniform, loguniform, quniform, randint, "
                               "lograndint, qrandint).")
    integer = isinstance(domain, TuneInteger)
    step = None if integer and step == 1 else step  # qrandint(q=1) is randint
    lower, upper = domain.lower, domain.upper
    if step is not None:
        lower, upper = _grid_range(lower, upper, step)  # the bopt Int counts steps
    elif integer:
        upper -= 1  # Tune's randint and lograndint exclude the upper bound
    if upper < lower:
        raise SearchSpaceError(f"{where}: the domain [{domain.lower!r}, {domain.upper!r}] "
                               f"(q={step!r}) holds no value; widen the bounds.")
    if upper == lower:
        value = lower if step is None else lower * step
        return (int(value) if integer else float(value),)
    kind = Int if integer or step is not None else Float
    digits = None if integer or step is None else _step_digits(step)
    return _Dim(path, kind(name, lower, upper, log=isinstance(base, LogUniform)), step, digits)


def _contains_domain(value: Any) -> bool:
    """Whether a Tune search domain sits anywhere inside `value`."""
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_domain(v) for v in value)
    return isinstance(value, Domain)


def _flatten(config: Mapping, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """`(path, value)` for every leaf of a nested dict, in order (a dict is a branch)."""
    leaves = []
    for key, value in config.items():
        path = prefix + (key,)
        name = "/".join(map(str, path))
        if isinstance(value, Mapping) and "grid_search" in value and len(value) == 1:
            raise SearchSpaceError(f"Tune space entry {name!r}: tune.grid_search is not "
                                   "supported by BoptSearch; use tune.choice(values).")
        if isinstance(value, Mapping) and value:
            leaves.extend(_flatten(value, path))
        elif isinstance(value, (list, tuple)) and _contains_domain(value):
            raise SearchSpaceError(f"Tune space entry {name!r}: search domains inside a "
                                   "list are not supported; use a dict of entries instead.")
        else:
            leaves.append((path, value))
    return leaves


def _to_dim(path: tuple, value: Any) -> _Dim | tuple[Any]:
    """One leaf of a Tune config as a searched dimension, or `(constant,)`."""
    name = "/".join(map(str, path))
    if not isinstance(value, Domain):
        return (value,)
    if isinstance(value, TuneCategorical):
        return _categorical(path, name, value.categories)
    if isinstance(value, (TuneFloat, TuneInteger)):
        return _numeric(path, name, value)
    raise SearchSpaceError(f"Tune space entry {name!r}: {type(value).__name__} domains "
                           "(tune.sample_from, custom domains) are not supported; use "
                           "uniform, loguniform, quniform, randint, lograndint, qrandint or "
                           "choice.")


class TuneSpace:
    """The map between a Ray Tune search space and a bopt `Space`, built by `from_tune`
    (a Tune `param_space` dict) or `from_bopt` (flat configurations of a bopt space).

    Attributes:
        space: the bopt space searched.
    """

    def __init__(self, entries: Sequence[tuple[tuple, _Dim | tuple[Any]]]):
        self._entries = list(entries)
        dims = [d for _, d in self._entries if isinstance(d, _Dim)]
        if not dims:
            raise SearchSpaceError("the Tune search space holds no search domain (only "
                                   "constants); add e.g. tune.uniform(0, 1) to it.")
        self._dims = dims
        self.space = Space([d.param for d in dims])

    @classmethod
    def from_tune(cls, config: Mapping) -> TuneSpace:
        """Convert a Tune search space (a dict of domains and constants, maybe nested).

        Raises:
            SearchSpaceError: naming the entry that cannot be converted, and why.
        """
        if not isinstance(config, Mapping):
            raise SearchSpaceError(f"a Tune search space must be a dict; got "
                                   f"{type(config).__name__} {config!r:.100}.")
        return cls([(path, _to_dim(path, value)) for path, value in _flatten(config)])

    @classmethod
    def from_bopt(cls, space: Space) -> TuneSpace:
        """Search a bopt space as it is (flat configurations, conditions kept)."""
        return cls([((p.name,), _Dim((p.name,), p)) for p in space.params])

    def to_config(self, params: Mapping[str, Any]) -> dict:
        """A Tune configuration (nested as the space was) from a bopt configuration."""
        config: dict = {}
        for path, entry in self._entries:
            if isinstance(entry, _Dim):
                if entry.param.name not in params:
                    continue  # an inactive conditional parameter
                value = _tune_value(entry, params[entry.param.name])
            else:
                value = copy.deepcopy(entry[0])
            node = config
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
        return config

    def to_params(self, config: Mapping) -> dict[str, Any]:
        """The bopt configuration of a (nested) Tune configuration; constants are dropped.

        Raises:
            ParameterError: a value off a quantization grid or not among the choices.
        """
        params = {}
        for dim in self._dims:
            node = config
            for key in dim.path:
                if not isinstance(node, Mapping) or key not in node:
                    break
                node = node[key]
            else:
                params[dim.param.name] = _bopt_value(dim, node)
        return params


def _tune_value(dim: _Dim, value: Any) -> Any:
    """The Tune value of a bopt value of `dim`."""
    if dim.choices is not None:  # a copy: a trial may edit a list it was handed
        return copy.deepcopy(dim.choices[dim.param.index(value)])
    if dim.step is None:
        return value
    if dim.digits is None:
        return int(value * dim.step)
    return round(value * dim.step, dim.digits)


def _bopt_value(dim: _Dim, value: Any) -> Any:
    """The bopt value of a Tune value of `dim` (ParameterError when it has none)."""
    name = dim.param.name
    if dim.choices is not None:
        values = (value, value.item()) if isinstance(value, np.generic) else (value,)
        for i, choice in enumerate(dim.choices):
            if any(_same(choice, v) for v in values):
                return dim.param.choices[i]
        raise ParameterError(f"{name!r}: {value!r} is not one of the Tune choices "
                             f"{list(dim.choices)!r}.")
    if dim.step is None:
        return value
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ParameterError(f"{name!r}: expected a multiple of {dim.step!r}; got {value!r}.")
    k = round(value / dim.step)
    if not math.isclose(k * dim.step, value, rel_tol=1e-9, abs_tol=1e-12):
        raise ParameterError(f"{name!r}: {value!r} is not a multiple of the step "
                             f"q={dim.step!r}; round it to the grid.")
    return k


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


def _check_metric(metric: Any, mode: Any) -> None:
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ArgumentError(f"BoptSearch optimizes one metric: metric must be a non-empty "
                            f"str such as 'loss'; got {metric!r}.")
    if mode is not None and (not isinstance(mode, str) or mode not in _MODES):
        raise ArgumentError(f"BoptSearch: mode must be 'min' or 'max'; got {mode!r}.")


def _merged(current: str | None, given: str | None, what: str) -> str | None:
    """The metric (or mode) after Tune passes its own: the same, or an error."""
    if given is None or given == current:
        return current
    if current is None:
        return given
    raise ArgumentError(f"BoptSearch({what}={current!r}) but tune.TuneConfig passed "
                        f"{what}={given!r}; set the {what} in one place.")


def _check_settings(acquisition: Any, seed: Any, device: Any, n_initial: Any) -> dict:
    """The optimizer's settings, checked now by bopt's own validation on a stand-in space
    (the real space may arrive later, from Tune)."""
    settings = dict(acquisition=acquisition, seed=seed, device=device, n_initial=n_initial)
    Optimizer(Space([Float("x", 0.0, 1.0)]), **settings)  # raises ArgumentError if bad
    return settings


def _as_tune_space(space: Any) -> TuneSpace | None:
    if space is None or isinstance(space, TuneSpace):
        return space
    if isinstance(space, Space):
        return TuneSpace.from_bopt(space)
    if isinstance(space, Mapping):
        return TuneSpace.from_tune(space)
    raise ArgumentError(f"BoptSearch: space must be a Tune search space (dict), a bopt.Space "
                        f"or None; got {type(space).__name__} {space!r:.100}.")


def _result_config(result: Mapping) -> Mapping | None:
    """The trial's configuration in a (flattened) Tune result: its "config/..." keys."""
    config: dict = {}
    for key, value in result.items():
        if isinstance(key, str) and key.startswith("config/"):
            *head, leaf = key.split("/")[1:]
            node = config
            for part in head:
                node = node.setdefault(part, {})
            node[leaf] = value
    return config or None


def _replay(opt: Optimizer, history: Sequence[dict]) -> dict[int, int]:
    """Enter a checkpoint's trials into a fresh optimizer, in order; old id -> new id.
    An interrupted (stale) trial stays stale, to be proposed again, unless it was already
    retried: then it is entered as failed, so the retry is not repeated."""
    retried = {r["retry_of"] for r in history if r["retry_of"] is not None}
    ids = {}
    for r in history:
        if r["status"] == "complete":
            trial = opt.observe(r["params"], r["value"], sem=r["sem"])
        else:
            trial = opt.attach(r["params"])
            if r["status"] == "stale" and r["id"] not in retried:
                opt.interrupt(trial, r["note"] or "interrupted")
            elif r["status"] != "pending":
                opt.fail(trial, r["note"])
        ids[r["id"]] = trial.id
    return ids


class BoptSearch(Searcher):
    """A Ray Tune searcher proposing configurations with bopt's GP.

    Args:
        space: a Tune search space (dict of `tune.uniform(...)` etc. and constants), a
            `bopt.Space`, or None to take the Tuner's `param_space`.
        metric: the result key to optimize, or None to take `tune.TuneConfig(metric=...)`.
        mode: "min" or "max", or None to take `tune.TuneConfig(mode=...)`.
        points_to_evaluate: configurations (Tune dicts) to run first, in order.
        acquisition: "ei", "ucb", "ts", "random" or "sobol" (see `bopt.Optimizer`).
        seed: seeds every choice; equal seeds and histories give equal suggestions.
        device: where the GP is fitted: "auto", "cpu" or "cuda" (of the driver).
        n_initial: Sobol points before the GP takes over (default: max(5, d + 1),
            max(10, d + 1) with a categorical of two choices or more).

    Raises:
        ArgumentError: a bad metric, mode, space or setting (named in the message).
        SearchSpaceError: a Tune space entry that cannot be converted.
    """

    def __init__(self, space: Mapping | Space | None = None, metric: str | None = None,
                 mode: str | None = None, *, points_to_evaluate: Sequence[Mapping] | None = None,
                 acquisition: str = "ei", seed: int = 0, device: Any = "auto",
                 n_initial: int | None = None):
        _check_metric(metric, mode)
        if points_to_evaluate is not None and (
                isinstance(points_to_evaluate, Mapping)
                or not all(isinstance(p, Mapping) for p in points_to_evaluate)):
            raise ArgumentError(f"BoptSearch: points_to_evaluate must be a list of config "
                                f"dicts; got {points_to_evaluate!r:.100}.")
        self._settings = _check_settings(acquisition, seed, device, n_initial)
        super().__init__(metric=metric, mode=mode)
        self._points = copy.deepcopy(list(points_to_evaluate or []))
        self._opt: Optimizer | None = None
        self._queue: list[dict] = []  # points_to_evaluate still to suggest, as bopt params
        self._live: dict[str, int] = {}  # Tune trial id -> bopt trial id, while it runs
        self._trial_ids: dict[str, int] = {}  # every Tune trial id -> bopt trial id
        self._last: dict[str, tuple[float, Any]] = {}  # last finite (value, budget) reported
        self._budgets: dict[str, Any] = {}  # training_iteration of each observed value
        self._space: TuneSpace | None = None
        self._user_space = space is not None
        if space is not None:
            self._set_space(_as_tune_space(space))

    @property
    def optimizer(self) -> Optimizer | None:
        """The bopt optimizer (None until the first suggestion or a restore)."""
        return self._opt

    @property
    def history(self) -> list[Trial]:
        """Every trial, in order (`bopt.Optimizer.history`; [] before the first one)."""
        return [] if self._opt is None else self._opt.history

    @property
    def trial_ids(self) -> dict[str, int]:
        """Tune trial id -> bopt trial id."""
        return dict(self._trial_ids)

    @property
    def budgets(self) -> dict[str, Any]:
        """Tune trial id -> the `training_iteration` of its observed value (below the full
        budget for a trial a scheduler stopped early)."""
        return dict(self._budgets)

    def _set_space(self, space: TuneSpace) -> None:
        """Take `space`, and convert `points_to_evaluate` into it (validated)."""
        queue = []
        for i, point in enumerate(self._points):
            try:
                queue.append(space.space.validate(space.to_params(point)))
            except ParameterError as exc:
                raise ParameterError(f"points_to_evaluate[{i}]: {exc}") from exc
        self._space, self._queue = space, queue

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        """Take the Tuner's metric, mode and `param_space` (Tune calls this). False, as
        Tune expects, when `param_space` holds search domains but this searcher has its own
        space, or has started on a different one."""
        _check_metric(metric, mode)
        if config and _contains_domain(config):
            if self._user_space:
                return False
            converted = TuneSpace.from_tune(config)
            if self._opt is not None and converted.space != self._space.space:
                return False
            if self._opt is None:
                self._set_space(converted)
        self._metric = _merged(self._metric, metric, "metric")
        self._mode = _merged(self._mode, mode, "mode")
        return True

    def _new_optimizer(self) -> Optimizer:
        if self._space is None:
            raise ArgumentError("BoptSearch has no search space: pass space= to BoptSearch, "
                                "or param_space= to tune.Tuner.")
        if self._metric is None or self._mode is None:
            raise ArgumentError(f"BoptSearch needs a metric and a mode; got metric="
                                f"{self._metric!r}, mode={self._mode!r}. Pass them to "
                                "BoptSearch(...) (Tune hands a searcher TuneConfig's metric "
                                "and mode only along with a param_space).")
        return Optimizer(self._space.space, direction=_MODES[self._mode], **self._settings)

    def _optimizer(self) -> Optimizer:
        if self._opt is None:
            self._opt = self._new_optimizer()
        return self._opt

    def suggest(self, trial_id: str) -> dict | str:
        """The next configuration (a Tune config dict), or `Searcher.FINISHED` once a
        finite space has nothing unseen left. ArgumentError: no space, metric or mode."""
        opt = self._optimizer()
        if self._queue:
            trial = opt.attach(self._queue.pop(0))
        else:
            try:
                trial = opt.suggest()
            except SpaceExhaustedError:
                logger.info("BoptSearch: every configuration of the space was proposed")
                return Searcher.FINISHED
        self._live[trial_id] = self._trial_ids[trial_id] = trial.id
        return self._space.to_config(trial.params)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Keep the trial's last finite metric: a trial HyperBand stops while paused ends
        without a result, and is observed at this value."""
        if trial_id in self._live:
            value = _finite(result.get(self._metric))
            if value is not None:
                self._last[trial_id] = (value, result.get(_BUDGET))

    def _outcome(self, result: dict | None, error: bool,
                 last: tuple[float, Any] | None) -> tuple[str, Any, Any]:
        """("observe", value, budget), ("fail", reason, None) or ("interrupt", reason, None)."""
        if error:
            return "fail", "the Ray Tune trial raised an error", None
        if result is not None and self._metric in result:
            value = _finite(result[self._metric])
            if value is None:
                return "fail", f"reported {self._metric}={result[self._metric]!r}", None
            return "observe", value, result.get(_BUDGET)
        if last is not None:
            return "observe", last[0], last[1]
        if result is None:
            return "interrupt", "the Ray Tune trial ended before reporting a result", None
        return "fail", f"its last result holds no {self._metric!r}", None

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """Observe, fail or interrupt the trial's bopt trial (module docstring)."""
        if trial_id not in self._live:
            self._complete_unknown(trial_id, result, error)
            return
        opt, tid = self._optimizer(), self._live.pop(trial_id)
        kind, what, budget = self._outcome(result, error, self._last.pop(trial_id, None))
        if kind == "observe":
            opt.observe(tid, what)
            self._budgets[trial_id] = budget
        elif kind == "fail":
            opt.fail(tid, what)
        else:
            opt.interrupt(tid, what)

    def _complete_unknown(self, trial_id: str, result: dict | None, error: bool) -> None:
        """A trial this searcher did not propose (e.g. one Tune restarted under a new id):
        observed from the configuration in its result, when it has one and the metric."""
        if error or result is None or trial_id in self._trial_ids or self._space is None:
            return
        value, config = _finite(result.get(self._metric)), _result_config(result)
        if value is None or config is None:
            return
        try:
            trial = self._optimizer().observe(self._space.to_params(config), value)
        except (ParameterError, ArgumentError) as exc:
            logger.warning("BoptSearch: ignored Tune trial %s, its config does not fit the "
                           "space (%s)", trial_id, exc)
            return
        self._trial_ids[trial_id] = trial.id
        self._budgets[trial_id] = result.get(_BUDGET)

    def _state(self) -> dict:
        history = [{"id": t.id, "params": t.params, "status": t.status, "value": t.value,
                    "note": t.note, "sem": t.sem, "retry_of": t.retry_of} for t in self.history]
        return {"format": _FORMAT, "version": _VERSION, "metric": self._metric,
                "mode": self._mode, "space": self._space, "user_space": self._user_space,
                "settings": dict(self._settings), "points": self._points, "queue": self._queue,
                "started": self._opt is not None, "history": history, "live": self._live,
                "trial_ids": self._trial_ids, "last": self._last, "budgets": self._budgets}

    def _load_state(self, state: Any) -> None:
        if (not isinstance(state, Mapping) or state.get("format") != _FORMAT
                or state.get("version") != _VERSION):
            raise ArgumentError(f"BoptSearch.restore(): not a BoptSearch checkpoint of "
                                f"version {_VERSION}; got {state!r:.100}.")
        self._metric, self._mode, self._space = state["metric"], state["mode"], state["space"]
        self._user_space, self._settings = state["user_space"], dict(state["settings"])
        self._points, self._queue = state["points"], list(state["queue"])
        self._last, self._budgets = dict(state["last"]), dict(state["budgets"])
        self._opt, ids = None, {}
        if state["started"]:
            self._opt = self._new_optimizer()
            ids = _replay(self._opt, state["history"])
        self._live = {k: ids[v] for k, v in state["live"].items()}
        self._trial_ids = {k: ids.get(v, v) for k, v in state["trial_ids"].items()}

    # pickling (Tune pickles the searcher into tuner.pkl) goes through the same state:
    # the optimizer itself holds a lock
    __getstate__, __setstate__ = _state, _load_state

    def save(self, checkpoint_path: str) -> None:
        """Write the search state to `checkpoint_path` (Tune calls this as it runs)."""
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self._state(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Continue from a `save`d state: the same space, metric, mode, settings and
        history; Tune trials that were running stay pending until they complete."""
        with open(checkpoint_path, "rb") as f:
            self._load_state(cloudpickle.load(f))
