"""The ``csv`` data source: a table with a header row, one example per row (NumPy only, no pandas).

``load`` reads the training file (``data.path``) and the optional test file (``data.test_path``,
``sources.csvfile``), carves ``subset``, ``test_split`` and ``validation_split`` by the split rule of
``data.splits``, then fits the encoding on the training split only (``data.tabular``) and encodes every
split into a float32 matrix, the model's input. ``peek`` runs the same steps (the input width depends on
the categories of the training split) and returns only the facts. See docs/data.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dlrecipe.data import tabular as encoding
from dlrecipe.data.labels import encode, infer_labels
from dlrecipe.data.sources import check_source
from dlrecipe.data.sources.csvfile import Table, column_values, is_missing, label_values, parse_numbers, read_table
from dlrecipe.data.splits import check_counts, split
from dlrecipe.data.types import DataInfo, Dataset, Labels, Raw
from dlrecipe.errors import RecipeError, suggest
from dlrecipe.recipe.schema import DataConfig


def _roles(cfg: DataConfig, table: Table) -> tuple[str, list[str]]:
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


def _first_missing(table: Table, columns: list[str], miss: dict[str, np.ndarray]) -> RecipeError:
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


def _check_known_classes(test: Table, label: str, y: np.ndarray, classes: list[str]) -> None:
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

    train: Table
    test: Table | None
    label: str
    features: list[str]
    kinds: dict[str, str]  # column -> "numeric" | "categorical"
    values: dict[str, np.ndarray]  # training file: float64 with NaN, or str with "" for missing
    test_values: dict[str, np.ndarray] | None
    labels: Labels
    y_train: np.ndarray
    y_test: np.ndarray | None
    notes: list[str]


def _check_options(cfg: DataConfig) -> None:
    if cfg.path is None:
        raise RecipeError.one("data.path", "Received: no path. source: csv needs path: the CSV file with a header "
                              "row, e.g. path: ../data/tabular.csv.")
    check_source(cfg)
    if cfg.test_split is not None and cfg.test_path is not None:
        raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split} and test_path="
                              f"{cfg.test_path!r}. Expected one of them: test_split carves the test examples from "
                              "the training file, test_path reads them from another file. Fix: remove one.")
    for key in ("image_size", "color_mode", "name", "split", "data_dir"):
        if getattr(cfg, key) is not None:
            raise RecipeError.one(f"data.{key}", f"Received: {key}={getattr(cfg, key)!r}, which does not apply to "
                                  "source: csv. Fix: remove it.")


def _check_test_header(train: Table, test: Table) -> None:
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


def _drop_or_refuse(cfg: DataConfig, table: Table, label: str, features: list[str], notes: list[str]) -> Table:
    """Rows without a label or with a missing feature: dropped (``missing: drop``) or an error."""
    miss = {c: is_missing(table.cells[c]) for c in [label, *features]}
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


def _plan(cfg: DataConfig) -> _Plan:
    _check_options(cfg)
    train = read_table(Path(cfg.path), "data.path")
    label, features = _roles(cfg, train)
    test = None
    if cfg.test_path is not None:
        test = read_table(Path(cfg.test_path), "data.test_path")
        _check_test_header(train, test)
    notes: list[str] = []
    train = _drop_or_refuse(cfg, train, label, features, notes)
    if test is not None:
        test = _drop_or_refuse(cfg, test, label, features, notes)
    parsed = {c: parse_numbers(train.cells[c]) for c in features}  # None: a value is not a number
    kinds = {c: "numeric" if parsed[c] is not None else "categorical" for c in features}
    values = {c: column_values(train, c, kinds[c], parsed[c]) for c in features}
    test_values = {c: column_values(test, c, kinds[c]) for c in features} if test is not None else None
    origin = f"{train.path} (label column {label!r})"
    y_raw = label_values(train, label, None)
    labels = infer_labels(cfg, y_raw, None, origin, "data.label")
    y_train = encode(labels, y_raw, "the labels", origin, "data.label")
    y_test = None
    if test is not None:
        t_origin = f"{test.path} (label column {label!r})"
        y_raw = label_values(test, label, labels.form)
        if labels.form == "str":
            _check_known_classes(test, label, y_raw, labels.class_names)
        y_test = encode(labels, y_raw, "the labels", t_origin, "data.test_path")
    check_counts(cfg, len(train), False, str(train.path))
    return _Plan(train, test, label, features, kinds, values, test_values, labels, y_train, y_test, notes)


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


def load(cfg: DataConfig, seed: int, tabular: dict | None = None, *, quiet: bool = False) -> Dataset:
    """Read, split, fit (on the training split only) and encode; see the module docstring.

    ``label:`` names the target column; ``features:`` the inputs, in order (default: every other column).
    A feature column is numeric when every non-missing value of the training file parses as a number,
    else categorical. Labels: all integers -> class indices; numbers -> regression; else class names
    (sorted); ``task`` overrides. ``missing``: unset -> a missing value is an error naming file, column
    and line; ``drop`` -> rows with a missing feature or label are dropped from the training file (before
    the splits) and from the test file; ``mean``/``median``/``most_frequent`` -> cells are filled from
    the training split (``tabular.fit``); a row without a label is still an error.

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
    plan = _plan(cfg)
    n, n_test = len(plan.train), len(plan.test) if plan.test is not None else 0
    info = DataInfo(input_shape=(0,), input_dtype="float32", task=plan.labels.task,
                    class_names=plan.labels.class_names, n_classes=plan.labels.n_classes)
    raw = Raw(info, plan.labels, np.arange(n), plan.y_train,
              np.arange(n_test) if plan.test is not None else None, plan.y_test)
    rows = split(cfg, raw, seed)  # x arrays are row indices here
    train_values = _take_columns(plan.values, rows.x_train)
    if tabular is None:
        tabular = encoding.fit(plan.kinds, train_values, cfg.missing, str(plan.train.path))
    else:
        _check_spec(tabular, plan)
    test_values = None
    notes = list(plan.notes)
    if rows.x_test is not None:
        source = plan.test_values if cfg.test_path is not None else plan.values
        test_values = _take_columns(source, rows.x_test)
        notes += encoding.unknown_notes(tabular, test_values,
                                        plan.test.path if plan.test is not None else plan.train.path)
    for note in [] if quiet else notes:
        sys.stderr.write(f"note: {note}\n")
    info = replace(info, input_shape=(int(tabular["width"]),))
    x_val = encoding.encode(tabular, _take_columns(plan.values, rows.x_val)) if rows.x_val is not None else None
    return Dataset(info, encoding.encode(tabular, train_values), rows.y_train, x_val, rows.y_val,
                   encoding.encode(tabular, test_values) if test_values is not None else None, rows.y_test,
                   tabular=tabular, raw_test=test_values)


def peek(cfg: DataConfig, seed: int) -> DataInfo:
    """The facts about the data (``data.DataInfo``): ``load`` without keeping the arrays.

    The input width is the number of encoded columns, which depends on the categories of the
    training split, so the whole file is read and split (with ``seed``).
    """
    return load(cfg, seed, quiet=True).info


def count_train_examples(cfg: DataConfig) -> int:
    """The number of training examples ``load`` gives (it does not depend on the seed)."""
    return len(load(cfg, 0, quiet=True).x_train)
