"""Semantic segmentation: per-pixel labels (masks), their checks, and the per-pixel report.

Data (used by ``dlrecipe.data``; NumPy only, no backend import):

- Masks are integer class indices, one per pixel: ``y`` of shape ``(N, H, W)`` or
  ``(N, H, W, 1)`` beside images ``x`` of shape ``(N, H, W, C)``. They are returned as
  int32 arrays ``(N, H, W)`` (a quarter of int64's memory; Keras's sparse losses and
  metrics take them as they are).
- ``task: segmentation`` is inferred (when ``data.task`` is unset) from the label shape:
  labels of rank 3, or of rank 4 with one channel, are masks, since classification and
  regression labels are ``(N,)`` or ``(N, k)``. Their height and width must then be the
  images'; a mismatch is an error, never another task.
- Floats are accepted when every value is a whole number (masks saved as float32);
  strings are refused (store class indices and a ``class_names`` array).

Evaluation (used by ``dlrecipe.evaluate``): every pixel of the test split counts as one
example of its class, so ``accuracy`` is the pixel accuracy and the per-class
precision/recall/F1 and the confusion matrix count pixels; ``iou`` per class is
TP / (TP + FP + FN) and ``mean_iou`` averages it over the classes that occur in the
labels or the predictions (as ``keras.metrics.MeanIoU`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError

SEGMENTATION = "segmentation"
EXAMPLES_PNG = "segmentation_examples.png"


# --------------------------------------------------------------------------- data


def is_mask_shape(y_shape: tuple[int, ...]) -> bool:
    """True for label arrays that hold one label per pixel: ``(N, H, W)`` or ``(N, H, W, 1)``."""
    return len(y_shape) == 3 or (len(y_shape) == 4 and y_shape[3] == 1)


def check_mask_shape(x_shape: tuple[int, ...], y_shape: tuple[int, ...], *, x_key: str, y_key: str,
                     origin: str, where: str) -> None:
    """Refuse masks whose shape is not the images' ``(N, H, W)``.

    Args:
        x_shape, y_shape: the full shapes of the images and the masks (with the example axis).
        x_key, y_key: the array names, for the message.
        origin: the file.
        where: the recipe path of the labels (``data.path``, ``data.keys.y_train``, ...).

    Raises:
        RecipeError: images not of rank 4, or masks of another height and width.
    """
    if len(x_shape) != 4:
        raise RecipeError.one(where, f"Received: {x_key!r} in {origin} of shape {tuple(x_shape)}, with task "
                              "segmentation. Expected images (N, height, width, channels). Fix: add a channel "
                              f"axis before saving, e.g. {x_key}=x[..., None] for grey images.")
    want = tuple(x_shape[:3])
    if not is_mask_shape(y_shape) or tuple(y_shape[:3]) != want:
        raise RecipeError.one(where, f"Received: masks {y_key!r} in {origin} of shape {tuple(y_shape)}, but images "
                              f"{x_key!r} of shape {tuple(x_shape)}. Expected one class index per pixel: masks of "
                              f"shape {want} (or {want + (1,)}), the images' number, height and width. Fix: save "
                              f"masks of the images' size (resize them with nearest-neighbour interpolation), or, "
                              "if these are not masks, set data.task to classification or regression.")


def mask_indices(y: np.ndarray, name: str, origin: str, where: str) -> np.ndarray:
    """Masks as int32 class indices ``(N, H, W)``; whole-number floats are accepted.

    Raises:
        RecipeError: strings, non-integral or negative values.
    """
    if y.ndim == 4:
        y = y[..., 0]
    kind = y.dtype.kind
    if kind not in "biuf":
        raise RecipeError.one(where, f"Received: masks {name!r} in {origin} of dtype {y.dtype}. Expected integer "
                              "class indices per pixel (0 background, 1, 2, ...). Fix: store indices, e.g. "
                              "y.astype(np.uint8), and the class names in a class_names array.")
    if kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if np.any(bad):
            value = y.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
            raise RecipeError.one(where, f"Received: masks {name!r} in {origin} holding the value {value!r}. "
                                  "Expected whole-number class indices per pixel. Fix: round or re-create the masks "
                                  "(resize masks with nearest-neighbour interpolation, never bilinear).")
    if y.size and y.min() < 0:
        raise RecipeError.one(where, f"Received: masks {name!r} in {origin} holding the class index {int(y.min())}. "
                              "Expected class indices 0, 1, 2, ... Fix: shift the labels so that the smallest is 0.")
    return y.astype(np.int32)


def check_index_range(y: np.ndarray, n_classes: int, name: str, origin: str, where: str) -> None:
    """Refuse class indices ``>= n_classes`` (e.g. a test mask with a class the training masks lack)."""
    if y.size and int(y.max()) >= n_classes:
        raise RecipeError.one(where, f"Received: masks {name!r} in {origin} holding the class index {int(y.max())}. "
                              f"Expected 0 to {n_classes - 1} ({n_classes} classes, from y_train and class_names). "
                              "Fix: correct the masks, or list every class in class_names.")


# --------------------------------------------------------------------------- model


def check_output(model, n_classes: int | None, path: str) -> None:
    """The last layer must give ``n_classes`` scores per pixel at the input's height and width.

    Raises:
        RecipeError: at ``path`` (the last layer), with the layer to put there.
    """
    out, inp = tuple(model.output.shape), tuple(model.input.shape)
    fix = (f"End the model with one score per class and pixel at the input's size, e.g. {{type: Conv2D, filters: "
           f"{n_classes or 'N_CLASSES'}, kernel_size: 1, activation: softmax}} after upsampling back to it.")
    if len(out) != 4 or len(inp) != 4:
        raise RecipeError.one(path, f"The model ends with outputs of shape {out[1:]} per example, but task "
                              f"segmentation needs (height, width, classes) per image. {fix}")
    if out[1:3] != inp[1:3]:
        raise RecipeError.one(path, f"The model ends with outputs of height and width {out[1:3]}, but the images are "
                              f"{inp[1:3]}: segmentation predicts every pixel. Upsample as many times as you "
                              f"downsample (upsample blocks, or Conv2DTranspose). {fix}")
    if n_classes and out[3] != n_classes:
        raise RecipeError.one(path, f"The model ends with {out[3]} score(s) per pixel, but the masks have "
                              f"{n_classes} classes. {fix}")


def default_metrics(n_classes: int | None) -> list:
    """Pixel accuracy, and ``MeanIoU`` over argmax'ed predictions when the number of classes is known."""
    metrics: list = ["accuracy"]
    if n_classes:
        metrics.append({"type": "MeanIoU", "num_classes": int(n_classes), "sparse_y_pred": False,
                        "name": "mean_iou"})
    return metrics


# --------------------------------------------------------------------------- evaluation


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
        ``evaluate.classification_report`` over every pixel, with ``iou`` added per class and
        ``mean_iou`` at top level.

    Example:
        >>> report(np.array([[[0, 1]]]), np.array([[[1, 1]]]), ["bg", "fg"])["mean_iou"]
        0.25
    """
    from dlrecipe.evaluate.metrics import classification_report

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
    from dlrecipe import runs
    from dlrecipe.evaluate.metrics import save_figure

    x = np.asarray(x_test[:n])
    predicted = predicted_masks(model.predict(x.astype(np.float32), verbose=0))
    path = Path(run_dir) / runs.PLOTS / EXAMPLES_PNG
    save_figure(plot_examples(x, np.asarray(y_test[:n]), predicted, class_names), path)
    return path
