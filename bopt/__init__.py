"""bopt: Bayesian optimization on GPU Gaussian processes.

The public names below load on first use, so `import bopt.kernels` or `import bopt.errors`
does not pull in the loop, the storage or BoTorch.

Shape vocabulary used in every docstring (dimensions joined by ` x `):

- `n` observations, `d` encoded width (one column per parameter; a categorical is one index
  column), `q` points per suggestion, `b` starts or candidate sets, `r` raw Sobol samples,
  `s` posterior samples, `h` hyperparameter sets fitted together, `p` parameters of a
  vector being optimized, `...` any leading batch dimensions.

The data flow, one module per arrow:

    configs --space.Space.encode--> X `n x d`     values --warp.transform_outputs--> Y `n x 1`
    X, Y --model.fit_gp--> GP --acquisition.registry.build_score--> score
    score --acquisition.optimize.multistart_maximize--> X_new `q x d`
    X_new --space.Space.decode--> configs --engine.Optimizer--> trial.Trial

`proposal.propose` runs one such round from tensors to a configuration; `ledger` keeps the
trials (in memory or through `storage`), and `engine.Optimizer` is the loop over both.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "Optimizer": "bopt.engine",
    "Trial": "bopt.trial", "RoundInfo": "bopt.trial", "Recommendation": "bopt.trial",
    "Space": "bopt.space", "Float": "bopt.space", "Int": "bopt.space",
    "Categorical": "bopt.space",
    "ASHA": "bopt.schedulers", "Hyperband": "bopt.schedulers",
    "ArgumentError": "bopt.errors", "BoptError": "bopt.errors", "FitError": "bopt.errors",
    "NumericalError": "bopt.errors", "ObservationError": "bopt.errors",
    "ParameterError": "bopt.errors", "SearchSpaceError": "bopt.errors",
    "SpaceExhaustedError": "bopt.errors", "StorageError": "bopt.errors",
    "TrialError": "bopt.errors",
}
_SUBMODULES = ("benchmarks", "plot")


def __getattr__(name: str):
    """The public classes and `bopt.benchmarks` / `bopt.plot`, imported on first use."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"bopt.{name}")
    raise AttributeError(f"module 'bopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC) + list(_SUBMODULES))


__all__ = sorted(_PUBLIC)
