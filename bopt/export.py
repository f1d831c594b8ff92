"""A study's history as plain records, CSV, JSON or a pandas DataFrame.

`Optimizer.export()`, `.to_csv()`, `.to_json()` and `.to_dataframe()` call these; they work
the same for in-memory and stored studies (`Optimizer.load(path, study)` reopens one).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from typing import IO, TYPE_CHECKING, Any, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from bopt.trial import Trial

TRIAL_FIELDS = ("id", "status", "value", "sem", "source", "note", "retry_of", "created",
                "completed")


def trial_records(trials: Sequence[Trial], names: Sequence[str]) -> list[dict[str, Any]]:
    """One flat dict per trial: `TRIAL_FIELDS`, then each parameter (None where inactive).

    A parameter that shares a name with a trial field would be ambiguous, so parameter
    columns are the bare names unless such a clash exists, in which case all are written
    as ``param_<name>``.
    """
    columns = record_columns(names)[len(TRIAL_FIELDS):]
    records = []
    for t in trials:
        record = {f: getattr(t, f) for f in TRIAL_FIELDS}
        record.update({c: t.params.get(n) for c, n in zip(columns, names)})
        records.append(record)
    return records


def record_columns(names: Sequence[str]) -> list[str]:
    """The keys of `trial_records`' dicts, in order (also for a study without trials)."""
    clash = any(name in TRIAL_FIELDS for name in names)
    return list(TRIAL_FIELDS) + [f"param_{n}" if clash else n for n in names]


@contextlib.contextmanager
def _text_out(target: str | os.PathLike | IO[str]) -> Iterator[IO[str]]:
    """A path opened for writing, or an open text stream used as it is (not closed)."""
    if hasattr(target, "write"):
        yield target
        return
    with open(target, "w", newline="", encoding="utf-8") as f:
        yield f


def write_csv(records: list[dict[str, Any]], target: str | os.PathLike | IO[str],
              columns: Sequence[str]) -> None:
    """Records as CSV with a header row (alone for a study without trials).

    CSV is lossy: None and "" both become an empty cell, and 1 and "1" the same text. Use
    JSON (`write_json`) when the exact values matter.
    """
    with _text_out(target) as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(records)


def write_json(target: str | os.PathLike | IO[str], *, study: str, direction: str,
               space: dict, trials: Sequence[Trial],
               curves: Mapping[int, list] | None = None) -> None:
    """The study's name, direction, space (`Space.to_dict()`) and every trial (parameters
    nested, and its `[budget, value]` reports as "curve" when it made any) as one JSON
    document; values and choices keep their exact types."""
    curves = curves or {}
    rows = [{**{f: getattr(t, f) for f in TRIAL_FIELDS}, "params": t.params,
             **({"curve": [list(r) for r in curves[t.id]]} if curves.get(t.id) else {})}
            for t in trials]
    document = {"study": study, "direction": direction, "space": space, "trials": rows}
    with _text_out(target) as f:
        json.dump(document, f, indent=1, allow_nan=False)
        f.write("\n")


def to_dataframe(records: list[dict[str, Any]], columns: Sequence[str]):
    """Records as a pandas DataFrame indexed by trial id, with nullable dtypes (an integer
    parameter that is inactive in some trials stays integer, with <NA> there)."""
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("to_dataframe() needs pandas: pip install pandas") from err
    frame = pd.DataFrame.from_records(records, columns=list(columns)).set_index("id")
    return frame.convert_dtypes()
