"""Compare a fresh run of the benchmark suite with the committed one, problem by problem.

The rule our quality changes must pass: on every problem, the new median final regret is no
worse than the committed median by more than the committed inter-quartile range.

    python benchmarks/suite_check.py NEW/runs.jsonl --method ei \
        --baseline benchmarks/results/compare/runs.jsonl --out NEW/check.md

`--baseline-method` compares another method of the new run with the baseline's (a candidate
default against the committed one).

Exits 1 when a problem fails the rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bopt.benchmarks.records import read_runs


def finals(path: str | Path, method: str) -> dict[str, dict[int, float]]:
    """`{problem: {seed: final regret}}` of `method`'s runs in a runs.jsonl (the best value
    found where the optimum is unknown, as on svm_digits)."""
    out: dict[str, dict[int, float]] = {}
    for r in read_runs(path):
        if r["method"] == method:
            trace = r["regret"] if r.get("regret") is not None else r["best_so_far"]
            out.setdefault(r["problem"], {})[r["seed"]] = trace[-1]
    return out


def compare(new: dict[str, dict[int, float]], old: dict[str, dict[int, float]]
            ) -> list[dict]:
    """One row per problem in both: medians, the baseline's IQR, and the verdict (on the
    seeds both ran)."""
    rows = []
    for problem in sorted(set(new) & set(old)):
        seeds = sorted(set(new[problem]) & set(old[problem]))
        a = np.array([new[problem][s] for s in seeds])
        b = np.array([old[problem][s] for s in seeds])
        q25, q50, q75 = np.percentile(b, [25, 50, 75])
        median = float(np.median(a))
        rows.append({"problem": problem, "seeds": len(seeds), "new_median": median,
                     "new_iqr": tuple(np.percentile(a, [25, 75]).tolist()),
                     "old_median": float(q50), "old_iqr": (float(q25), float(q75)),
                     "ok": median <= q50 + (q75 - q25),
                     "equal_seeds": int(np.sum(a == b))})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new")
    parser.add_argument("--method", default="ei")
    parser.add_argument("--baseline", default="benchmarks/results/compare/runs.jsonl")
    parser.add_argument("--baseline-method", default=None,
                        help="the baseline's method to compare with (default: --method)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = compare(finals(args.new, args.method),
                   finals(args.baseline, args.baseline_method or args.method))
    lines = ["| problem | seeds | new median (IQR) | committed median (IQR) | seeds equal | "
             "within the committed IQR |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['problem']} | {r['seeds']} | {r['new_median']:.3g} "
                     f"({r['new_iqr'][0]:.3g} – {r['new_iqr'][1]:.3g}) | {r['old_median']:.3g} "
                     f"({r['old_iqr'][0]:.3g} – {r['old_iqr'][1]:.3g}) | {r['equal_seeds']} | "
                     f"{'yes' if r['ok'] else '**no**'} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
