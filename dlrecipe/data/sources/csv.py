"""The ``csv`` data source: a table with a header row, one example per row.

``load`` reads the training file (``data.path``) and the optional test file
(``data.test_path``), carves ``subset``, ``test_split`` and
``validation_split`` with ``data``'s own seeded machinery, then fits the
encoding on the training split only and encodes every split into a float32
matrix, the model's input. ``peek`` runs the same steps (the input width is
the number of encoded columns, which depends on the categories of the
training split) and returns only the facts.

The rules (documented in the README, "data"):

- The first row is the header. Cells are stripped of surrounding spaces.
  Comma-separated; a ``.tsv`` or ``.tab`` file is tab-separated. UTF-8 (a
  byte-order mark is accepted). Blank lines are skipped.
- Missing: an empty cell or one of ``NA_TOKENS`` (``NA``, ``N/A``, ``NaN``,
  ``null``, ``None``, ``?``, ...).
- ``label:`` names the target column; ``features:`` the inputs, in order
  (default: every other column, in file order).
- A feature column is numeric when every non-missing value of the training
  file parses as a number; otherwise it is categorical, one-hot encoded over
  the sorted categories of the training split. A category the training split
  never saw (in validation, test or serving rows) encodes as all zeros.
- Labels: every value an integer -> class indices; numbers -> regression;
  anything else -> class names (sorted). ``task`` overrides, as for npz.
- ``missing``: unset -> a missing value is an error naming file, column and
  line. ``drop`` -> rows with a missing feature or label are dropped from the
  training file (before the splits) and from the test file. ``mean`` /
  ``median`` / ``most_frequent`` -> numeric cells are filled with that
  statistic, categorical ones with the most frequent category, both taken
  from the training split only (a row without a label is still an error).
- Every column also stores a ``fill`` value, used by the exported model,
  which cannot drop a request: with ``drop`` or ``missing`` unset a missing
  numeric input is filled with the training median, a missing category with
  the most frequent one.

The fitted encoding (``fit``) is a JSON-able dict stored as ``tabular`` in the
run's ``preprocessing.json``; ``encode`` is the NumPy reference transform that
``csvserve`` rebuilds in TensorFlow for the exported model. NumPy and the
standard library only: no TensorFlow, no pandas.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError, suggest
from dlrecipe.recipe.schema import DataConfig

NA_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?")
MISSING_CHOICES = ("drop", "mean", "median", "most_frequent")
FORMAT = 1
_NA = frozenset(NA_TOKENS)
_INT = re.compile(r"^[+-]?\d+$")


# --------------------------------------------------------------------------- reading a file


@dataclass
class _Table:
    """A CSV file read column-wise: stripped cells as strings, with the file line of each row."""

    path: Path
    where: str  # the recipe path that named the file: data.path or data.test_path
    header: list[str]
    cells: dict[str, list[str]]
    lines: np.ndarray  # int64, the file line (1-based, header = 1) of each row

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, keep: np.ndarray) -> "_Table":
        return _Table(self.path, self.where, self.header,
                      {k: [v[i] for i in np.flatnonzero(keep)] for k, v in self.cells.items()}, self.lines[keep])


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def _read(path: Path, where: str) -> _Table:
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
    return _Table(path, where, header, dict(zip(header, columns)), np.asarray(lines, dtype=np.int64))


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


# --------------------------------------------------------------------------- columns and types


def _roles(cfg: DataConfig, table: _Table) -> tuple[str, list[str]]:
    """The label column and the feature columns, checked against the training file's header."""
    cols = table.header
    if cfg.label is None:
        raise RecipeError.one("data.label", f"Received: no label. source: csv needs label: the name of the target "
                              f"column. {table.path} has the columns {cols}. Fix: add label: <column> to data.")
    if cfg.label not in cols:
        raise RecipeError.one("data.label", f"Received: label={cfg.label!r}, but {table.path} has no such column."
                              f"{suggest(cfg.label, cols)} Its columns are {cols}. Fix: set label to one of them.")
    if cfg.features is None:
        features = [c for c in cols if c != cfg.label]
    else:
        features = list(cfg.features)
        for i, name in enumerate(features):
            if name not in cols:
                raise RecipeError.one(f"data.features[{i}]", f"Received: {name!r}, but {table.path} has no such "
                                      f"column.{suggest(name, cols)} Its columns are {cols}. Fix: use one of them.")
            if name == cfg.label:
                raise RecipeError.one(f"data.features[{i}]", f"Received: {name!r}, which is the label column. "
                                      "Expected input columns only. Fix: remove it from features.")
        dup = sorted({f for f in features if features.count(f) > 1})
        if dup:
            raise RecipeError.one("data.features", f"Received: features listing {dup} more than once. Expected "
                                  "each column once. Fix: remove the duplicates.")
    if not features:
        raise RecipeError.one("data.features", f"Received: {table.path}, whose only column is the label "
                              f"{cfg.label!r}. Expected at least one input column. Fix: add feature columns.")
    return cfg.label, features


