"""``dlrecipe inspect-init``: the untrained model on one batch of real training data, layer by layer.

``inspect_init`` pushes the batch through the model as training prepares it and reports, per
layer, the spread of its outputs, saturated and dead units, and the gradient norm of its kernel
for the recipe's loss. ``symmetry_warnings`` finds layers whose kernels start all equal (also
used by ``dlrecipe validate``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from dlrecipe.errors import Problem, where_of
from dlrecipe.recipe.loader import LoadedRecipe

# --------------------------------------------------------------------------- weights that start all equal

SAME_WEIGHTS = (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)


def symmetry_warnings(model: keras.Model, paths: dict[str, str], loaded: LoadedRecipe) -> list[str]:
    """One warning per recipe layer whose kernel starts with all weights equal (Zeros, Ones, Constant).

    Looks at the built Keras layers: the layer's own ``kernel_initializer`` and those of the layers
    inside it (a block passes its initializer to each of its convolutions; wrappers hold their layer).
    A kernel with a single output unit is left alone: there is no symmetry to break. ``paths`` maps
    layer names to recipe paths (filled by ``build_model``); copies of a repeat are reported once.
    """
    from dlrecipe.build.model import clean_path, expand_layers

    recipe = loaded.recipe
    specs: dict[str, dict[str, Any]] = {}
    for path, spec in expand_layers(recipe.model.layers, "model.layers"):
        specs.setdefault(clean_path(path), spec)
    out, seen = [], set()
    for layer in model.layers:
        path = paths.get(layer.name)
        if path is None:
            continue
        path = clean_path(path)
        init = _constant_kernel_initializer(layer)
        if init is None or path in seen:
            continue
        seen.add(path)
        explicit = "kernel_initializer" in specs.get(path, {})
        where_path = f"{path}.kernel_initializer" if explicit else path
        origin = "" if explicit else " (from model.defaults)"
        message = (f"kernel_initializer {type(init).__name__}{origin} gives no symmetry breaking: every unit of "
                   f"{path} starts with the same weights and receives the same gradient; use he_normal or "
                   "glorot_uniform.")
        where = where_of(loaded.lines, "model.defaults.kernel_initializer" if origin else where_path)
        out.append(str(Problem(where_path, message, where)))
    return out


def _constant_kernel_initializer(layer: keras.layers.Layer) -> Any:
    inner = getattr(layer, "_flatten_layers", None)
    candidates = list(inner(include_self=True, recursive=True)) if inner else [layer]
    for sub in candidates:
        init = getattr(sub, "kernel_initializer", None)
        if isinstance(init, SAME_WEIGHTS) and any(
                w.path.rsplit("/", 1)[-1] == "kernel" and len(w.shape) and w.shape[-1] > 1 for w in sub.weights):
            return init
    return None


# --------------------------------------------------------------------------- inspect-init


@dataclass
class LayerStats:
    """What one layer's output looks like at initialization, on one batch."""

    index: int  # the layer's position in the built Keras model (preprocessing layers included)
    name: str
    type: str
    path: str | None
    recipe_index: str | None  # its index in the recipe's model.layers (``recipe_index``); None: added by dlrecipe
    output_shape: list[int | None]
    activation: str | None
    mean: float | None
    std: float | None
    saturated: float | None  # tanh / sigmoid outputs: the fraction of values in the flat tails
    dead: float | None  # ReLU outputs: the fraction of units (last axis) that are 0 on the whole batch
    grad_norm: float | None  # the L2 norm of the loss's gradient for the layer's kernel(s)


@dataclass
class InitReport:
    batch: int
    loss: float | None
    loss_name: str
    backend: str
    gradients: bool
    layers: list[LayerStats]
    warnings: list[str]
    notes: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "loss": _finite(self.loss), "loss_name": self.loss_name,
                "backend": self.backend, "gradients": self.gradients,
                "layers": [{k: (_finite(v) if isinstance(v, float) else v) for k, v in vars(s).items()}
                           for s in self.layers],
                "warnings": self.warnings, "notes": self.notes}


