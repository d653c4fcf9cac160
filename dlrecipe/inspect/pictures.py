"""The pictures of ``dlrecipe inspect``: first-layer filters, occlusion maps, what channels like, top losses.

``occlusion`` is Zeiler & Fergus's experiment (2014, "Visualizing and Understanding Convolutional
Networks"): a grey patch slid over the image, the drop in the true class's probability at each place.
Each ``*_figure`` returns a matplotlib Figure; ``evaluate.plots.save_figure`` writes it atomically.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np


def displayable(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """An image as ``imshow`` takes it (grey 2-D or RGB in [0, 1]) and the keyword arguments to show it."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] != 3:
        a = a.mean(axis=-1)
    low, high = (0.0, 255.0) if a.min() >= 0 and a.max() > 1.5 and a.max() <= 255 else (a.min(), a.max())
    a = np.clip((a - low) / max(high - low, 1e-12), 0, 1)
    return a, ({"cmap": "gray", "vmin": 0, "vmax": 1} if a.ndim == 2 else {})


def _grid(n: int, cols: int | None = None) -> tuple[int, int]:
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _figure(rows: int, cols: int, cell: float = 1.6, extra: float = 0.0):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(cols * cell, rows * cell + extra), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


# --------------------------------------------------------------------------- conv layers


def first_conv(model: keras.Model) -> keras.layers.Layer | None:
    """The first layer with a 2-D convolution kernel (4-D), looking inside blocks; None for an MLP."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4:
            return layer
    return None


def last_conv(model: keras.Model) -> keras.layers.Layer | None:
    """The last layer of the model (a convolution, or a block holding some) whose output is a 4-D feature map."""
    found = None
    for layer in model.layers:
        if len(layer.output.shape) == 4 and any(len(w.shape) == 4 for w in layer.weights):
            found = layer
    return found


def filters_figure(layer: keras.layers.Layer, limit: int = 64):
    """The first convolution's kernels, one cell per output channel (RGB for 3 input channels, else the mean)."""
    k = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64)  # (kh, kw, in, out)
    count = min(k.shape[-1], limit)
    rows, cols = _grid(count, min(count, 8))
    fig, axes = _figure(rows, cols, cell=1.0, extra=0.4)
    for i, ax in enumerate(axes.ravel()):
        if i >= count:
            ax.set_visible(False)
            continue
        f = k[..., i]
        f = f if f.shape[-1] == 3 else f.mean(axis=-1)
        f = (f - f.min()) / max(f.max() - f.min(), 1e-12)
        ax.imshow(f, cmap=None if f.ndim == 3 else "gray", interpolation="nearest")
        ax.set_title(str(i), fontsize=7)
    how = "RGB" if k.shape[2] == 3 else ("grey" if k.shape[2] == 1 else f"mean over {k.shape[2]} input channels")
    fig.suptitle(f"{layer.name}: {count} of {k.shape[-1]} kernels {k.shape[0]}x{k.shape[1]} ({how}, each scaled "
                 "to its own range)", fontsize=9)
    return fig


def max_activating_figure(images: np.ndarray, means: np.ndarray, layer_name: str, channels: int = 8,
                          top: int = 6) -> tuple[Any, list[dict[str, Any]]]:
    """For ``channels`` channels, the ``top`` test images with the highest mean activation.

    ``means``: (examples, channels). The channels are chosen to differ: first the one whose mean activation
    varies most over the test set, then each time the channel least correlated with those chosen (many
    channels only follow the image's brightness and would all pick the same images).
    """
    chosen = diverse_channels(means, channels)
    fig, axes = _figure(len(chosen), top + 1, cell=1.2, extra=0.4)
    picked = []
    for row, c in zip(axes, chosen):
        order = np.argsort(-means[:, c], kind="stable")[:top]
        picked.append({"channel": c, "examples": [int(i) for i in order]})
        row[0].text(0.5, 0.5, f"channel {c}", ha="center", va="center", fontsize=9)
        row[0].axis("off")
        for ax, i in zip(row[1:], order):
            picture, kw = displayable(images[i])
            ax.imshow(picture, **kw)
            ax.set_title(f"#{i}: {means[i, c]:.2g}", fontsize=7)
    fig.suptitle(f"{layer_name}: test images with the highest mean activation, per channel", fontsize=9)
    return fig, picked


def diverse_channels(means: np.ndarray, count: int) -> list[int]:
    """Greedy: the channel of largest spread, then the live channel with the smallest largest |correlation|
    with the chosen ones."""
    spread = means.std(axis=0)
    live = [int(c) for c in np.argsort(-spread, kind="stable") if spread[c] > 0]
    if not live:
        return list(range(min(count, means.shape[1])))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.abs(np.corrcoef(means[:, live], rowvar=False)), nan=1.0).reshape(len(live), -1)
    picked = [0]
    while len(picked) < min(count, len(live)):
        worst = corr[:, picked].max(axis=1)
        worst[picked] = np.inf
        picked.append(int(np.argmin(worst)))
    return [live[i] for i in picked]


# --------------------------------------------------------------------------- occlusion


