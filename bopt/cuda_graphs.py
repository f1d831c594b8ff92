"""A solver loop's iterations recorded once as a CUDA graph and replayed.

One batched quasi-Newton iteration (`bopt.optim`) is a few hundred small kernels; on a GPU
each launch costs the host more time than the kernel costs the device. A CUDA graph records
the launches of several iterations once and replays them with a single call. A recording is
bound to the memory it saw: the loop's state must live in tensors of fixed shapes that the
replay updates in place, and nothing else the iterations read may change between replays.

`capture` does that for a state object whose tensor fields each iteration rebinds to new
tensors: the recorded block runs `count` iterations and then copies the last values into the
tensors the block started from, so every replay continues where the previous one ended. A
solver call captures once, after its first eager iteration (which builds every lazy cache
and warms the libraries up on the capture stream), so shapes need not repeat across calls,
and a call pays the host for two iterations however many it runs.

Capture is tried only for CUDA tensors, and never with the environment variable
`BOPT_CUDA_GRAPHS=0`. When a capture fails (an operation that cannot be recorded), the
solver goes on eagerly, the failure is logged once on the `bopt` logger and kept in
`failures()`, and that loop (its label) is not captured again in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Callable, Iterator, Protocol

import torch

logger = logging.getLogger("bopt")
ENV = "BOPT_CUDA_GRAPHS"
_failures: dict[str, str] = {}  # label -> the first line of the error that turned it off
_lock = threading.Lock()
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
_local = threading.local()  # side streams per thread: a capture records all its stream's work
_DEVICE_TYPES = ("cuda",)  # where captures are tried (tests add "cpu" with a stand-in recorder)


class Recorder(Protocol):
    """Records a block of tensor work once (without running it) and replays it."""

    def capture(self, block: Callable[[], None]) -> None: ...

    def replay(self) -> None: ...


class _CudaRecorder:
    """A `torch.cuda.CUDAGraph` captured on the current (side) stream, by `capture_begin`
    and `capture_end` directly: the `torch.cuda.graph` context synchronises the device and
    empties the allocator's cache at every capture, which a capture per solver call cannot
    afford."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, block: Callable[[], None]) -> None:
        # One memory pool per thread and device for all its recordings: a recording lives
        # for one solver call and the thread's calls run one after another, so a recording
        # reuses the memory of the ones before it instead of reserving a pool of its own.
        if not hasattr(_local, "pools"):
            _local.pools = {}
        device = torch.cuda.current_device()
        if device not in _local.pools:
            _local.pools[device] = torch.cuda.graph_pool_handle()
        self.graph.capture_begin(pool=_local.pools[device], capture_error_mode="thread_local")
        try:
            block()
        except BaseException:
            with contextlib.suppress(RuntimeError):  # the capture is void already
                self.graph.capture_end()
            raise
        self.graph.capture_end()

    def replay(self) -> None:
        self.graph.replay()


def new_recorder() -> Recorder:
    """A recorder for the current device (tests substitute one that works on the CPU)."""
    return _CudaRecorder()


def eligible(label: str | None, device: torch.device, iterations: int) -> bool:
    """Whether a loop labelled `label` on `device`, of up to `iterations` iterations, should
    try a capture: on CUDA, not turned off, not failed before, and long enough for a first
    eager iteration, the recorded one and a replay."""
    return (label is not None and device.type in _DEVICE_TYPES and os.environ.get(ENV, "1") != "0"
            and label not in _failures and iterations >= 3)


@contextlib.contextmanager
def side_stream(device: torch.device) -> Iterator[None]:
    """Run the block on this thread's side stream for `device` (a capture cannot use the
    default stream, and the eager iterations before it must run on the capture's stream),
    ordered after the work queued so far and before the work queued after it. A no-op
    off CUDA."""
    if device.type != "cuda":
        yield
        return
    current = torch.cuda.current_stream(device)
    if not hasattr(_local, "streams"):
        _local.streams = {}
    if current.device not in _local.streams:
        _local.streams[current.device] = torch.cuda.Stream(current.device)
    stream = _local.streams[current.device]
    stream.wait_stream(current)
    try:
        with torch.cuda.stream(stream):
            yield
    finally:
        current.wait_stream(stream)


def recording() -> bool:
    """Whether this thread is recording a block now. Code that a capture refuses, though it
    has an equivalent that it accepts, asks this: the factor-based solves and inverses
    (`cholesky_solve`, `cholesky_inverse`), for one, report errors through host memory, and
    triangular solves on the factor compute the same without."""
    return getattr(_local, "recording", False)


def hand_back(*tensors: torch.Tensor) -> None:
    """Mark tensors made on the side stream as used by the current stream too, so that
    the allocator does not reuse their memory while work queued there still reads them."""
    if tensors and tensors[0].is_cuda:
        current = torch.cuda.current_stream(tensors[0].device)
        for tensor in tensors:
            tensor.record_stream(current)


def capture(label: str, iterate: Callable[[], None], state: object, fields: tuple[str, ...],
            count: int) -> Callable[[], None] | None:
    """Record `count` calls of `iterate`, which reads and rebinds the tensor `fields` of
    `state`, as one replayable block.

    Returns:
        A function that advances `state` by `count` iterations in place, or None when the
        capture failed (then `state` is as it was; the failure is logged and recorded).
    """
    static = {name: getattr(state, name).clone() for name in fields}  # own, contiguous

    def bind() -> None:
        for name, tensor in static.items():
            setattr(state, name, tensor)

    def block() -> None:
        _local.recording = True
        try:
            for _ in range(count):
                iterate()
        finally:
            _local.recording = False
        for name, tensor in static.items():
            tensor.copy_(getattr(state, name))
        bind()

    bind()
    recorder = new_recorder()
    try:
        recorder.capture(block)
    except _OUT_OF_MEMORY:  # the round's own handling moves it to the CPU
        bind()
        raise
    except RuntimeError as err:  # CUDA refused an operation; other errors are bugs
        bind()  # nothing was run: the static tensors still hold the state
        _record_failure(label, err)
        return None
    return recorder.replay


def _record_failure(label: str, err: RuntimeError) -> None:
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
    with _lock:
        first = label not in _failures
        _failures.setdefault(label, reason)
    if first:
        logger.warning("CUDA graph capture of the %s loop failed (%s); it runs eagerly from "
                       "now on in this process", label, reason)


def failures() -> dict[str, str]:
    """The loops whose capture failed in this process: label -> the error's first line."""
    with _lock:
        return dict(_failures)
