"""What a trained classifier gets wrong (fastai's ``ClassificationInterpretation``), and what a table's model uses.

``losses`` is each test example's loss; ``top_losses`` the worst of them; ``most_confused`` the off-diagonal
cells of evaluate's confusion matrix (``evaluate.reports.classification_report``), largest first;
``permutation_importance`` the drop of the test metric when one column of a table is shuffled. NumPy only
(the model is called through ``predict``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from dlrecipe.evaluate.reports import classification_report, labels_of, predicted_classes

EPS = 1e-7


def true_probability(probabilities: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """The probability each example's true class gets (one sigmoid column: p for 1, 1 - p for 0)."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1)
    if p.shape[1] == 1:
        return np.where(y_true == 1, p[:, 0], 1.0 - p[:, 0])
    return p[np.arange(len(p)), y_true]


def top_probability(probabilities: np.ndarray) -> np.ndarray:
    """The probability of the predicted class of each example."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(len(probabilities), -1)
    return np.maximum(p[:, 0], 1.0 - p[:, 0]) if p.shape[1] == 1 else p.max(axis=1)


def losses(task: str, predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per example: cross-entropy of the true class (classification), or squared error averaged over outputs."""
    if task == "classification":
        return -np.log(np.clip(true_probability(predictions, labels_of(y)), EPS, 1.0))
    p = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    return np.mean((p - np.asarray(y, dtype=np.float64).reshape(len(p), -1)) ** 2, axis=1)


def top_losses(task: str, predictions: np.ndarray, y: np.ndarray, names: list[str] | None,
               n: int) -> list[dict[str, Any]]:
    """The ``n`` test examples with the highest loss, worst first: index, true, predicted, probability, loss."""
    loss = losses(task, predictions, y)
    order = np.argsort(-loss, kind="stable")[:n]
    if task != "classification":
        p = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
        t = np.asarray(y, dtype=np.float64).reshape(len(p), -1)
        return [{"index": int(i), "true": _value(t[i]), "predicted": _value(p[i]), "loss": float(loss[i])}
                for i in order]
    y_true, y_pred = labels_of(y), predicted_classes(predictions)
    top, p_true = top_probability(predictions), true_probability(predictions, y_true)
    return [{"index": int(i), "true": names[y_true[i]], "predicted": names[y_pred[i]],
             "probability": float(top[i]), "true_probability": float(p_true[i]), "loss": float(loss[i])}
            for i in order]


def _value(v: np.ndarray) -> float | list[float]:
    return float(v[0]) if v.size == 1 else [float(x) for x in v]


def confusion(predictions: np.ndarray, y: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``accuracy`` and ``confusion_matrix``, exactly as ``evaluate`` computes them."""
    report = classification_report(labels_of(y), predicted_classes(predictions), names)
    return {"accuracy": report["accuracy"], "confusion_matrix": report["confusion_matrix"]}


def most_confused(matrix: list[list[int]], names: list[str], min_count: int = 1) -> list[dict[str, Any]]:
    """The off-diagonal cells of the confusion matrix with at least ``min_count`` examples, largest first.

    Example:
        >>> most_confused([[5, 2], [0, 3]], ["a", "b"])
        [{'true': 'a', 'predicted': 'b', 'count': 2}]
    """
    m = np.asarray(matrix)
    pairs = [(int(m[i, j]), i, j) for i in range(len(m)) for j in range(len(m)) if i != j and m[i, j] >= min_count]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [{"true": names[i], "predicted": names[j], "count": c} for c, i, j in pairs]


def permutation_importance(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, task: str,
                           columns: list[dict[str, Any]], *, repeats: int = 5, seed: int = 0
                           ) -> tuple[str, list[dict[str, Any]]]:
    """Per table column: how much the test metric worsens when the column is shuffled across rows.

    ``columns`` are the csv encoding's (``data.tabular``): a categorical column's one-hot block is shuffled
    as one, so the importance is that of the column as the file has it. The metric is accuracy
    (classification; importance = its drop) or the mean squared error (regression; importance = its rise).
    Mean and standard deviation over ``repeats`` shuffles, most important first.

    Returns:
        ``(metric name, [{"column", "importance", "std"}, ...])``.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)

    def score(xs: np.ndarray) -> float:
        p = predict(xs)
        if task == "classification":
            return float(np.mean(predicted_classes(p) == labels_of(y)))
        return -float(np.mean(losses(task, p, y)))  # higher is better, as accuracy

    base = score(x)
    out = []
    for col in columns:
        width = len(col["categories"]) if col["kind"] != "numeric" else 1
        block = slice(col["offset"], col["offset"] + width)
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, block] = x[rng.permutation(len(x)), block]
            drops.append(base - score(shuffled))
        out.append({"column": col["name"], "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    out.sort(key=lambda e: -e["importance"])
    return ("accuracy" if task == "classification" else "mse"), out
