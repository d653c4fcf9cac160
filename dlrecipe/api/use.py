"""``predict``: running an exported (or trained) model on new files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dlrecipe.backend import import_keras_quietly
from dlrecipe.errors import RecipeError


def predict(target: Path, inputs: list[Path], out: Path = Path("predictions.csv"), *, top_k: int = 1,
            batch: int = 128, progress: Callable[[int, int], None] | None = None):
    """Run the served model of ``target`` on ``inputs``; writes ``out`` (CSV) and returns a ``Predicted``.

    ``target`` is a run folder (``runs/<name>`` for its newest run) or an export folder; ``inputs`` are
    image files or folders, ``.npz`` files (``x`` or ``x_test``) or ``.csv`` files (docs/export.md).

    Example:
        >>> done = predict(Path("runs/quickstart"), [Path("photos/")], Path("preds.csv"), top_k=3)
        >>> done.written.n, done.source
    """
    out = Path(out)
    _check_out(out, top_k, batch)
    import_keras_quietly()
    from dlrecipe.export.inputs import read_inputs
    from dlrecipe.export.predict import open_served, write_predictions
    opened = open_served(target)
    task = opened.meta["task"]
    classes = len(opened.meta.get("class_names") or []) or None
    if top_k > 1 and task != "classification":
        raise RecipeError.one("--top-k", f"Received: --top-k {top_k} for a {task} model. Expected 1 (the default): "
                              "top-k is for classification.")
    if top_k > 1 and classes is not None and top_k > max(classes, 2):
        raise RecipeError.one("--top-k", f"Received: --top-k {top_k}, but the model has {classes} classes. Expected "
                              f"at most {classes}.")
    sources = read_inputs(list(inputs), opened.meta["signature"], bool(opened.meta.get("resize_images")))
    written = write_predictions(opened, sources, out, top_k=top_k, batch=batch, progress=progress)
    return Predicted(opened.source, task, written)


def _check_out(out: Path, top_k: int, batch: int) -> None:
    from dlrecipe import runs
    if top_k < 1:
        raise RecipeError.one("--top-k", f"Received: --top-k {top_k}. Expected a whole number >= 1.")
    if batch < 1:
        raise RecipeError.one("--batch", f"Received: --batch {batch}. Expected a whole number >= 1.")
    if out.is_dir():
        raise RecipeError.one("--out", f"Received: {out}, which is a folder. Expected a CSV file path, e.g. "
                              f"{out / 'predictions.csv'}.")
    try:
        runs.check_writable(out.parent)
    except RecipeError as e:
        raise RecipeError.one("--out", f"Cannot write {out}: {e.problems[0].message}") from None


@dataclass
class Predicted:
    """What ``predict`` did: the model it ran (``source``), its task, and what it wrote (``written``)."""

    source: Path
    task: str
    written: Any
