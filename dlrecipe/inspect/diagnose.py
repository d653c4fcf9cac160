"""Looks at a recipe before it trains: its learning rate, its weights at initialization.

``learning_rates`` evaluates ``train.learning_rate`` (a number, a Keras schedule or a
dlrecipe schedule) at every optimizer step of the run, exactly as the optimizer will,
without loading the data: the number of training examples comes from file headers and
labels (``count_train_examples``). ``symmetry_warnings`` finds layers whose kernels start
all equal. ``inspect_init`` pushes one batch of real training data through the untrained
model and reports, per layer, the spread of its outputs, saturated and dead units, and the
gradient norm of its kernel for the recipe's loss.

Example:
    >>> rates = learning_rates(load_recipe(Path("recipes/quickstart.yaml")))
    >>> rates.per_step.shape  # (epochs * steps_per_epoch,)
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from dlrecipe.data import loading as datamod
from dlrecipe.errors import Problem, RecipeError, where_of
from dlrecipe.layers.schedules import EpochSchedule
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.recipe.schema import DataConfig

# --------------------------------------------------------------------------- counting training examples


def count_train_examples(cfg: DataConfig) -> int:
    """The number of training examples ``data.load(cfg, seed)`` gives, without loading the inputs.

    Reads the example count from the ``x_train`` header (the .npy header inside the .npz, or the
    IDX header of Fashion-MNIST) and, for classification, the training labels (held-out splits
    are stratified per class, so their sizes depend on the class counts, not on the seed). Then
    applies ``subset``, ``test_split`` and ``validation_split`` in ``data.load``'s order and with
    its rounding.

    Raises:
        RecipeError: everything ``data.peek`` reports, and a split that would select nothing.
    """
    if cfg.source == "csv":  # a table is read whole anyway
        from dlrecipe.data.sources import csv as csvdata
        return csvdata.count_train_examples(cfg)
    info = datamod.peek(cfg)  # every check load makes on headers; and the task
    stratify = info.task == "classification"
    if cfg.source == "fashion_mnist":
        n_total, labels = _fashion_count(cfg, stratify)
    else:
        n_total, labels = _npz_count(cfg, stratify)
    n = cfg.subset or n_total
    groups = _class_sizes(labels[:n]) if stratify else [n]
    if cfg.test_split is not None:  # peek refuses test_split for a source with a test split
        groups = _after_carving(groups, n, cfg.test_split, stratify, "test_split")
    if cfg.validation_split > 0:
        groups = _after_carving(groups, sum(groups), cfg.validation_split, stratify, "validation_split")
    return int(sum(groups))


def _class_sizes(labels: np.ndarray) -> list[int]:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim == 2:  # one-hot rows
        labels = np.argmax(labels, axis=1)
    return np.unique(labels, return_counts=True)[1].tolist()


def _after_carving(groups: list[int], n: int, frac: float, stratify: bool, name: str) -> list[int]:
    """What remains of each group after ``data``'s carving of ``frac`` (same rounding, same refusal)."""
    held = [datamod.held_out_count(frac, g) for g in groups]  # the rounding data.load uses
    if sum(held) == 0:
        per = " (each class needs at least 2 examples to give one)" if stratify else ""
        raise RecipeError.one(f"data.{name}", f"Received: {name}={frac} with {n} training example(s) left. This "
                              f"selects no examples{per}, and a split may not leave the training set empty. Fix: "
                              f"use more data (a larger subset), or set {name}: "
                              f"{'0' if name == 'validation_split' else 'null'}.")
    return [g - h for g, h in zip(groups, held)]


