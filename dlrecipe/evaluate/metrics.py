"""Evaluate a trained model on test arrays, and write the report (``metrics.json`` and the plots).

``evaluate`` returns a plain, JSON-ready dict: every metric the model was compiled with at top
level (``loss``, ``accuracy``, ...), plus the numbers of ``dlrecipe.evaluate.reports`` for the
task. For segmentation every test pixel counts as an example, with ``iou`` per class and
``mean_iou`` added (``dlrecipe.evaluate.segmentation``). JSON has no NaN: a value that is not
finite (a diverged loss) is written as ``null``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.evaluate import segmentation
from dlrecipe.evaluate.plots import plot_confusion_matrix, plot_curves, save_figure
from dlrecipe.evaluate.reports import (
    class_names_for,
    classification_report,
    finite_or_none,
    labels_of,
    predicted_classes,
    regression_report,
)
from dlrecipe.io import json_safe, write_json
from dlrecipe.tasks.segmentation import SEGMENTATION

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION, SEGMENTATION)


# --------------------------------------------------------------------------- evaluate


def evaluate(model, x_test, y_test, *, task: str, class_names: list[str] | None, batch_size: int) -> dict:
    """Evaluate ``model`` on the test arrays.

    Args:
        model: a compiled Keras model; raw examples in (float32), probabilities
            (classification) or values (regression) out.
        x_test: raw test inputs, any numeric dtype (cast to float32); or a batched
            ``tf.data.Dataset`` of ``(x, y)`` in a fixed order (a streamed test split),
            whose labels ``y_test`` then repeats as an array.
        y_test: integer labels ``(n,)`` / ``(n, 1)``, one-hot labels ``(n, k)``,
            or regression targets.
        task: ``"classification"`` or ``"regression"``.
        class_names: names of the classes in label order, or None (the labels'
            numbers are used).
        batch_size: batch size for ``model.evaluate`` and ``model.predict``.

    Returns:
        ``metrics.json``'s content: ``task``, ``n_test``, every compiled metric
        (``loss``, ...), then for classification ``accuracy`` (from the argmax of
        the predictions), ``macro_f1``, ``per_class`` and ``confusion_matrix``;
        for regression ``mae``, ``rmse`` and ``r2``.

    Raises:
        RecipeError: unknown task, or test arrays that do not match each other
            or the model.
    """
    if task not in TASKS:
        raise RecipeError.one("task", f"Received: task={task!r}. Expected one of {list(TASKS)}. "
                              "The run's preprocessing.json is damaged; train the run again.")
    streamed = hasattr(x_test, "element_spec")  # a batched tf.data.Dataset of (x, y): image_dir, tfds
    x = x_test if streamed else _as_float32(x_test)
    y = np.asarray(y_test)
    if not streamed and len(x) != len(y):
        raise RecipeError.one("data.test", f"Received {len(x)} test inputs but {len(y)} labels. "
                              "Expected one label per example; check the test split of the data.")
    if len(y) == 0:
        raise RecipeError.one("data.test", "Received an empty test set. Expected at least one example; "
                              "check data.split (or the test file).")
    if streamed:
        keras_metrics = model.evaluate(x, verbose=0, return_dict=True)
    else:
        keras_metrics = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    metrics: dict[str, Any] = {"task": task, "n_test": int(len(y))}
    metrics.update({str(k): _plain(v) for k, v in keras_metrics.items()})
    predictions = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if task == CLASSIFICATION:
        y_true = labels_of(y)
        y_pred = predicted_classes(predictions)
        names = class_names_for(class_names, predictions, y_true)
        metrics.update(classification_report(y_true, y_pred, names))
    elif task == SEGMENTATION:
        names = class_names_for(class_names, predictions.reshape(-1, predictions.shape[-1]), y.reshape(-1))
        metrics.update(segmentation.report(y, segmentation.predicted_masks(predictions), names))
    else:
        metrics.update(regression_report(y, predictions))
    return metrics


def _as_float32(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _plain(value) -> Any:
    """A Keras metric's value as JSON-ready floats (a vector metric, e.g. F1Score, becomes a list)."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return finite_or_none(array)
    return [_plain(v) for v in array]


# --------------------------------------------------------------------------- report files


def write_report(run_dir: Path, metrics: dict) -> list[Path]:
    """Write ``metrics.json`` and the plots into the run folder, each file atomically.

    Files: ``metrics.json``; ``plots/curves.png`` (loss and each metric per epoch,
    train and validation, and the learning rate), when ``history.csv`` has rows;
    ``plots/confusion_matrix.png`` when ``metrics`` holds a confusion matrix.

    Args:
        run_dir: the run folder.
        metrics: what ``evaluate`` returned.

    Returns:
        The paths written, ``metrics.json`` first.
    """
    run_dir = Path(run_dir)
    written = [run_dir / runs.METRICS]
    history = runs.history_columns(run_dir / runs.HISTORY)  # read first: a damaged file stops before any write
    write_json(written[0], json_safe(metrics))
    if history and history.get("epoch"):
        path = run_dir / runs.PLOTS / "curves.png"
        save_figure(plot_curves(history), path)
        written.append(path)
    if metrics.get("confusion_matrix"):
        path = run_dir / runs.PLOTS / "confusion_matrix.png"
        save_figure(plot_confusion_matrix(metrics["confusion_matrix"]), path)
        written.append(path)
    return written

