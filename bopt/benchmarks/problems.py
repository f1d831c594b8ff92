"""Benchmark problems: test functions with known minima, and one offline tuning task.

Every problem is *minimized*. A `Problem` bundles a `Space`, a noiseless objective on
configs, the known global minimum (`optimum`, None when unknown) and the configs attaining
it (`optimizers`). Calling a problem validates the config, evaluates the objective and, when
`noise_std > 0`, adds `N(0, noise_std^2)` noise drawn from an explicit generator.

Problems (keys of `PROBLEMS`):

- continuous, evaluated by `botorch.test_functions` in float64 on their native box, Floats
  named `x0 .. x{d-1}`: "branin", "hartmann6", "ackley6", "rosenbrock4", "michalewicz5",
  "griewank6", "levy4", "styblinskitang4" (all but the first two take `dim=`);
- mixed, with closed-form minima: "mixed_cat3" (3 floats, three 3-level categoricals),
  "mixed_int" (int, log-float, float, 4-level categorical), "conditional" (an optimizer
  choice with parameters nested two levels deep);
- a real tuning task run offline: "svm_digits" (PCA + SVC on scikit-learn's digits, 3-fold
  cross-validated error).

    problem = get_problem("ackley6", dim=10, noise_std=0.1)
    value = problem.evaluate(problem.space.sample(1, seed=0)[0], seed=0)
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from botorch.test_functions import (
    Ackley,
    Branin,
    Griewank,
    Hartmann,
    Levy,
    Michalewicz,
    Rosenbrock,
    StyblinskiTang,
)
from botorch.test_functions.synthetic import SyntheticTestFunction

from bopt.errors import BoptError
from bopt.space import Categorical, Float, Int, Space

Config = Mapping[str, Any]


class ProblemError(BoptError, ValueError):
    """A benchmark problem was requested or evaluated incorrectly (unknown name, bad option,
    noise without a generator, regret without a known optimum)."""


# --------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class Problem:
    """A minimization problem on a search space.

    Attributes:
        name: registry name, e.g. "ackley6".
        space: the search space; configs hold exactly the active parameters.
        objective: noiseless objective, `config -> float`; it trusts its (validated) input.
        optimum: known global minimum of `objective`, or None when unknown.
        description: one paragraph saying what the problem is.
        noise_std: standard deviation of the Gaussian noise added on evaluation, >= 0.
        optimizers: configs attaining `optimum` (may be empty when none is recorded).

    Raises:
        ProblemError: if `noise_std` is negative or not finite.
    """

    name: str
    space: Space
    objective: Callable[[Config], float]
    optimum: float | None
    description: str
    noise_std: float = 0.0
    optimizers: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        std = self.noise_std
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not (
                math.isfinite(std) and std >= 0):
            raise ProblemError(
                f"problem {self.name!r}: noise_std must be a finite number >= 0, got "
                f"{self.noise_std!r}; pass 0.0 for a noiseless problem."
            )

    def __call__(self, config: Config, *, generator: torch.Generator | None = None) -> float:
        """Evaluate one config, adding `N(0, noise_std^2)` noise when `noise_std > 0`.

        Args:
            config: `{name: value}` holding exactly the active parameters.
            generator: source of the noise; required when `noise_std > 0`, ignored otherwise.

        Returns:
            The (noisy) objective value.

        Raises:
            ParameterError: if the config does not fit the space.
            ProblemError: if the problem is noisy and no generator was passed.
        """
        value = float(self.objective(self.space.validate(config)))
        if self.noise_std == 0:
            return value
        if generator is None:
            raise ProblemError(
                f"problem {self.name!r} is noisy (noise_std={self.noise_std!r}) but no "
                "generator was passed; call problem(config, generator=torch.Generator()"
                ".manual_seed(0)) or problem.evaluate(config, seed=0)."
            )
        noise = torch.randn((), generator=generator, dtype=torch.float64).item()
        return value + self.noise_std * noise

    def evaluate(self, config: Config, seed: int | None = None) -> float:
        """`self(config)` with the noise drawn from a fresh generator seeded with `seed`.

        Equal seeds give equal values; `seed` may be None for a noiseless problem.
        """
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return self(config, generator=generator)

    def regret(self, value: float) -> float:
        """Simple regret `value - optimum` (non-negative for noiseless values).

        Raises:
            ProblemError: if the optimum is unknown.
        """
        if self.optimum is None:
            raise ProblemError(
                f"problem {self.name!r} has no known optimum, so regret is undefined; "
                "compare raw values instead."
            )
        return float(value) - self.optimum


# --------------------------------------------------------------------------- continuous


@dataclass(frozen=True)
class _BotorchObjective:
    """`config -> float` through a float64 BoTorch test function on columns `names`."""

    function: SyntheticTestFunction
    names: tuple[str, ...]

    def __call__(self, config: Config) -> float:
        x = torch.tensor([[config[n] for n in self.names]], dtype=torch.float64)  # 1 x d
        return self.function.evaluate_true(x).item()


def _check_dim(family: str, dim: Any, minimum: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < minimum:
        raise ProblemError(
            f"{family}: dim must be an int >= {minimum}, got {type(dim).__name__} {dim!r}."
        )
    return dim


def _continuous(name: str, function: SyntheticTestFunction, description: str, *,
                optimum: float | None = None,
                optimizers: list[tuple[float, ...]] | None = None) -> Problem:
    """A Problem over the function's native box; optimum and optimizers default to
    BoTorch's `optimal_value` and `optimizers`."""
    function = function.to(dtype=torch.float64)
    names = tuple(f"x{i}" for i in range(function.dim))
    low, high = function.bounds.tolist()  # 2 x d -> two length-d lists
    space = Space([Float(n, lo, hi) for n, lo, hi in zip(names, low, high)])
    if optimizers is None:
        optimizers = function.optimizers.tolist()  # k x d
    return Problem(
        name=name,
        space=space,
        objective=_BotorchObjective(function, names),
        optimum=float(function.optimal_value if optimum is None else optimum),
        description=description,
        optimizers=tuple({n: float(v) for n, v in zip(names, x)} for x in optimizers),
    )


