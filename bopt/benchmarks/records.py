"""The run records: one JSON object per line of `runs.jsonl`, one line per finished run.

A record is identified by its `KEY_FIELDS` (problem, method, seed, budget): a benchmark skips
the runs whose key is already recorded, so an interrupted one resumes where it stopped. Lines
are appended whole and synced to disk; a line cut short by an interruption is skipped when
the records are read back.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUNS_FILE = "runs.jsonl"
KEY_FIELDS = ("problem", "method", "seed", "budget")


def record_key(record: Mapping[str, Any]) -> tuple:
    """The `KEY_FIELDS` values of `record` (None where one is missing): what names a run."""
    return tuple(record.get(field) for field in KEY_FIELDS)


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """Records of `runs.jsonl`; a truncated or corrupt line (an interrupted write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with path.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"bopt bench: skipping an unreadable line of {path}: {line[:80]!r}",
                      file=sys.stderr)
    return records


def recorded_keys(path: str | Path) -> set[tuple]:
    """The keys of every readable record in `path` (empty if there is no file)."""
    return {record_key(r) for r in read_runs(path)}


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line and sync it, starting a fresh line if the file ends mid-line."""
    needs_newline = path.exists() and path.stat().st_size > 0 and _last_byte(path) != b"\n"
    with path.open("a") as f:
        f.write(("\n" if needs_newline else "") + json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


__all__ = ["KEY_FIELDS", "RUNS_FILE", "append_record", "read_runs", "record_key",
           "recorded_keys"]
