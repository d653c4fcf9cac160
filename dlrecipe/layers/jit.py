"""What Keras layers say about XLA (``supports_jit``), corrected where Keras 3.15 is wrong for the backend.

``build.augment`` marks every augmentation layer it builds; ``runs.load_model`` marks a loaded model's
layers again, since the mark is not part of a layer's config.

Example:
    >>> model = mark_jit_support(keras.saving.load_model("model.keras", safe_mode=True))
"""

from __future__ import annotations

import warnings
from typing import Any

import keras

NO_XLA = ("RandomElasticTransform",)  # Keras layers that fail under XLA but do not say so (supports_jit)
# Keras layers that say they do not support XLA on every backend (``supports_jit = False``), which is
# true of TensorFlow's (its ImageProjectiveTransformV3 has no XLA kernel) but not of JAX's: under
# jax.jit they give the same images as eagerly (tests/build/test_augment.py). Left so, Keras runs the whole
# JAX train step un-jitted, op by op, so on JAX they are marked as supporting it.
JAX_JIT_OK = ("RandomTranslation", "RandomRotation", "RandomZoom", "RandomShear", "RandomPerspective")


def set_jit_support(layer: Any) -> Any:
    """Correct what ``layer`` says about XLA where Keras is wrong for the backend (``NO_XLA``, ``JAX_JIT_OK``).

    Keras 3.15's RandomElasticTransform builds its blur kernel with a data-dependent range, which XLA
    cannot compile; marked so, Keras trains the model without XLA instead of failing. Returns ``layer``.
    """
    name = type(layer).__name__
    if name in NO_XLA:
        layer.supports_jit = False
    elif name in JAX_JIT_OK and keras.backend.backend() == "jax":
        layer.supports_jit = True
    return layer


def mark_jit_support(model: Any) -> Any:
    """``set_jit_support`` on every layer of a loaded model (the mark is not part of a layer's config).

    The model was compiled while loading, before the marks: its ``jit_compile`` is set again to what it
    was saved with, which Keras then allows only if every layer now supports XLA.
    """
    for layer in model._flatten_layers():
        set_jit_support(layer)
    saved = getattr(model, "_compile_config", None)
    if getattr(model, "compiled", False) and saved is not None:
        with warnings.catch_warnings():  # "Model doesn't support `jit_compile=True`": known, and kept off
            warnings.filterwarnings("ignore", message="Model doesn't support")
            model.jit_compile = bool(saved.config.get("jit_compile"))
    return model
