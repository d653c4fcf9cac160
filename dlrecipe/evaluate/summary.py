"""The test metrics printed on the console (``dlrecipe evaluate``) as rich tables."""

from __future__ import annotations

import numpy as np

_FIRST = ("loss", "accuracy", "mean_iou", "macro_f1", "mae", "rmse", "r2")


def print_summary(metrics: dict, console) -> None:
    """Print the test metrics as rich tables: overall metrics, then per class.

    Args:
        metrics: what ``evaluate`` returned (or ``metrics.json`` read back).
        console: a ``rich.console.Console``.
    """
    from rich.table import Table

    # Names fold rather than end in "…"; numbers never wrap (80 columns fit both tables).
    overall = Table(title=f"Test metrics ({metrics.get('n_test', '?')} examples)")
    overall.add_column("metric", overflow="fold")
    overall.add_column("value", justify="right", no_wrap=True, min_width=6)
    scalars = {k: v for k, v in metrics.items() if k not in ("task", "n_test") and _is_scalar(v)}
    for name in sorted(scalars, key=lambda k: (_FIRST.index(k) if k in _FIRST else len(_FIRST), k)):
        overall.add_row(name, _format(scalars[name]))
    console.print(overall)
    per_class = metrics.get("per_class")
    if per_class:
        iou = all("iou" in row for row in per_class.values())  # segmentation: pixels, with IoU
        table = Table(title="Per class" + (" (pixels)" if iou else ""))
        for column in ("class", "precision", "recall", "F1", *(["IoU"] if iou else []), "support"):
            if column == "class":
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
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


_AVERAGED = (("tta", "TTA ({n_views} views)"), ("mc_dropout", "MC dropout ({samples} samples)"),
             ("tta_mc_dropout", "TTA x MC dropout ({n_views} views x {samples} samples)"))


def print_averaged(metrics: dict, console) -> None:
    """``evaluate --tta / --mc-dropout``: one line per metric and averaging, plain -> averaged and the gain,
    e.g. ``accuracy 0.8620 -> 0.8710 with TTA (4 views): +0.0090``."""
    for key, label in _AVERAGED:
        entry = metrics.get(key)
        if not entry:
            continue
        what = label.format(**entry)
        if "views" in entry:
            console.print(f"{what}: {', '.join(entry['views'])}", markup=False, highlight=False, soft_wrap=True)
        for name, before in entry["plain"].items():
            after, note = entry["metrics"][name], " (lower is better)" if name == "log_loss" else ""
            console.print(f"  {name} {before:.4f} -> {after:.4f} with {what}: {entry['gain'][name]:+.4f}{note}",
                          markup=False, highlight=False, soft_wrap=True)