def _missing(values: list[str]) -> np.ndarray:
    return np.fromiter((v in _NA for v in values), dtype=bool, count=len(values))


def _numbers(values: list[str]) -> np.ndarray | None:
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


def _check_finite(table: _Table, name: str, x: np.ndarray) -> None:
    bad = np.isinf(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[i]}, column {name!r}: "
                              f"{table.cells[name][i]!r}. Expected finite numbers. Fix: replace it with a number, "
                              "or leave the cell empty (a missing value).")


def _first_missing(table: _Table, columns: list[str], miss: dict[str, np.ndarray]) -> RecipeError:
    any_row = np.zeros(len(table), dtype=bool)
    for c in columns:
        any_row |= miss[c]
    i = int(np.flatnonzero(any_row)[0])
    column = next(c for c in columns if miss[c][i])
    counts = {c: int(miss[c].sum()) for c in columns if miss[c].any()}
    return RecipeError.one(table.where, f"Received: {table.path} line {table.lines[i]} has no value in column "
                           f"{column!r} (missing values per column: {counts}; {int(any_row.sum())} row(s) in all). "
                           "Expected a value in every cell, or data.missing set. Fix: set data.missing: drop (drop "
                           "those rows), or mean, median or most_frequent (fill numeric cells with that statistic "
                           "of the training split, categorical ones with its most frequent category).")


# --------------------------------------------------------------------------- labels


def _label_values(table: _Table, label: str, form: str | None) -> np.ndarray:
    """The label column as int64, float64 or str; ``form`` (from training) fixes how to read a test file."""
    values = table.cells[label]
    if form == "str":
        return np.asarray(values, dtype=str)
    if form is None and all(_INT.match(v) for v in values):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    numbers = _numbers(values)
    if numbers is not None:
        _check_finite(table, label, numbers)
        return numbers
    if form is None:
        return np.asarray(values, dtype=str)
    bad = next(i for i, v in enumerate(values) if _numbers([v]) is None)
    raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[bad]}, label column {label!r}: "
                          f"{values[bad]!r}. Expected a number, as in the training file. Fix: correct the label.")


def _check_known_classes(test: _Table, label: str, y: np.ndarray, classes: list[str]) -> None:
    unseen = ~np.isin(y, classes)
    if unseen.any():
        i = int(np.flatnonzero(unseen)[0])
        others = sorted(set(y[unseen].tolist()))
        raise RecipeError.one("data.test_path", f"Received: {test.path} line {test.lines[i]}, label column {label!r}:"
                              f" {str(y[i])!r}, a class the training file does not have ({int(unseen.sum())} row(s), "
                              f"classes {others[:5]}). Expected only the training classes {classes[:20]}. Fix: remove "
                              "those rows from the test file, or add examples of the class to the training file.")


# --------------------------------------------------------------------------- the plan: files read and checked


@dataclass
class _Plan:
    """Both files read, rows with missing values handled, columns typed, labels encoded."""

    train: _Table
    test: _Table | None
    label: str
    features: list[str]
    kinds: dict[str, str]  # column -> "numeric" | "categorical"
    values: dict[str, np.ndarray]  # training file: float64 with NaN, or str with "" for missing
    test_values: dict[str, np.ndarray] | None
    labels: object  # data._Labels
    y_train: np.ndarray
    y_test: np.ndarray | None
    notes: list[str]


def _check_options(cfg: DataConfig) -> None:
    if cfg.path is None:
        raise RecipeError.one("data.path", "Received: no path. source: csv needs path: the CSV file with a header "
                              "row, e.g. path: ../data/tabular.csv.")
    from dlrecipe.data.loading import check_source
    check_source(cfg)
    if cfg.test_split is not None and cfg.test_path is not None:
        raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split} and test_path="
                              f"{cfg.test_path!r}. Expected one of them: test_split carves the test examples from "
                              "the training file, test_path reads them from another file. Fix: remove one.")
    for key in ("image_size", "color_mode", "name", "split", "data_dir"):
        if getattr(cfg, key) is not None:
            raise RecipeError.one(f"data.{key}", f"Received: {key}={getattr(cfg, key)!r}, which does not apply to "
                                  "source: csv. Fix: remove it.")