def _branin() -> Problem:
    return _continuous("branin", Branin(negate=False),
                       "Branin on [-5, 10] x [0, 15]: three global minima, 0.397887.")


def _hartmann6() -> Problem:
    return _continuous("hartmann6", Hartmann(dim=6, negate=False),
                       "Hartmann-6 on [0, 1]^6: six local minima, global -3.32237.")


def _ackley(dim: int = 6) -> Problem:
    dim = _check_dim("ackley", dim, 1)
    return _continuous(f"ackley{dim}", Ackley(dim=dim, negate=False),
                       f"Ackley in {dim}-d on [-32.768, 32.768]^{dim}: a flat, rippled "
                       "plateau around one sharp global minimum 0 at the origin.")


def _rosenbrock(dim: int = 4) -> Problem:
    dim = _check_dim("rosenbrock", dim, 2)
    return _continuous(f"rosenbrock{dim}", Rosenbrock(dim=dim, negate=False),
                       f"Rosenbrock in {dim}-d on [-5, 10]^{dim}: a curved narrow valley, "
                       "global minimum 0 at (1, ..., 1).")


@functools.cache
def _michalewicz_argmin(dim: int) -> tuple[float, ...]:
    """Exact minimizer of the (separable) Michalewicz function, coordinate by coordinate.

    Term `i` (1-based) is `-sin(x) sin(i x^2 / pi)^20` on [0, pi]: a dense grid locates its
    basin, bounded Brent refines it.
    """
    from scipy.optimize import minimize_scalar  # scipy ships with BoTorch

    grid = np.linspace(0.0, math.pi, 20_001)
    argmin = []
    for i in range(1, dim + 1):
        def term(x: float | np.ndarray, i: int = i) -> float | np.ndarray:
            return -np.sin(x) * np.sin(i * x**2 / math.pi) ** 20  # m = 10, BoTorch's default

        j = int(np.argmin(term(grid)))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
        result = minimize_scalar(term, bounds=(lo, hi), method="bounded",
                                 options={"xatol": 1e-12})
        argmin.append(float(result.x))
    return tuple(argmin)


