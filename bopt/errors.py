"""Exceptions raised at bopt's public boundary.

Each subclass also derives from the built-in exception a caller would naturally catch
(``ValueError``, ``KeyError`` or ``RuntimeError``), so ``except ValueError`` keeps working.
This module is a leaf: every part of bopt, the kernels and acquisitions included, may raise
these without importing anything else of bopt.
"""


class BoptError(Exception):
    """Base class of every error bopt raises on purpose."""


class ArgumentError(BoptError, ValueError):
    """A public function or constructor got an argument of the wrong kind or range."""


class SearchSpaceError(BoptError, ValueError):
    """A search space was declared inconsistently (bounds, choices, names, conditions)."""


class ParameterError(BoptError, ValueError):
    """A configuration does not fit the search space (missing, unknown, out of range)."""


class ObservationError(BoptError, ValueError):
    """An observed value is not a finite real number, or does not match its configs."""


class TrialError(BoptError, KeyError):
    """A trial id is unknown, or the trial is no longer pending."""

    def __str__(self) -> str:  # KeyError would quote the message; show it plainly.
        return str(self.args[0]) if self.args else ""


class SpaceExhaustedError(BoptError, RuntimeError):
    """Every configuration of a finite space has been observed or is pending."""


class StorageError(BoptError, RuntimeError):
    """A study database cannot be opened, or does not match what the caller declared."""


class NumericalError(BoptError, RuntimeError):
    """Numerical trouble a model round can degrade from (a covariance that will not
    factorise, an acquisition without a finite value). Not a programming error: those are
    other exceptions, and they propagate."""


class FitError(NumericalError):
    """No usable covariance factor, even with the largest jitter."""
