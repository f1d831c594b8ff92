"""The reference loops (BoTorch, Optuna) behind the common ask/tell interface."""

from __future__ import annotations

import logging

import pytest

from bopt.benchmarks import get_problem, references
from bopt.benchmarks.errors import BenchmarkArgumentError
from bopt.benchmarks.references import MissingDependencyError, make_reference, require
from bopt.benchmarks.runner import RunSpec, execute_run, run_benchmark
from bopt.errors import BoptError


@pytest.mark.parametrize("method", ["botorch", "optuna-tpe"])
def test_reference_method_completes_a_branin_run(method):
    record = execute_run(RunSpec("branin", method, 0, 7))
    assert len(record["values"]) == 7 and len(record["suggest_seconds"]) == 7
    assert record["regret"][-1] >= 0
    if method == "botorch":  # Sobol design of bopt's size, then two LogEI rounds
        assert record["model_based"] == [False] * 5 + [True] * 2
        assert record["n_initial"] == 5 and all(f > 0 for f in record["fit_seconds"][5:])
        bopt_design = execute_run(RunSpec("branin", "sobol", 0, 5))["values"]
        assert record["values"][:5] == bopt_design


def test_equal_seeds_give_equal_runs():
    first = execute_run(RunSpec("branin", "optuna-tpe", 3, 12))
    second = execute_run(RunSpec("branin", "optuna-tpe", 3, 12))
    assert first["values"] == second["values"]


def test_optuna_sees_only_active_conditional_parameters():
    space = get_problem("conditional").space
    loop = references.OptunaLoop(space, "optuna-tpe", seed=0)
    for i in range(12):
        config, _ = loop.ask()
        assert space.validate(config) == config  # raises if an inactive one was asked
        loop.tell(config, float(i))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("level_name", ["INFO", "ERROR"])
def test_an_in_process_optuna_run_keeps_the_callers_log_level(level_name, tmp_path):
    optuna = pytest.importorskip("optuna")
    original = optuna.logging.get_verbosity()
    level = getattr(optuna.logging, level_name)
    collect = _Collect()
    logging.getLogger("optuna").addHandler(collect)
    optuna.logging.set_verbosity(level)
    try:
        [record] = run_benchmark(["branin"], ["optuna-tpe"], [0], 3, tmp_path, progress=False)
        assert len(record["values"]) == 3
        assert optuna.logging.get_verbosity() == level
        optuna.create_study()  # the caller's own study logs at the caller's level
        created = [m for m in collect.messages if m.startswith("A new study created")]
        assert len(created) == (1 if level_name == "INFO" else 0)  # the run's study: quiet
        assert not [m for m in collect.messages if "finished with value" in m]
    finally:
        optuna.logging.set_verbosity(original)
        logging.getLogger("optuna").removeHandler(collect)


def test_unknown_reference_method_names_it_and_the_choices():
    space = get_problem("branin").space
    with pytest.raises(BenchmarkArgumentError,
                       match=r"make_reference\(\): unknown reference method 'ei'; choose from "
                             r"\['botorch', 'optuna-tpe', 'optuna-gp'\]\.") as info:
        make_reference("ei", space, seed=0)
    assert isinstance(info.value, BoptError) and isinstance(info.value, ValueError)


def test_missing_optional_library_names_the_extra(without_optuna):
    with pytest.raises(MissingDependencyError, match=r"'optuna-gp' needs the 'optuna'.*"
                                                      r"pip install 'bopt\[bench\]'"):
        require("optuna", "optuna-gp")
    with pytest.raises(ImportError, match="bopt\\[bench\\]"):
        run_benchmark(["branin"], ["optuna-tpe"], 1, 3, "unused", progress=False)
