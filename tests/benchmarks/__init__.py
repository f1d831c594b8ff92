"""Tests of `bopt.benchmarks`, one module per source module.

A package, so that `test_cli.py` here (for `bopt/benchmarks/cli.py`) and `tests/test_cli.py`
(for `bopt/cli.py`) can share a basename under pytest's default import mode.
"""
