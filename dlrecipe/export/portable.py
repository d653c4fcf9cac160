"""The trained model rebuilt from standard Keras layers only, for a ``.keras`` (and ONNX) that loads anywhere.

A ``.keras`` file that names ``dlrecipe>ConvBNAct`` or carries the optimizer with its
``dlrecipe>EpochSchedule`` loads only where dlrecipe is installed. ``portable_model`` clones the
functional graph (``keras.models.clone_model`` with a ``call_function``): a block is replaced by the
standard layers it calls (the same layer objects, so the same weights) and the ``keras.ops`` between
them; a grouped convolution becomes the standard ``ConvND(groups=...)`` with its weights; dlrecipe's
augmentation layers and Keras's ``Random*`` layers (identity at inference) are dropped. The clone is
not compiled, so no optimizer is saved. ``foreign_objects`` lists what a saved config still names
outside Keras. See docs/export.md.
"""

from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path

from dlrecipe.errors import RecipeError

AUGMENTATION = ("FancyPCA", "ScaledGaussianNoise")  # dlrecipe's augmentation: identity at inference
MAX_DEPTH = 6  # blocks inside blocks are expanded one level per pass


def _is_dlrecipe(layer) -> bool:
    return type(layer).__module__.split(".")[0] == "dlrecipe"


def _is_augmentation(layer) -> bool:
    name = type(layer).__name__
    if _is_dlrecipe(layer):
        return name in AUGMENTATION
    return name.startswith("Random") and type(layer).__module__.startswith("keras.")


def _standard_conv(layer):
    """A grouped convolution as the standard Keras ConvND of the same config (its weights set after build)."""
    import keras

    base = next(c for c in type(layer).__mro__ if c.__module__.startswith("keras.") and
                c.__name__ in ("Conv1D", "Conv2D", "Conv3D"))
    return getattr(keras.layers, base.__name__).from_config(layer.get_config())


def _call(layer, *args, **kwargs):
    """How each layer of the clone is called: standard layers as they are, dlrecipe's expanded."""
    import keras

    if _is_augmentation(layer):
        return args[0]
    if isinstance(layer, keras.Model):
        return portable_model(layer)(*args, **kwargs)
    if not _is_dlrecipe(layer):
        return layer(*args, **kwargs)
    if hasattr(layer, "convolution_op") and hasattr(layer, "groups"):  # GroupedConvND
        conv = _standard_conv(layer)
        out = conv(*args)
        conv.set_weights(layer.get_weights())
        return out
    if "training" in inspect.signature(layer.call).parameters:
        kwargs["training"] = False
    return layer.call(*args, **kwargs)


def portable_model(model):
    """``model`` as a functional model of standard Keras layers and ops, sharing its weights, not compiled.

    Raises:
        RecipeError: at ``export.formats`` when the model is not functional or cannot be rebuilt.
    """
    import keras

    clone = model
    for _ in range(MAX_DEPTH):
        if not any(_is_dlrecipe(layer) or _is_augmentation(layer) or
                   (isinstance(layer, keras.Model) and layer is not clone) for layer in clone.layers):
            break
        try:
            clone = keras.models.clone_model(clone, clone_function=lambda layer: layer, call_function=_call)
        except Exception as e:  # Keras raises ValueError/TypeError for graphs it cannot clone
            raise RecipeError.one("export.formats", f"Cannot rebuild the model from standard Keras layers "
                                  f"({type(e).__name__}: {e}). Expected a functional model; use saved_model.") \
                from e
    return keras.Model(clone.inputs, clone.outputs, name=model.name)


def foreign_objects(path: Path) -> list[str]:
    """What the ``.keras`` file at ``path`` names outside Keras (``dlrecipe>ConvBNAct``, an optimizer ...)."""
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            module, registered = node.get("module"), node.get("registered_name")
            if isinstance(module, str) and not module.startswith("keras"):
                found.append(f"{module}.{node.get('class_name')}")
            elif isinstance(registered, str) and ">" in registered:
                found.append(registered)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(config)
    if config.get("compile_config"):
        found.append("compile_config (the training optimizer and loss)")
    return sorted(set(found))
