"""Reading a CSV file column-wise, and parsing its cells (missing values, numbers, labels).

The first row is the header; cells are stripped of surrounding spaces; comma-separated, or
tab-separated for a ``.tsv``/``.tab`` file; UTF-8 (a byte-order mark is accepted); blank lines are
skipped. A missing value is an empty cell or one of ``tabular.NA_TOKENS``. See docs/data.md.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlrecipe.data.tabular import NA_TOKENS
from dlrecipe.errors import RecipeError

_NA = frozenset(NA_TOKENS)
_INT = re.compile(r"^[+-]?\d+$")


@dataclass
class Table:
    """A CSV file read column-wise: stripped cells as strings, with the file line of each row."""

    path: Path
    where: str  # the recipe path that named the file: data.path or data.test_path
    header: list[str]
    cells: dict[str, list[str]]
    lines: np.ndarray  # int64, the file line (1-based, header = 1) of each row

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, keep: np.ndarray) -> "Table":
        return Table(self.path, self.where, self.header,
                     {k: [v[i] for i in np.flatnonzero(keep)] for k, v in self.cells.items()}, self.lines[keep])


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def read_table(path: Path, where: str) -> Table:
    """Read the CSV file at ``path`` (named by the recipe path ``where``), checking its header and rows."""
    if not path.exists():
        raise RecipeError.one(where, f"Received: {path}, which does not exist. Expected a CSV file with a header "
                              "row. Fix: check the path (it is relative to the recipe file).")
    if path.is_dir():
        raise RecipeError.one(where, f"Received: {path}, which is a folder. Expected a CSV file. Fix: point the "
                              "path at the file itself.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=_delimiter(path))
            header = next(reader, None)
            if header is None:
                raise RecipeError.one(where, f"Received: {path}, which is empty. Expected a header row naming "
                                      "the columns, then one row per example.")
            header = [h.strip() for h in header]
            _check_header(header, path, where)
            columns: list[list[str]] = [[] for _ in header]
            lines: list[int] = []
            for row in reader:
                if not row or all(not c.strip() for c in row) and len(row) <= 1:
                    continue  # a blank line
                if len(row) != len(header):
                    raise RecipeError.one(where, f"Received: {path} line {reader.line_num} has {len(row)} "
                                          f"field(s), but the header has {len(header)} columns. Expected one "
                                          "value per column in every row (an empty field for a missing value). "
                                          "Fix: correct that row (quote values that hold the delimiter).")
                for col, cell in zip(columns, row):
                    col.append(cell.strip())
                lines.append(reader.line_num)
    except UnicodeDecodeError as e:
        raise RecipeError.one(where, f"Received: {path}, which is not UTF-8 text ({e.reason} at byte {e.start}). "
                              "Expected a UTF-8 CSV file. Fix: save it as UTF-8.") from None
    except csv.Error as e:
        raise RecipeError.one(where, f"Received: {path}, which is not a valid CSV file ({e}). Fix: correct the "
                              "file.") from None
    except OSError as e:
        raise RecipeError.one(where, f"Received: {path}, which cannot be read ({e.strerror}).") from None
    return Table(path, where, header, dict(zip(header, columns)), np.asarray(lines, dtype=np.int64))


def _check_header(header: list[str], path: Path, where: str) -> None:
    if len(header) == 1 and (";" in header[0] or "\t" in header[0] or "|" in header[0]):
        sep = next(s for s in (";", "\t", "|") if s in header[0])
        raise RecipeError.one(where, f"Received: {path} with the single column {header[0]!r}. It looks separated "
                              f"by {sep!r}. Expected comma-separated values (tab-separated for a .tsv file). Fix: "
                              "save it comma-separated.")
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        raise RecipeError.one(where, f"Received: {path} whose header has no name for column(s) {empty}. Expected "
                              "a name for every column in the first row. Fix: name them, or remove them.")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise RecipeError.one(where, f"Received: {path} whose header repeats {dup}. Expected each column name "
                              "once. Fix: rename the duplicates.")


def is_missing(values: list[str]) -> np.ndarray:
    """True for each cell that is missing: empty or an NA token."""
    return np.fromiter((v in _NA for v in values), dtype=bool, count=len(values))


def parse_numbers(values: list[str]) -> np.ndarray | None:
    """The values as float64 (missing -> NaN), or None when one of them is not a number."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v in _NA:
            continue
        try:
            out[i] = float(v)
        except ValueError:
            return None
    return out


def _check_finite(table: Table, name: str, x: np.ndarray) -> None:
    bad = np.isinf(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[i]}, column {name!r}: "
                              f"{table.cells[name][i]!r}. Expected finite numbers. Fix: replace it with a number, "
                              "or leave the cell empty (a missing value).")


def label_values(table: Table, label: str, form: str | None) -> np.ndarray:
    """The label column as int64, float64 or str; ``form`` (from training) fixes how to read a test file."""
    values = table.cells[label]
    if form == "str":
        return np.asarray(values, dtype=str)
    if form is None and all(_INT.match(v) for v in values):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    numbers = parse_numbers(values)
    if numbers is not None:
        _check_finite(table, label, numbers)
        return numbers
    if form is None:
        return np.asarray(values, dtype=str)
    bad = next(i for i, v in enumerate(values) if parse_numbers([v]) is None)
    raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[bad]}, label column {label!r}: "
                          f"{values[bad]!r}. Expected a number, as in the training file. Fix: correct the label.")


def column_values(table: Table, name: str, kind: str, parsed: np.ndarray | None = None) -> np.ndarray:
    """A feature column as float64 with NaN for missing (``numeric``), or str with "" for missing."""
    if kind == "numeric":
        x = parsed if parsed is not None else parse_numbers(table.cells[name])
        if x is None:
            bad = next(i for i, v in enumerate(table.cells[name]) if parse_numbers([v]) is None)
            raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[bad]}, column {name!r}: "
                                  f"{table.cells[name][bad]!r}, which is not a number, but the column holds numbers "
                                  "in the training file. Expected a number or an empty cell. Fix: correct the value.")
        _check_finite(table, name, x)
        return x
    return np.asarray(["" if v in _NA else v for v in table.cells[name]], dtype=str)
