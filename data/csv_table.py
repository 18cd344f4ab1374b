"""Columns of a CSV file (header row first) as arrays, with errors that name the
file, the column and the line, so a bad cell is found without opening a debugger."""
from __future__ import annotations

import csv
import math

import numpy as np

from utils.errors import DataError


def _number(text: str, path: str, column: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # an empty cell, a word, or nan/inf
        raise DataError(f"{path} line {line}, column '{column}': '{text}' is not a finite number; fix or drop that row")
    return value


def read_columns(path: str, features: list[str], target: str, numeric_target: bool) -> tuple[np.ndarray, list, list[int]]:
    """The feature columns as float64 [N, F], the target column (floats when
    numeric_target, else the cells as text) and each row's 1-based line in the file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read CSV file {path} ({e.strerror}); check data.csv.train / data.csv.test") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is not a UTF-8 CSV file ({e}); save it as CSV with a header row") from None
    if not rows:
        raise DataError(f"{path} is empty; it needs a header row naming the columns and one row per sample")
    header = [name.strip() for name in rows[0]]
    for name in [*features, target]:
        if name not in header:
            raise DataError(f"{path} has no column '{name}'; its columns are {', '.join(header)} (fix data.csv.features / data.csv.target)")
    where = {name: header.index(name) for name in [*features, target]}
    x, y, lines = [], [], []
    for line, row in enumerate(rows[1:], start=2):  # line 1 is the header
        if not any(cell.strip() for cell in row):
            continue  # blank lines, e.g. a trailing newline
        if len(row) != len(header):
            raise DataError(f"{path} line {line} has {len(row)} fields, the header has {len(header)}; fix that row")
        x.append([_number(row[where[name]].strip(), path, name, line) for name in features])
        cell = row[where[target]].strip()
        y.append(_number(cell, path, target, line) if numeric_target else cell)
        lines.append(line)
    if not x:
        raise DataError(f"{path} has a header but no data rows")
    return np.asarray(x, dtype=np.float64), y, lines
