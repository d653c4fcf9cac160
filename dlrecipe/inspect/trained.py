"""``dlrecipe inspect``: a trained network looked into on its run's test split; files in ``RUN/inspect/``.

Images: the first layer's kernels (``filters.png``), dead ReLU units per layer, occlusion maps
(``occlusion.png``), the test images the last convolution's channels like most (``max_activating.png``),
what the network predicts for random noise, the top losses (``top_losses.png``) and the most confused
classes (from evaluate's confusion matrix). A table (csv): permutation importance per column instead of
the pictures. Everything also in ``inspect.json``. See docs/commands.md#inspect.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecipe.evaluate.plots import save_figure
from dlrecipe.evaluate.reports import class_names_for, labels_of, predicted_classes
from dlrecipe.inspect import interpret, pictures
from dlrecipe.inspect.init import activation_name, ever_active
from dlrecipe.io import json_safe, write_json

RELU_FAMILY = ("relu", "relu6", "leaky_relu")
FILTERS, OCCLUSION, MAX_ACTIVATING, TOP_LOSSES, REPORT = (
    "filters.png", "occlusion.png", "max_activating.png", "top_losses.png", "inspect.json")
NOISE_IMAGES = 256
OCCLUDED = 4  # test images in occlusion.png, of different true classes


@dataclass
class Inspection:
    """What ``inspect`` found; ``as_json()`` is inspect.json and what ``--json`` prints."""

    run: str
    folder: str
    task: str
    n_test: int
    accuracy: float | None = None
    dead_units: list[dict[str, Any]] | None = None
    noise: dict[str, Any] | None = None
    most_confused: list[dict[str, Any]] | None = None
    top_losses: list[dict[str, Any]] = field(default_factory=list)
    occlusion: list[dict[str, Any]] | None = None
    max_activating: dict[str, Any] | None = None
    permutation_importance: list[dict[str, Any]] | None = None
    permutation_metric: str | None = None
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))  # JSON has no NaN: a diverged model's values become null


def inspect_run(run_dir: Path, recipe, meta: dict, model: keras.Model, dataset, folder: Path,
                n: int = 16) -> Inspection:
    """Inspect ``model`` (the run's, loaded) on ``dataset``'s test split and write the files into ``folder``.

    Raises:
        RecipeError: the test split does not match the model (as ``evaluate`` raises it).
    """
    began = time.perf_counter()
    task, batch = meta["task"], recipe.train.batch_size
    x, y = _test_arrays(dataset, recipe, meta)
    predictions = np.asarray(model.predict(x, batch_size=batch, verbose=0))  # as evaluate predicts

    def predict(xs: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(xs, batch_size=max(batch, 64), verbose=0))

    found = Inspection(str(run_dir), str(folder), task, len(y))
    figures: dict[str, Any] = {}
    images = x.ndim == 4
    names = None
    if task == "classification":
        names = class_names_for(meta.get("class_names"), predictions, labels_of(y))
        report = interpret.confusion(predictions, y, names)
        found.accuracy = report["accuracy"]
        found.most_confused = interpret.most_confused(report["confusion_matrix"]["matrix"], names)
    if task in ("classification", "regression"):
        found.top_losses = interpret.top_losses(task, predictions, y, names, n)
        if images:
            figures[TOP_LOSSES] = pictures.top_losses_figure(x, found.top_losses)
    else:
        found.notes.append(f"Top losses, confusion, occlusion and noise are for classification and regression; "
                           f"this run's task is {task}.")
    first, last = (pictures.first_conv(model), pictures.last_conv(model)) if images else (None, None)
    found.dead_units, means = _activations(model, x, [layer for layer in model.layers
                                                      if activation_name(layer) in RELU_FAMILY], last)
    if not found.dead_units:
        found.notes.append("No ReLU-family layer (relu, relu6, leaky_relu as a layer's activation): no dead units.")
    if first is not None:
        figures[FILTERS] = pictures.filters_figure(first)
    if last is not None and means is not None:
        figures[MAX_ACTIVATING], chosen = pictures.max_activating_figure(x, means, last.name)
        found.max_activating = {"layer": last.name, "channels": chosen}
    if images and first is None:
        found.notes.append("No convolution: filters.png and max_activating.png are for convolutional networks.")
    if images and task == "classification":
        found.noise = _noise(predict, x, names, recipe.seed)
        figures[OCCLUSION], found.occlusion = _occlusion(predict, x, labels_of(y), predictions, names,
                                                         model=model, conv=last)
    tabular = meta.get("tabular")
    if tabular is not None and task in ("classification", "regression"):
        found.permutation_metric, found.permutation_importance = interpret.permutation_importance(
            predict, x, y, task, tabular["columns"], seed=recipe.seed)
    elif not images:
        found.notes.append("Not images: the pictures (filters, occlusion, channels, top-loss grid) are left out.")
    folder.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        save_figure(fig, folder / name)
        found.files.append(name)
    found.files.append(REPORT)
    found.seconds = round(time.perf_counter() - began, 2)
    write_json(folder / REPORT, found.as_json())
    return found


def _test_arrays(dataset, recipe, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The whole test split as arrays (a streamed split is read once, in its fixed order), as evaluate feeds it."""
    from dlrecipe.data import pipeline
    x, y = pipeline.test_inputs(dataset, recipe, len(meta.get("class_names") or []) or None)
    if hasattr(x, "element_spec"):
        x = np.concatenate([xb for xb, _ in x.as_numpy_iterator()])
    x = np.asarray(x)
    return (x if x.dtype == np.float32 else x.astype(np.float32)), np.asarray(y)


def _activations(model: keras.Model, x: np.ndarray, relus: list, conv) -> tuple[list[dict[str, Any]], Any]:
    """Per ReLU-family layer, the fraction of units never above 0 on the test set; the last convolution's
    mean activation per example and channel (None without one). One pass in batches of 256, inference mode."""
    relus = [layer for layer in relus if len(layer.output.shape) >= 2]
    outputs = [layer.output for layer in relus] + ([conv.output] if conv is not None else [])
    if not outputs:
        return [], None
    probe = keras.Model(model.inputs, outputs)
    active = [np.zeros(layer.output.shape[-1], dtype=bool) for layer in relus]
    means = []
    for start in range(0, len(x), 256):
        outs = probe.predict_on_batch(x[start:start + 256])
        outs = [outs] if not isinstance(outs, (list, tuple)) else list(outs)
        for i, out in enumerate(outs[:len(relus)]):
            active[i] |= ever_active(np.asarray(out))
        if conv is not None:
            means.append(np.asarray(outs[-1], dtype=np.float64).mean(axis=(1, 2)))
    dead = [{"layer": layer.name, "activation": activation_name(layer), "units": int(a.size),
             "dead": float(np.mean(~a))} for layer, a in zip(relus, active)]
    return dead, (np.concatenate(means) if means else None)


def _noise(predict, x: np.ndarray, names: list[str], seed: int) -> dict[str, Any]:
    """What the network predicts for uniform noise over the test images' value range: a class histogram."""
    rng = np.random.default_rng(seed)
    low, high = float(x.min()), float(x.max())
    noise = rng.uniform(low, high, size=(NOISE_IMAGES, *x.shape[1:])).astype(np.float32)
    p = predict(noise)
    counts = np.bincount(predicted_classes(p), minlength=len(names))
    return {"n": NOISE_IMAGES, "range": [low, high], "counts": {c: int(k) for c, k in zip(names, counts)},
            "mean_top_probability": float(interpret.top_probability(p).mean())}


def _occlusion(predict, x: np.ndarray, labels: np.ndarray, predictions: np.ndarray, names: list[str], *,
               model: keras.Model, conv):
    """Occlusion maps of test images of ``OCCLUDED`` different classes: the figure and the JSON.

    Preferred: the first test images classified right with p(true) below 0.99 (a probability of 1.00 barely
    moves when part of the image is hidden), then any others, in test order.
    """
    p_true = interpret.true_probability(predictions, labels)
    right = predicted_classes(predictions) == labels
    preferred = [i for i in range(len(labels)) if right[i] and p_true[i] < 0.99]
    chosen, seen = [], set()
    for i in preferred + list(range(len(labels))):
        if int(labels[i]) not in seen:
            seen.add(int(labels[i]))
            chosen.append(i)
        if len(chosen) == OCCLUDED:
            break
    grey = x.mean(axis=(0, 1, 2))
    heats, titles, entries = [], [], []
    for i in chosen:
        heat, base = pictures.occlusion_map(predict, x[i], int(labels[i]), grey)
        heats.append(heat)
        titles.append(f"#{i} {names[labels[i]]}\np(true)={base:.2f}")
        entries.append({"index": int(i), "true": names[labels[i]], "true_probability": base,
                        "max_drop": float(heat.max())})
    cams = pictures.grad_cam(model, conv, x[chosen], labels[chosen]) if conv is not None else None
    for entry in entries:
        entry["grad_cam"] = cams is not None
    figure = pictures.occlusion_figure([x[i] for i in chosen], heats, titles, cams, conv.name if conv else "")
    return figure, entries
