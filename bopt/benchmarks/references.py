"""Reference optimizers for the benchmark: BoTorch's standard loop and Optuna's samplers.

Every method, bopt's own included, is driven through the same two calls, so the runner
times all of them alike:

- `ask() -> (config, RoundTiming)`: the next configuration (the timed suggest step);
- `tell(config, value)`: record the objective value (not timed).

All methods minimise. The BoTorch loop works on bopt's encoding (`Space.encode` /
`Space.decode`), so it sees exactly the problem bopt sees, and maximises the negated values.
"""

from __future__ import annotations

import contextlib
import importlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from bopt.acquisition.registry import STRATEGIES
from bopt.benchmarks.errors import BenchmarkArgumentError, MissingDependencyError
from bopt.design import default_n_initial
from bopt.layout import encode_integer
from bopt.space import Categorical, Float, Int, Space

REFERENCE_METHODS = ("botorch", "optuna-tpe", "optuna-gp")
# Every benchmark method: bopt's strategies first, then the references.
METHODS = STRATEGIES + REFERENCE_METHODS

# Integer columns with more values than this are optimised continuously and rounded by
# `Space.decode` instead of being listed as discrete values.
_MAX_LISTED_INTEGERS = 1000


@dataclass
class RoundTiming:
    """What one `ask()` did, beside the wall time the runner measures around it.

    Attributes:
        model_based: the proposal came from a fitted model (False during the initial design
            and for model-free methods).
        fit_seconds: time spent fitting the model, when the method exposes it.
        acquisition_seconds: time spent optimising the acquisition, when exposed.
        source: how the configuration was proposed ("sobol", "ei", "tpe", ...).
        num_warnings: warnings raised by the library during the step.
    """

    model_based: bool
    fit_seconds: float | None = None
    acquisition_seconds: float | None = None
    source: str = ""
    num_warnings: int = 0


class Loop(Protocol):
    """The ask/tell interface every benchmark method is driven through."""

    n_initial: int | None
    device: torch.device

    def ask(self) -> tuple[dict, RoundTiming]: ...

    def tell(self, config: dict, value: float) -> None: ...


