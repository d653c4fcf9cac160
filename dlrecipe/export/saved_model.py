"""The SavedModel export: its ``serving_default`` signature, written with ``keras.export.ExportArchive``.

``serving_default`` takes ``inputs`` (raw examples ``(None, *input_shape)`` of ``input_dtype``, e.g.
uint8 pixels; a csv run takes one raw input per column), casts them to float32, runs the model
and returns ``probabilities`` (float32), ``class_id`` (int64, the argmax; one sigmoid unit is
thresholded at 0.5) and, with class names, ``class_name``; for regression ``predictions``; for
segmentation per-pixel ``probabilities`` and ``class_id``. The graph holds every layer, so it loads
with ``tf.saved_model.load`` without dlrecipe or Keras. ``predict_float32`` is the model alone on
float32 inputs (ExportArchive needs it to trace the model under every Keras backend).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.export.served import CATEGORICAL, INPUT_NAME, SERVING, Served, batched, named

FLOAT_ENDPOINT = "predict_float32"


def write_saved_model(served: Served, path: Path, *, task: str, class_names) -> None:
    """Write ``served`` as a SavedModel at ``path`` with its ``serving_default`` signature (module docstring).

    Raises:
        RecipeError: at ``export.formats`` when a layer cannot be traced or saved.
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(served.model)
    float_spec = tf.TensorSpec((None, *served.shape), tf.float32, name=INPUT_NAME)
    model_fn = archive.add_endpoint(FLOAT_ENDPOINT, lambda x: served.model(x, training=False),
                                    input_signature=[float_spec])
    names = [str(c) for c in class_names] if class_names is not None else None

    if served.tabular is not None:  # csv: one raw input per column, encoded in the graph
        from dlrecipe.export import csv_inputs

        @tf.function(input_signature=[csv_inputs.input_signature(served.tabular)])
        def serve(inputs):
            outputs = tf.cast(model_fn(csv_inputs.encode(served.tabular, inputs)), tf.float32)
            return serving_outputs(outputs, task, names)
    else:
        @tf.function(input_signature=[tf.TensorSpec((None, *served.shape), served.dtype, name=INPUT_NAME)])
        def serve(inputs):
            outputs = tf.cast(model_fn(tf.cast(inputs, tf.float32)), tf.float32)
            return serving_outputs(outputs, task, names)

    serve.get_concrete_function()
    archive.add_endpoint(SERVING, serve)
    try:
        archive.write_out(str(path), verbose=False)
    except Exception as e:  # TensorFlow raises many types for layers it cannot trace or save
        raise RecipeError.one("export.formats", f"Cannot write the SavedModel ({type(e).__name__}: {e}). A layer "
                              "of the model does not export; try the keras format.") from e


def serving_outputs(outputs, task: str, class_names: list[str] | None) -> dict:
    """The signature's outputs from the model's float32 outputs (a traced TensorFlow function body)."""
    import tensorflow as tf

    if task not in CATEGORICAL:
        return {"predictions": outputs}
    if task == "segmentation":  # per pixel: (N, H, W, C) -> (N, H, W)
        return {"probabilities": outputs, "class_id": tf.argmax(outputs, axis=-1, output_type=tf.int64)}
    if outputs.shape[-1] == 1:
        class_id = tf.cast(outputs[:, 0] > 0.5, tf.int64)
    else:
        class_id = tf.argmax(outputs, axis=-1, output_type=tf.int64)
    result = {"probabilities": outputs, "class_id": class_id}
    if class_names is not None:
        result["class_name"] = tf.gather(tf.constant(class_names, dtype=tf.string), class_id)
    return result


def run_saved_model(path: Path, x) -> dict[str, np.ndarray]:
    """Reload the SavedModel with plain TensorFlow and run ``serving_default`` on ``x``.

    ``x`` is an array (the ``inputs`` argument), or a csv run's ``{input name: column}``.
    """
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures[SERVING]
    return batched(lambda batch: {k: v.numpy() for k, v in
                                  fn(**{k: tf.constant(v) for k, v in named(batch).items()}).items()}, x)

