"""Tests of bopt.benchmarks.problems: known optima, agreement with BoTorch, seeded noise,
the registry's errors and the offline tuning task."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
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

from bopt.benchmarks import PROBLEMS, Problem, ProblemError, get_problem, list_problems
from bopt.errors import BoptError, ParameterError

CONTINUOUS = {
    "branin": Branin(),
    "hartmann6": Hartmann(dim=6),
    "ackley6": Ackley(dim=6),
    "rosenbrock4": Rosenbrock(dim=4),
    "michalewicz5": Michalewicz(dim=5),
    "griewank6": Griewank(dim=6),
    "levy4": Levy(dim=4),
    "styblinskitang4": StyblinskiTang(dim=4),
}
MIXED = ("mixed_cat3", "mixed_int", "conditional")


def _optimum_close(value: float, optimum: float) -> None:
    # BoTorch states optima to about 6 significant digits (Hartmann-6: -3.32237 against
    # -3.3223680 at its optimizer), hence the relative part.
    assert value == pytest.approx(optimum, abs=1e-6, rel=1e-6)


# --------------------------------------------------------------------------- registry


def test_registry_builds_every_listed_problem() -> None:
    assert list_problems() == [*CONTINUOUS, *MIXED, "svm_digits"]
    for name in list_problems():
        problem = get_problem(name)
        assert isinstance(problem, Problem)
        assert problem.name == name
        assert problem.noise_std == 0.0
    with pytest.raises(TypeError):
        PROBLEMS["mine"] = lambda: None  # type: ignore[index]


def test_unknown_problem_name_lists_known_names() -> None:
    with pytest.raises(ProblemError, match=r"unknown problem 'brannin' \(did you mean "
                                           r"'branin'\?\); known problems: \['branin', "):
        get_problem("brannin")
    with pytest.raises(ValueError, match="svm_digits"):  # ProblemError is a ValueError
        get_problem("nope")
    assert issubclass(ProblemError, BoptError)


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ProblemError, match=r"get_problem\('branin'\) got unknown option\(s\) "
                                           r"\['dim'\]; it accepts \['noise_std'\]"):
        get_problem("branin", dim=3)


def test_bad_dim_is_rejected() -> None:
    with pytest.raises(ProblemError, match=r"rosenbrock: dim must be an int >= 2, got int 1"):
        get_problem("rosenbrock4", dim=1)


@pytest.mark.parametrize("noise_std", [-0.1, math.nan, math.inf, "0.1"])
def test_bad_noise_std_is_rejected(noise_std: object) -> None:
    with pytest.raises(ProblemError, match=r"problem 'branin': noise_std must be a finite "
                                           r"number >= 0, got"):
        get_problem("branin", noise_std=noise_std)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ParameterError, match="x1"):
        get_problem("branin")({"x0": 0.0})


# --------------------------------------------------------------------------- continuous


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_problem_matches_botorch(name: str) -> None:
    problem = get_problem(name)
    function = CONTINUOUS[name].to(torch.float64)
    names = [f"x{i}" for i in range(function.dim)]
    assert problem.space.names == tuple(names)
    assert [[p.low, p.high] for p in problem.space] == function.bounds.T.tolist()
    assert problem.optimum == function.optimal_value

    configs = problem.space.sample(16, seed=0)
    X = torch.tensor([[c[n] for n in names] for c in configs], dtype=torch.float64)  # n x d
    ours = torch.tensor([problem(c) for c in configs], dtype=torch.float64)  # n
    torch.testing.assert_close(ours, function(X), atol=1e-12, rtol=0.0)


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_problem_attains_its_optimum(name: str) -> None:
    problem = get_problem(name)
    function = CONTINUOUS[name]
    stated = [[o[f"x{i}"] for i in range(function.dim)] for o in problem.optimizers]
    try:
        assert stated == function.optimizers.tolist()
    except NotImplementedError:  # BoTorch lists none for Michalewicz-5; ours is computed
        assert len(stated) == 1
    for config in problem.optimizers:
        _optimum_close(problem(config), problem.optimum)
    assert min(map(problem, problem.space.sample(200, seed=0))) > problem.optimum


@pytest.mark.parametrize("dim", [2, 5, 10])
def test_michalewicz_computed_argmin_reaches_botorch_optimum(dim: int) -> None:
    problem = get_problem("michalewicz5", dim=dim)
    assert problem.name == f"michalewicz{dim}"
    (argmin,) = problem.optimizers
    _optimum_close(problem(argmin), Michalewicz(dim=dim).optimal_value)


def test_michalewicz_without_botorch_optimum_uses_the_computed_one() -> None:
    problem = get_problem("michalewicz5", dim=3)
    (argmin,) = problem.optimizers
    assert problem(argmin) == problem.optimum
    assert min(map(problem, problem.space.sample(500, seed=0))) > problem.optimum


def test_dim_option_resizes_the_problem() -> None:
    problem = get_problem("ackley6", dim=3)
    assert problem.name == "ackley3"
    assert problem.space.names == ("x0", "x1", "x2")
    assert problem({"x0": 0.0, "x1": 0.0, "x2": 0.0}) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- mixed


@pytest.mark.parametrize("name", MIXED)
def test_mixed_problem_optimum_is_attained_and_never_beaten(name: str) -> None:
    problem = get_problem(name)
    assert problem.optimizers
    for config in problem.optimizers:
        assert problem.space.validate(config) == config
        assert problem(config) == pytest.approx(problem.optimum, abs=1e-12)
    values = [problem(c) for c in problem.space.sample(2000, seed=0)]
    assert min(values) > problem.optimum


def test_mixed_cat3_closed_form_per_combination() -> None:
    # The docstring's formula, restated: minimum b(k) at x = s(k) for level indices k.
    problem = get_problem("mixed_cat3")
    levels = ("a", "b", "c")
    offset = {}
    for k in itertools.product(range(3), repeat=3):
        shift = [(0.2, 0.5, 0.8)[(k[j] + k[(j + 1) % 3]) % 3] for j in range(3)]
        config = {**{f"x{j}": shift[j] for j in range(3)},
                  **{f"c{j}": levels[k[j]] for j in range(3)}}
        offset[k] = 0.5 * ((k[0] - 1) ** 2 + (k[1] - k[0] - 1) ** 2 + (k[1] + k[2] - 2) ** 2)
        assert problem(config) == pytest.approx(offset[k], abs=1e-12)
    best, *rest = sorted(offset.items(), key=lambda item: item[1])
    assert best == ((1, 2, 0), 0.0)
    assert rest[0][1] >= best[1] + 0.5  # every other combination is clearly worse
    for config in problem.space.sample(2000, seed=1):
        k = tuple(levels.index(config[f"c{j}"]) for j in range(3))
        assert problem(config) >= offset[k]


def test_mixed_int_best_per_solver() -> None:
    problem = get_problem("mixed_int")
    best = {  # solver: (value, layers, lr, dropout), from the docstring
        "sgd": (0.7, 8, 1e-1, 0.1), "momentum": (0.4, 6, 10**-1.5, 0.3),
        "adam": (0.1, 3, 1e-3, 0.5), "rmsprop": (0.3, 4, 10**-2.5, 0.2),
    }
    for solver, (value, layers, lr, dropout) in best.items():
        config = {"solver": solver, "layers": layers, "lr": lr, "dropout": dropout}
        assert problem(config) == pytest.approx(value, abs=1e-12)
    for config in problem.space.sample(2000, seed=1):
        assert problem(config) >= best[config["solver"]][0]


def test_conditional_branch_minima() -> None:
    problem = get_problem("conditional")
    sgd = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}
    branches = [  # (config, branch minimum), from the docstring
        ({**sgd, "schedule": "cosine", "warmup": 5}, 0.1),
        ({**sgd, "schedule": "step", "decay": 0.5}, 0.25),
        ({**sgd, "schedule": "constant"}, 0.4),
        ({"optimizer": "adam", "lr": 1e-3, "beta2": 0.99}, 0.4),
        ({"optimizer": "lbfgs", "history": 20}, 0.6),
    ]
    for config, value in branches:
        assert problem(config) == pytest.approx(value, abs=1e-12)

    def branch(config: dict) -> int:
        return next(i for i, (c, _) in enumerate(branches)
                    if c["optimizer"] == config["optimizer"]
                    and c.get("schedule") == config.get("schedule"))

    depths = set()
    for config in problem.space.sample(2000, seed=1):
        assert problem(config) >= branches[branch(config)][1]
        depths.add(len(config))
    assert max(depths) == 5  # optimizer, lr, momentum, schedule, warmup/decay


# --------------------------------------------------------------------------- noise, regret


def test_noise_is_seeded_and_scales_with_noise_std() -> None:
    config = get_problem("branin").space.sample(1, seed=0)[0]
    clean = get_problem("branin")(config)
    noisy = get_problem("branin", noise_std=0.1)
    louder = get_problem("branin", noise_std=0.2)
    state = torch.random.get_rng_state()

    assert noisy.evaluate(config, seed=3) == noisy.evaluate(config, seed=3)
    assert noisy.evaluate(config, seed=3) != noisy.evaluate(config, seed=4)
    assert noisy.evaluate(config, seed=3) != clean
    assert noisy(config, generator=torch.Generator().manual_seed(3)) == noisy.evaluate(config, 3)
    # Same seed, same standard normal draw: the deviation doubles with noise_std.
    assert louder.evaluate(config, seed=3) - clean == pytest.approx(
        2 * (noisy.evaluate(config, seed=3) - clean), abs=1e-12)
    assert get_problem("branin").evaluate(config, seed=3) == clean
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched


def test_noise_has_the_stated_standard_deviation() -> None:
    problem = get_problem("mixed_int", noise_std=0.5)
    (config,) = problem.optimizers
    generator = torch.Generator().manual_seed(0)
    noise = torch.tensor([problem(config, generator=generator) for _ in range(4000)]) - 0.1
    # 4000 draws: the standard error of the mean is 0.008, of the std about 0.006.
    assert abs(noise.mean().item()) < 0.04
    assert noise.std().item() == pytest.approx(0.5, abs=0.03)


def test_noisy_problem_without_generator_is_rejected() -> None:
    problem = get_problem("branin", noise_std=0.1)
    with pytest.raises(ProblemError, match=r"problem 'branin' is noisy \(noise_std=0.1\) but "
                                           r"no generator was passed"):
        problem(problem.optimizers[0])


def test_regret() -> None:
    problem = get_problem("hartmann6")
    assert problem.regret(problem.optimum + 0.25) == pytest.approx(0.25, abs=1e-12)
    with pytest.raises(ProblemError, match=r"problem 'svm_digits' has no known optimum"):
        get_problem("svm_digits").regret(0.1)


# --------------------------------------------------------------------------- tuning task


def test_svm_digits_is_a_deterministic_error_rate() -> None:
    problem = get_problem("svm_digits")
    assert problem.optimum is None
    assert {type(p).__name__ for p in problem.space} == {"Float", "Int", "Categorical"}
    config = {"C": 10.0, "gamma": 0.05, "kernel": "rbf", "n_components": 32}
    value = problem(config)
    assert 0.0 <= value <= 1.0
    assert value < 0.05  # a sensible RBF SVM classifies digits at about 99% accuracy
    assert problem(config) == value


def test_benchmarks_are_reachable_from_a_plain_import_bopt(tmp_path):
    code = ("import bopt, sys; assert 'bopt.benchmarks' not in sys.modules; "
            "print(bopt.benchmarks.list_problems()[0])\n"
            "try:\n    bopt.no_such_thing\nexcept AttributeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)  # the installed package, not the source folder
    assert out.stdout.splitlines() == ["branin", "module 'bopt' has no attribute 'no_such_thing'"]