def _michalewicz(dim: int = 5) -> Problem:
    """Michalewicz (m = 10) on [0, pi]^dim; the minimizer is computed per coordinate (the
    function is separable), the optimum is BoTorch's for dim in {2, 5, 10}, else computed."""
    dim = _check_dim("michalewicz", dim, 1)
    function = Michalewicz(dim=dim, negate=False)
    argmin = _michalewicz_argmin(dim)
    try:
        optimum = function.optimal_value
    except NotImplementedError:  # BoTorch records it only for dim in {2, 5, 10}
        optimum = function.to(torch.float64).evaluate_true(
            torch.tensor([argmin], dtype=torch.float64)).item()
    return _continuous(f"michalewicz{dim}", function,
                       f"Michalewicz (m = 10) in {dim}-d on [0, pi]^{dim}: steep narrow "
                       f"valleys, global minimum {optimum:.6f}.",
                       optimum=optimum, optimizers=[argmin])


def _griewank(dim: int = 6) -> Problem:
    dim = _check_dim("griewank", dim, 1)
    return _continuous(f"griewank{dim}", Griewank(dim=dim, negate=False),
                       f"Griewank in {dim}-d on [-600, 600]^{dim}: a bowl with dense "
                       "shallow ripples, global minimum 0 at the origin.")


def _levy(dim: int = 4) -> Problem:
    dim = _check_dim("levy", dim, 1)
    return _continuous(f"levy{dim}", Levy(dim=dim, negate=False),
                       f"Levy in {dim}-d on [-10, 10]^{dim}: many local minima, global "
                       "minimum 0 at (1, ..., 1).")


def _styblinski_tang(dim: int = 4) -> Problem:
    dim = _check_dim("styblinskitang", dim, 1)
    return _continuous(f"styblinskitang{dim}", StyblinskiTang(dim=dim, negate=False),
                       f"Styblinski-Tang in {dim}-d on [-5, 5]^{dim}: 2^{dim} local minima, "
                       f"global -39.166166 * {dim} at (-2.903534, ...).")


# --------------------------------------------------------------------------- mixed: mixed_cat3

_LEVELS = ("a", "b", "c")
_CAT3_CENTERS = (0.2, 0.5, 0.8)
_CAT3_SCALES = (1.0, 2.0, 4.0)


def _ripple(z: float) -> float:
    """`8 z^2 + 0.4 (1 - cos(6 pi z))`: Rastrigin-like, >= 0, zero only at z = 0."""
    return 8.0 * z * z + 0.4 * (1.0 - math.cos(6.0 * math.pi * z))


def _cat3_shift(k: tuple[int, int, int]) -> tuple[float, float, float]:
    """Per-coordinate location of the minimum for level indices `k`."""
    return tuple(_CAT3_CENTERS[(k[j] + k[(j + 1) % 3]) % 3] for j in range(3))


def _cat3_offset(k: tuple[int, int, int]) -> float:
    """Best value reachable with level indices `k`: 0 at (1, 2, 0), >= 0.5 elsewhere."""
    return 0.5 * ((k[0] - 1) ** 2 + (k[1] - k[0] - 1) ** 2 + (k[1] + k[2] - 2) ** 2)


def _mixed_cat3_objective(config: Config) -> float:
    k = tuple(_LEVELS.index(config[f"c{j}"]) for j in range(3))
    shift = _cat3_shift(k)
    return _cat3_offset(k) + sum(_CAT3_SCALES[k[j]] * _ripple(config[f"x{j}"] - shift[j])
                                 for j in range(3))


