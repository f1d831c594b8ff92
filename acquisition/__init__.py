"""Acquisition functions and their batched multistart maximiser.

The public registry keys are "ei" (log expected improvement), "ucb" and "ts" (Thompson
sampling); in code the functions are spelled out.
"""

from bopt.acquisition.common import as_batch, posterior_mean_std
from bopt.acquisition.ei import LogEI, expected_improvement, log_expected_improvement, log_h
from bopt.acquisition.optimize import multistart_maximize, unit_to_layout
from bopt.acquisition.quasi_newton import minimize_batched
from bopt.acquisition.thompson import PosteriorPath, draw_posterior_path
from bopt.acquisition.ucb import UCB, ucb_beta, upper_confidence_bound

ACQUISITIONS = ("ei", "ucb", "ts")

__all__ = [
    "ACQUISITIONS", "LogEI", "PosteriorPath", "UCB", "as_batch", "draw_posterior_path",
    "expected_improvement", "log_expected_improvement", "log_h", "minimize_batched",
    "multistart_maximize", "posterior_mean_std", "ucb_beta", "unit_to_layout",
    "upper_confidence_bound",
]
