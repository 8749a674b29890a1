"""Golden datasets: rows of named columns, from JSON lines or Parquet files.

Parquet is read with pyarrow (the `parquet` extra); JSON lines need nothing. Every error names the
file and, for JSON lines, the line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policyengine.errors import InvalidPolicyError

Row = dict[str, Any]

# A golden set is replayed in full before every release: keep it a test set, not a training set.
MAX_ROWS = 200_000


class DatasetError(InvalidPolicyError):
    """A golden dataset that cannot be read, or lacks a column the policy names."""


def read_rows(path: Path, source: str, required: Sequence[str]) -> list[Row]:
    """The rows of `path` (named `source` in errors), each holding every `required` column."""
    name = source.lower()
    if name.endswith(".parquet"):
        rows = _read_parquet(path, source)
    elif name.endswith((".jsonl", ".ndjson", ".json")):
        rows = _read_json_lines(path, source)
    else:
        raise DatasetError(f"{source}: unknown dataset format (use .jsonl or .parquet)")
    if not rows:
        raise DatasetError(f"{source}: the dataset has no rows")
    if len(rows) > MAX_ROWS:
        raise DatasetError(
            f"{source}: {len(rows)} rows, more than the {MAX_ROWS} a golden set may hold"
        )
    for index, row in enumerate(rows):
        missing = [column for column in required if column not in row]
        if missing:
            raise DatasetError(
                f"{source}: row {index + 1} has no column {', '.join(map(repr, missing))}"
                f" (columns: {', '.join(sorted(row))})"
            )
    return rows


def _read_json_lines(path: Path, source: str) -> list[Row]:
    rows: list[Row] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{source}:{number}: not JSON: {error.msg}") from error
            except UnicodeDecodeError as error:
                raise DatasetError(f"{source}:{number}: not UTF-8") from error
            if not isinstance(value, dict):
                raise DatasetError(
                    f"{source}:{number}: expected a JSON object, got {type(value).__name__}"
                )
            rows.append(value)
            if len(rows) > MAX_ROWS:
                break
    return rows


def _read_parquet(path: Path, source: str) -> list[Row]:
    try:
        import pyarrow.parquet as parquet
    except ImportError as error:
        raise DatasetError(
            f"{source}: reading Parquet needs pyarrow (pip install 'policyengine[parquet]')"
        ) from error
    try:
        table = parquet.read_table(path)
    except Exception as error:  # pyarrow raises its own tree (ArrowInvalid, OSError…)
        raise DatasetError(f"{source}: not a readable Parquet file: {error}") from error
    if table.num_rows > MAX_ROWS:
        raise DatasetError(
            f"{source}: {table.num_rows} rows, more than the {MAX_ROWS} a golden set may hold"
        )
    rows: list[Row] = table.to_pylist()
    return rows
