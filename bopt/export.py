"""A study's history as plain records, CSV, JSON or a pandas DataFrame.

`Optimizer.export()`, `.to_csv()`, `.to_json()` and `.to_dataframe()` call these; they work
the same for in-memory and stored studies (`Optimizer.load(path, study)` reopens one).
"""

from __future__ import annotations

import csv
import json
import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from bopt.engine import Optimizer, Trial

TRIAL_FIELDS = ("id", "status", "value", "source", "note", "retry_of", "created", "completed")


def trial_records(trials: Sequence[Trial], names: Sequence[str]) -> list[dict[str, Any]]:
    """One flat dict per trial: `TRIAL_FIELDS`, then each parameter (None where inactive).

    A parameter that shares a name with a trial field would be ambiguous, so parameter
    columns are the bare names unless such a clash exists, in which case all are written
    as ``param_<name>``.
    """
    clash = any(name in TRIAL_FIELDS for name in names)
    columns = [f"param_{n}" if clash else n for n in names]
    records = []
    for t in trials:
        record = {f: getattr(t, f) for f in TRIAL_FIELDS}
        record.update({c: t.params.get(n) for c, n in zip(columns, names)})
        records.append(record)
    return records


def write_csv(records: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Records as CSV with a header row; None becomes an empty cell."""
    if not records:
        raise ValueError("nothing to write: the study has no trials yet.")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def write_json(opt: Optimizer, path: str | os.PathLike) -> None:
    """The space, the direction and every trial (parameters nested) as one JSON document."""
    trials = [{**{f: getattr(t, f) for f in TRIAL_FIELDS}, "params": t.params}
              for t in opt.history]
    document = {"study": opt.study, "direction": opt.direction,
                "space": opt.space.to_dict(), "trials": trials}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, allow_nan=False)


def to_dataframe(records: list[dict[str, Any]]):
    """Records as a pandas DataFrame indexed by trial id."""
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("to_dataframe() needs pandas: pip install pandas") from err
    columns = list(records[0]) if records else list(TRIAL_FIELDS)
    return pd.DataFrame.from_records(records, columns=columns).set_index("id")
