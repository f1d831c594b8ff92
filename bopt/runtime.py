"""Where a round runs: the torch device, the intra-op thread count, and out-of-memory help.

Nothing here calls CUDA unless a CUDA device is in use.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

from bopt.errors import ArgumentError
from bopt.validation import check_int

# Below this many observations a CPU suggest uses one torch thread: its tensors are too small
# for intra-op parallelism to pay, and on a busy machine (the objective running beside it)
# OpenMP threads waiting on each other made small ops up to 70x slower in our measurements.
SINGLE_THREAD_BELOW = 1000
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
_THREADS_LOCK = threading.Lock()  # torch's thread count is process-wide


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" (CUDA when available), "cpu", "cuda[:k]" or a torch.device, as a device.

    Raises:
        ArgumentError: an unknown device, or CUDA asked for where there is none.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = "device must be 'auto', 'cpu', 'cuda' or a torch.device"
    if not isinstance(device, str):
        raise ArgumentError(f"{expected}; got {device!r}.")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ArgumentError(f"{expected}; got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device={device!r} but CUDA is not available here; "
                            "use device='auto' to fall back to the CPU.")
    return dev


def suggest_threads(device: torch.device, num_threads: int | str | None,
                    num_observations: int) -> int | None:
    """The torch thread count a suggest should run with (None: leave torch's setting).

    Args:
        device: where the round runs; only CPU rounds change the count.
        num_threads: the optimizer's setting: "auto", None or a count.
        num_observations: completed trials the model will see.
    """
    if device.type != "cpu" or num_threads is None:
        return None
    if num_threads == "auto":
        return 1 if num_observations < SINGLE_THREAD_BELOW else None
    return num_threads


@contextlib.contextmanager
def torch_threads(num: int | None) -> Iterator[None]:
    """Run the block with `num` torch intra-op threads (None: leave as is), then restore.

    Blocks that change the count run one at a time, so optimizers in several threads cannot
    restore each other's values out of order.
    """
    if num is None:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(num)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def release_cached_memory(device: torch.device) -> None:
    """Give the caching allocator's free blocks back after an out-of-memory error."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_threads(num_threads: object) -> int | str | None:
    """The `num_threads` setting: "auto", None or a count >= 1."""
    if num_threads is None or num_threads == "auto":
        return num_threads
    return check_int(num_threads, "num_threads ('auto', None or a count)", low=1)
