"""Evaluate a trained model on test arrays, and write and print the report.

``evaluate`` returns a plain, JSON-ready dict (``metrics.json``): every metric the
model was compiled with at top level (``loss``, ``accuracy``, ...), plus, for
classification, per-class precision/recall/F1/support, macro F1 and the
confusion matrix (rows = true class, columns = predicted class), and, for
regression, MAE, RMSE and R². For segmentation every test pixel counts as an
example: ``accuracy`` is the pixel accuracy, the per-class report and the
confusion matrix count pixels, and ``per_class[name]["iou"]`` and ``mean_iou``
are added (see ``dlrecipe.segmentation``). The extra metrics are computed with NumPy from the
model's predictions; no scikit-learn.

JSON has no NaN: a value that is not finite (a diverged loss) is written as
``null``, and ratios with an empty denominator (precision of a class that is
never predicted) are 0.0.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.io import write_json

CLASSIFICATION = "classification"
REGRESSION = "regression"
SEGMENTATION = "segmentation"
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
        names = _class_names(class_names, predictions, y_true)
        metrics.update(classification_report(y_true, y_pred, names))
    elif task == SEGMENTATION:
        from dlrecipe.tasks import segmentation
        names = _class_names(class_names, predictions.reshape(-1, predictions.shape[-1]), y.reshape(-1))
        metrics.update(segmentation.report(y, segmentation.predicted_masks(predictions), names))
    else:
        metrics.update(regression_report(y, predictions))
    return metrics


def _as_float32(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def labels_of(y) -> np.ndarray:
    """Integer labels from integer labels ``(n,)``/``(n, 1)`` or one-hot rows ``(n, k)``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype(np.int64)
    return y.reshape(len(y)).astype(np.int64)


def predicted_classes(probabilities) -> np.ndarray:
    """Argmax over the last axis; one sigmoid column (binary) is thresholded at 0.5."""
    p = np.asarray(probabilities)
    p = p.reshape(len(p), -1)
    if p.shape[1] == 1:
        return (p[:, 0] > 0.5).astype(np.int64)
    return np.argmax(p, axis=1).astype(np.int64)


def _class_names(class_names, predictions, y_true) -> list[str]:
    n_out = int(np.asarray(predictions).reshape(len(predictions), -1).shape[1])
    n_classes = max(2 if n_out == 1 else n_out, int(y_true.max()) + 1 if y_true.size else 0)
    if class_names is None:
        return [str(i) for i in range(n_classes)]
    names = [str(c) for c in class_names]
    if len(names) < n_classes:
        raise RecipeError.one("data.class_names", f"Received {len(names)} class names, but the model predicts "
                              f"{n_out} classes and the labels go up to {int(y_true.max())}. Expected "
                              f"{n_classes} names, one per class in label order; fix the class names.")
    return names


