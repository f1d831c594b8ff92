"""Training-budget tasks: objectives that report a value after every unit of budget.

Each `BudgetTask` trains one configuration step by step: `task.train(params, seed)` yields
the validation value after budget 1, 2, ..., `max_budget` (epochs, boosting iterations or a
fidelity step); a scheduler stops pulling when it stops the trial. `task.test(params,
seed)` trains the chosen configuration to the full budget once more and scores it on data
the search never saw.

- "augmented_hartmann" and "augmented_branin": BoTorch's multi-fidelity test functions,
  fidelity `budget / max_budget`; known optima, cheap curves for tests.
- "mlp_digits": a torch MLP on scikit-learn's bundled digits (learning rate, weight decay,
  batch size, width, dropout, a learning-rate schedule with a conditional parameter),
  epochs as the budget; validation cross-entropy as the value, test error as the score.
- "hgb_digits": scikit-learn's HistGradientBoostingClassifier, boosting iterations as the
  budget (`warm_start`); validation log loss, test error.

The digits are split once (stratified, fixed seed) into 60% training, 20% validation and
20% test: the search sees only the validation values, the test split is scored once.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from bopt.benchmarks.problems import ProblemError
from bopt.space import Categorical, Float, Int, Space

Config = Mapping[str, Any]


@dataclass(frozen=True)
class BudgetTask:
    """A tuning task whose trials report a value after every unit of budget.

    Attributes:
        name: the registry key.
        space: what is tuned.
        max_budget: the full budget (integer units).
        train: `(params, seed) -> iterator` of the validation value (lower is better) after
            budget 1, 2, ..., `max_budget`.
        test: `(params, seed) -> float`, the full-budget configuration's held-out score
            (lower is better; the test error for the real tasks), or None.
        optimum: the best full-budget value where known (synthetic tasks).
        description: one line.
    """

    name: str
    space: Space
    max_budget: int
    train: Callable[[Config, int], Iterator[float]]
    test: Callable[[Config, int], float] | None
    optimum: float | None
    description: str

    def full_value(self, params: Config, seed: int = 0) -> float:
        """The validation value after the full budget."""
        value = math.nan
        for value in self.train(params, seed):
            pass
        return value


# --------------------------------------------------------------------------- synthetic


def _augmented(function_name: str, names: tuple[str, ...],
               max_budget: int) -> Callable[[Config, int], Iterator[float]]:
    def train(params: Config, seed: int) -> Iterator[float]:
        import torch
        from botorch.test_functions import multi_fidelity

        function = getattr(multi_fidelity, function_name)()
        x = [float(params[n]) for n in names]
        for budget in range(1, max_budget + 1):
            point = torch.tensor([[*x, budget / max_budget]], dtype=torch.float64)
            yield float(function.evaluate_true(point)[0])

    return train


def _augmented_hartmann(max_budget: int = 81) -> BudgetTask:
    names = tuple(f"x{i}" for i in range(6))
    return BudgetTask(
        "augmented_hartmann", Space([Float(n, 0.0, 1.0) for n in names]), max_budget,
        _augmented("AugmentedHartmann", names, max_budget), None,
        optimum=-3.32237,
        description="BoTorch's AugmentedHartmann (6-d), fidelity budget / max_budget")


def _augmented_branin(max_budget: int = 81) -> BudgetTask:
    return BudgetTask(
        "augmented_branin", Space([Float("x0", -5.0, 10.0), Float("x1", 0.0, 15.0)]),
        max_budget, _augmented("AugmentedBranin", ("x0", "x1"), max_budget), None,
        optimum=0.397887,
        description="BoTorch's AugmentedBranin (2-d), fidelity budget / max_budget; the "
                    "low-fidelity optimum lies elsewhere")


# --------------------------------------------------------------------------- digits splits


@functools.cache
def _digit_splits() -> tuple[np.ndarray, ...]:
    """`(X_train, y_train, X_val, y_val, X_test, y_test)`: 60/20/20, stratified, seed 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                      random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.25,
                                                      stratify=y_rest, random_state=0)
    return X_train, y_train, X_val, y_val, X_test, y_test


# --------------------------------------------------------------------------- MLP


def _mlp_space() -> Space:
    return Space([
        Float("lr", 1e-4, 1e-1, log=True),
        Float("weight_decay", 1e-6, 1e-1, log=True),
        Int("batch_size", 16, 256, log=True),
        Int("width", 16, 512, log=True),
        Float("dropout", 0.0, 0.6),
        Categorical("schedule", ("constant", "cosine", "step")),
        Float("step_gamma", 0.1, 0.9, when={"schedule": "step"}),
    ])


