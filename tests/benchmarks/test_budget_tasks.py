"""The training-budget tasks: curves, determinism, held-out scoring and the known optima."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from bopt.benchmarks.budget_tasks import BUDGET_TASKS, _digit_splits, get_budget_task
from bopt.benchmarks.problems import ProblemError

MLP = {"lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64, "width": 64, "dropout": 0.1,
       "schedule": "cosine"}
HGB = {"learning_rate": 0.2, "max_leaf_nodes": 15, "min_samples_leaf": 10,
       "l2_regularization": 1e-3, "max_features": 0.8}


def test_the_digits_are_split_once_into_disjoint_train_validation_and_test():
    X_train, y_train, X_val, y_val, X_test, y_test = _digit_splits()
    assert (len(X_train), len(X_val), len(X_test)) == (1077, 360, 360)
    rows = {tuple(r) for r in X_train}
    assert not rows & {tuple(r) for r in X_test} and not rows & {tuple(r) for r in X_val}
    assert set(np.unique(y_test)) == set(range(10))  # stratified


def test_the_mlp_learns_reproducibly_and_is_scored_once_on_test_data():
    task = get_budget_task("mlp_digits", max_budget=4)
    assert task.space.validate(MLP) and task.space["step_gamma"].when == {"schedule": ("step",)}
    curve = list(task.train(MLP, 0))
    assert len(curve) == 4 and all(math.isfinite(v) for v in curve)
    assert curve[-1] < curve[0] < math.log(10) + 0.5  # cross-entropy falls from ~log(10)
    assert curve == list(task.train(MLP, 0))  # seeded: equal seeds, equal curves
    assert curve != list(task.train(MLP, 1))
    error = task.test(MLP, 0)
    assert 0.0 <= error < 0.5


def test_interleaved_trials_keep_their_own_curves_and_leave_grad_mode_alone():
    task = get_budget_task("mlp_digits", max_budget=3)
    other = {**MLP, "width": 32, "dropout": 0.4}
    a, b = task.train(MLP, 0), task.train(other, 1)
    mixed_a, mixed_b = [], []
    for _ in range(3):
        mixed_a.append(next(a))
        torch.rand(7)  # the caller's own draws between epochs
        assert torch.is_grad_enabled()  # a paused trial does not switch gradients off
        mixed_b.append(next(b))
    assert mixed_a == list(task.train(MLP, 0)) and mixed_b == list(task.train(other, 1))


def test_the_step_schedule_uses_its_conditional_decay():
    task = get_budget_task("mlp_digits", max_budget=3)
    step = {**MLP, "schedule": "step", "step_gamma": 0.1}
    const = {**MLP, "schedule": "constant"}
    first = list(itertools.islice(task.train(step, 0), 1))
    assert first == list(itertools.islice(task.train(const, 0), 1))  # no decay in epoch 1
    assert list(task.train(step, 0))[-1] != list(task.train(const, 0))[-1]


def test_boosting_adds_one_iteration_per_budget_unit():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    task = get_budget_task("hgb_digits", max_budget=3)
    curve = list(task.train(HGB, 0))
    assert len(curve) == 3 and curve[2] < curve[0]
    X_train, y_train, X_val, y_val, *_ = _digit_splits()
    cold = HistGradientBoostingClassifier(
        learning_rate=0.2, max_leaf_nodes=15, min_samples_leaf=10, l2_regularization=1e-3,
        max_features=0.8, max_iter=3, early_stopping=False, random_state=0).fit(X_train, y_train)
    assert curve[2] == pytest.approx(log_loss(y_val, cold.predict_proba(X_val)), rel=1e-9)
    assert 0.0 <= task.test(HGB, 0) < 0.5


@pytest.mark.parametrize("name, reference", [("augmented_hartmann", "Hartmann"),
                                             ("augmented_branin", "Branin")])
def test_synthetic_tasks_end_at_botorchs_function_and_know_its_optimum(name, reference):
    from botorch import test_functions

    task = get_budget_task(name, max_budget=5)
    function = getattr(test_functions, reference)()
    params = task.space.decode(torch.rand(3, len(task.space), generator=torch.Generator()
                                          .manual_seed(0), dtype=torch.float64))
    for p in params:
        x = torch.tensor([[p[n] for n in task.space.names]], dtype=torch.float64)
        curve = list(task.train(p, 0))
        assert len(curve) == 5
        assert curve[-1] == pytest.approx(float(function.evaluate_true(x)[0]), rel=1e-6)
    assert task.optimum == pytest.approx(function.optimal_value, abs=1e-4)


def test_unknown_tasks_and_options_are_refused():
    with pytest.raises(ProblemError, match="unknown budget task 'mlp'"):
        get_budget_task("mlp")
    with pytest.raises(ProblemError, match=r"unknown option\(s\) \['epochs'\]"):
        get_budget_task("mlp_digits", epochs=3)
    assert set(BUDGET_TASKS) == {"augmented_hartmann", "augmented_branin", "mlp_digits",
                                 "hgb_digits"}
