"""bopt: Bayesian optimization on GPU Gaussian processes.

Shape vocabulary used in every docstring (dimensions joined by ` x `):

- `n` observations, `d` encoded width (one column per parameter; a categorical is one index
  column), `q` points per suggestion, `b` starts or candidate sets, `r` raw Sobol samples,
  `s` posterior samples, `h` hyperparameter sets fitted together, `p` parameters of a
  vector being optimized, `...` any leading batch dimensions.
"""

from bopt.engine import Optimizer, RoundInfo, Trial
from bopt.errors import (ArgumentError, BoptError, ObservationError, ParameterError, SearchSpaceError,
                         SpaceExhaustedError, TrialError)
from bopt.space import Categorical, Float, Int, Space

__version__ = "0.1.0"


def __getattr__(name: str):
    """`bopt.benchmarks` on first use, so `import bopt` alone stays light."""
    if name == "benchmarks":
        import importlib

        return importlib.import_module("bopt.benchmarks")
    raise AttributeError(f"module 'bopt' has no attribute {name!r}")

__all__ = [
    "ArgumentError", "BoptError", "Categorical", "Float", "Int", "ObservationError", "Optimizer",
    "ParameterError", "RoundInfo", "SearchSpaceError", "Space", "SpaceExhaustedError", "Trial",
    "TrialError",
]
