"""The report numbers, computed with NumPy from labels and predictions (no scikit-learn, no backend).

Classification: accuracy, per-class precision/recall/F1/support, macro F1 and the confusion
matrix (rows = true class, columns = predicted class). Regression: MAE, RMSE and R². Ratios
with an empty denominator (precision of a class that is never predicted) are 0.0, and a value
that is not finite is None, so that the report is valid JSON.
"""

from __future__ import annotations

import math

import numpy as np

from dlrecipe.errors import RecipeError


def labels_of(y) -> np.ndarray:
    """Integer labels from integer labels ``(n,)``/``(n, 1)`` or one-hot rows ``(n, k)``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype(np.int64)
    return y.reshape(len(y)).astype(np.int64)


def class_names_for(class_names, predictions, y_true) -> list[str]:
    """One name per class: ``class_names`` as strings, or ``"0", "1", ...``; as many as the model and labels need.

    Raises:
        RecipeError: at ``data.class_names`` when there are fewer names than classes.
    """
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


def predicted_classes(probabilities) -> np.ndarray:
    """Argmax over the last axis; one sigmoid column (binary) is thresholded at 0.5."""
    p = np.asarray(probabilities)
    p = p.reshape(len(p), -1)
    if p.shape[1] == 1:
        return (p[:, 0] > 0.5).astype(np.int64)
    return np.argmax(p, axis=1).astype(np.int64)


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
        "mae": finite_or_none(np.abs(err).mean()),
        "rmse": finite_or_none(math.sqrt((err ** 2).mean())),
        "r2": finite_or_none(r2.mean()),
    }


def finite_or_none(value) -> float | None:
    """``value`` as a float, or None when it is not finite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None
