"""The per-pixel report of a segmentation run, and its examples plot.

Every pixel of the test split counts as one example of its class, so ``accuracy`` is the pixel
accuracy and the per-class precision/recall/F1 and the confusion matrix count pixels; ``iou`` per
class is TP / (TP + FP + FN) and ``mean_iou`` averages it over the classes that occur in the labels
or the predictions (as ``keras.metrics.MeanIoU`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe import runs
from dlrecipe.evaluate.plots import save_figure
from dlrecipe.evaluate.reports import classification_report

EXAMPLES_PNG = "segmentation_examples.png"


def predicted_masks(probabilities) -> np.ndarray:
    """Argmax over the class axis: ``(N, H, W, C)`` scores to ``(N, H, W)`` class indices."""
    return np.argmax(np.asarray(probabilities), axis=-1).astype(np.int64)


def report(y_true, y_pred, class_names: list[str]) -> dict:
    """Pixel accuracy, per-class pixel precision/recall/F1/support/IoU, mean IoU and the pixel confusion matrix.

    Args:
        y_true: true masks ``(N, H, W)`` (or ``(N, H, W, 1)``).
        y_pred: predicted masks ``(N, H, W)``.
        class_names: one name per class index.

    Returns:
        ``classification_report`` over every pixel, with ``iou`` added per class and
        ``mean_iou`` at top level.

    Example:
        >>> report(np.array([[[0, 1]]]), np.array([[[1, 1]]]), ["bg", "fg"])["mean_iou"]
        0.25
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    out = classification_report(y_true, y_pred, class_names)
    matrix = np.asarray(out["confusion_matrix"]["matrix"], dtype=np.float64)
    iou, present = iou_per_class(matrix)
    for i, name in enumerate(class_names):
        out["per_class"][name]["iou"] = float(iou[i])
    out["mean_iou"] = float(iou[present].mean()) if present.any() else 0.0
    return out


def iou_per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU per class from a confusion matrix, and which classes count for the mean (a non-empty union)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    return iou, union > 0


def plot_examples(x, y_true, y_pred, class_names: list[str]):
    """A matplotlib Figure: one row per image, with the image, its true mask and the predicted mask."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    x = np.asarray(x, dtype=np.float32)
    k = len(class_names)
    cmap = colormaps["tab10" if k <= 10 else "tab20"].resampled(max(k, 2))
    rows = len(x)
    fig = Figure(figsize=(7.5, 2.3 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    for i in range(rows):
        image = x[i]
        image = image[..., 0] if image.shape[-1] == 1 else image
        lo, hi = float(image.min()), float(image.max())
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
        panels = ((image, "image", "gray" if image.ndim == 2 else None),
                  (np.asarray(y_true[i]).reshape(image.shape[:2]), "true mask", cmap),
                  (np.asarray(y_pred[i]).reshape(image.shape[:2]), "predicted mask", cmap))
        for ax, (picture, title, colours) in zip(axes[i], panels):
            if title == "image":
                ax.imshow(picture, cmap=colours)
            else:
                ax.imshow(picture, cmap=colours, vmin=-0.5, vmax=max(k, 2) - 0.5, interpolation="nearest")
            ax.set_title(title if i == 0 else "", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.legend(handles=[Patch(color=cmap(c), label=name) for c, name in enumerate(class_names)],
               loc="outside lower center", ncols=min(k, 5), fontsize=8)
    return fig


def write_examples(run_dir: Path, model, x_test, y_test, class_names: list[str], n: int = 6) -> Path:
    """Write ``plots/segmentation_examples.png``: the first ``n`` test images, true and predicted masks."""
    x = np.asarray(x_test[:n])
    predicted = predicted_masks(model.predict(x.astype(np.float32), verbose=0))
    path = Path(run_dir) / runs.PLOTS / EXAMPLES_PNG
    save_figure(plot_examples(x, np.asarray(y_test[:n]), predicted, class_names), path)
    return path
