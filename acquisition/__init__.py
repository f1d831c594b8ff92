"""Acquisition functions, their registry and their batched multistart maximiser.

The public keys live in `registry` ("ei" log expected improvement, "nei" its noisy form,
"ucb", "ts" Thompson sampling; "random" and "sobol" are model-free strategies); in code the
functions are spelled out. This package imports `bopt.kernels`, the leaf modules `bopt.layout` and
`bopt.errors`, and the neutral solver `bopt.optim`; never the loop, the space or the storage.
"""

from bopt.acquisition.common import as_batch, posterior_mean_std
from bopt.acquisition.ei import (FantasyLogEI, LogEI, expected_improvement,
                                 log_expected_improvement, log_h)
from bopt.acquisition.optimize import multistart_maximize, unit_to_layout
from bopt.acquisition.registry import (ACQUISITIONS, MODEL_FREE, STRATEGIES, ScoreContext,
                                       build_score, is_model_based, ucb_weight)
from bopt.acquisition.thompson import PosteriorPath, draw_posterior_path
from bopt.acquisition.ucb import UCB, ucb_beta, upper_confidence_bound

__all__ = [
    "ACQUISITIONS", "FantasyLogEI", "LogEI", "MODEL_FREE", "PosteriorPath", "STRATEGIES",
    "ScoreContext", "UCB",
    "as_batch", "build_score", "draw_posterior_path", "expected_improvement", "is_model_based",
    "log_expected_improvement", "log_h", "multistart_maximize", "posterior_mean_std",
    "ucb_beta", "ucb_weight", "unit_to_layout", "upper_confidence_bound",
]