def _check_test_header(train: _Table, test: _Table) -> None:
    extra = [c for c in test.header if c not in train.cells]
    lacking = [c for c in train.header if c not in test.cells]
    if extra:
        raise RecipeError.one("data.test_path", f"Received: {test.path} with the column {extra[0]!r}"
                              f"{' (and ' + str(extra[1:]) + ')' if extra[1:] else ''}, which the training file "
                              f"{train.path} does not have.{suggest(extra[0], lacking)} Expected the same columns as "
                              f"the training file ({train.header}), in any order. Fix: remove or rename the column "
                              "in the test file.")
    if lacking:
        raise RecipeError.one("data.test_path", f"Received: {test.path} without the column {lacking[0]!r}"
                              f"{' (and ' + str(lacking[1:]) + ')' if lacking[1:] else ''}, which the training file "
                              f"{train.path} has. Expected the same columns as the training file, in any order. "
                              "Fix: add the column to the test file (empty cells for missing values).")


def _drop_or_refuse(cfg: DataConfig, table: _Table, label: str, features: list[str], notes: list[str]) -> _Table:
    """Rows without a label or with a missing feature: dropped (``missing: drop``) or an error."""
    miss = {c: _missing(table.cells[c]) for c in [label, *features]}
    if cfg.missing == "drop":
        bad = np.zeros(len(table), dtype=bool)
        for m in miss.values():
            bad |= m
        if bad.all() and len(table):
            raise RecipeError.one(table.where, f"Received: {table.path}, in which every row has a missing value, "
                                  "so missing: drop leaves nothing. Fix: use missing: mean, median or most_frequent.")
        if bad.any():
            notes.append(f"missing: drop removed {int(bad.sum())} of {len(table)} row(s) of {table.path} that have "
                         "a missing value.")
            table = table.take(~bad)
        return table
    if miss[label].any():
        i = int(np.flatnonzero(miss[label])[0])
        raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[i]} has no value in the label "
                              f"column {label!r} ({int(miss[label].sum())} row(s) without a label). Expected a label "
                              "in every row. Fix: remove those rows, or set data.missing: drop.")
    if cfg.missing is None and any(m.any() for c, m in miss.items() if c != label):
        raise _first_missing(table, features, miss)
    return table


def _column_values(table: _Table, name: str, kind: str, parsed: np.ndarray | None = None) -> np.ndarray:
    if kind == "numeric":
        x = parsed if parsed is not None else _numbers(table.cells[name])
        if x is None:
            bad = next(i for i, v in enumerate(table.cells[name]) if _numbers([v]) is None)
            raise RecipeError.one(table.where, f"Received: {table.path} line {table.lines[bad]}, column {name!r}: "
                                  f"{table.cells[name][bad]!r}, which is not a number, but the column holds numbers "
                                  "in the training file. Expected a number or an empty cell. Fix: correct the value.")
        _check_finite(table, name, x)
        return x
    return np.asarray(["" if v in _NA else v for v in table.cells[name]], dtype=str)


def _plan(cfg: DataConfig) -> _Plan:
    from dlrecipe.data import loading as datamod

    _check_options(cfg)
    train = _read(Path(cfg.path), "data.path")
    label, features = _roles(cfg, train)
    test = None
    if cfg.test_path is not None:
        test = _read(Path(cfg.test_path), "data.test_path")
        _check_test_header(train, test)
    notes: list[str] = []
    train = _drop_or_refuse(cfg, train, label, features, notes)
    if test is not None:
        test = _drop_or_refuse(cfg, test, label, features, notes)
    parsed = {c: _numbers(train.cells[c]) for c in features}  # None: a value is not a number
    kinds = {c: "numeric" if parsed[c] is not None else "categorical" for c in features}
    values = {c: _column_values(train, c, kinds[c], parsed[c]) for c in features}
    test_values = {c: _column_values(test, c, kinds[c]) for c in features} if test is not None else None
    origin = f"{train.path} (label column {label!r})"
    y_raw = _label_values(train, label, None)
    labels = datamod._infer_labels(cfg, y_raw, None, origin, "data.label")
    y_train = datamod._encode(labels, y_raw, "the labels", origin, "data.label")
    y_test = None
    if test is not None:
        t_origin = f"{test.path} (label column {label!r})"
        y_raw = _label_values(test, label, labels.form)
        if labels.form == "str":
            _check_known_classes(test, label, y_raw, labels.class_names)
        y_test = datamod._encode(labels, y_raw, "the labels", t_origin, "data.test_path")
    datamod._check_counts(cfg, len(train), False, str(train.path))
    return _Plan(train, test, label, features, kinds, values, test_values, labels, y_train, y_test, notes)