def _mixed_cat3() -> Problem:
    """Three floats x_j in [0, 1] and three categoricals c_j in {"a", "b", "c"}.

    With level indices k_j in {0, 1, 2},

        f(x, c) = b(k) + sum_j a(k_j) rho(x_j - s_j(k)),
        rho(z)  = 8 z^2 + 0.4 (1 - cos(6 pi z))             (>= 0, zero only at z = 0),
        s_j(k)  = (0.2, 0.5, 0.8)[(k_j + k_{j+1 mod 3}) mod 3]  (shift: two categoricals),
        a(k_j)  = (1, 2, 4)[k_j]                              (rescale),
        b(k)    = 0.5 [(k_0 - 1)^2 + (k_1 - k_0 - 1)^2 + (k_1 + k_2 - 2)^2].

    Each combination's minimum is b(k) at x = s(k), since rho >= 0. b vanishes only at
    k = (1, 2, 0), every other combination is at least 0.5 worse, so the global minimum is
    0 at c = ("b", "c", "a"), x = (0.2, 0.8, 0.5). The categoricals interact with the
    continuous part (shift, curvature) and with each other (b is not additive).
    """
    space = Space([Float(f"x{j}", 0.0, 1.0) for j in range(3)]
                  + [Categorical(f"c{j}", _LEVELS) for j in range(3)])
    argmin = {"x0": 0.2, "x1": 0.8, "x2": 0.5, "c0": "b", "c1": "c", "c2": "a"}
    return Problem(
        name="mixed_cat3",
        space=space,
        objective=_mixed_cat3_objective,
        optimum=0.0,
        description="3 floats and three 3-level categoricals; each of the 27 combinations "
                    "shifts and rescales a rippled bowl and adds a non-additive offset. "
                    "Global minimum 0 in one combination, all others >= 0.5.",
        optimizers=(argmin,),
    )


# --------------------------------------------------------------------------- mixed: mixed_int

_SOLVERS = ("sgd", "momentum", "adam", "rmsprop")
_SOLVER_BASE = (0.7, 0.4, 0.1, 0.3)
_SOLVER_LOG_LR = (-1.0, -1.5, -3.0, -2.5)
_SOLVER_LAYERS = (8, 6, 3, 4)
_SOLVER_DROPOUT = (0.1, 0.3, 0.5, 0.2)
_SOLVER_LR_WEIGHT = (1.0, 0.8, 0.5, 0.6)


def _mixed_int_objective(config: Config) -> float:
    k = _SOLVERS.index(config["solver"])
    extra_layers = config["layers"] - _SOLVER_LAYERS[k]
    lr_error = math.log10(config["lr"]) - _SOLVER_LOG_LR[k] - 0.2 * extra_layers
    return (_SOLVER_BASE[k] + _SOLVER_LR_WEIGHT[k] * lr_error**2 + 0.08 * extra_layers**2
            + (1.0 + 0.1 * config["layers"]) * (config["dropout"] - _SOLVER_DROPOUT[k]) ** 2)


def _mixed_int() -> Problem:
    """A synthetic training loss over a 4-level categorical, an Int, a log-Float and a Float.

    With solver index k (sgd, momentum, adam, rmsprop), n = layers in 0..10,
    u = log10(lr) for lr in [1e-4, 1] and p = dropout in [0, 0.9]:

        f = b_k + w_k (u - mu_k - 0.2 (n - n_k))^2 + 0.08 (n - n_k)^2
              + (1 + 0.1 n) (p - p_k)^2,

    b = (0.7, 0.4, 0.1, 0.3), mu = (-1, -1.5, -3, -2.5), n* = (8, 6, 3, 4),
    p* = (0.1, 0.3, 0.5, 0.2), w = (1, 0.8, 0.5, 0.6). Every term after b_k is >= 0 and all
    vanish at n = n_k, lr = 10^mu_k, p = p_k, so solver k's best is b_k: the global minimum
    is 0.1 at solver="adam", layers=3, lr=1e-3, dropout=0.5 (next best solver: 0.3). The
    best learning rate moves with the number of layers (an int-float interaction).
    """
    space = Space([
        Categorical("solver", _SOLVERS),
        Int("layers", 0, 10),
        Float("lr", 1e-4, 1.0, log=True),
        Float("dropout", 0.0, 0.9),
    ])
    argmin = {"solver": "adam", "layers": 3, "lr": 1e-3, "dropout": 0.5}
    return Problem(
        name="mixed_int",
        space=space,
        objective=_mixed_int_objective,
        optimum=0.1,
        description="synthetic loss over solver (4 levels), layers (int 0..10), lr (log) "
                    "and dropout; global minimum 0.1 at adam, 3 layers, lr=1e-3, "
                    "dropout=0.5.",
        optimizers=(argmin,),
    )


