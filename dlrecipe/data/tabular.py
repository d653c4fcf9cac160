"""The fitted encoding of a table (csv): numeric columns filled, categorical ones one-hot encoded.

``fit`` learns it from the training split's raw columns; ``encode`` is the NumPy reference transform,
which ``export.csv_inputs`` rebuilds in TensorFlow for the exported model. The encoding is a JSON-able
dict, stored as ``tabular`` in the run's ``preprocessing.json``. NumPy only. See docs/data.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError

NA_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "?")
MISSING_CHOICES = ("drop", "mean", "median", "most_frequent")
FORMAT = 1


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

    A numeric column's ``fill`` is the ``missing`` statistic (mean, median or most_frequent) of the
    training split, else its median (the exported model cannot drop a request); a categorical column
    is one-hot over its sorted training categories, with the most frequent one as ``fill``.

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


def unknown_notes(spec: dict, values: dict[str, np.ndarray], path: Path) -> list[str]:
    """One note per categorical column of ``values`` (from ``path``) holding categories ``spec`` lacks."""
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