# --------------------------------------------------------------------------- fit and encode


def _most_frequent(x: np.ndarray):
    found, counts = np.unique(x, return_counts=True)
    return found[int(np.argmax(counts))].item()  # ties: the smallest (np.unique sorts)


def _input_name(column: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", column).strip("_") or "column"
    if not name[0].isalpha():
        name = f"c_{name}"
    base, n = name, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def fit(plan_kinds: dict[str, str], values: dict[str, np.ndarray], missing: str | None, origin: str) -> dict:
    """Fit the encoding on the training split's raw columns.

    Args:
        plan_kinds: each feature column's kind, in input order.
        values: the training split's columns (float64 with NaN, or str with "" for missing).
        missing: ``data.missing``.
        origin: the training file, for messages.

    Returns:
        ``{"format", "missing", "na_tokens", "width", "columns": [{"name", "input", "kind", "fill",
        "categories" (categorical), "offset"}]}``, JSON-able.
    """
    columns, taken, offset = [], set(), 0
    for name, kind in plan_kinds.items():
        x = values[name]
        present = x[~np.isnan(x)] if kind == "numeric" else x[x != ""]
        if len(present) == 0:
            raise RecipeError.one("data.path", f"Received: {origin}, whose column {name!r} has no value in the "
                                  f"training split ({len(x)} rows). Expected at least one value to learn from. Fix: "
                                  "remove the column from data.features, or fill it in.")
        col = {"name": name, "input": _input_name(name, taken), "kind": kind, "offset": offset}
        if kind == "numeric":
            stat = missing if missing in ("mean", "median", "most_frequent") else "median"
            fill = {"mean": lambda v: float(np.mean(v)), "median": lambda v: float(np.median(v)),
                    "most_frequent": lambda v: float(_most_frequent(v))}[stat](present)
            col.update(fill=fill, fill_statistic=stat)
            offset += 1
        else:
            categories = np.unique(present).tolist()
            col.update(categories=categories, fill=str(_most_frequent(present)), fill_statistic="most_frequent")
            offset += len(categories)
        columns.append(col)
    return {"format": FORMAT, "source": "csv", "missing": missing, "na_tokens": list(NA_TOKENS), "width": offset,
            "columns": columns}


def encode(spec: dict, values: dict[str, np.ndarray]) -> np.ndarray:
    """Encode raw columns with a fitted spec: the NumPy reference of the exported model's encoding.

    Numeric columns: float32, a missing value (NaN) replaced by the column's ``fill``. Categorical
    columns: a missing value ("" or an NA token) replaced by ``fill``, then one-hot over ``categories``
    (an unknown category: all zeros).

    Args:
        spec: what ``fit`` returned (or read back from ``preprocessing.json``).
        values: one array per feature column, all of the same length.

    Returns:
        float32 of shape ``(n, spec["width"])``.
    """
    n = len(next(iter(values.values()))) if values else 0
    out = np.zeros((n, spec["width"]), dtype=np.float32)
    na = set(spec["na_tokens"])
    for col in spec["columns"]:
        x = values[col["name"]]
        if col["kind"] == "numeric":
            v = np.asarray(x, dtype=np.float32)
            out[:, col["offset"]] = np.where(np.isnan(v), np.float32(col["fill"]), v)
            continue
        # Values are compared as they are (the file's cells were stripped when read); -1: unknown.
        index = {c: j for j, c in enumerate(col["categories"])}
        fill = index.get(col["fill"], -1)
        j = np.fromiter((fill if s in na else index.get(s, -1) for s in map(str, x)), dtype=np.int64, count=n)
        known = j >= 0
        out[np.flatnonzero(known), col["offset"] + j[known]] = 1.0
    return out


def _unknown_note(spec: dict, values: dict[str, np.ndarray], path: Path) -> list[str]:
    notes = []
    for col in spec["columns"]:
        if col["kind"] != "categorical":
            continue
        x = values[col["name"]]
        unseen = sorted(set(x[x != ""].tolist()) - set(col["categories"]))
        if unseen:
            n = int(np.isin(x, unseen).sum())
            what = "category" if len(unseen) == 1 else "categories"
            notes.append(f"{path}: column {col['name']!r} holds {len(unseen)} {what}"
                         f" the training split does not have ({', '.join(map(repr, unseen[:5]))}"
                         f"{', ...' if len(unseen) > 5 else ''}; {n} row(s)); they are encoded as all zeros.")
    return notes


def _check_spec(spec: dict, plan: _Plan) -> None:
    """A stored encoding (from a run) must fit the data read now."""
    stored = {c["name"]: c["kind"] for c in spec.get("columns", [])}
    if list(stored) != plan.features:
        raise RecipeError.one("data.path", f"Received: the columns {plan.features} from {plan.train.path}, but the "
                              f"run was trained on {list(stored)}. Expected the same feature columns. Fix: restore "
                              "the data file the run was trained with, or train again.")
    for name, kind in stored.items():
        if kind == "numeric" and plan.kinds[name] != "numeric":
            raise RecipeError.one("data.path", f"Received: {plan.train.path} whose column {name!r} now holds text, "
                                  "but the run was trained on numbers there. Fix: restore the data file the run "
                                  "was trained with, or train again.")


def _take_columns(values: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in values.items()}


def load(cfg: DataConfig, seed: int, tabular: dict | None = None, *, quiet: bool = False):
    """Read, split, fit (on the training split only) and encode; see the module docstring.

    Args:
        cfg: the validated ``data:`` section (``source: csv``).
        seed: the recipe's seed, for the splits.
        tabular: a stored encoding (a run's ``preprocessing.json``), used instead of fitting one.
        quiet: do not print the notes (rows dropped, unknown test categories) to stderr.

    Returns:
        ``data.Dataset`` with float32 ``x`` matrices, ``tabular`` (the encoding) and ``raw_test``
        (the test split's raw columns, for the export's check).

    Raises:
        RecipeError: a bad file, column, value, option or split, naming the file and the fix.
    """
    from dlrecipe.data import loading as datamod

    plan = _plan(cfg)
    n, n_test = len(plan.train), len(plan.test) if plan.test is not None else 0
    info = datamod.DataInfo(input_shape=(0,), input_dtype="float32", task=plan.labels.task,
                            class_names=plan.labels.class_names, n_classes=plan.labels.n_classes)
    raw = datamod._Raw(info, plan.labels, np.arange(n), plan.y_train,
                       np.arange(n_test) if plan.test is not None else None, plan.y_test)
    split = datamod._split(cfg, raw, seed)  # x arrays are row indices here
    train_values = _take_columns(plan.values, split.x_train)
    if tabular is None:
        tabular = fit(plan.kinds, train_values, cfg.missing, str(plan.train.path))
    else:
        _check_spec(tabular, plan)
    test_values = None
    notes = list(plan.notes)
    if split.x_test is not None:
        source = plan.test_values if cfg.test_path is not None else plan.values
        test_values = _take_columns(source, split.x_test)
        notes += _unknown_note(tabular, test_values, plan.test.path if plan.test is not None else plan.train.path)
    for note in [] if quiet else notes:
        sys.stderr.write(f"note: {note}\n")
    info = replace(info, input_shape=(int(tabular["width"]),))
    x_val = encode(tabular, _take_columns(plan.values, split.x_val)) if split.x_val is not None else None
    return datamod.Dataset(info, encode(tabular, train_values), split.y_train, x_val, split.y_val,
                           encode(tabular, test_values) if test_values is not None else None, split.y_test,
                           tabular=tabular, raw_test=test_values)


def peek(cfg: DataConfig, seed: int):
    """The facts about the data (``data.DataInfo``): ``load`` without keeping the arrays.

    The input width is the number of encoded columns, which depends on the categories of the
    training split, so the whole file is read and split (with ``seed``).
    """
    return load(cfg, seed, quiet=True).info


def count_train_examples(cfg: DataConfig) -> int:
    """The number of training examples ``load`` gives (it does not depend on the seed)."""
    return len(load(cfg, 0, quiet=True).x_train)
