"""A short description of the machine a benchmark ran on, for its report."""

from __future__ import annotations

import os
import platform


def describe_machine() -> dict:
    """CPU model, core count, thread setting and library versions, plus a one-line summary."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"torch": torch.__version__}
    for name in ("gpytorch", "botorch", "optuna", "bopt"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # an optional library that is not installed
            pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "versions": versions,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    info["summary"] = (f"{cpu}, {info['cores']} cores, torch threads {info['torch_threads']}, "
                       + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return info
