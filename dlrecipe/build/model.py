"""Build the Keras model of a recipe: raw inputs in, the recipe's layers, one output.

The model starts with the recipe's augmentation layers (active in training
only) and the fitted preprocessing, so evaluation and export apply exactly the
transform that training saw. ``inputs:`` turns the layer list into a graph; the
name ``inputs`` refers to the preprocessed input.

Example:
    >>> model = build_model(recipe, input_shape=(28, 28, 1), stats={"kind": "rescale"})
"""

from __future__ import annotations

import copy
from typing import Any

import keras

from dlrecipe.build import augment, blocks, preprocessing, resolve
from dlrecipe.errors import RecipeError, join_path, keras_reason, shown
from dlrecipe.recipe.schema import Recipe

INPUT_NAME = "inputs"


def expand_layers(layers: list[dict[str, Any]], path: str, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Flatten ``repeat`` into ``(path, spec)`` pairs.

    A named layer inside a repeat is named ``name`` in the first copy and ``name_2``, ``name_3``...
    in later ones; in nested repeats the copy numbers of every level are appended, innermost first,
    without trailing ``_1``s (``d``, ``d_2``, ``d_1_2``, ``d_2_2``), so names stay unique.
    ``inputs:`` inside a copy refer to the layers of the same copy. ``start`` is the index of the
    first of ``layers`` in the recipe (to expand one layer of a longer list).
    """
    return [(p, _final_names(spec)) for p, spec in _expand(layers, path, start)]


MAX_REPEAT = 1000  # copies in one repeat
MAX_LAYERS = 10_000  # layers of the whole model, repeats expanded
_COPY = "\x00"  # marks copy numbers in names while repeats are expanded


def _expand(layers: list[dict[str, Any]], path: str, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(layers, list):
        raise RecipeError.one(path, f"Received: {shown(layers)}. Expected a list of layers, e.g. "
                              "[{type: Dense, units: 64}].")
    for i, spec in enumerate(layers, start=start):
        here = join_path(path, i)
        if not isinstance(spec, dict):
            raise RecipeError.one(here, f"Received: {shown(spec)}. Expected a layer: a mapping with 'type:', e.g. "
                                  "{type: Dense, units: 64}.")
        if spec.get("type") != "repeat":
            out.append((here, spec))
            continue
        extra = set(spec) - {"type", "times", "layers", "first", "name"}
        if extra:
            key = sorted(extra)[0]
            raise RecipeError.one(join_path(here, key), f"Unknown argument '{key}' for repeat. repeat takes: times, "
                                  "layers, first (arguments that override the first copy).")
        times, first = spec.get("times", 1), spec.get("first") or {}
        if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= MAX_REPEAT:
            raise RecipeError.one(join_path(here, "times"), f"Received: times={times!r}. Expected an integer from 1 "
                                  f"to {MAX_REPEAT}.")
        if not isinstance(first, dict):
            raise RecipeError.one(join_path(here, "first"), f"Received: first={first!r}. Expected a mapping of "
                                  "arguments for the first copy, e.g. {strides: 2}.")
        inner = _expand(spec["layers"], join_path(here, "layers"))
        if len(out) + times * len(inner) > MAX_LAYERS:
            raise RecipeError.one(join_path(here, "times"), f"Received: times={times}, which makes the model more "
                                  f"than {MAX_LAYERS:,} layers long. Expected at most {MAX_LAYERS:,} layers in all.")
        names = {s["name"] for _, s in inner if isinstance(s.get("name"), str)}
        for copy_i in range(times):
            for j, (sub_path, sub) in enumerate(inner):
                sub = _mark_copy(copy.deepcopy(sub), names, copy_i + 1)
                if copy_i == 0 and j == 0:
                    sub.update(first)
                out.append((sub_path if times == 1 else f"{sub_path} (copy {copy_i + 1} of {times})", sub))
    return out


def _mark_copy(spec: dict[str, Any], names: set[str], number: int) -> dict[str, Any]:
    mark = f"{_COPY}{number}"
    if isinstance(spec.get("name"), str) and spec["name"] in names:
        spec["name"] += mark
    if isinstance(spec.get("inputs"), list):
        spec["inputs"] = [n + mark if isinstance(n, str) and n in names else n for n in spec["inputs"]]
    return spec


def _final_name(name: Any) -> Any:
    if not isinstance(name, str) or _COPY not in name:
        return name
    base, *numbers = name.split(_COPY)
    while numbers and numbers[-1] == "1":
        numbers.pop()
    return base + "".join(f"_{n}" for n in numbers)


def _final_names(spec: dict[str, Any]) -> dict[str, Any]:
    if "name" in spec:
        spec["name"] = _final_name(spec["name"])
    if isinstance(spec.get("inputs"), list):
        spec["inputs"] = [_final_name(n) for n in spec["inputs"]]
    return spec


def clean_path(path: str) -> str:
    """A layer's recipe path without the `` (copy i of n)`` note of a repeat's copies."""
    return path.split(" (copy")[0]


def build_layer(spec: dict[str, Any], path: str, defaults: dict[str, Any]) -> keras.layers.Layer:
    """One layer of ``model.layers``: a Keras layer or a dlrecipe block, from ``{type: Name, **args}``.

    ``defaults`` (``model.defaults`` as written in the recipe) fill arguments the layer accepts and
    the spec leaves out. They are resolved again for every layer: a Keras initializer without a seed
    draws its seed when it is created, so one shared instance would give same-shaped layers identical
    starting weights.

    Example:
        >>> build_layer({"type": "residual", "filters": 64}, "model.layers[3]", {"kernel_initializer": "he_normal"})
    """
    kind, args = resolve.split_type(spec, path)
    args.pop("inputs", None)
    # Only the defaults this layer takes are resolved: an unused initializer would still draw a seed
    # and shift every later layer's random numbers away from the same model written by hand.
    if kind in blocks.BLOCKS:
        accepted = blocks.accepted_args(kind)
        return blocks.BLOCKS[kind](args, path, resolve.resolve_defaults({k: v for k, v in defaults.items()
                                                                           if k in accepted}))
    return resolve.keras_layer(kind, args, path, defaults, _block_hint(kind))


def _block_hint(kind: str) -> str:
    if kind in augment.ALIASES:
        return f" ({kind} is an augmentation: put it in data.augment, not model.layers)"
    return "" if kind[:1].isupper() else " (Keras layers are CamelCase; dlrecipe blocks lower_snake_case)"


def augmentation_layers(recipe: Recipe, stats: dict[str, Any], input_shape: tuple[int, ...],
                        task: str | None = None) -> list[keras.layers.Layer]:
    """The model's augmentation layers (see ``augment``); they act on training batches only.

    MixUp and CutMix are left out: they blend labels, so they run in the input pipeline (``dlrecipe.pipeline``).
    For ``task: segmentation`` there are none: every layer runs in the pipeline on (image, mask) batches
    (``dlrecipe.segaugment``; ``check.build_all`` checks them).
    """
    if task == "segmentation":
        return []
    layers = augment.build_layers(recipe.data.augment, seed=recipe.seed, stats=stats.get("augment"),
                                  input_shape=input_shape)
    return [layer for layer in layers if not augment.mixes_labels(layer)]


def build_model(recipe: Recipe, input_shape: tuple[int, ...], stats: dict[str, Any],
                paths: dict[str, str] | None = None, task: str | None = None) -> keras.Model:
    """The functional model of ``recipe``: raw float32 inputs of ``input_shape`` in, last layer out.

    ``paths``, when given, is filled with the recipe path of every layer built from ``model.layers``,
    by layer name (``{"dense_3": "model.layers[2]"}``; copies of a repeat keep their
    `` (copy i of n)`` note), so diagnostics can point at the recipe.

    Raises:
        RecipeError: every bad layer at once, each with its path; then the first shape error.
    """
    shape = tuple(recipe.model.input_shape or input_shape)
    inputs = keras.Input(shape=shape, name="raw_inputs", dtype="float32")
    x = inputs
    for layer in augmentation_layers(recipe, stats, shape, task):
        x = layer(x)
    for layer in preprocessing.keras_layers(stats):
        x = layer(x)
    built = _construct_all(expand_layers(recipe.model.layers, "model.layers"), recipe.model.defaults)
    outputs: dict[str, Any] = {INPUT_NAME: x}
    for path, spec, layer in built:
        if layer.name in outputs:
            raise RecipeError.one(join_path(clean_path(path), "name"), f"Received: name={layer.name!r}, but an "
                                  "earlier layer already has this name. Give every layer its own name.")
        sources = spec.get("inputs")
        try:
            if sources is None:
                arg = x
            else:
                arg = _sources(sources, outputs, path)
            x = layer(arg)
        except RecipeError:
            raise
        except Exception as e:
            got = getattr(arg, "shape", None) if not isinstance(arg, list) else [a.shape for a in arg]
            raise RecipeError.one(clean_path(path), f"{spec['type']} cannot take its input of shape {got}: "
                                  f"{keras_reason(e)}") from e
        outputs[layer.name] = x
        if paths is not None:
            paths[layer.name] = path
    return keras.Model(inputs, x, name=recipe.name.replace(".", "_"))


def _construct_all(items: list[tuple[str, dict[str, Any]]], defaults: dict[str, Any]) -> list[tuple]:
    """Construct every layer, collecting all errors before raising them together."""
    built, problems = [], []
    for path, spec in items:
        try:
            built.append((path, spec, build_layer(spec, clean_path(path), defaults)))
        except RecipeError as e:
            problems.extend(e.problems)
    if problems:
        unique = list({(p.path, p.message): p for p in problems}.values())  # repeat copies repeat errors
        raise RecipeError(unique)
    return built


def _sources(names: Any, outputs: dict[str, Any], path: str) -> Any:
    where = join_path(clean_path(path), "inputs")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RecipeError.one(where, f"Received: inputs={names!r}. Expected a list of layer names, e.g. [conv1, up1].")
    missing = [n for n in names if n not in outputs]
    if missing:
        from dlrecipe.errors import suggest
        raise RecipeError.one(where, f"No earlier layer is named '{missing[0]}'.{suggest(missing[0], outputs)} "
                              f"Known so far: {', '.join(outputs)} (a layer can only take earlier layers).")
    tensors = [outputs[n] for n in names]
    return tensors[0] if len(tensors) == 1 else tensors


def check_output(model: keras.Model, n_classes: int | None, task: str, path: str) -> None:
    """The last layer must produce one value per class (classification) or one per target.

    For segmentation, one score per class and pixel at the input's height and width.
    """
    if task == "segmentation":
        from dlrecipe.tasks.segmentation import check_output as check_segmentation_output
        check_segmentation_output(model, n_classes, path)
        return
    shape = tuple(model.output.shape)
    if len(shape) != 2:
        per = "class scores" if task == "classification" else "targets"
        raise RecipeError.one(path, f"The model ends with output shape {shape}, but {task} needs one row of {per} "
                              f"per example, (None, {shape[-1]}). Add {{type: Flatten}} or {{type: "
                              "GlobalAveragePooling2D} before the last Dense layer.")
    width = shape[-1]
    if task == "classification" and n_classes and width != n_classes and not (n_classes == 2 and width == 1):
        raise RecipeError.one(path, f"The model ends with {width} output(s) per example, but the data has {n_classes} "
                              f"classes. Set the last layer to {n_classes} units (e.g. {{type: Dense, units: "
                              f"{n_classes}, activation: softmax}}).")
