"""Checks that need Keras, and build of everything a run trains with.

``keras_problems`` looks at a recipe even when its structure has errors, so
``validate`` lists every problem of a file in one run. ``build_all``
constructs the model, optimizer, loss, metrics and callbacks of a valid
recipe, collecting every error before raising them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from dlrecipe.build import augment, resolve, schedules
from dlrecipe.build.compile import finalize
from dlrecipe.build.model import build_layer, build_model, check_output, clean_path, expand_layers
from dlrecipe.errors import Problem, RecipeError, is_within, suggest
from dlrecipe.recipe.schema import Recipe
from dlrecipe.tasks import segmentation


def _collect(problems: list[Problem], fn, *args) -> Any:
    try:
        return fn(*args)
    except RecipeError as e:
        problems.extend(e.problems)
        return None


def _blocked(path: str, structural: list[Problem]) -> bool:
    """True when a structural problem sits at or under/over ``path`` (already reported)."""
    for p in structural:
        if is_within(p.path, path) or is_within(path, p.path):
            return True
    return False


def keras_problems(fixed: dict[str, Any], structural: list[Problem]) -> list[Problem]:
    """Unknown Keras names and bad arguments in a (possibly structurally broken) recipe."""
    problems: list[Problem] = []
    model = fixed.get("model") if isinstance(fixed.get("model"), dict) else {}
    train = fixed.get("train") if isinstance(fixed.get("train"), dict) else {}
    data = fixed.get("data") if isinstance(fixed.get("data"), dict) else {}
    defaults = {}
    if isinstance(model.get("defaults"), dict) and not _blocked("model.defaults", structural):
        if _collect(problems, resolve.resolve_defaults, model["defaults"]) is not None:
            defaults = model["defaults"]  # resolved again per layer (see model.build_layer)
    layers = model.get("layers")
    if isinstance(layers, list):
        # Each layer is checked unless a structural problem already sits on it.
        seen = set()
        kinds: set[str] = set()
        for i, spec in enumerate(layers):
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str) \
                    or _blocked(f"model.layers[{i}]", structural):
                continue
            for path, sub in _collect(problems, expand_layers, [spec], "model.layers", i) or []:
                clean = clean_path(path)
                if clean in seen or _blocked(clean, structural):
                    continue
                seen.add(clean)
                kinds.add(sub.get("type"))
                _collect(problems, build_layer, sub, clean, defaults)
        if defaults:
            problems += unused_defaults(defaults, kinds)
    for i, spec in enumerate(data.get("augment") if isinstance(data.get("augment"), list) else []):
        if isinstance(spec, dict) and not _blocked(f"data.augment[{i}]", structural):
            _collect(problems, augment.build_layer, spec, f"data.augment[{i}]")
    if "loss" in train and train["loss"] is not None and not _blocked("train.loss", structural):
        _collect(problems, resolve.loss, train["loss"])
    for i, m in enumerate(train.get("metrics") or [] if isinstance(train.get("metrics"), list) else []):
        if not _blocked(f"train.metrics[{i}]", structural):
            _collect(problems, resolve.metric, m, f"train.metrics[{i}]")
    if not _blocked("train.optimizer", structural):
        lr = None
        if not _blocked("train.learning_rate", structural):
            lr = learning_rate_of(train.get("learning_rate"), problems, steps_per_epoch=1, epochs=1)
        _collect(problems, resolve.optimizer, train.get("optimizer", "adam"), lr)
    for i, cb in enumerate(train.get("callbacks") or [] if isinstance(train.get("callbacks"), list) else []):
        if isinstance(cb, dict) and not _blocked(f"train.callbacks[{i}]", structural):
            _collect(problems, resolve.callback, cb, f"train.callbacks[{i}]")
    return problems


# The Keras layers dlrecipe's blocks are made of: model.defaults reach them through the block.
BLOCK_PARTS = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "DepthwiseConv2D", "Dense", "BatchNormalization")


def unused_defaults(defaults: dict[str, Any], kinds: set[str]) -> list[Problem]:
    """A ``model.defaults`` key that no layer of the model takes (a misspelling Keras would never see)."""
    from dlrecipe.build.blocks import BLOCKS, accepted_args
    classes = resolve.layer_classes()
    taken: set[str] = set()
    for kind in kinds:
        if kind in BLOCKS:
            taken |= accepted_args(kind)
            for part in BLOCK_PARTS:
                taken |= resolve.accepted_args(classes[part]) or set()
        elif kind in classes:
            taken |= resolve.accepted_args(classes[kind]) or set()
    return [Problem(f"model.defaults.{key}", f"No layer of this model takes '{key}'.{suggest(key, taken)} "
                    "model.defaults gives each layer the arguments it accepts; remove the key or fix its name.")
            for key in defaults if key not in taken]


def learning_rate_of(value: Any, problems: list[Problem], steps_per_epoch: int, epochs: int) -> Any:
    if value is None or isinstance(value, (int, float)):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, dict) and "schedule" in value:
        return _collect(problems, schedules.build, value, steps_per_epoch, epochs)
    if isinstance(value, dict):
        return _collect(problems, resolve.keras_schedule, value)
    return None


@dataclass
class Built:
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    loss: Any
    metrics: list[Any]
    callbacks: list[keras.callbacks.Callback]


def build_all(recipe: Recipe, input_shape: tuple[int, ...], stats: dict[str, Any], *, task: str,
              n_classes: int | None, steps_per_epoch: int, paths: dict[str, str] | None = None) -> Built:
    """Every Keras object of a valid recipe; all problems raised together.

    ``paths``, when given, receives the recipe path of each model layer by name (see ``build_model``).
    """
    problems: list[Problem] = []
    problems.extend(feature_problems(recipe))
    recipe = finalize(recipe, task, n_classes)
    train = recipe.train
    if task == segmentation.SEGMENTATION and recipe.data.augment:  # they run in the pipeline, on image and mask
        from dlrecipe.build import segaugment
        _collect(problems, lambda: segaugment.check(
            recipe.data.augment, seed=recipe.seed, stats=stats.get("augment"),
            input_shape=tuple(recipe.model.input_shape or input_shape), backend=keras.backend.backend()))
    model = _collect(problems, build_model, recipe, input_shape, stats, paths, task)
    if model is not None:
        last = f"model.layers[{len(recipe.model.layers) - 1}]"
        _collect(problems, check_output, model, n_classes, task, last)
    names = recipe.export.class_names
    if names is not None and n_classes and len(names) != n_classes:
        problems.append(Problem("export.class_names", f"Received {len(names)} class names, but the data has "
                                f"{n_classes} classes. Give one name per class, in class-index order."))
    lr = learning_rate_of(train.learning_rate, problems, steps_per_epoch, train.epochs)
    optimizer = _collect(problems, resolve.optimizer, train.optimizer, lr)
    loss = _collect(problems, resolve.loss, train.loss)
    metrics = [_collect(problems, resolve.metric, m, f"train.metrics[{i}]") for i, m in enumerate(train.metrics)]
    callbacks = [_collect(problems, resolve.callback, cb, f"train.callbacks[{i}]") for i, cb in enumerate(train.callbacks)]
    if None not in metrics:
        problems += monitor_problems(callbacks, logged_names(metrics))
    if problems:
        raise RecipeError(list({(p.path, p.message): p for p in problems}.values()))
    return Built(model, optimizer, loss, metrics, callbacks)


def logged_names(metrics: list[Any]) -> list[str]:
    """What ``fit`` logs each epoch with these compiled metrics: the loss and each metric, and their ``val_`` forms.

    Keras logs a metric given as a string under that string (``acc``, ``mae``), an object under its ``name``.
    """
    names = ["loss", *(m if isinstance(m, str) else m.name for m in metrics)]
    return names + [f"val_{n}" for n in names]


def monitor_problems(callbacks: list[Any], logged: list[str]) -> list[Problem]:
    """A callback monitoring a value the run will not log (``val_los``) would fail after the first epoch."""
    out = []
    for i, cb in enumerate(callbacks):
        monitor = getattr(cb, "monitor", None)
        if isinstance(monitor, str) and monitor not in logged:
            out.append(Problem(f"train.callbacks[{i}].monitor", f"Received: monitor={monitor!r}, which this run does "
                               f"not log.{suggest(monitor, logged)} It logs: {', '.join(logged)}."))
    return out


PLANNED = "is planned but not in this version of dlrecipe"


def missing_onnx() -> list[str]:
    """The packages of the ``onnx`` extra (tf2onnx, onnxruntime) that are not installed."""
    import importlib.util
    return [name for name in ("onnx", "tf2onnx", "onnxruntime") if importlib.util.find_spec(name) is None]


def feature_problems(recipe: Recipe) -> list[Problem]:
    """Options the format names that this version refuses, and combinations that cannot work."""
    out: list[Problem] = []
    t, r, x = recipe.train, recipe.runtime, recipe.export

    def add(path: str, message: str) -> None:
        out.append(Problem(path, message))

    if t.cross_validation == 1:
        add("train.cross_validation", "Received: cross_validation=1. k-fold cross-validation needs k >= 2 folds; "
            "set 0 to train one model, or k >= 2 (e.g. 5).")
    if t.ensemble > 1 and t.cross_validation > 1:
        add("train.cross_validation", f"Received: cross_validation={t.cross_validation} with ensemble={t.ensemble}. "
            "A run is an ensemble or a cross-validation, not both: cross-validate the single model (ensemble: 1), "
            "then train the ensemble with cross_validation: 0.")
    has_schedule = isinstance(t.learning_rate, dict) or hasattr(t.learning_rate, "schedule")
    for i, cb in enumerate(t.callbacks):
        if cb.get("type") == "ReduceLROnPlateau" and has_schedule:
            add(f"train.callbacks[{i}]", "ReduceLROnPlateau and a learning-rate schedule would both own the learning "
                "rate. Keep one: a number in train.learning_rate with ReduceLROnPlateau, or the schedule alone.")
    if "onnx" in x.formats and missing_onnx():
        add("export.formats", f"Received: 'onnx', but {', '.join(missing_onnx())} is not installed. ONNX export "
            "needs the onnx extra: run `pip install -e '.[onnx]'` (or use saved_model, keras or tflite).")
    backend = keras.backend.backend()
    if r.strategy == "multi_worker":
        add("runtime.strategy", "Received: strategy='multi_worker'. Keras 3's fit does not run under "
            "tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras#20585). For several processes use "
            "strategy: data_parallel (or auto) and `KERAS_BACKEND=jax dlrecipe train RECIPE --workers N`.")
    if r.strategy == "data_parallel" and backend != "jax":
        add("runtime.strategy", f"Received: strategy='data_parallel' on the {backend} backend. It is Keras's "
            "distribution API for JAX: run with KERAS_BACKEND=jax, or use mirrored on TensorFlow.")
    if r.strategy in ("one_device", "mirrored", "tpu") and backend != "tensorflow":
        add("runtime.strategy", f"Received: strategy='{r.strategy}', a tf.distribute strategy, on the {backend} "
            "backend. Use auto or data_parallel there, or run with KERAS_BACKEND=tensorflow.")
    return out
