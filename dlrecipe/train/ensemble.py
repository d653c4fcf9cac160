"""Ensembles (``train.ensemble: N``): the averaging model, and each member's metrics, curves and table.

An ensemble run keeps member i (seed + i - 1) in ``members/<i>/``, laid out as a run plus member.json; the
members share the data split and the fitted normalization. ``model.keras`` takes raw inputs, normalizes
once and averages the members' outputs; evaluate writes the ensemble's metrics and each member's under
"members" in metrics.json. Training them is ``train.group``'s. See docs/training.md.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecipe import runs
from dlrecipe.build import resolve
from dlrecipe.build.preprocessing import keras_layers

MEMBERS = "members"
MEMBER_JSON = "member.json"
PREPROCESSING_PREFIX = "preprocessing_"  # the name of the normalization layers (see build.preprocessing.keras_layers)


@contextlib.contextmanager
def quiet_retracing():
    """Hide TensorFlow's "N out of the last M calls triggered tf.function retracing" warning.

    Each member (fold) is a new model with its own compiled functions, which is what the warning
    counts; it is expected here and says nothing about the user's recipe.
    """
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- the ensemble model


def build_ensemble(members: list[keras.Model], stats: dict, name: str) -> keras.Model:
    """One functional model that averages ``members`` (raw float32 inputs in, like each member).

    The normalization is applied once, by fresh ``preprocessing_*`` layers built from ``stats`` (the
    members were all trained with these statistics); each member follows without its own
    normalization (and without its augmentation, which is off at inference anyway) as a nested model
    ``member_<i>``; ``keras.layers.Average`` averages their outputs. So ``export`` with
    ``include_preprocessing: false`` can cut the normalization off as for a single model.
    """
    shape = tuple(members[0].inputs[0].shape[1:])
    inputs = keras.Input(shape=shape, name="raw_inputs", dtype="float32")
    x = inputs
    for layer in keras_layers(stats):
        x = layer(x)
    outputs = [_without_preprocessing(m, f"member_{i}")(x) for i, m in enumerate(members, 1)]
    averaged = keras.layers.Average(name="ensemble_average", dtype="float32")(outputs)
    model = keras.Model(inputs, averaged, name=f"{name.replace('.', '_')}_ensemble")
    model.trainable = False  # trained member by member; this model only averages them
    return model


def _without_preprocessing(model: keras.Model, name: str) -> keras.Model:
    pre = [layer for layer in model.layers if layer.name.startswith(PREPROCESSING_PREFIX)]
    start = pre[-1].output if pre else model.inputs[0]
    return keras.Model(start, model.output, name=name)


def compile_like(model: keras.Model, recipe) -> None:
    """Compile ``model`` with the (finalized) recipe's loss and metrics, so ``evaluate`` reports them."""
    loss = resolve.loss(recipe.train.loss)
    metrics = [resolve.metric(m, f"train.metrics[{i}]") for i, m in enumerate(recipe.train.metrics)]
    model.compile(loss=loss, metrics=metrics)


# --------------------------------------------------------------------------- evaluate and print


def member_metrics(run_dir: Path, recipe, meta: dict, x_test, y_test) -> list[dict[str, Any]]:
    """Each member's test loss and metrics (the scalars of ``evaluate``), with its seed."""
    with quiet_retracing():
        return [_member_metrics(run_dir, recipe, meta, i, x_test, y_test) for i in range(1, recipe.train.ensemble + 1)]


def member_plots(run_dir: Path, recipe) -> list[Path]:
    """``plots/curves_member_<i>.png``: each member's training curves (from its history.csv)."""
    from dlrecipe.evaluate.plots import plot_curves, save_figure
    written = []
    for i in range(1, recipe.train.ensemble + 1):
        history = runs.history_columns(run_dir / MEMBERS / str(i) / runs.HISTORY)
        if history and history.get("epoch"):
            path = run_dir / runs.PLOTS / f"curves_member_{i}.png"
            save_figure(plot_curves(history), path)
            written.append(path)
    return written


def _member_metrics(run_dir: Path, recipe, meta: dict, i: int, x_test, y_test) -> dict[str, Any]:
    from dlrecipe.evaluate.metrics import evaluate
    model = runs.load_model(run_dir / MEMBERS / str(i) / runs.MODEL)
    metrics = evaluate(model, x_test, y_test, task=meta["task"], class_names=meta.get("class_names"),
                       batch_size=recipe.train.batch_size)
    scalars = {k: v for k, v in metrics.items() if k not in ("task", "n_test") and _is_scalar(v)}
    return {"member": i, "seed": recipe.seed + i - 1, **scalars}


def _is_scalar(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def fmt_value(value) -> str:
    """A table cell: ``n/a`` for None, an integer as it is, any other number to 4 decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{float(value):.4f}"


def print_members(metrics: dict, console) -> None:
    """A table of the test metrics of the ensemble and of each member (``metrics.json`` with ``members``)."""
    from rich.table import Table
    members = metrics["members"]
    names = [k for k in members[0] if k not in ("member", "seed")]
    table = Table(title="Ensemble and members (test split)")
    table.add_column("model")
    table.add_column("seed", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row("ensemble", "", *[fmt_value(metrics.get(n)) for n in names], style="bold")
    for m in members:
        table.add_row(f"member {m['member']}", str(m["seed"]), *[fmt_value(m.get(n)) for n in names])
    console.print(table)

