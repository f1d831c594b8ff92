"""The `bopt bench` command line: options -> `runner.run_benchmark` -> `report.write_report`.

Only `bopt.cli` imports this module; the runner and the report know nothing of it.
"""

from __future__ import annotations

import argparse
import sys

from bopt.benchmarks.errors import BenchmarkArgumentError, BenchmarkError, MissingDependencyError
from bopt.benchmarks.report import write_report
from bopt.benchmarks.runner import METHODS, run_benchmark


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `bopt bench` options to `parser` (a subcommand parser)."""
    parser.add_argument("--problems", default="branin,hartmann6",
                        help="comma-separated problem names (default: %(default)s)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated methods among " + ", ".join(METHODS)
                        + " (default: all)")
    parser.add_argument("--seeds", type=int, default=10,
                        help="number of seeds per (problem, method), 0..N-1 (default: %(default)s)")
    parser.add_argument("--budget", default="80",
                        help="evaluations per run: N, or per problem like 'branin:40,hartmann6:80'"
                        ", or both like '80,branin:40' (default: %(default)s)")
    parser.add_argument("--out", default="results",
                        help="output folder for runs.jsonl, report.md and plots "
                        "(default: %(default)s); finished runs there are skipped")
    parser.add_argument("--workers", type=int, default=1,
                        help="parallel worker processes, one torch thread each "
                        "(default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or auto, for the GP methods (default: %(default)s)")
    parser.add_argument("--no-report", action="store_true",
                        help="only run; do not write report.md and the plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def parse_budget(text: str) -> tuple[int | None, dict[str, int]]:
    """`'80'`, `'branin:40,hartmann6:80'` or `'80,branin:40'` -> (default, per-problem).

    Raises:
        BenchmarkArgumentError: a part is not a positive int.
    """
    default, per_problem = None, {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, number = part.rpartition(":")
        try:
            value = int(number)
        except ValueError:
            value = 0
        if value < 1:
            raise BenchmarkArgumentError(
                f"--budget: {part!r} is not a positive int; write e.g. '80' or "
                "'branin:40,hartmann6:80'.")
        if sep:
            per_problem[name.strip()] = value
        else:
            default = value
    return default, per_problem


def run_bench_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark described by `add_bench_arguments` options, then write the report.

    Returns:
        0 when every run finished, 1 when some failed (the rest is recorded and reported),
        2 on a missing optional dependency.
    """
    budget, budgets = parse_budget(args.budget)
    status = 0
    try:
        run_benchmark(args.problems, args.methods, args.seeds, budget, args.out,
                      workers=args.workers, device=args.device, progress=not args.quiet,
                      budgets=budgets)
    except MissingDependencyError as err:
        print(f"bopt bench: error: {err}", file=sys.stderr)
        return 2
    except BenchmarkError as err:
        print(f"bopt bench: {err}", file=sys.stderr)
        status = 1
    if not args.no_report:
        report = write_report(args.out)
        print(f"bopt bench: report written to {report}")
    return status


__all__ = ["add_bench_arguments", "parse_budget", "run_bench_from_args"]
