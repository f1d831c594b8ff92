"""The capture-and-replay logic of `bopt.cuda_graphs`, on the CPU with a stand-in recorder.

A CUDA capture records kernels without running them, and a replay runs what was recorded on
the memory it saw. The stand-in keeps the block at capture without running it and runs it
at each replay, so these tests check the bookkeeping (the state bound to tensors updated in
place, the iteration count, the checks, the eager fallback); whether CUDA can record every
operation is checked in tests/test_cuda.py.
"""

import contextlib
import logging
from dataclasses import dataclass

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import bopt
from bopt import cuda_graphs
from bopt.optim import minimize_batched


# What a CUDA capture refuses, seen as operations on the CPU: a tensor made from host data
# (a Python list or scalar turned into a tensor, which on CUDA is a copy from pageable host
# memory) and results the host must wait for (`.item()`, `nonzero`, a boolean mask, the
# error codes of `cholesky_solve` and `cholesky_inverse`).
_HOST_BOUND = {torch.ops.aten.lift_fresh.default, torch.ops.aten._local_scalar_dense.default,
               torch.ops.aten.nonzero.default, torch.ops.aten.masked_select.default,
               torch.ops.aten.is_nonzero.default, torch.ops.aten.cholesky_solve.default,
               torch.ops.aten.cholesky_inverse.default}

# Random draws: a replay repeats the recorded draw (or, with a generator not registered with
# the graph, the capture fails).
_RANDOM = {torch.ops.aten.normal_, torch.ops.aten.uniform_, torch.ops.aten.randn,
           torch.ops.aten.rand, torch.ops.aten.randint, torch.ops.aten.bernoulli_,
           torch.ops.aten.random_, torch.ops.aten.multinomial, torch.ops.aten.randperm,
           torch.ops.aten.normal}


