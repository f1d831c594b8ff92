"""The `bopt` command line: `bopt demo` minimises a test problem, `bopt bench` compares
methods, `bopt export` writes a stored study's trials as CSV or JSON."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bopt.acquisition.registry import STRATEGIES, is_model_based
from bopt.errors import BoptError


def _demo(args: argparse.Namespace) -> int:
    from bopt.benchmarks import get_problem
    from bopt.engine import Optimizer

    problem = get_problem(args.problem)
    study = f"demo-{problem.name}-{args.acquisition}-seed{args.seed}"
    opt = Optimizer(problem.space, args.acquisition, seed=args.seed, device=args.device,
                    n_initial=args.n_initial, storage=args.storage, study=study)
    if args.storage:  # one process: pending trials are from an interrupted run; redo them
        opt.mark_stale(0)
    done = sum(t.status not in ("pending", "stale") for t in opt.history)
    print(f"bopt demo: {problem.name} ({len(problem.space)} parameters), "
          f"acquisition={args.acquisition}, budget={args.budget}, seed={args.seed}, "
          f"device={opt.device}"
          + (f", study {study!r} in {args.storage} ({done} trials done)" if args.storage else ""))
    first_new = len(opt.history)  # this run's rounds are those of the trials it adds
    if done >= args.budget:
        print(f"the budget of {args.budget} trials is already used; raise --budget to go on.")
    start = time.perf_counter()
    best = opt.minimize(problem, max(args.budget - done, 0), progress=not args.quiet)
    elapsed = time.perf_counter() - start
    if best is None:
        print("no trial completed; nothing to report.")
        return 1
    rounds = [r for r in opt.diagnostics if r.trial_id >= first_new]
    suggest = [r.suggest_seconds for r in rounds]
    model_based = is_model_based(args.acquisition)
    typical = [r.suggest_seconds for r in rounds
               if r.strategy == args.acquisition or not model_based]
    print("best configuration:")
    for name, value in best.params.items():
        print(f"  {name} = {value!r}")
    print(f"best value: {best.value:.6g}")
    if problem.optimum is not None:
        print(f"regret:     {best.value - problem.optimum:.3g} (optimum {problem.optimum:.6g})")
    what = "model-based suggestion" if model_based else "suggestion"
    print(f"time in suggest (this run): {sum(suggest):.2f} s in all"
          + (f", median {_seconds(statistics.median(typical))} per {what}" if typical else "")
          + f"; total {elapsed:.2f} s")
    return 0


def _seconds(value: float) -> str:
    """Seconds with three significant figures, in ms or us when small."""
    if value >= 0.1:
        return f"{value:.3g} s"
    return f"{value * 1e3:.3g} ms" if value >= 1e-4 else f"{value * 1e6:.3g} us"


def _export(args: argparse.Namespace) -> int:
    from bopt.engine import Optimizer
    from bopt.storage import SQLiteStorage

    storage = SQLiteStorage(args.db, create=False)
    study = args.study
    if study is None:
        names = storage.study_names()
        if len(names) != 1:
            print(f"bopt: error: {args.db} holds {len(names)} studies {names}"
                  + ("; name one with --study." if names else "."), file=sys.stderr)
            return 2
        study = names[0]
    opt = Optimizer.load(storage, study, device="cpu")
    out = args.out if args.out is not None else sys.stdout  # a stream: `>>` appends
    if args.format == "json":
        opt.to_json(out)
    else:
        opt.to_csv(out)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bopt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="minimise a built-in test problem and report the result")
    demo.add_argument("--problem", default="hartmann6",
                      help="test problem name (see bopt.benchmarks.list_problems())")
    demo.add_argument("--acquisition", default="ei",
                      choices=STRATEGIES)
    demo.add_argument("--budget", type=_positive_int, default=60, help="number of evaluations")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto", help="auto, cpu or cuda")
    demo.add_argument("--n-initial", type=int, default=None,
                      help="Sobol points before the GP takes over")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--storage", default=None,
                      help="SQLite file keeping the run; rerunning resumes it up to --budget")
    demo.set_defaults(run=_demo)
    export = sub.add_parser("export", help="write a stored study's trials as CSV or JSON")
    export.add_argument("db", help="the study database (SQLite file)")
    export.add_argument("--study", default=None, help="study name (needed if the file has several)")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--out", default=None, help="output file (default: standard output)")
    export.set_defaults(run=_export)
    bench = sub.add_parser("bench", help="benchmark methods on test problems, with plots and "
                                         "a markdown report")
    from bopt.benchmarks.cli import add_bench_arguments, run_bench_from_args

    add_bench_arguments(bench)
    bench.set_defaults(run=run_bench_from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (BoptError, ValueError, KeyError) as err:
        print(f"bopt: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bopt export db | head`: the reader left; exit quietly
        # Point stdout at devnull so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
