"""The report's plots: training curves (``runs.history_columns``) and the confusion matrix, saved as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlrecipe.io import atomic_path


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
    """Save ``fig`` as PNG atomically (``io.atomic_path``)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)