class HostBoundGuard(TorchDispatchMode):
    """Fails on any operation in `_HOST_BOUND` or `_RANDOM` and on indexing with a boolean
    mask."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        masked = func in (torch.ops.aten.index.Tensor, torch.ops.aten.index_put_.default) and any(
            i is not None and i.dtype == torch.bool for i in args[1])
        if func in _HOST_BOUND or masked or func._overloadpacket in _RANDOM:
            raise AssertionError(f"{func} in a recorded iteration: a CUDA capture refuses it")
        return func(*args, **(kwargs or {}))


class CpuRecorder:
    """Stands in for a CUDA graph: `capture` keeps the block, `replay` runs it, failing on
    any operation that a CUDA capture would refuse."""

    log: list[str] = []

    def capture(self, block):
        self.block = block
        CpuRecorder.log.append("capture")

    def replay(self):
        CpuRecorder.log.append("replay")
        with HostBoundGuard():
            self.block()


class RefusingRecorder:
    def __init__(self, error=RuntimeError("operation not permitted when stream is capturing")):
        self.error = error

    def capture(self, block):
        raise self.error

    def replay(self):  # pragma: no cover - never reached
        raise AssertionError("replayed a failed capture")


@pytest.fixture
def graphs_on_cpu(monkeypatch):
    """Captures tried on the CPU, with the stand-in recorder and no earlier failures."""
    monkeypatch.setattr(cuda_graphs, "_DEVICE_TYPES", ("cuda", "cpu"))
    monkeypatch.setattr(cuda_graphs, "_failures", {})
    monkeypatch.setattr(cuda_graphs, "new_recorder", CpuRecorder)
    monkeypatch.delenv(cuda_graphs.ENV, raising=False)
    CpuRecorder.log = []
    return CpuRecorder.log


def test_captures_are_tried_on_cuda_only_for_labelled_long_loops(monkeypatch):
    monkeypatch.setattr(cuda_graphs, "_failures", {})
    monkeypatch.delenv(cuda_graphs.ENV, raising=False)
    cuda = torch.device("cuda")  # a device object only: nothing here touches CUDA
    assert cuda_graphs.eligible("fit", cuda, 3)
    assert not cuda_graphs.eligible("fit", cuda, 2)  # no replay after the recorded iteration
    assert not cuda_graphs.eligible(None, cuda, 100)
    assert not cuda_graphs.eligible("fit", torch.device("cpu"), 100)
    monkeypatch.setenv(cuda_graphs.ENV, "0")
    assert not cuda_graphs.eligible("fit", cuda, 100)
    monkeypatch.setenv(cuda_graphs.ENV, "1")
    cuda_graphs._failures["fit"] = "refused"
    assert not cuda_graphs.eligible("fit", cuda, 100)
    assert cuda_graphs.eligible("ascent", cuda, 100)


@dataclass
class Counter:
    value: torch.Tensor
    steps: torch.Tensor


def _step(state: Counter) -> None:
    state.value = state.value * 2 + 1  # a new tensor each time, as the solver's fields
    state.steps = state.steps + 1


def test_a_replay_advances_the_state_in_place_from_where_the_last_one_ended(graphs_on_cpu):
    state = Counter(torch.tensor([0.0, 1.0]), torch.tensor(0))
    replay = cuda_graphs.capture("toy", lambda: _step(state), state, ("value", "steps"), 3)
    assert graphs_on_cpu == ["capture"] and int(state.steps) == 0  # recorded, not run
    first = state.value
    replay()
    assert state.value is first  # the replay wrote into the tensors it was recorded on
    replay()
    torch.testing.assert_close(state.value, torch.tensor([63.0, 127.0]))  # x -> 2x + 1, 6 times
    assert int(state.steps) == 6


def test_a_refused_capture_leaves_the_state_and_is_logged_once(graphs_on_cpu, monkeypatch,
                                                               caplog):
    monkeypatch.setattr(cuda_graphs, "new_recorder", RefusingRecorder)
    state = Counter(torch.tensor([1.0]), torch.tensor(4))
    with caplog.at_level(logging.WARNING, logger="bopt"):
        for _ in range(2):
            assert cuda_graphs.capture("toy", lambda: _step(state), state,
                                       ("value", "steps"), 3) is None
    assert float(state.value) == 1.0 and int(state.steps) == 4
    assert cuda_graphs.failures() == {"toy": "operation not permitted when stream is capturing"}
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA graph capture of the toy loop failed (operation not permitted when stream is "
        "capturing); it runs eagerly from now on in this process"]


def test_a_programming_error_during_capture_surfaces(graphs_on_cpu, monkeypatch):
    monkeypatch.setattr(cuda_graphs, "new_recorder", lambda: RefusingRecorder(TypeError("bug")))
    state = Counter(torch.tensor([1.0]), torch.tensor(0))
    with pytest.raises(TypeError, match="bug"):
        cuda_graphs.capture("toy", lambda: _step(state), state, ("value", "steps"), 3)
    assert cuda_graphs.failures() == {}


def test_running_out_of_memory_during_a_capture_is_not_a_refusal(graphs_on_cpu, monkeypatch):
    """It reaches the round's out-of-memory handling, and later captures are still tried."""
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)("out of memory")
    monkeypatch.setattr(cuda_graphs, "new_recorder", lambda: RefusingRecorder(oom))
    state = Counter(torch.tensor([1.0]), torch.tensor(0))
    with pytest.raises(type(oom)):
        cuda_graphs.capture("toy", lambda: _step(state), state, ("value", "steps"), 3)
    assert cuda_graphs.failures() == {} and float(state.value) == 1.0


def _rosenbrock(z):
    return ((1 - z[..., :-1]) ** 2 + 100 * (z[..., 1:] - z[..., :-1] ** 2) ** 2).sum(-1)


