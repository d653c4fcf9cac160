"""The recipe's JSON Schema, for editors (``dlrecipe schema``; docs/recipe.md#editor-support).

The skeleton comes from the pydantic models (``recipe.schema``); every ``type:`` gets the enum of the names
``validate`` accepts, taken from Keras's registries and dlrecipe's (``build.resolve``, ``build.blocks``,
``build.augment``), each with the first line of its docstring. Layer arguments stay open: Keras checks
them when ``validate`` builds the model. Any value may be a search space (``recipe.spaces``), and a recipe
with ``extends:`` may leave out what its base has.

Example:
    >>> schema = recipe_schema()
    >>> "Dense" in schema["$defs"]["Layer"]["properties"]["type"]["enum"]
    True
"""

from __future__ import annotations

import copy
import inspect
import re
from typing import Any

import keras

from dlrecipe.build import augment, blocks, resolve
from dlrecipe.recipe import spaces
from dlrecipe.recipe.schema import Recipe

SCHEMA_FILE = "recipe.schema.json"
DIALECT = "http://json-schema.org/draft-07/schema#"  # what VS Code's YAML extension reads best


def summary(obj: Any) -> str:
    """The first line of ``obj``'s docstring (empty when it has none)."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def _enum(table: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, Any]:
    """``{"enum": names, "enumDescriptions": [...]}`` (VS Code shows the descriptions while completing)."""
    names = {**{n: summary(obj) for n, obj in table.items()}, **(extra or {})}
    ordered = sorted(names, key=lambda n: (n.lower(), n))
    return {"type": "string", "enum": ordered, "enumDescriptions": [names[n] for n in ordered]}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _accepted_strings(getter: Any, module: Any, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every string name ``getter`` accepts among the registry's names, their snake_case and upper-case forms."""
    names = resolve._registry_names(module)
    candidates = {*names, *(_snake(n) for n in names if n[:1].isupper()), *(n.upper() for n in names if len(n) <= 4)}
    aliases = {"mse", "mae", "mape", "msle", "kld", "bce", "MSE", "MAE", "MAPE", "MSLE", "KLD", "BCE"}
    out: dict[str, Any] = {n: None for n in extra}
    for name in sorted(candidates | aliases):
        try:
            obj = getter(name)
        except Exception:
            continue
        out[name] = obj if callable(obj) or isinstance(obj, type) else type(obj)
    return out


