"""``compare``'s overlays: one figure per metric, every row's training and validation curves on shared axes.

A run is a line; a seed group (an ensemble, a cross-validation) is the mean over its seeds (members, folds)
with a band of ± one sample std (each epoch over the seeds that reached it) and its seeds as faint lines.
matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlrecipe.compare.collect import Row
from dlrecipe.io import atomic_path


def metric_names(rows: list[Row]) -> list[str]:
    """The metrics to draw: each history column's base name (``loss``, ``accuracy``), then ``learning_rate``."""
    names: list[str] = []
    for row in rows:
        for run in row.runs:
            for col in run.history:
                if col == "epoch":
                    continue
                base = col[4:] if col.startswith("val_") else col
                if base not in names:
                    names.append(base)
    return [n for n in names if n != "learning_rate"] + (["learning_rate"] if "learning_rate" in names else [])


def _mean_std(runs_, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per epoch: the epochs, the mean and the sample std of ``column`` over the runs that have it."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs_:
        for e, v in zip(run.history["epoch"], run.history.get(column, [])):
            if math.isfinite(e) and math.isfinite(v):
                by_epoch.setdefault(int(e), []).append(v)
    epochs = np.array(sorted(by_epoch))
    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
    std = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else 0.0 for e in epochs])
    return epochs, mean, std


def _draw(ax, row: Row, column: str, colour) -> bool:
    """Draw ``row``'s ``column`` on ``ax``; False when it has none."""
    have = [run for run in row.runs if column in run.history]
    if not have:
        return False
    if row.group is None and not have[0].members:
        run = have[0]
        ax.plot(run.history["epoch"], run.history[column], marker="o", markersize=3, color=colour, label=row.label)
        return True
    if row.group is None:  # an ensemble's members, a cross-validation's folds
        have = [m for m in have[0].members if column in m.history]
    for run in have:
        ax.plot(run.history["epoch"], run.history[column], color=colour, alpha=0.25, linewidth=0.8)
    epochs, mean, std = _mean_std(have, column)
    ax.plot(epochs, mean, marker="o", markersize=3, color=colour, label=f"{row.label} (mean of {len(have)})")
    ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
    return True


def plot_metric(rows: list[Row], name: str):
    """A matplotlib Figure: ``name`` per epoch for every row, training and validation side by side."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [("learning rate (first step of the epoch)", "learning_rate")] if name == "learning_rate" else [
        (f"training {name}", name), (f"validation {name}", f"val_{name}")]
    panels = [(title, col) for title, col in panels if any(col in run.history for r in rows for run in r.runs)]
    fig = Figure(figsize=(5.5 * len(panels), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
    colours = [f"C{i % 10}" for i in range(len(rows))]
    for i, (ax, (title, column)) in enumerate(zip(axes, panels)):
        drawn = [_draw(ax, row, column, colour) for row, colour in zip(rows, colours)]
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if column == "learning_rate" and _all_positive(rows, column):
            ax.set_yscale("log")
        if any(drawn) and i == len(panels) - 1:  # one legend: the colours are the same in every panel
            ax.legend(fontsize="small")
    return fig


def _all_positive(rows: list[Row], column: str) -> bool:
    values = [v for r in rows for run in r.runs for v in run.history.get(column, []) if math.isfinite(v)]
    return bool(values) and all(v > 0 for v in values)


def png_bytes(fig) -> bytes:
    """``fig`` as PNG."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_curves(rows: list[Row], out: Path) -> list[Path]:
    """``<out>/curves_<metric>.png`` for every metric of ``metric_names``, each written atomically."""
    written = []
    for name in metric_names(rows):
        path = Path(out) / f"curves_{name}.png"
        fig = plot_metric(rows, name)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        written.append(path)
    return written