def _npz_count(cfg: DataConfig, need_labels: bool) -> tuple[int, np.ndarray | None]:
    keys = cfg.keys or {}
    x_key, y_key = keys.get("x_train", "x_train"), keys.get("y_train", "y_train")
    with zipfile.ZipFile(Path(cfg.path)) as z, z.open(f"{x_key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape = read(f)[0]
    labels = None
    if need_labels:
        with np.load(Path(cfg.path), allow_pickle=False) as npz:
            labels = npz[y_key]
    return int(shape[0]), labels


def _fashion_count(cfg: DataConfig, need_labels: bool) -> tuple[int, np.ndarray | None]:
    for folder in datamod.fashion_mnist_dirs(cfg):  # the first folder holding all four files, as data does
        files = {}
        for role, gz in datamod.FASHION_MNIST_FILES.items():
            found = [p for p in (folder / gz, folder / gz[:-3]) if p.is_file()]
            if found:
                files[role] = found[0]
        if len(files) == len(datamod.FASHION_MNIST_FILES):
            break
    n = _idx_shape(files["x_train"])[0]  # peek found the files and checked their headers
    labels = None
    if need_labels:
        path = files["y_train"]
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            f.read(8)  # magic and the one dimension of a labels file
            labels = np.frombuffer(f.read(), dtype=np.uint8)
    return n, labels


def _idx_shape(path: Path) -> tuple[int, ...]:
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        head = f.read(4)
        return tuple(int.from_bytes(f.read(4), "big") for _ in range(head[3]))


# --------------------------------------------------------------------------- learning rate


@dataclass
class LearningRates:
    """The learning rate at every optimizer step of a run.

    Attributes:
        per_step: float64, one value per step, ``epochs * steps_per_epoch`` of them.
        steps_per_epoch, epochs, n_train, batch_size: the run's shape.
        source: what gives the rate, in words (``"cosine schedule"``, ``"adam's default"``, ...).
        notes: what may change the rate at run time (``ReduceLROnPlateau``).
    """

    per_step: np.ndarray
    steps_per_epoch: int
    epochs: int
    n_train: int
    batch_size: int
    source: str
    notes: list[str] = field(default_factory=list)

    def epoch(self, i: int) -> np.ndarray:
        """The rates of epoch ``i`` (1-based), one per step."""
        return self.per_step[(i - 1) * self.steps_per_epoch: i * self.steps_per_epoch]


def learning_rates(loaded: LoadedRecipe, replicas: int = 1) -> LearningRates:
    """Evaluate the recipe's learning rate at every step, as training's optimizer will.

    Steps per epoch are ``ceil(n_train / batch_size)`` with ``n_train`` from
    ``count_train_examples``; the schedule object is the one ``train`` builds, scaled
    for ``replicas`` when ``runtime.scale_learning_rate`` asks for it.

    Raises:
        RecipeError: a bad data section, learning rate or optimizer, each with its path.
    """
    from dlrecipe.build.checks import feature_problems, learning_rate_of
    from dlrecipe.build.resolve import optimizer as make_optimizer
    from dlrecipe.build.scaling import scaled
    recipe = loaded.recipe
    problems: list[Problem] = [p for p in feature_problems(recipe) if p.path.startswith("train.")]
    try:
        recipe = scaled(recipe, replicas)
    except RecipeError as e:
        problems.extend(e.problems)
    t = recipe.train
    n_train = 0
    try:
        n_train = count_train_examples(recipe.data)
    except RecipeError as e:  # reported together with the problems of train
        problems.extend(e.problems)
    spe = max(1, math.ceil(n_train / t.batch_size))
    rate = learning_rate_of(t.learning_rate, problems, spe, t.epochs)
    opt = None
    try:
        opt = make_optimizer(t.optimizer, rate)
    except RecipeError as e:
        problems.extend(e.problems)
    if problems:
        raise RecipeError(list({(p.path, p.message): p for p in problems}.values()))
    total = spe * t.epochs
    if isinstance(rate, EpochSchedule):
        per_step, source = _evaluate_schedule(rate, total), f"{rate.name} schedule"
    elif isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        per_step, source = _evaluate_schedule(rate, total), f"Keras {type(rate).__name__}"
    elif rate is not None:
        per_step, source = np.full(total, float(rate)), "constant"
    else:
        per_step = np.full(total, float(ops.convert_to_numpy(opt.learning_rate)))
        source = "constant, set in train.optimizer" if _sets_rate(t.optimizer) else \
            f"constant, {type(opt).__name__}'s default"
    notes = []
    if recipe.runtime.scale_learning_rate:
        notes.append(f"runtime.scale_learning_rate: {recipe.runtime.scale_learning_rate}: the recipe's rates times "
                     f"{replicas} replica(s) (--replicas).")
    elif replicas > 1:
        notes.append(f"--replicas {replicas}: the rates are the recipe's; runtime.scale_learning_rate: linear would "
                     f"multiply them by {replicas}.")
    for i, cb in enumerate(t.callbacks):
        if cb.get("type") == "ReduceLROnPlateau":
            notes.append(f"train.callbacks[{i}]: ReduceLROnPlateau may lower the rate further at run time (by "
                         f"factor {cb.get('factor', 0.1)} after {cb.get('patience', 10)} epoch(s) without improvement "
                         f"of {cb.get('monitor', 'val_loss')}); the rates shown are those before any reduction.")
    return LearningRates(per_step, spe, t.epochs, n_train, t.batch_size, source, notes)


def _sets_rate(optimizer: Any) -> bool:
    return isinstance(optimizer, dict) and "learning_rate" in optimizer


def _evaluate_schedule(schedule: Any, total: int) -> np.ndarray:
    """``schedule(step)`` for steps 0..total-1: vectorized where the schedule allows it."""
    steps = ops.arange(total, dtype="int32")
    check = [0, total - 1]
    expected = [float(ops.convert_to_numpy(schedule(s))) for s in check]
    for attempt in (lambda: schedule(steps), lambda: ops.vectorized_map(schedule, steps)):
        try:
            values = np.asarray(ops.convert_to_numpy(attempt()), dtype=np.float64).reshape(-1)
        except Exception:  # e.g. a schedule with a Python-level branch on the step
            continue
        if values.shape == (total,) and np.allclose(values[check], expected, rtol=1e-5, atol=1e-12):
            return values
    return np.array([float(ops.convert_to_numpy(schedule(s))) for s in range(total)])


def print_learning_rates(rates: LearningRates, recipe_name: str, console: Any) -> None:
    """A table: per epoch the rate at its first step and, where it varies within the epoch, min and max."""
    from rich.table import Table

    table = Table(title=f"{recipe_name}: learning rate ({rates.source})")
    for column in ("epoch", "first step", "min", "max"):
        table.add_column(column, justify="right")
    for i in range(1, rates.epochs + 1):
        values = rates.epoch(i)
        low, high = float(values.min()), float(values.max())
        varies = high > low
        table.add_row(str(i), _num(values[0]), _num(low) if varies else "", _num(high) if varies else "")
    console.print(table)
    console.print(f"{rates.n_train} training examples, batch size {rates.batch_size}: {rates.steps_per_epoch} "
                  f"steps per epoch, {rates.epochs * rates.steps_per_epoch} steps in {rates.epochs} epochs.",
                  highlight=False)
    for note in rates.notes:
        console.print(f"note: {note}", highlight=False)


def _num(v: float) -> str:
    return f"{v:.6g}"


def plot_learning_rates(rates: LearningRates, recipe_name: str, path: Path) -> None:
    """Write a PNG of the rate per step (x axis in epochs), atomically."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from dlrecipe.evaluate.metrics import save_figure

    x = np.arange(len(rates.per_step)) / rates.steps_per_epoch
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, rates.per_step, drawstyle="steps-post", linewidth=1.4)
    ax.set_xlim(0, rates.epochs)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{recipe_name}: {rates.source}, {rates.steps_per_epoch} steps per epoch")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def check_out_file(out: Path, suffix: str) -> None:
    """``--out`` names a file to write, not a folder, with the expected suffix."""
    if out.suffix.lower() != suffix:
        raise RecipeError.one("--out", f"Received: {out}. Expected a file name ending in {suffix}.")
    if out.is_dir():
        raise RecipeError.one("--out", f"Received: {out}, which is a folder. Expected a file name, e.g. "
                              f"{out / ('lr' + suffix)}.")


def write_out(write: Any, out: Path) -> None:
    """Run ``write()``; an unwritable ``--out`` becomes a recipe error."""
    try:
        write()
    except OSError as e:
        raise RecipeError.one("--out", f"Cannot write {out}: {e.strerror or e}. Choose another --out.") from None


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

    index: int
    name: str
    type: str
    path: str | None
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
    from dlrecipe.layers.blocks import Block

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
            per_unit = np.all(a == 0, axis=tuple(range(a.ndim - 1)))
            dead = float(np.mean(per_unit))
    return LayerStats(index=index, name=layer.name, type=type(layer).__name__, path=path,
                      output_shape=[None if d is None else int(d) for d in layer.output.shape], activation=act,
                      mean=float(a.mean()) if a.size else None, std=float(a.std()) if a.size else None,
                      saturated=saturated, dead=dead, grad_norm=grad_norm)


def print_init(report: InitReport, recipe_name: str, console: Any) -> None:
    """The per-layer table, then the loss and notes."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{recipe_name} at initialization: {report.batch} training examples, training mode",
                  box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("layer", no_wrap=True)
    wide = console.width >= 110  # the recipe path only where it fits beside the numbers (always in --out)
    if wide:
        table.add_column("recipe path", overflow="fold")
    for column in ("act", "mean", "std", "sat", "dead", "grad"):
        table.add_column(column, justify="left" if column == "act" else "right", no_wrap=True)
    for s in report.layers:
        path = [(s.path or "").replace(" (copy ", " (").replace(" of ", "/")] if wide else []
        table.add_row(str(s.index), s.name, *path, s.activation or "", _cell(s.mean), _cell(s.std), _pct(s.saturated),
                      _pct(s.dead), _cell(s.grad_norm))
    console.print(table)
    if report.loss is not None:
        console.print(f"Loss ({report.loss_name}) on this batch: {report.loss:.4g}", highlight=False)
    console.print("std: spread of the layer's outputs; sat: share of tanh outputs with |a| > 0.99, of sigmoid outputs "
                  "below 0.01 or above 0.99; dead: share of ReLU units (channels) that are 0 for every example of the "
                  "batch; grad: L2 norm of the loss's gradient for the layer's kernel(s).", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def _cell(v: float | None) -> str:
    return "" if v is None else f"{v:.3g}"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"