def _finite(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def inspect_init(loaded: LoadedRecipe, batch: int = 256) -> InitReport:
    """Push the first ``batch`` training examples through the untrained model of ``loaded``.

    Everything is prepared as ``train`` prepares it (seed, data and splits, fitted normalization,
    the model), so the weights are those training starts from. The pass runs in training mode, as
    the first training step does: batch norm uses the batch's statistics, dropout and augmentation
    are active.

    Raises:
        RecipeError: bad data or recipe, each problem with its path.
    """
    from dlrecipe.build.checks import build_all
    from dlrecipe.data import pipeline
    from dlrecipe.train.setup import prepare

    ready = prepare(loaded.recipe, runtime=False)  # data: arrays, or streamed from disk (image_dir, tfds)
    recipe, dataset, info, stats = ready.recipe, ready.dataset, ready.info, ready.stats
    steps = max(1, math.ceil(pipeline.n_train(dataset) / recipe.train.batch_size))
    paths: dict[str, str] = {}
    built = build_all(recipe, info.input_shape, stats, task=info.task, n_classes=info.n_classes,
                      steps_per_epoch=steps, paths=paths)
    model = built.model
    warnings = symmetry_warnings(model, paths, loaded)
    x, y = pipeline.first_train(dataset, batch)
    x = np.asarray(x, dtype=np.float32)
    if pipeline.one_hot_labels(recipe, info.n_classes):  # one-hot labels (a categorical loss, or MixUp/CutMix)
        y = pipeline.encode_labels(y, info.n_classes)
    out_shape = tuple(model.output.shape)
    if y.ndim == len(out_shape) - 1 and out_shape[-1] == 1:  # as compile() does: (N,) targets for (N, 1) outputs
        y = y[..., None]
    notes = []
    if len(x) < batch:
        notes.append(f"The training split has only {len(x)} examples; the batch holds all of them.")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.input, [layer.output for layer in layers] + list(model.outputs))
    loss_fn = keras.losses.get(built.loss) if isinstance(built.loss, (str, dict)) else built.loss
    kernels = {id(layer): _kernels(layer) for layer in layers}
    backend = keras.backend.backend()
    outputs, loss, grads = _forward_backward(probe, loss_fn, x, y, [v for ks in kernels.values() for v in ks],
                                             backend)
    if grads is None:
        notes.append(f"Gradient norms need the TensorFlow or JAX backend; this is {backend} "
                     "(KERAS_BACKEND=tensorflow dlrecipe inspect-init ...).")
    rows = []
    for i, (layer, out) in enumerate(zip(layers, outputs)):
        norm = None
        if grads is not None and kernels[id(layer)]:
            norm = math.sqrt(sum(float(np.sum(np.square(grads[id(v)], dtype=np.float64)))
                                 for v in kernels[id(layer)]))
        rows.append(_layer_stats(i, layer, paths.get(layer.name), out, norm))
    loss_name = built.loss if isinstance(built.loss, str) else type(built.loss).__name__
    return InitReport(len(x), loss, loss_name, backend, grads is not None, rows, warnings, notes)


def _kernels(layer: keras.layers.Layer) -> list[Any]:
    """The layer's trainable kernels (its own and those of layers inside it)."""
    return [v for v in layer.trainable_weights if v.path.rsplit("/", 1)[-1] == "kernel"]


def _forward_backward(probe: keras.Model, loss_fn: Any, x: np.ndarray, y: np.ndarray, kernels: list[Any],
                      backend: str) -> tuple[list[np.ndarray], float | None, dict[int, np.ndarray] | None]:
    """The probe's outputs as NumPy, the loss, and the gradient of each kernel (by id) where the backend allows."""
    def loss_of(pred):
        return ops.mean(loss_fn(ops.convert_to_tensor(y), pred))

    if backend == "tensorflow":
        import tensorflow as tf
        with tf.GradientTape() as tape:
            outs = probe(x, training=True)
            loss = loss_of(outs[-1])
        grads = tape.gradient(loss, kernels) if kernels else []
        by_id = {id(v): (np.zeros(v.shape) if g is None else ops.convert_to_numpy(g)) for v, g in zip(kernels, grads)}
        return [ops.convert_to_numpy(o) for o in outs[:-1]], float(ops.convert_to_numpy(loss)), by_id
    if backend == "jax":
        import jax
        trainable = [v.value for v in probe.trainable_variables]
        frozen = [v.value for v in probe.non_trainable_variables]

        def f(values):
            outs, _ = probe.stateless_call(values, frozen, x, training=True)
            return loss_of(outs[-1]), outs

        (loss, outs), grads = jax.value_and_grad(f, has_aux=True)(trainable)
        index = {id(v): i for i, v in enumerate(probe.trainable_variables)}
        by_id = {id(v): np.asarray(grads[index[id(v)]]) for v in kernels if id(v) in index}
        return [np.asarray(o) for o in outs[:-1]], float(loss), by_id
    outs = probe(x, training=True)
    try:
        loss = float(ops.convert_to_numpy(loss_of(outs[-1])))
    except Exception:
        loss = None
    return [ops.convert_to_numpy(o) for o in outs[:-1]], loss, None