def _lr_factor(params: Config, epoch: int, max_budget: int) -> float:
    """The schedule's learning-rate multiplier for `epoch` (0-based) of a full run."""
    if params["schedule"] == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max_budget))
    if params["schedule"] == "step":  # decay by step_gamma at every third of the run
        return params["step_gamma"] ** (3 * epoch // max_budget)
    return 1.0


def _mlp_epochs(params: Config, seed: int, max_budget: int, device: str,
                evaluate: str) -> Iterator[float]:
    """Train the MLP epoch by epoch; yield the validation cross-entropy (or, with
    `evaluate="test"`, the test error) after each.

    The trial keeps its own random state: every epoch runs inside `torch.random.fork_rng`
    with the trial's CPU state swapped in, and yields outside it, so interleaved trials, or
    whatever the caller does between epochs, neither disturb the curve nor are disturbed
    (on CUDA the dropout draws use the device's generator, which is not swapped).
    """
    import torch

    X_train, y_train, X_val, y_val, X_test, y_test = _digit_splits()
    X_eval, y_eval = (X_val, y_val) if evaluate == "val" else (X_test, y_test)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    gen = torch.Generator().manual_seed(seed)
    width = int(params["width"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(),
                                    torch.nn.Dropout(params["dropout"]),
                                    torch.nn.Linear(width, 10)).to(dev)
        state = torch.get_rng_state()
    opt = torch.optim.AdamW(model.parameters(), lr=params["lr"],
                            weight_decay=params["weight_decay"])
    xt, yt = torch.from_numpy(X_train).to(dev), torch.from_numpy(y_train).to(dev)
    xe, ye = torch.from_numpy(X_eval).to(dev), torch.from_numpy(y_eval).to(dev)
    for epoch in range(max_budget):
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.set_rng_state(state)
            _mlp_epoch(model, opt, xt, yt, gen, int(params["batch_size"]),
                       params["lr"] * _lr_factor(params, epoch, max_budget))
            state = torch.get_rng_state()
        yield _mlp_evaluate(model, xe, ye, evaluate)


def _mlp_epoch(model, opt, xt, yt, gen, batch: int, lr: float) -> None:
    import torch

    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    order = torch.randperm(xt.shape[0], generator=gen).to(xt.device)
    for start in range(0, xt.shape[0], batch):
        idx = order[start:start + batch]
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()


def _mlp_evaluate(model, xe, ye, evaluate: str) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(xe)
        if evaluate == "val":  # a diverged run reads as very bad, not NaN
            return min(float(torch.nn.functional.cross_entropy(logits, ye)), 10.0)
        return float((logits.argmax(1) != ye).double().mean())


def _mlp_digits(max_budget: int = 81, device: str = "cpu") -> BudgetTask:
    def train(params: Config, seed: int) -> Iterator[float]:
        return _mlp_epochs(params, seed, max_budget, device, "val")

    def test(params: Config, seed: int) -> float:
        error = math.nan
        for error in _mlp_epochs(params, seed, max_budget, device, "test"):
            pass
        return error

    return BudgetTask(
        "mlp_digits", _mlp_space(), max_budget, train, test, optimum=None,
        description="a one-hidden-layer torch MLP (AdamW) on sklearn's digits; validation "
                    "cross-entropy per epoch; test error of the chosen configuration")


# --------------------------------------------------------------------------- boosting


def _hgb_iterations(params: Config, seed: int, max_budget: int,
                    evaluate: str) -> Iterator[float]:
    """Boost one iteration per budget unit (warm start); yield the validation log loss,
    or with `evaluate="test"` the test error, after each."""
    import warnings

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss
    from threadpoolctl import threadpool_limits

    X_train, y_train, X_val, y_val, X_test, y_test = _digit_splits()
    X_eval, y_eval = (X_val, y_val) if evaluate == "val" else (X_test, y_test)
    model = HistGradientBoostingClassifier(
        learning_rate=params["learning_rate"], max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=params["l2_regularization"], max_features=params["max_features"],
        early_stopping=False, warm_start=True, max_iter=1, random_state=seed)
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for budget in range(1, max_budget + 1):
            model.set_params(max_iter=budget)
            model.fit(X_train, y_train)
            if evaluate == "val":
                yield float(log_loss(y_eval, model.predict_proba(X_eval), labels=range(10)))
            else:
                yield float(np.mean(model.predict(X_eval) != y_eval))


def _hgb_digits(max_budget: int = 81) -> BudgetTask:
    space = Space([
        Float("learning_rate", 0.01, 1.0, log=True),
        Int("max_leaf_nodes", 4, 64, log=True),
        Int("min_samples_leaf", 2, 64, log=True),
        Float("l2_regularization", 1e-6, 10.0, log=True),
        Float("max_features", 0.2, 1.0),
    ])

    def train(params: Config, seed: int) -> Iterator[float]:
        return _hgb_iterations(params, seed, max_budget, "val")

    def test(params: Config, seed: int) -> float:
        error = math.nan
        for error in _hgb_iterations(params, seed, max_budget, "test"):
            pass
        return error

    return BudgetTask(
        "hgb_digits", space, max_budget, train, test, optimum=None,
        description="HistGradientBoostingClassifier on sklearn's digits, one boosting "
                    "iteration per budget unit; validation log loss; test error")


# --------------------------------------------------------------------------- registry

BUDGET_TASKS: Mapping[str, Callable[..., BudgetTask]] = MappingProxyType({
    "augmented_hartmann": _augmented_hartmann,
    "augmented_branin": _augmented_branin,
    "mlp_digits": _mlp_digits,
    "hgb_digits": _hgb_digits,
})


def get_budget_task(name: str, **kwargs: Any) -> BudgetTask:
    """Build a registered task; `max_budget` (and `device` for "mlp_digits") may be given.

    Raises:
        ProblemError: an unknown name or option.
    """
    if name not in BUDGET_TASKS:
        raise ProblemError(f"unknown budget task {name!r}; known: {sorted(BUDGET_TASKS)!r}.")
    accepted = list(inspect.signature(BUDGET_TASKS[name]).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ProblemError(f"get_budget_task({name!r}) got unknown option(s) {unknown!r}; it "
                           f"accepts {accepted!r}.")
    return BUDGET_TASKS[name](**kwargs)
