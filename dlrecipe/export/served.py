"""What the exports serve: the model with or without its preprocessing, and how check inputs feed it.

``include_preprocessing: false`` cuts the model after its leading preprocessing layers (names
starting with ``preprocessing_``) on the functional graph: the output of the last one becomes the
input of a new ``keras.Model`` that shares the trained layers. This needs one input, the
preprocessing layers first, and nothing after them that reads the raw input; any other layout is
a RecipeError that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrecipe.errors import RecipeError

SERVING = "serving_default"
INPUT_NAME = "inputs"
PREPROCESSING_PREFIX = "preprocessing_"
CHECK_BATCH = 64
CATEGORICAL = ("classification", "segmentation")  # tasks served as probabilities and class ids


@dataclass(frozen=True)
class Served:
    """What the exports serve.

    Attributes:
        model: the Keras model that is exported (the trained one, or the part
            after preprocessing).
        shape: the signature's input shape without the batch axis.
        dtype: the signature's input dtype.
        check_inputs: the check examples as the exports take them.
        tabular: csv runs: the stored encoding; the SavedModel's signature then takes one raw
            input per column and encodes it in the graph (see ``csv_inputs``).
        raw_inputs: csv runs: the check rows as raw columns, by signature input name.
    """

    model: Any
    shape: tuple
    dtype: str
    check_inputs: np.ndarray
    tabular: dict | None = None
    raw_inputs: dict | None = None


def make_served(model, include_preprocessing: bool, x_check: np.ndarray, input_shape, input_dtype: str) -> Served:
    """What ``model`` serves: itself on raw inputs, or (without preprocessing) its core on preprocessed ones."""
    if include_preprocessing:
        return Served(model, tuple(input_shape), str(np.dtype(input_dtype)), x_check)
    pre, core = split_preprocessing(model)
    x = x_check.astype(np.float32)
    check = predict(pre, x) if pre is not None else x
    return Served(core, tuple(core.inputs[0].shape[1:]), "float32", check.astype(np.float32))


def split_preprocessing(model):
    """Cut ``model`` after its leading ``preprocessing_*`` layers.

    Returns:
        ``(preprocess, core)``: ``preprocess`` maps raw float32 inputs to what
        ``core`` takes, and ``core`` shares the trained layers after the cut.
        ``preprocess`` is None when the model has no preprocessing layer.

    Raises:
        RecipeError: at ``export.include_preprocessing`` when the model is not
            functional, has several inputs, or its preprocessing layers are not
            a prefix of the graph.
    """
    import keras

    pre_layers = [layer for layer in model.layers if layer.name.startswith(PREPROCESSING_PREFIX)]
    if not pre_layers:
        return None, model
    fix = "Set export.include_preprocessing: true (the served model then takes raw inputs)."
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1:
        raise RecipeError.one("export.include_preprocessing", "Received a model that is not a single-input "
                              "functional model. Expected one built from keras.Input, so that its preprocessing "
                              f"layers can be cut off. {fix}")
    last = pre_layers[-1]
    if len(getattr(last, "_inbound_nodes", [])) != 1:
        raise RecipeError.one("export.include_preprocessing", f"Received preprocessing layer '{last.name}' used "
                              f"{len(last._inbound_nodes)} times. Expected each preprocessing layer once. {fix}")
    cut = last.output
    try:
        core = keras.Model(cut, model.outputs, name=f"{model.name}_without_preprocessing")
        preprocess = keras.Model(inputs, cut, name=f"{model.name}_preprocessing")
    except ValueError as e:
        raise RecipeError.one("export.include_preprocessing", f"Cannot cut the model after '{last.name}' ({e}). "
                              "Expected the preprocessing layers to come first, with nothing after them reading the "
                              f"raw input. {fix}") from None
    inside = [layer.name for layer in core.layers if layer.name.startswith(PREPROCESSING_PREFIX)]
    missing = [layer.name for layer in pre_layers if layer not in preprocess.layers]
    if inside or missing:
        raise RecipeError.one("export.include_preprocessing", f"Received preprocessing layers {inside or missing} "
                              f"that are not before '{last.name}'. Expected every preprocessing layer at the start "
                              f"of the model. {fix}")
    return preprocess, core


def signature_inputs(served: Served):
    """The check inputs as the signature takes them: an array, or a csv run's ``{input name: column}``."""
    return served.raw_inputs if served.raw_inputs is not None else served.check_inputs


def named(batch) -> dict:
    """The signature's keyword arguments: ``inputs``, or a csv run's one per column."""
    return dict(batch) if isinstance(batch, dict) else {INPUT_NAME: batch}


def batched(fn, x) -> dict[str, np.ndarray]:
    """``fn`` (a signature's runner) on ``x`` in batches of ``CHECK_BATCH``, its outputs concatenated."""
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)

    def rows(i):
        if isinstance(x, dict):
            return {k: v[i:i + CHECK_BATCH] for k, v in x.items()}
        return x[i:i + CHECK_BATCH]
    parts = [fn(rows(i)) for i in range(0, n, CHECK_BATCH)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def predict(model, x: np.ndarray) -> np.ndarray:
    """``model.predict`` on ``x`` as float32, in batches of ``CHECK_BATCH``."""
    return np.asarray(model.predict(x, batch_size=CHECK_BATCH, verbose=0), dtype=np.float32)