def occlusion_map(predict, image: np.ndarray, label: int, grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Drop of the true class's probability with a grey square over each place; ``(heat (H, W), p(true))``.

    The square is a fifth of the image's side; it moves by half its side. A pixel's value is the mean drop of
    the squares that cover it.
    """
    from dlrecipe.inspect.interpret import true_probability

    h, w = image.shape[:2]
    size = max(2, round(min(h, w) / 5))
    stride = max(1, size // 2)
    ys = sorted({*range(0, h - size + 1, stride), h - size})
    xs = sorted({*range(0, w - size + 1, stride), w - size})
    batch = np.repeat(image[None].astype(np.float32), len(ys) * len(xs), axis=0)
    for n, (y, x) in enumerate((y, x) for y in ys for x in xs):
        batch[n, y:y + size, x:x + size] = grey
    base = float(true_probability(predict(image[None].astype(np.float32)), np.array([label]))[0])
    p = true_probability(predict(batch), np.full(len(batch), label))
    heat, count = np.zeros((h, w)), np.zeros((h, w))
    for n, (y, x) in enumerate((y, x) for y in ys for x in xs):
        heat[y:y + size, x:x + size] += base - p[n]
        count[y:y + size, x:x + size] += 1
    return heat / np.maximum(count, 1), base


def grad_cam(model: keras.Model, conv: keras.layers.Layer, images: np.ndarray, labels: np.ndarray):
    """Grad-CAM (Selvaraju et al. 2017) of ``conv`` for the true class, upsampled to the image; in [0, 1].

    The feature maps weighted by the mean gradient of log p(true) over each map, summed, ReLU. TensorFlow
    backend only (None elsewhere).
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    probe = keras.Model(model.inputs, [conv.output, model.outputs[0]])
    x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    with tf.GradientTape() as tape:
        fmap, p = probe(x, training=False)
        p = tf.reshape(tf.cast(p, tf.float32), [len(images), -1])
        if p.shape[1] == 1:
            p = tf.concat([1.0 - p, p], axis=1)
        score = tf.reduce_sum(tf.math.log(tf.gather(p, labels.astype(np.int32), batch_dims=1) + 1e-7))
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(fmap, tf.float32), axis=-1, keepdims=True))
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    return [c / max(float(c.max()), 1e-12) for c in cam]


def occlusion_figure(images: list[np.ndarray], heats: list[np.ndarray], titles: list[str],
                     cams: list[np.ndarray] | None = None, cam_layer: str = ""):
    """Each image (top), its occlusion map over it (red where hiding the place lowers p(true)), and its Grad-CAM."""
    fig, axes = _figure(2 + (cams is not None), len(images), cell=2.0, extra=0.5)
    for i, (image, heat, title) in enumerate(zip(images, heats, titles)):
        picture, kw = displayable(image)
        axes[0, i].imshow(picture, **kw)
        axes[0, i].set_title(title, fontsize=8)
        grey = picture if picture.ndim == 2 else picture.mean(axis=-1)
        axes[1, i].imshow(grey, cmap="gray", vmin=0, vmax=1)
        limit = max(float(np.abs(heat).max()), 1e-6)
        shown = axes[1, i].imshow(heat, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6)
        axes[1, i].set_title(f"max drop {heat.max():.2f}", fontsize=8)
        fig.colorbar(shown, ax=axes[1, i], shrink=0.7)
        if cams is not None:
            axes[2, i].imshow(grey, cmap="gray", vmin=0, vmax=1)
            shown = axes[2, i].imshow(cams[i], cmap="inferno", vmin=0, vmax=1, alpha=0.55)
            axes[2, i].set_title(f"Grad-CAM {cam_layer}", fontsize=8)
            fig.colorbar(shown, ax=axes[2, i], shrink=0.7)
    fig.suptitle("Occlusion (Zeiler & Fergus): drop in p(true class) when a grey square hides each place"
                 + ("\nGrad-CAM (Selvaraju et al.): where the last convolution sees the true class"
                    if cams is not None else ""), fontsize=9)
    return fig


# --------------------------------------------------------------------------- top losses


def top_losses_figure(images: np.ndarray, entries: list[dict[str, Any]]):
    """fastai's ``plot_top_losses``: each image with its true and predicted class, probability and loss."""
    rows, cols = _grid(len(entries))
    fig, axes = _figure(rows, cols, cell=2.0, extra=0.4)
    for ax, e in zip(axes.ravel(), entries):
        picture, kw = displayable(images[e["index"]])
        ax.imshow(picture, **kw)
        predicted = e["predicted"] if isinstance(e["predicted"], str) else f"{e['predicted']:.3g}"
        true = e["true"] if isinstance(e["true"], str) else f"{e['true']:.3g}"
        p = f" p={e['probability']:.2f}" if "probability" in e else ""
        ax.set_title(f"true {true}\npred {predicted}{p}\nloss {e['loss']:.2f} (#{e['index']})", fontsize=7)
    for ax in axes.ravel()[len(entries):]:
        ax.set_visible(False)
    fig.suptitle("Top losses on the test set (true class, predicted class and its probability, loss)", fontsize=9)
    return fig