def _typed(classes: dict[str, type], what: str, strings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Keras object written as ``{type: Class, **args}`` or, where Keras takes one, a string name."""
    mapping = {"type": "object", "description": f"A {what}: {{type: ClassName, ...its arguments}}.",
               "required": ["type"], "properties": {"type": _enum(classes)}}
    if strings is None:
        return mapping
    names = _enum({n: o for n, o in strings.items() if o is not None},
                  {n: "" for n, o in strings.items() if o is None})
    return {"anyOf": [{**names, "description": f"A {what} by its Keras name."}, mapping, {"type": "null"}]}


SPACE_REF = {"$ref": "#/$defs/SearchSpace"}


def _search_space() -> dict[str, Any]:
    """``{choice|int|float|boolean: ..., default, step, sampling}``, as ``recipe.spaces`` reads it."""
    kinds = {"choice": {"type": "array", "minItems": 1, "description": "The values to try."},
             "int": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                     "description": "[low, high], integers."},
             "float": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                       "description": "[low, high]."},
             "boolean": {"type": "boolean", "description": "The default (true or false)."}}
    options = {"default": {"description": "The value train and validate use."},
               "step": {"type": "number", "exclusiveMinimum": 0},
               "sampling": {"type": "string", "enum": list(spaces.SAMPLINGS)}}
    assert set(kinds) == set(spaces.KINDS) and set(options) == set(spaces.OPTIONS)
    return {"description": "A search space for dlrecipe tune (train uses its default); see docs/recipe.md.",
            "oneOf": [{"type": "object", "required": [k], "properties": {k: v, **options},
                       "additionalProperties": False} for k, v in kinds.items()]}


def _spaced(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` or a search space; the description stays outside, where editors show it."""
    inner = {k: v for k, v in node.items() if k not in ("description", "title", "default")}
    outer = {k: v for k, v in node.items() if k in ("description", "title", "default")}
    return {**outer, "anyOf": [inner, SPACE_REF]}


def _nested_args() -> dict[str, Any]:
    """What a layer's ``*_initializer``, ``*_regularizer``, ``*_constraint`` and ``activation`` may be."""
    out = {}
    for suffix, module in resolve.NESTED_SUFFIXES.items():
        what = suffix.strip("_")
        classes = {n: getattr(module, n) for n in resolve._registry_names(module)
                   if isinstance(getattr(module, n), type)}
        out[f"{what.capitalize()}"] = _typed(classes, f"Keras {what}", _accepted_strings(module.get, module))
    activations = _accepted_strings(keras.activations.get, keras.activations)
    out["Activation"] = {"anyOf": [_enum({n: o for n, o in activations.items() if o is not None}), {"type": "null"}],
                         "description": "A Keras activation by name, e.g. relu."}
    return out


def _layer(table: dict[str, Any], extra: dict[str, str], what: str) -> dict[str, Any]:
    kinds = _enum(table, extra)
    refs = {f"{s}$": {"$ref": f"#/$defs/{s.strip('_').capitalize()}"} for s in resolve.NESTED_SUFFIXES}
    return {"type": "object", "description": f"{what}: {{type: Name, ...its arguments}} (validate checks them).",
            "required": ["type"],
            "properties": {"type": kinds, **{k: _spaced({"$ref": "#/$defs/Activation"}) for k in resolve.ACTIVATION_KEYS}},
            "patternProperties": {k: _spaced(v) for k, v in refs.items()}}


def _layers() -> dict[str, Any]:
    keras_layers = resolve.layer_classes()
    model = {**keras_layers, **blocks.BLOCK_CLASSES}
    repeat = {"repeat": "dlrecipe: repeat `layers` `times` times (names get _2, _3, ...)."}
    layer = _layer(model, repeat, "A Keras layer (CamelCase) or a dlrecipe block (lower_snake_case)")
    layer["properties"]["layers"] = {"type": "array", "items": {"$ref": "#/$defs/Layer"},
                                     "description": "repeat: the layers to repeat."}
    aliases = {n: f"dlrecipe: {a.note}" for n, a in augment.ALIASES.items()}
    aug = _layer(keras_layers, aliases, "A Keras layer or a dlrecipe augmentation")
    return {"Layer": layer, "Augmentation": aug}


def _training_objects() -> dict[str, Any]:
    optimizers = resolve._classes(keras.optimizers, keras.optimizers.Optimizer)
    optimizer_classes = {c: optimizers[c] for c in resolve.optimizer_names().values()}
    lowered = {n: optimizers[c] for n, c in resolve.optimizer_names().items()}
    losses = {n: c for n, c in resolve._classes(keras.losses, keras.losses.Loss).items() if n != "Loss"}
    metrics = {n: c for n, c in resolve._classes(keras.metrics, keras.metrics.Metric).items() if n != "Metric"}
    schedule = _typed(resolve.schedule_classes(), "Keras learning-rate schedule")
    return {
        "Optimizer": _typed(optimizer_classes, "Keras optimizer", {**lowered, **optimizer_classes}),
        "Loss": _typed(losses, "Keras loss", _accepted_strings(keras.losses.get, keras.losses)),
        "Metric": _typed(metrics, "Keras metric",
                         _accepted_strings(keras.metrics.get, keras.metrics, resolve.COMPILE_METRICS)),
        "Callback": _typed(resolve.callback_classes(), "Keras callback"),
        "KerasSchedule": schedule,
    }


def _may_be_scalar(node: dict[str, Any], defs: dict[str, Any]) -> bool:
    if "$ref" in node:
        return _may_be_scalar(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        return any(_may_be_scalar(n, defs) for n in node["anyOf"])
    return node.get("type") not in ("array", "object", "null")


def _wrap_properties(node: dict[str, Any], defs: dict[str, Any]) -> None:
    """Each scalar property may be a search space instead (a space is found before the schema sees it)."""
    for key, prop in node.get("properties", {}).items():
        if _may_be_scalar(prop, defs):
            node["properties"][key] = _spaced(prop)


def _partial_when_extending(schema: dict[str, Any]) -> None:
    """What pydantic requires is required only of a recipe without ``extends:`` (the base has the rest)."""
    defs = schema["$defs"]
    data_req = defs["DataConfig"].pop("required", [])
    model_req = defs["ModelConfig"].pop("required", [])
    schema.pop("required", None)
    schema["properties"]["extends"] = {"type": "string", "description": "A recipe file (relative to this one) "
                                       "deep-merged under this one: mappings merge, lists replace."}
    schema["if"] = {"required": ["extends"]}
    schema["then"] = {}
    schema["else"] = {"required": ["data", "model"],
                      "properties": {"data": {"required": data_req}, "model": {"required": model_req}}}


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file (draft-07), as ``dlrecipe schema`` writes it."""
    schema = copy.deepcopy(Recipe.model_json_schema(ref_template="#/$defs/{model}"))
    defs = schema.setdefault("$defs", {})
    defs.update(_layers())
    defs.update(_nested_args())
    defs.update(_training_objects())
    props = {name: defs[name]["properties"] for name in ("ModelConfig", "DataConfig", "TrainConfig")}
    props["ModelConfig"]["layers"]["items"] = {"$ref": "#/$defs/Layer"}
    props["ModelConfig"]["defaults"]["patternProperties"] = defs["Layer"]["patternProperties"]
    props["ModelConfig"]["defaults"]["properties"] = {k: defs["Layer"]["properties"][k] for k in resolve.ACTIVATION_KEYS}
    props["DataConfig"]["augment"]["items"] = {"$ref": "#/$defs/Augmentation"}
    train = props["TrainConfig"]
    train["optimizer"] = {"$ref": "#/$defs/Optimizer", "default": train["optimizer"].get("default")}
    train["loss"] = {"$ref": "#/$defs/Loss"}
    train["metrics"] = {"anyOf": [{"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/Metric"}, SPACE_REF]}},
                                  {"type": "null"}]}
    train["callbacks"]["items"] = {"$ref": "#/$defs/Callback"}
    train["learning_rate"] = {"description": "A number, a dlrecipe schedule {schedule: ...} or a Keras one {type: ...}.",
                              "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"$ref": "#/$defs/LearningRate"},
                                        {"$ref": "#/$defs/KerasSchedule"}, {"type": "null"}]}
    for section in ("DataConfig", "ModelConfig", "TrainConfig", "TuneConfig", "RuntimeConfig", "ExportConfig",
                    "LearningRate", "Objective", "EarlyStop"):
        _wrap_properties(defs[section], defs)
    _wrap_properties(schema, defs)
    defs["SearchSpace"] = _search_space()
    _partial_when_extending(schema)
    return {"$schema": DIALECT, "$id": "https://dlrecipe.dev/recipe.schema.json", "title": "dlrecipe recipe",
            "description": "A dlrecipe recipe: data, model, train, tune, runtime, export (docs/recipe.md).",
            **{k: v for k, v in schema.items() if k not in ("title", "description")}}
