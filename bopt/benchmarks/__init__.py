"""Benchmark problems with known minima, and an offline tuning task (see `problems`)."""

from bopt.benchmarks.problems import PROBLEMS, Problem, ProblemError, get_problem, list_problems

__all__ = ["PROBLEMS", "Problem", "ProblemError", "get_problem", "list_problems"]
