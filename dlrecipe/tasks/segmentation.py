"""Semantic segmentation as a task: what masks are, their checks, and the model's output it needs.

Masks are integer class indices, one per pixel: ``y`` of shape ``(N, H, W)`` or ``(N, H, W, 1)``
beside images ``x`` of shape ``(N, H, W, C)``, returned as int32 ``(N, H, W)``. ``task: segmentation``
is inferred (when ``data.task`` is unset) from labels of rank 3, or rank 4 with one channel; their
height and width must then be the images'. Whole-number floats are accepted, strings refused.
NumPy only, no backend import (``check_output`` reads the model's shapes only). The per-pixel
report and the examples plot are in ``dlrecipe.evaluate.segmentation``.
"""

from __future__ import annotations

import numpy as np

from dlrecipe.errors import RecipeError

SEGMENTATION = "segmentation"


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