# --------------------------------------------------------------------------- conditional


def _sgd_schedule_loss(config: Config) -> float:
    schedule = config["schedule"]
    if schedule == "constant":
        return 0.3
    if schedule == "cosine":
        return 0.5 * ((config["warmup"] - 5) / 10) ** 2
    return 0.15 + (config["decay"] - 0.5) ** 2  # "step"


def _conditional_objective(config: Config) -> float:
    optimizer = config["optimizer"]
    if optimizer == "lbfgs":
        return 0.6 + ((config["history"] - 20) / 20) ** 2
    u = math.log10(config["lr"])
    if optimizer == "adam":
        return 0.4 + 0.5 * (u + 3) ** 2 + 10.0 * (config["beta2"] - 0.99) ** 2
    return (0.1 + 0.5 * (u + 1) ** 2 + 2.0 * (config["momentum"] - 0.9) ** 2
            + _sgd_schedule_loss(config))


def _conditional() -> Problem:
    """An optimizer-choice space whose parameters depend on earlier choices.

    Parameters and when they are active:

        optimizer in {"sgd", "adam", "lbfgs"}              always
        lr        in [1e-5, 1] (log)                        optimizer in {sgd, adam}
        momentum  in [0, 0.99]                              optimizer = sgd
        schedule  in {"constant", "cosine", "step"}         optimizer = sgd
        warmup    in 0..20 (int)                            schedule = cosine (2 levels deep)
        decay     in [0.1, 0.9]                             schedule = step   (2 levels deep)
        beta2     in [0.9, 0.999]                           optimizer = adam
        history   in 1..50 (int)                            optimizer = lbfgs

    With u = log10(lr):

        sgd:   0.1 + 0.5 (u + 1)^2 + 2 (momentum - 0.9)^2 + g(schedule),
               g = 0.3 (constant) | 0.5 ((warmup - 5) / 10)^2 (cosine)
                   | 0.15 + (decay - 0.5)^2 (step)
        adam:  0.4 + 0.5 (u + 3)^2 + 10 (beta2 - 0.99)^2
        lbfgs: 0.6 + ((history - 20) / 20)^2

    Branch minima: sgd+cosine 0.1, sgd+step 0.25, sgd+constant 0.4, adam 0.4, lbfgs 0.6.
    The global minimum is 0.1 at optimizer="sgd", lr=0.1, momentum=0.9, schedule="cosine",
    warmup=5.
    """
    space = Space([
        Categorical("optimizer", ("sgd", "adam", "lbfgs")),
        Float("lr", 1e-5, 1.0, log=True, when={"optimizer": ["sgd", "adam"]}),
        Float("momentum", 0.0, 0.99, when={"optimizer": ["sgd"]}),
        Categorical("schedule", ("constant", "cosine", "step"), when={"optimizer": ["sgd"]}),
        Int("warmup", 0, 20, when={"schedule": ["cosine"]}),
        Float("decay", 0.1, 0.9, when={"schedule": ["step"]}),
        Float("beta2", 0.9, 0.999, when={"optimizer": ["adam"]}),
        Int("history", 1, 50, when={"optimizer": ["lbfgs"]}),
    ])
    argmin = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "cosine",
              "warmup": 5}
    return Problem(
        name="conditional",
        space=space,
        objective=_conditional_objective,
        optimum=0.1,
        description="optimizer choice (sgd/adam/lbfgs) with conditional parameters nested "
                    "two levels deep; global minimum 0.1 at sgd + cosine schedule.",
        optimizers=(argmin,),
    )


