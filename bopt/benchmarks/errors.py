"""The errors the benchmark harness raises on purpose (a leaf: imports only `bopt.errors`).

Each derives from `BoptError` and from the built-in exception a caller would naturally catch,
so `except ValueError` (or `RuntimeError`, `ImportError`) keeps working.
"""

from bopt.errors import BoptError


class BenchmarkError(BoptError, RuntimeError):
    """Some benchmark runs failed; the others were recorded."""


class BenchmarkArgumentError(BoptError, ValueError):
    """A benchmark was described inconsistently (unknown method, missing budget, ...)."""


class MissingDependencyError(BoptError, ImportError):
    """A benchmark method needs an optional library that is not installed."""


class NoRunsError(BoptError, FileNotFoundError):
    """A report was asked of a folder that holds no recorded runs."""


__all__ = ["BenchmarkArgumentError", "BenchmarkError", "MissingDependencyError", "NoRunsError"]
