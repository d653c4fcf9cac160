"""The one place where recipe names become Keras objects.

Classes are looked up in Keras's own public namespaces (``keras.layers``,
``keras.callbacks``, ...) and nested objects through Keras's ``get()``
registries, so every name Keras knows works and nothing is re-typed here.
Errors carry the recipe path, Keras's reason and a "did you mean".

Example:
    >>> layer = keras_layer("Dense", {"units": 10}, "model.layers[0]", {})
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import keras

from dlrecipe.build import safety
from dlrecipe.errors import Problem, RecipeError, join_path, keras_reason, shown, suggest
from dlrecipe.recipe.yamlio import looks_numeric

NESTED_SUFFIXES = {
    "_initializer": keras.initializers,
    "_regularizer": keras.regularizers,
    "_constraint": keras.constraints,
}
ACTIVATION_KEYS = ("activation", "recurrent_activation")
# dlrecipe writes these itself, in the run folder; LambdaCallback/RemoteMonitor would run code or call out.
MANAGED_CALLBACKS = {
    "ModelCheckpoint": "dlrecipe checkpoints every epoch in checkpoints/ (resume with --resume)",
    "BackupAndRestore": "dlrecipe checkpoints every epoch in checkpoints/ (resume with --resume)",
    "CSVLogger": "dlrecipe writes history.csv itself",
    "TensorBoard": "dlrecipe writes TensorBoard logs to tensorboard/ itself",
    "LambdaCallback": "it runs Python code, which a recipe cannot carry",
    "RemoteMonitor": "it sends data over the network",
    "ProgbarLogger": "dlrecipe shows Keras's progress bar itself",
    "History": "Keras adds it itself",
}


def recipe_error(path: str, message: str, cause: BaseException | None = None) -> RecipeError:
    """A RecipeError at ``path`` caused by ``cause`` (Keras's exception), to ``raise ... from cause``."""
    err = RecipeError.one(path, message)
    err.__cause__ = cause
    return err


@functools.cache
def _classes(module: Any, base: type) -> dict[str, type]:
    out = {}
    for name in dir(module):
        obj = getattr(module, name, None)
        if isinstance(obj, type) and issubclass(obj, base) and not name.startswith("_"):
            out[name] = obj
    return out


def layer_classes() -> dict[str, type]:
    return _classes(keras.layers, keras.layers.Layer)


def accepted_args(cls: type) -> set[str] | None:
    """Named constructor arguments of ``cls`` and its bases; None when any takes arbitrary keywords."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
        if klass in (keras.layers.Layer, keras.callbacks.Callback, keras.optimizers.Optimizer):
            break
    if issubclass(cls, keras.layers.Layer):
        names |= {"name", "dtype", "trainable", "input_shape", "input_dim", "batch_size", "autocast"}
        return names
    if issubclass(cls, keras.optimizers.Optimizer):
        # Every optimizer class takes **kwargs only to refuse legacy names: collect the named ones of all bases.
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is not None:
                names |= {p.name for p in inspect.signature(init).parameters.values()
                          if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"}
        return names
    return None


def check_args(cls: type, args: dict[str, Any], path: str) -> None:
    accepted = accepted_args(cls)
    if accepted is None:
        return
    problems = []
    for key in args:
        if key not in accepted:
            problems.append((join_path(path, key), f"Unknown argument '{key}' for {cls.__name__}."
                             f"{suggest(key, accepted)} {cls.__name__} takes: {', '.join(sorted(accepted))}."))
    if problems:
        raise RecipeError([Problem(p, m) for p, m in problems])


def _defaults(cls: type) -> dict[str, Any]:
    """The default of each named constructor argument of ``cls``, from the first class that declares it."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        out.update({p.name: p.default for p in params if p.default is not inspect.Parameter.empty})
    return out


def check_types(cls: type, args: dict[str, Any], path: str) -> None:
    """Refuse text or a mapping where ``cls`` defaults to a number, and a non-boolean where it defaults to one.

    Keras stores many arguments unchecked (``EarlyStopping(patience="three")``) and fails epochs later.
    """
    problems = []
    defaults = _defaults(cls)
    for key, value in args.items():
        default = defaults.get(key, inspect.Parameter.empty)
        where = join_path(path, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(Problem(where, f"Received: {key}={value!r}. Expected true or false."))
        elif isinstance(default, (int, float)) and isinstance(value, (str, bool, dict)):
            hint = (f" YAML reads {value!r} as text: write it with a dot and a signed exponent, e.g. 1.0e-3."
                    if isinstance(value, str) and looks_numeric(value) else "")
            problems.append(Problem(where, f"Received: {key}={value!r}. Expected a number (default: {default!r})."
                                    + hint))
    if problems:
        raise RecipeError(problems)


def construct(cls: type, args: dict[str, Any], path: str) -> Any:
    """``cls(**args)`` with Keras's errors turned into a recipe error at ``path``.

    Every Keras object a recipe builds is made here, after ``safety.check`` (no outside code or files).
    """
    safety.check(cls, args, path)
    check_args(cls, args, path)
    check_types(cls, args, path)
    try:
        return cls(**args)
    except RecipeError:
        raise
    except Exception as e:  # Keras validates in constructors with ValueError/TypeError
        key = _text_for_number(cls, args)
        if key is not None:
            raise recipe_error(join_path(path, key), f"Received: {key}={args[key]!r}. Expected a number here "
                               f"({cls.__name__} refused the text: {keras_reason(e)}).", e) from e
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items() if not hasattr(v, "get_config"))
        raise recipe_error(path, f"{cls.__name__}({shown}) was refused by Keras: {keras_reason(e)}", e) from e


def _text_for_number(cls: type, args: dict[str, Any]) -> str | None:
    """The argument holding text where ``cls`` wants a number: the one whose replacement by 1 is accepted."""
    for key, value in args.items():
        if isinstance(value, str):
            try:
                cls(**{**args, key: 1})
            except Exception:
                continue
            return key
    return None


def split_type(spec: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise recipe_error(join_path(path, "type"), f"Received: {shown(spec)}. Expected a mapping with 'type:' naming a "
                           "Keras class.")
    return kind, {k: v for k, v in spec.items() if k != "type"}


def _by_name(kind: str, table: dict[str, Any], path: str, what: str, docs: str = "") -> Any:
    if kind in table:
        return table[kind]
    hint = suggest(kind, table)
    what, _, note = what.partition(" (")
    hint = f" ({note}{hint}" if note else hint
    known = f" Known: {', '.join(sorted(table))}." if len(table) <= 40 else f" See {docs} for all of them." if docs else ""
    raise recipe_error(join_path(path, "type"), f"Unknown {what} '{kind}'.{hint}{known}")


# --- nested objects: initializers, regularizers, constraints, activations ------------------------------


def _registry_names(module: Any) -> list[str]:
    return [n for n in dir(module) if not n.startswith("_") and n not in ("get", "serialize", "deserialize")]


def nested(module: Any, value: Any, path: str) -> Any:
    """An initializer / regularizer / constraint from a Keras string or ``{type: ..., args}``."""
    what = module.__name__.rsplit(".", 1)[-1].rstrip("s")
    if value is None or hasattr(value, "get_config"):
        return value
    if isinstance(value, dict):
        kind, args = split_type(value, path)
        classes = {n: getattr(module, n) for n in _registry_names(module) if isinstance(getattr(module, n), type)}
        cls = _by_name(kind, classes, path, what)
        return construct(cls, args, path)
    if isinstance(value, str):
        try:
            return module.get(value)
        except Exception as e:
            raise recipe_error(path, f"Unknown {what} '{value}'.{suggest(value, _registry_names(module))} Use a Keras "
                               f"name such as {_examples(what)} or a mapping with 'type:'.", e) from e
    raise recipe_error(path, f"Received: {shown(value)}. Expected a Keras {what} name or a mapping with 'type:'.")


def _examples(what: str) -> str:
    return {"initializer": "'he_normal' or {type: HeNormal}", "regularizer": "'l2' or {type: L2, l2: 1.0e-4}",
            "constraint": "'max_norm' or {type: MaxNorm, max_value: 3}"}.get(what, "its snake_case name")


def activation(value: Any, path: str) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            keras.activations.get(value)
        except Exception as e:
            names = _registry_names(keras.activations)
            raise recipe_error(path, f"Unknown activation '{value}'.{suggest(value, names)} Known: "
                               f"{', '.join(names)}.", e) from e
        return value  # keep the string: it serializes by name
    raise recipe_error(path, f"Received: {shown(value)}. Expected an activation name such as 'relu'; for an activation with "
                       "arguments use a layer, e.g. {type: LeakyReLU, negative_slope: 0.1}.")


def resolve_nested_args(args: dict[str, Any], path: str) -> dict[str, Any]:
    """Turn every nested recipe object in a layer's arguments into its Keras object."""
    out = dict(args)
    for key, value in args.items():
        sub = join_path(path, key)
        if key in ACTIVATION_KEYS:
            out[key] = activation(value, sub)
            continue
        for suffix, module in NESTED_SUFFIXES.items():
            if key.endswith(suffix):
                out[key] = nested(module, value, sub)
    return out


# --- layers ---------------------------------------------------------------------------------------------


def applicable_defaults(cls: type, defaults: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``model.defaults`` that ``cls`` accepts as named arguments."""
    accepted = accepted_args(cls) or set()
    return {k: v for k, v in defaults.items() if k in accepted}


def keras_layer(kind: str, args: dict[str, Any], path: str, defaults: dict[str, Any], hint: str = "") -> Any:
    """The Keras layer class ``kind`` built from recipe ``args``, ``defaults`` filling what it accepts.

    ``hint`` is appended to the "Unknown layer type" message (a note on what ``kind`` might be instead).

    Example:
        >>> keras_layer("Dense", {"units": 10, "kernel_initializer": "he_normal"}, "model.layers[0]", {})
    """
    cls = _by_name(kind, layer_classes(), path, "layer type" + hint, "https://keras.io/api/layers/")
    problems: list[Problem] = []
    try:
        check_args(cls, args, path)
    except RecipeError as e:
        problems += e.problems
    resolved: dict[str, Any] = {}
    for key, value in args.items():  # each nested object on its own, so that all of a layer's problems show
        try:
            resolved.update(resolve_nested_args({key: value}, path))
        except RecipeError as e:
            problems += e.problems
    if problems:
        raise RecipeError(problems)
    return construct(cls, {**resolve_defaults(applicable_defaults(cls, defaults)), **resolved}, path)


def resolve_defaults(defaults: dict[str, Any], path: str = "model.defaults") -> dict[str, Any]:
    return resolve_nested_args(defaults, path)


# --- training objects -----------------------------------------------------------------------------------


def _get_or_construct(getter: Callable, module: Any, base: type, value: Any, path: str, what: str,
                      extra_names: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        kind, args = split_type(value, path)
        cls = _by_name(kind, _classes(module, base), path, what)
        return construct(cls, args, path)
    if isinstance(value, str):
        try:
            getter(value)
        except Exception as e:
            # lower-case names first: 'acuracy' should suggest 'accuracy', not the exact-match Accuracy class
            names = [*extra_names, *(n for n in _registry_names(module) if n[:1].islower()), *_classes(module, base)]
            raise recipe_error(path, f"Unknown {what} '{value}'.{suggest(value, names)}", e) from e
        return value  # Keras resolves strings itself in compile (e.g. 'accuracy' by the loss)
    raise recipe_error(path, f"Received: {shown(value)}. Expected a Keras {what} name or a mapping with 'type:'.")


def loss(value: Any, path: str = "train.loss") -> Any:
    return _get_or_construct(keras.losses.get, keras.losses, keras.losses.Loss, value, path, "loss")


COMPILE_METRICS = ("accuracy", "acc")  # compile() picks the variant that fits the loss


def metric(value: Any, path: str) -> Any:
    if value in COMPILE_METRICS:
        return value
    return _get_or_construct(keras.metrics.get, keras.metrics, keras.metrics.Metric, value, path, "metric",
                             extra_names=COMPILE_METRICS)


def optimizer(value: Any, learning_rate: Any, path: str = "train.optimizer") -> keras.optimizers.Optimizer:
    """The optimizer, with ``learning_rate`` (a number or a schedule object) when given."""
    table = _classes(keras.optimizers, keras.optimizers.Optimizer)
    if isinstance(value, str):
        lowered = optimizer_names()
        name = lowered.get(value.lower().replace("_", ""))
        if name is None:
            raise recipe_error(path, f"Unknown optimizer '{value}'.{suggest(value.lower(), lowered)} Known: "
                               f"{', '.join(sorted(lowered))} (or the class names, e.g. {{type: SGD, momentum: 0.9}}).")
        kind, args = name, {}
    else:
        kind, args = split_type(value, path)
    cls = _by_name(kind, table, path, "optimizer")
    if learning_rate is not None:
        if "learning_rate" in args:
            raise recipe_error(join_path(path, "learning_rate"), "The learning rate is set twice: here and in "
                               "train.learning_rate. Keep train.learning_rate.")
        args["learning_rate"] = learning_rate
    return construct(cls, args, path)


def keras_schedule(value: dict[str, Any], path: str = "train.learning_rate") -> Any:
    kind, args = split_type(value, path)
    cls = _by_name(kind, schedule_classes(), path, "Keras learning-rate schedule (or use 'schedule:' for dlrecipe's)")
    return construct(cls, args, path)


def callback(value: dict[str, Any], path: str) -> keras.callbacks.Callback:
    kind, args = split_type(value, path)
    if kind in MANAGED_CALLBACKS:
        raise recipe_error(join_path(path, "type"), f"{kind} is not available in a recipe: {MANAGED_CALLBACKS[kind]}.")
    cls = _by_name(kind, callback_classes(), path, "callback")
    return construct(cls, args, path)


# --- the names a recipe may use (also the enums of `dlrecipe schema`) -------------------------------------


def optimizer_names() -> dict[str, str]:
    """Lower-case optimizer names (``adam``, ``sgd``) to their Keras class names."""
    return {n.lower(): n for n in _classes(keras.optimizers, keras.optimizers.Optimizer)
            if n not in ("Optimizer", "LossScaleOptimizer", "MultiOptimizer")}


def schedule_classes() -> dict[str, type]:
    """Keras's learning-rate schedules by class name (``train.learning_rate: {type: ...}``)."""
    table = dict(_classes(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule))
    table.pop("LearningRateSchedule", None)
    return table


def callback_classes() -> dict[str, type]:
    """The Keras callbacks a recipe may name (``train.callbacks``): all but those dlrecipe manages."""
    return {n: c for n, c in _classes(keras.callbacks, keras.callbacks.Callback).items()
            if n not in MANAGED_CALLBACKS and n not in ("Callback", "CallbackList")}