def require(module: str, method: str) -> Any:
    """Import an optional dependency, or explain how to install it.

    Raises:
        MissingDependencyError: naming the method, the module and the extra to install.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"benchmark method {method!r} needs the {module!r} package, which is not "
            f"installed ({err}); install the benchmark extras: pip install 'bopt[bench]' "
            "(from a clone: pip install -e '.[bench]')."
        ) from None


def make_reference(method: str, space: Space, *, seed: int,
                   device: str | torch.device = "cpu") -> Loop:
    """Build a reference loop by name ("botorch", "optuna-tpe" or "optuna-gp").

    Raises:
        BenchmarkArgumentError: `method` is not one of `REFERENCE_METHODS`.
    """
    if method == "botorch":
        return BotorchLoop(space, seed=seed, device=device)
    if method in ("optuna-tpe", "optuna-gp"):
        return OptunaLoop(space, method, seed=seed)
    raise BenchmarkArgumentError(
        f"make_reference(): unknown reference method {method!r}; choose from "
        f"{list(REFERENCE_METHODS)!r}.")


# --------------------------------------------------------------------------- BoTorch


class BotorchLoop:
    """BoTorch's standard single-objective loop on bopt's encoding.

    A Sobol initial design of bopt's default size (`bopt.design.default_n_initial`), the
    same points bopt draws for the same seed: max(5, d + 1), or max(10, d + 1) with a
    categorical since f879c6c (BoTorch runs committed before it had max(5, d + 1)
    everywhere), then per round: `SingleTaskGP` with `Normalize` and
    `Standardize(m=1)` (`MixedSingleTaskGP(cat_dims=...)` when the space has categoricals),
    `fit_gpytorch_mll`, `LogExpectedImprovement`, and `optimize_acqf` (continuous) or
    `optimize_acqf_mixed_alternating` (integers or categoricals) with 10 restarts and 512 raw
    samples.
    """

    def __init__(self, space: Space, *, seed: int, device: str | torch.device = "cpu"):
        self._botorch = require("botorch", "botorch")
        self.space = space
        self.seed = seed
        self.device = torch.device(device)
        self.n_initial = default_n_initial(space)
        self._initial = space.sobol(self.n_initial, seed=seed)
        self._configs: list[dict] = []
        self._values: list[float] = []
        self._bounds, self._discrete, self._categorical = _mixed_bounds(space)

    def ask(self) -> tuple[dict, RoundTiming]:
        n = len(self._configs)
        if n < self.n_initial:
            return dict(self._initial[n]), RoundTiming(model_based=False, source="sobol")
        with warnings.catch_warnings(record=True) as caught, torch.random.fork_rng():
            warnings.simplefilter("always")
            # BoTorch draws raw samples from the global RNG: seed it per round, then restore it.
            torch.manual_seed(self.seed * 1_000_003 + n)
            start = time.perf_counter()
            model = self._fit()
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            x = self._maximize_log_ei(model)  # 1 x d
            acq_seconds = time.perf_counter() - start
        config = self.space.decode(x.cpu())[0]
        return config, RoundTiming(model_based=True, fit_seconds=fit_seconds,
                                   acquisition_seconds=acq_seconds, source="botorch-logei",
                                   num_warnings=len(caught))

    def tell(self, config: dict, value: float) -> None:
        self._configs.append(dict(config))
        self._values.append(float(value))

    def _fit(self):
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import MixedSingleTaskGP, SingleTaskGP
        from botorch.models.transforms import Normalize, Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        train_X = self.space.encode(self._configs, device=self.device)  # n x d
        train_Y = -torch.tensor(self._values, dtype=torch.float64,
                                device=self.device).unsqueeze(-1)  # n x 1
        bounds = self._bounds.to(self.device)
        d = train_X.shape[-1]
        if self._categorical:
            numeric = [j for j in range(d) if j not in self._categorical]
            transform = Normalize(d, indices=numeric, bounds=bounds) if numeric else None
            model = MixedSingleTaskGP(train_X, train_Y, cat_dims=sorted(self._categorical),
                                      input_transform=transform,
                                      outcome_transform=Standardize(m=1))
        else:
            model = SingleTaskGP(train_X, train_Y, input_transform=Normalize(d, bounds=bounds),
                                 outcome_transform=Standardize(m=1))
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        except self._botorch.exceptions.ModelFittingError:
            pass  # keep the prior hyperparameters, as a user of the standard loop would
        return model

    def _maximize_log_ei(self, model) -> Tensor:
        from botorch.acquisition import LogExpectedImprovement
        from botorch.optim import optimize_acqf, optimize_acqf_mixed_alternating

        best_f = -min(self._values)
        acqf = LogExpectedImprovement(model, best_f=best_f)
        bounds = self._bounds.to(self.device)
        if self._discrete or self._categorical:
            x, _ = optimize_acqf_mixed_alternating(
                acqf, bounds, discrete_dims=self._discrete or None,
                cat_dims=self._categorical or None, q=1, num_restarts=10, raw_samples=512)
        else:
            x, _ = optimize_acqf(acqf, bounds, q=1, num_restarts=10, raw_samples=512)
        return x.detach()  # 1 x d


def _mixed_bounds(space: Space) -> tuple[Tensor, dict[int, list[float]], dict[int, list[float]]]:
    """`2 x d` bounds of the encoded space, its listed integer values and categorical indices.

    Numeric columns live in [0, 1]; a categorical with `k` choices in [0, k - 1]. Integer
    columns list their encoded grid (up to `_MAX_LISTED_INTEGERS` values).
    """
    layout = space.layout
    bounds = torch.zeros(2, layout.d, dtype=torch.float64)  # 2 x d
    bounds[1] = 1.0
    discrete: dict[int, list[float]] = {}
    for col in layout.integers:
        if col.high - col.low + 1 <= _MAX_LISTED_INTEGERS:
            values = torch.arange(col.low, col.high + 1, dtype=torch.float64)
            grid = encode_integer(values, col).tolist()
            bounds[0, col.column], bounds[1, col.column] = grid[0], grid[-1]
            discrete[col.column] = grid
    categorical: dict[int, list[float]] = {}
    for column, size in zip(layout.categorical, layout.categorical_sizes):
        bounds[1, column] = float(size - 1)
        categorical[column] = [float(i) for i in range(size)]
    return bounds, discrete, categorical


# --------------------------------------------------------------------------- Optuna


class OptunaLoop:
    """Optuna's `TPESampler` or `GPSampler` through `study.ask()` / `study.tell()`.

    Parameters are asked define-by-run in the space's parent-first order, and a conditional
    parameter only when it is active, so Optuna sees the same conditional structure. Optuna's
    per-trial INFO lines are silenced during the loop's own calls only (`_quiet`); the
    caller's log level is left as it was.
    """

    def __init__(self, space: Space, method: str, *, seed: int):
        self._optuna = optuna = require("optuna", method)
        with _quiet(optuna):
            if method == "optuna-tpe":
                sampler = optuna.samplers.TPESampler(seed=seed)
            else:
                require("scipy", method)
                sampler = optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
            self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self.n_initial = getattr(sampler, "_n_startup_trials", 10)  # Optuna's default: 10
        self.device = torch.device("cpu")  # Optuna's samplers run on the CPU
        self.space = space
        self._source = method.removeprefix("optuna-")
        self._pending: dict[tuple, Any] = {}

    def ask(self) -> tuple[dict, RoundTiming]:
        with warnings.catch_warnings(record=True) as caught, _quiet(self._optuna):
            warnings.simplefilter("always")
            trial = self._study.ask()
            config = suggest_config(trial, self.space)
        self._pending[self.space.key(config)] = trial
        model_based = len(self._study.trials) > self.n_initial
        return config, RoundTiming(model_based=model_based,
                                   source=self._source if model_based else "random",
                                   num_warnings=len(caught))

    def tell(self, config: dict, value: float) -> None:
        trial = self._pending.pop(self.space.key(config))
        with _quiet(self._optuna):
            self._study.tell(trial, value)


@contextlib.contextmanager
def _quiet(optuna) -> Iterator[None]:
    """Optuna's log level at WARNING (or the caller's, if quieter) inside; the caller's after."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def suggest_config(trial, space: Space) -> dict[str, Any]:
    """A configuration of `space` asked of an Optuna trial, parameter by parameter (parents
    first; a conditional parameter only when it is active), with the distributions that
    mirror bopt's parameters."""
    config: dict[str, Any] = {}
    for p in space.params:
        if not p.is_active(config):
            continue
        if isinstance(p, Float):
            config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            config[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log)
        else:
            assert isinstance(p, Categorical)
            config[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return config


__all__ = ["REFERENCE_METHODS", "BotorchLoop", "Loop", "MissingDependencyError", "OptunaLoop",
           "RoundTiming", "make_reference", "require", "suggest_config"]