# --------------------------------------------------------------------------- tuning task

_SVM_MAX_ITER = 100_000  # bounds the rare slow libsvm solves (poly kernel, large C, few dims)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 x 64), pixels scaled to [0, 1]; loaded once."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _svm_digits_objective(config: Config) -> float:
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    X, y = _digits()
    model = make_pipeline(
        PCA(n_components=config["n_components"], svd_solver="full"),
        SVC(C=config["C"], gamma=config["gamma"], kernel=config["kernel"],
            max_iter=_SVM_MAX_ITER),
    )
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    # One BLAS/OpenMP thread: these small matrices gain nothing from more, and spinning
    # threads on a busy machine made evaluations ten times slower.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        accuracy = cross_val_score(model, X, y, cv=folds).mean()
    return 1.0 - float(accuracy)


def _svm_digits() -> Problem:
    """Tune PCA + SVC on scikit-learn's digits; objective 1 - mean 3-fold CV accuracy.

    Space: C in [1e-2, 1e3] (log), gamma in [1e-4, 1] (log), kernel in {"rbf", "poly",
    "sigmoid"}, n_components in 4..64 (log int). Folds are stratified, shuffled with
    `random_state=0`; PCA uses the exact SVD and libsvm is deterministic, so equal configs
    give equal values. No download: the data ship with scikit-learn. About 0.1 to 0.7 s
    per evaluation on one CPU core; the optimum is unknown (about 0.007 is reachable).
    """
    space = Space([
        Float("C", 1e-2, 1e3, log=True),
        Float("gamma", 1e-4, 1.0, log=True),
        Categorical("kernel", ("rbf", "poly", "sigmoid")),
        Int("n_components", 4, 64, log=True),
    ])
    return Problem(
        name="svm_digits",
        space=space,
        objective=_svm_digits_objective,
        optimum=None,
        description="PCA + SVC on sklearn's digits; minimize 1 - 3-fold CV accuracy over "
                    "log C, log gamma, kernel and the number of PCA components.",
    )


# --------------------------------------------------------------------------- registry

PROBLEMS: Mapping[str, Callable[..., Problem]] = MappingProxyType({
    "branin": _branin,
    "hartmann6": _hartmann6,
    "ackley6": _ackley,
    "rosenbrock4": _rosenbrock,
    "michalewicz5": _michalewicz,
    "griewank6": _griewank,
    "levy4": _levy,
    "styblinskitang4": _styblinski_tang,
    "mixed_cat3": _mixed_cat3,
    "mixed_int": _mixed_int,
    "conditional": _conditional,
    "svm_digits": _svm_digits,
})


def list_problems() -> list[str]:
    """Names accepted by `get_problem`, in registry order."""
    return list(PROBLEMS)


def get_problem(name: str, **kwargs: Any) -> Problem:
    """Build a registered problem.

    Args:
        name: a key of `PROBLEMS`, e.g. "hartmann6".
        **kwargs: `noise_std` (any problem) and the factory's own options, e.g. `dim` for
            "ackley6"; a different `dim` renames the problem ("ackley10").

    Returns:
        A fresh `Problem`.

    Raises:
        ProblemError: on an unknown name or option, or a bad option value.
    """
    factory = PROBLEMS.get(name) if isinstance(name, str) else None
    if factory is None:
        close = difflib.get_close_matches(str(name), list(PROBLEMS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProblemError(
            f"unknown problem {name!r}{hint}; known problems: {list_problems()!r}."
        )
    noise_std = kwargs.pop("noise_std", 0.0)
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ProblemError(
            f"get_problem({name!r}) got unknown option(s) {unknown!r}; it accepts "
            f"{accepted + ['noise_std']!r}."
        )
    return replace(factory(**kwargs), noise_std=noise_std)
