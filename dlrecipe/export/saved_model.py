"""The SavedModel export in TF Serving's layout: ``saved_model/<version>/``, with its ``serving_default``.

Each export writes the next version (``1``, ``2``, ...; earlier versions stay, TF Serving serves the
newest). ``serving_default`` takes ``inputs`` (raw examples ``(None, *input_shape)`` of ``input_dtype``,
e.g. uint8 pixels; a csv run takes one raw input per column), checks their shape in the graph
(``tf.ensure_shape``: a bad request is an InvalidArgumentError, not a crash of a kernel), casts them to
float32, runs the model and returns ``probabilities`` (float32), ``class_id`` (int64, the argmax; one
sigmoid unit is thresholded at 0.5) and, with class names, ``class_name``; for regression
``predictions``; for segmentation per-pixel ``probabilities`` and ``class_id``. The graph holds every
layer, so it loads with ``tf.saved_model.load`` without dlrecipe or Keras. ``predict_float32`` is the
model alone on float32 inputs. ``assets.extra/dlrecipe.json`` (TF Serving ignores ``assets.extra/``)
says what the signature serves, for ``dlrecipe predict``. See docs/export.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.export.served import CATEGORICAL, INPUT_NAME, SERVING, Served, batched, named
from dlrecipe.io import write_json

FLOAT_ENDPOINT = "predict_float32"
ROOT = "saved_model"                     # export/saved_model/<version>/
METADATA = "assets.extra/dlrecipe.json"  # what the signature serves (task, class names, inputs)


def versions(root: Path) -> list[int]:
    """The version numbers under ``root`` (``export/saved_model``) that hold a SavedModel, ascending."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file())


def next_version(root: Path) -> int:
    """The version the next export writes: one more than any numbered folder under ``root``, else 1."""
    root = Path(root)
    taken = [int(p.name) for p in root.iterdir() if p.name.isdigit()] if root.is_dir() else []
    return max(taken, default=0) + 1


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
    serve = serving_function(served, model_fn, task, class_names)
    serve.get_concrete_function()
    archive.add_endpoint(SERVING, serve)
    try:
        archive.write_out(str(path), verbose=False)
    except Exception as e:  # TensorFlow raises many types for layers it cannot trace or save
        raise RecipeError.one("export.formats", f"Cannot write the SavedModel ({type(e).__name__}: {e}). A layer "
                              "of the model does not export; try the keras format.") from e


def serving_function(served: Served, model_fn, task: str, class_names):
    """The ``serving_default`` ``tf.function`` around ``model_fn`` (float32 in, the model's outputs out).

    The SavedModel holds it, and ``dlrecipe predict`` calls it on a run without an export, so both
    serve through the same graph. The input's shape is checked first (``tf.ensure_shape``).
    """
    import tensorflow as tf

    names = [str(c) for c in class_names] if class_names is not None else None
    if served.tabular is not None:  # csv: one raw input per column, encoded in the graph
        from dlrecipe.export import csv_inputs

        @tf.function(input_signature=[csv_inputs.input_signature(served.tabular)])
        def serve(inputs):
            # Columns of unequal length fail in the encoding's concat: an InvalidArgumentError too.
            inputs = {k: tf.ensure_shape(v, (None,)) for k, v in inputs.items()}
            return serving_outputs(tf.cast(model_fn(csv_inputs.encode(served.tabular, inputs)), tf.float32),
                                   task, names)
        return serve

    @tf.function(input_signature=[tf.TensorSpec((None, *served.shape), served.dtype, name=INPUT_NAME)])
    def serve(inputs):
        inputs = tf.ensure_shape(inputs, (None, *served.shape))
        return serving_outputs(tf.cast(model_fn(tf.cast(inputs, tf.float32)), tf.float32), task, names)
    return serve


def write_metadata(path: Path, meta: dict) -> None:
    """Write ``assets.extra/dlrecipe.json`` into the SavedModel at ``path``."""
    write_json(Path(path) / METADATA, meta)


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