def activation_name(layer: keras.layers.Layer) -> str | None:
    """``relu``, ``tanh``, ``sigmoid``, ... when the layer's output is that activation's; else None.

    Blocks are not looked into: their output is not always their activation's (batch norm or a
    residual sum may follow it).
    """
    from dlrecipe.layers.blocks.base import Block

    if isinstance(layer, Block):
        return None
    if isinstance(layer, keras.layers.ReLU):
        plain = float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
        return "relu" if plain else None
    fn = getattr(layer, "activation", None)
    if not callable(fn):
        return None
    try:
        name = keras.activations.serialize(fn)
    except Exception:
        return None
    return name if isinstance(name, str) and name != "linear" else None


def ever_active(outputs: np.ndarray) -> np.ndarray:
    """Per unit (the last axis: a Dense unit, a conv channel): whether any output of the batch is above 0.

    A ReLU unit that is never above 0 is dead on that data: its gradient is 0 for every example.
    ``inspect`` ORs this over the batches of the test split.
    """
    a = np.asarray(outputs)
    return np.any(a > 0, axis=tuple(range(a.ndim - 1)))


def _layer_stats(index: int, layer: keras.layers.Layer, path: str | None, out: np.ndarray,
                 grad_norm: float | None) -> LayerStats:
    a = np.asarray(out, dtype=np.float64)
    act = activation_name(layer)
    saturated = dead = None
    if a.size:
        if act == "tanh":
            saturated = float(np.mean(np.abs(a) > 0.99))
        elif act == "sigmoid":
            saturated = float(np.mean((a < 0.01) | (a > 0.99)))
        elif act == "relu" and a.ndim >= 2:
            dead = float(np.mean(~ever_active(a)))
    return LayerStats(index=index, name=layer.name, type=type(layer).__name__, path=path,
                      recipe_index=recipe_index(path),
                      output_shape=[None if d is None else int(d) for d in layer.output.shape], activation=act,
                      mean=float(a.mean()) if a.size else None, std=float(a.std()) if a.size else None,
                      saturated=saturated, dead=dead, grad_norm=grad_norm)


def recipe_index(path: str | None) -> str | None:
    """The index of a layer in the recipe's ``model.layers``: ``3`` for ``model.layers[3]``; a layer inside a
    repeat gets the repeat's index, a dot and its index in the repeat's ``layers``, then which copy it is:
    ``1.0 (2/3)`` for ``model.layers[1].layers[0] (copy 2 of 3)``. None for a layer the recipe does not list
    (the preprocessing dlrecipe adds)."""
    if not path or not path.startswith("model.layers["):
        return None
    indices = ".".join(re.findall(r"layers\[(\d+)\]", path.split(" (copy")[0]))
    copies = re.findall(r"\(copy (\d+) of (\d+)\)", path)
    return indices + "".join(f" ({i}/{n})" for i, n in copies)


def print_init(report: InitReport, recipe_name: str, console: Any) -> None:
    """The per-layer table, then the loss and notes."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{recipe_name} at initialization: {report.batch} training examples, training mode",
                  box=box.SIMPLE_HEAD)
    # The numbers never get cut: on a narrow terminal the index and the layer's name wrap instead.
    table.add_column("#", justify="right", overflow="fold")
    table.add_column("layer", overflow="fold")
    wide = console.width >= 110  # the recipe path only where it fits beside the numbers (always in --out)
    if wide:
        table.add_column("recipe path", overflow="fold")
    for column in ("act", "mean", "std", "sat", "dead", "grad"):
        table.add_column(column, justify="left" if column == "act" else "right", no_wrap=True)
    for s in report.layers:
        path = [(s.path or "").replace(" (copy ", " (").replace(" of ", "/")] if wide else []
        table.add_row(s.recipe_index or "-", s.name, *path, s.activation or "", _cell(s.mean), _cell(s.std),
                      _pct(s.saturated), _pct(s.dead), _cell(s.grad_norm))
    console.print(table)
    if report.loss is not None:
        console.print(f"Loss ({report.loss_name}) on this batch: {report.loss:.4g}", highlight=False)
    console.print("#: the layer's index in the recipe's model.layers (in a repeat: the repeat's index, its layer's "
                  "index and the copy, 1.0 (2/3)); -: a layer dlrecipe adds (preprocessing). std: spread of the "
                  "layer's outputs; sat: share of tanh outputs with |a| > 0.99, of sigmoid outputs "
                  "below 0.01 or above 0.99; dead: share of ReLU units (channels) that are 0 for every example of the "
                  "batch; grad: L2 norm of the loss's gradient for the layer's kernel(s).", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def _cell(v: float | None) -> str:
    return "" if v is None else f"{v:.3g}"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"
