"""k-fold cross-validation (``train.cross_validation: k``): the folds, each fold's data, and the report.

The k folds partition the training split (``validation_split`` unused), seeded and stratified per class
for classification. Fold i (``folds/<i>/``, laid out as a run, plus fold.json) trains on the other k - 1
with normalization fitted on them and validates on fold i; cv.json and cv.csv hold every validation
metric per fold, its mean and its population standard deviation. The run has no model.keras. See
docs/training.md.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe.data import pipeline, preprocess, source
from dlrecipe.errors import RecipeError
from dlrecipe.io import write_json, write_text
from dlrecipe.train.unit import Unit

FOLDS = "folds"
FOLD_JSON = "fold.json"
CV_JSON = "cv.json"
CV_CSV = "cv.csv"


def check(recipe, dataset) -> None:
    """The loaded data can be split into ``train.cross_validation`` folds in memory.

    Raises:
        RecipeError: streamed data, or fewer training examples than folds.
    """
    if pipeline.is_streamed(dataset):
        source.check_streamable(recipe.data, recipe.train.cross_validation)
    k = recipe.train.cross_validation
    n = len(dataset.x_train)
    if k > n:
        raise RecipeError.one("train.cross_validation", f"Received: cross_validation={k}, but the training split "
                              f"has {n} examples. Expected at most {n} folds; lower k or use more data.")


def make_folds(y: np.ndarray, k: int, seed: int, stratify: bool) -> list[np.ndarray]:
    """Split ``range(len(y))`` into ``k`` disjoint folds that cover it, each sorted.

    Examples are shuffled with ``np.random.default_rng(seed)``; with ``stratify`` the shuffled
    examples of each class are dealt round-robin in turn, so every fold gets its share of each class.

    Example:
        >>> [f.tolist() for f in make_folds(np.array([0, 0, 1, 1]), 2, seed=0, stratify=True)]
        [[0, 2], [1, 3]]
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    if stratify:
        labels = np.asarray(y).reshape(n)
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    else:
        order = rng.permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % k
    return [np.flatnonzero(fold_of == i) for i in range(k)]


def fold_unit(recipe, dataset, val_idx: np.ndarray, i: int, work_dir: Path, label: str) -> tuple[Unit, dict]:
    """Fold ``i``: a ``Unit`` that trains on the examples outside ``val_idx`` (normalization fitted on
    them) and validates on ``val_idx``, and what its fold.json records about it."""
    train_idx = np.setdiff1d(np.arange(len(dataset.x_train)), val_idx, assume_unique=True)
    x_tr, y_tr = dataset.x_train[train_idx], dataset.y_train[train_idx]
    stats = preprocess.fit_data(recipe.data, x_tr)
    fold = dataclasses.replace(dataset, x_train=x_tr, y_train=y_tr, x_val=dataset.x_train[val_idx],
                               y_val=dataset.y_train[val_idx])
    about = {"fold": i, "seed": recipe.seed, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
             "validation_indices": val_idx.tolist(), "normalization": stats}
    return Unit(work_dir, recipe.seed, fold, stats, label), about


def validation_metrics(model, unit: Unit, recipe, info) -> dict[str, float]:
    """The fold's ``val_`` metrics with the final weights, its labels fed as in ``fit``."""
    val = pipeline.fit_inputs(unit.data, recipe, info.n_classes)["validation_data"]
    scores = (model.evaluate(*val, batch_size=recipe.train.batch_size, verbose=0, return_dict=True)
              if isinstance(val, tuple) else model.evaluate(val, verbose=0, return_dict=True))
    return {f"val_{name}": float(value) for name, value in scores.items() if np.ndim(value) == 0}


def summarize(rows: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and population standard deviation over the folds of every ``val_`` metric."""
    names = [k for k in rows[0] if k.startswith("val_")]
    values = {name: np.array([r[name] for r in rows], dtype=np.float64) for name in names}
    return ({name: float(v.mean()) for name, v in values.items()},
            {name: float(v.std()) for name, v in values.items()})


def write_cv(run_dir: Path, recipe, rows: list[dict[str, Any]], mean: dict, std: dict) -> None:
    """``cv.json`` (folds, mean, std) and ``cv.csv`` (one row per fold, then a mean and a std row)."""
    write_json(run_dir / CV_JSON, {"k": len(rows), "seed": recipe.seed, "folds": rows, "mean": mean, "std": std,
                                   "std_ddof": 0})
    keys = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for label, values in (("mean", mean), ("std", std)):
        writer.writerow({keys[0]: label, **values})
    write_text(run_dir / CV_CSV, buf.getvalue())