def _solve(graph, **kw):
    x0 = torch.rand(12, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lo, hi = torch.full((4,), -2.0, dtype=torch.float64), torch.full((4,), 2.0, dtype=torch.float64)
    return minimize_batched(_rosenbrock, x0 * 4 - 2, lo, hi, graph=graph, **kw)


@pytest.mark.parametrize("kw", [dict(max_iter=23), dict(max_iter=200, dominated=5.0),
                                dict(max_iter=60, check_every=4, patience=1)])
def test_the_replayed_solver_takes_the_eager_solvers_steps(graphs_on_cpu, kw):
    """Bit for bit, with the same iteration count, for an iteration cap that is not a
    multiple of the checks' interval and for early stops."""
    x_eager, f_eager, it_eager = _solve(None, **kw)
    assert graphs_on_cpu == []
    x, f, it = _solve("test", **kw)
    assert graphs_on_cpu == ["capture"] + ["replay"] * (it - 1)  # all but the first replayed
    assert it == it_eager and torch.equal(x, x_eager) and torch.equal(f, f_eager)


def test_a_refused_capture_runs_the_solver_eagerly(graphs_on_cpu, monkeypatch):
    monkeypatch.setattr(cuda_graphs, "new_recorder", RefusingRecorder)
    x_eager, f_eager, it_eager = _solve(None, max_iter=40)
    x, f, it = _solve("test", max_iter=40)
    assert it == it_eager and torch.equal(x, x_eager) and torch.equal(f, f_eager)
    assert list(cuda_graphs.failures()) == ["test"]


@pytest.mark.parametrize("acquisition", ["ei", "ucb", "ts", "nei"])
def test_a_suggest_with_replayed_fit_and_ascent_proposes_what_the_eager_one_does(
        graphs_on_cpu, monkeypatch, acquisition):
    """The fits (cold and warm) and the acquisition ascents capture, their replays touch no
    host data (the continuous columns, 0, 1 and 3, are not contiguous), and the proposals are
    those of the eager loops."""
    space = bopt.Space([bopt.Float("x", -2.0, 2.0), bopt.Int("k", 1, 5),
                        bopt.Categorical("c", ["a", "b"]),
                        bopt.Float("y", 0.0, 1.0, when={"c": "a"})])

    def run(on: bool) -> list[dict]:
        monkeypatch.setattr(cuda_graphs, "_DEVICE_TYPES", ("cuda", "cpu") if on else ("cuda",))
        opt = bopt.Optimizer(space, acquisition, seed=1, n_initial=5, num_raw_samples=64)
        opt.minimize(lambda p: (p["x"] - 0.4) ** 2 + 0.1 * p["k"] + p.get("y", 0.5), 9,
                     progress=False)
        batch = opt.suggest(3)  # with pending points: the batch criteria's ascents too
        return [t.params for t in opt.history] + [t.params for t in batch]

    labels = []
    real_capture = cuda_graphs.capture
    monkeypatch.setattr(cuda_graphs, "capture",
                        lambda label, *a: labels.append(label) or real_capture(label, *a))
    eager = run(False)
    assert labels == []
    replayed = run(True)
    # The recorded fit iterations solve with the factor by triangular solves (what a CUDA
    # capture accepts), not by `cholesky_solve`: the same up to rounding.
    assert [{k: v for k, v in p.items() if isinstance(v, (int, str))} for p in replayed] == [
        {k: v for k, v in p.items() if isinstance(v, (int, str))} for p in eager]
    def floats(trials):
        return [v for p in trials for k, v in sorted(p.items()) if isinstance(v, float)]

    assert floats(replayed) == pytest.approx(floats(eager), abs=1e-6)
    assert {"fit", "ascent"} <= set(labels) and graphs_on_cpu.count("replay") > len(labels)


def test_fits_past_the_size_bound_run_eagerly(graphs_on_cpu, monkeypatch):
    """There a fit's solves cost more than the launches a recording saves, and a recorded
    iteration solves with four times the flops."""
    from bopt import model
    from bopt.layout import Layout

    layout = Layout(d=2, continuous=(0, 1))
    X = torch.rand(12, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Y = ((X - 0.3) ** 2).sum(-1, keepdim=True)
    Y = (Y - Y.mean()) / Y.std()
    model.fit_gp(X, Y, layout)
    assert "capture" in graphs_on_cpu
    graphs_on_cpu.clear()
    monkeypatch.setattr(model, "_GRAPH_MAX_N", 11)
    model.fit_gp(X, Y, layout)
    assert graphs_on_cpu == []


@pytest.mark.parametrize("recording", [False, True])
def test_solves_with_the_factor_match_the_inverse_recorded_or_not(monkeypatch, recording):
    from bopt.model import factor_inverse, factor_solve

    monkeypatch.setattr(cuda_graphs, "recording", lambda: recording)
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 7, 7, generator=g, dtype=torch.float64)
    K = A @ A.mT + 0.5 * torch.eye(7, dtype=torch.float64)
    B = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    L = torch.linalg.cholesky(K)
    eye = torch.eye(7, dtype=torch.float64)
    with HostBoundGuard() if recording else contextlib.nullcontext():
        solved, inverse = factor_solve(L, B), factor_inverse(L, eye)
    torch.testing.assert_close(solved, torch.linalg.solve(K, B), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(inverse, torch.linalg.inv(K), atol=1e-10, rtol=1e-10)
