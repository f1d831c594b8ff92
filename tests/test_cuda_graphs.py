"""The capture-and-replay logic of `bopt.cuda_graphs`, on the CPU with a stand-in recorder.

A CUDA capture records kernels without running them, and a replay runs what was recorded on
the memory it saw. The stand-in keeps the block at capture without running it and runs it
at each replay, so these tests check the bookkeeping (the state bound to tensors updated in
place, the iteration count, the checks, the eager fallback); whether CUDA can record every
operation is checked in tests/test_cuda.py.
"""

import logging
from dataclasses import dataclass

import pytest
import torch

import bopt
from bopt import cuda_graphs
from bopt.optim import minimize_batched


class CpuRecorder:
    """Stands in for a CUDA graph: `capture` keeps the block, `replay` runs it."""

    log: list[str] = []

    def capture(self, block):
        self.block = block
        CpuRecorder.log.append("capture")

    def replay(self):
        CpuRecorder.log.append("replay")
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


def test_a_suggest_with_replayed_fit_and_ascent_proposes_what_the_eager_one_does(
        graphs_on_cpu, monkeypatch):
    """The fits (cold and warm) and the acquisition ascents capture, and the proposals are
    those of the eager loops."""
    space = bopt.Space([bopt.Float("x", -2.0, 2.0), bopt.Int("k", 1, 5),
                        bopt.Categorical("c", ["a", "b"]),
                        bopt.Float("y", 0.0, 1.0, when={"c": "a"})])

    def run(on: bool) -> list[dict]:
        monkeypatch.setattr(cuda_graphs, "_DEVICE_TYPES", ("cuda", "cpu") if on else ("cuda",))
        opt = bopt.Optimizer(space, "ei", seed=1, n_initial=5, num_raw_samples=64)
        opt.minimize(lambda p: (p["x"] - 0.4) ** 2 + 0.1 * p["k"] + p.get("y", 0.5), 9,
                     progress=False)
        return [t.params for t in opt.history]

    labels = []
    real_capture = cuda_graphs.capture
    monkeypatch.setattr(cuda_graphs, "capture",
                        lambda label, *a: labels.append(label) or real_capture(label, *a))
    eager = run(False)
    assert labels == []
    assert run(True) == eager
    assert {"fit", "ascent"} <= set(labels) and graphs_on_cpu.count("replay") > len(labels)