def classification_report(y_true, y_pred, class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix.

    A pure NumPy function. Ratios with an empty denominator are 0.0 (a class that
    is never predicted has precision 0.0), so the result holds no NaN.

    Args:
        y_true: integer labels, shape ``(n,)``.
        y_pred: predicted integer labels, shape ``(n,)``.
        class_names: one name per class; label ``i`` is ``class_names[i]``.

    Returns:
        ``{"accuracy", "macro_f1", "per_class": {name: {"precision", "recall",
        "f1", "support"}}, "confusion_matrix": {"labels", "matrix"}}``, where
        ``matrix[i][j]`` counts examples of true class ``i`` predicted as ``j``.

    Example:
        >>> classification_report([0, 1, 1], [0, 1, 0], ["a", "b"])["per_class"]["a"]["precision"]
        0.5
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    k = len(class_names)
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= k):
            raise RecipeError.one("data.class_names", f"Received {name} from {int(y.min())} to {int(y.max())} "
                                  f"but {k} class names. Expected labels 0..{k - 1}; give one name per class.")
    matrix = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(tp.sum() / len(y_true)) if len(y_true) else 0.0,
        "macro_f1": float(f1.mean()) if k else 0.0,
        "per_class": per_class,
        "confusion_matrix": {"labels": list(class_names), "matrix": matrix.tolist()},
    }


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``(n_classes, n_classes)``: rows are true classes, columns predicted ones."""
    flat = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(den), where=den != 0)


def regression_report(y_true, y_pred) -> dict:
    """MAE, RMSE and R² (averaged over outputs; 1.0 or 0.0 for a constant target, never NaN).

    Example:
        >>> regression_report([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
        0.3333333333333333
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    n = len(y_true)
    y_true, y_pred = y_true.reshape(n, -1), y_pred.reshape(n, -1)
    if y_true.shape != y_pred.shape:
        raise RecipeError.one("data.target", f"Received targets of shape {y_true.shape[1:]} per example but the "
                              f"model predicts {y_pred.shape[1:]}. Expected the same shape; check data.target and "
                              "the model's last layer.")
    err = y_pred - y_true
    ss_res = (err ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1 - _safe_divide(ss_res, ss_tot), np.where(ss_res > 0, 0.0, 1.0))
    return {
        "mae": _finite_or_none(np.abs(err).mean()),
        "rmse": _finite_or_none(math.sqrt((err ** 2).mean())),
        "r2": _finite_or_none(r2.mean()),
    }


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value) -> Any:
    """A Keras metric's value as JSON-ready floats (a vector metric, e.g. F1Score, becomes a list)."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return _finite_or_none(array)
    return [_plain(v) for v in array]


def _json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


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
    write_json(written[0], _json_safe(metrics))
    history = runs.history_columns(run_dir / runs.HISTORY)
    if history and history.get("epoch"):
        path = run_dir / runs.PLOTS / "curves.png"
        save_figure(plot_curves(history), path)
        written.append(path)
    if metrics.get("confusion_matrix"):
        path = run_dir / runs.PLOTS / "confusion_matrix.png"
        save_figure(plot_confusion_matrix(metrics["confusion_matrix"]), path)
        written.append(path)
    return written


def plot_curves(history: dict[str, list[float]]):
    """A matplotlib Figure: one panel per metric (train and ``val_``) and one for the learning rate."""
    from matplotlib.figure import Figure

    epochs = history["epoch"]
    bases = [c for c in history if c not in ("epoch", "learning_rate") and not c.startswith("val_")]
    bases += [c[4:] for c in history if c.startswith("val_") and c[4:] not in history]
    panels = bases + (["learning_rate"] if "learning_rate" in history else [])
    cols = min(3, max(1, len(panels)))
    rows = math.ceil(len(panels) / cols) if panels else 1
    fig = Figure(figsize=(4.5 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, panels):
        if name == "learning_rate":
            _plot_learning_rate(ax, epochs, history[name])
            continue
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in history:
                ax.plot(epochs, history[key], marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig


def _plot_learning_rate(ax, epochs, values) -> None:
    ax.plot(epochs, values, marker="o", markersize=3, color="tab:green")
    if all(v > 0 for v in values if math.isfinite(v)) and any(math.isfinite(v) for v in values):
        ax.set_yscale("log")
    ax.set_title("learning rate (first step of the epoch)")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def plot_confusion_matrix(confusion: dict):
    """A matplotlib Figure of the confusion matrix: class names on the axes, counts in the cells."""
    from matplotlib.figure import Figure

    labels, matrix = confusion["labels"], np.asarray(confusion["matrix"])
    k = len(labels)
    size = min(4 + 0.45 * k, 30)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), labels, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test set)")
    if k <= 40:  # beyond this, numbers are unreadable; the colours still show the pattern
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=max(5, 10 - k // 5),
                        color="white" if matrix[i, j] > threshold else "black")
    return fig


def save_figure(fig, path: Path) -> None:
    """Save ``fig`` as PNG atomically: a temp file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- console


_FIRST = ("loss", "accuracy", "mean_iou", "macro_f1", "mae", "rmse", "r2")


def print_summary(metrics: dict, console) -> None:
    """Print the test metrics as rich tables: overall metrics, then per class.

    Args:
        metrics: what ``evaluate`` returned (or ``metrics.json`` read back).
        console: a ``rich.console.Console``.
    """
    from rich.table import Table

    overall = Table(title=f"Test metrics ({metrics.get('n_test', '?')} examples)")
    overall.add_column("metric")
    overall.add_column("value", justify="right")
    scalars = {k: v for k, v in metrics.items() if k not in ("task", "n_test") and _is_scalar(v)}
    for name in sorted(scalars, key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k)):
        overall.add_row(name, _format(scalars[name]))
    console.print(overall)
    per_class = metrics.get("per_class")
    if per_class:
        iou = all("iou" in row for row in per_class.values())  # segmentation: pixels, with IoU
        table = Table(title="Per class" + (" (pixels)" if iou else ""))
        for column in ("class", "precision", "recall", "F1", *(["IoU"] if iou else []), "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for name, row in per_class.items():
            table.add_row(str(name), _format(row["precision"]), _format(row["recall"]), _format(row["f1"]),
                          *([_format(row["iou"])] if iou else []), str(row["support"]))
        console.print(table)


def _is_scalar(value) -> bool:
    return value is None or (isinstance(value, (int, float, np.number)) and not isinstance(value, bool))


def _format(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{float(value):.4f}"
