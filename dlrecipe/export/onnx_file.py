"""The ONNX export: the portable model (``portable.py``) through Keras's ``model.export(format="onnx")``.

Keras converts with tf2onnx on the TensorFlow backend; onnxruntime checks the file. Both come with the
``onnx`` extra (``pip install -e '.[onnx]'``). The ONNX model takes ``inputs``: raw examples as float32
(uint8 pixels cast to float, not scaled), preprocessing included, and returns the model's output
(probabilities, or regression values). See docs/export.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.export.portable import portable_model
from dlrecipe.export.served import CATEGORICAL, CHECK_BATCH, INPUT_NAME, Served

ONNX_FILE = "model.onnx"
NEEDS = ("onnx", "tf2onnx", "onnxruntime")
INSTALL = "pip install -e '.[onnx]'"


def check_installed() -> None:
    """Raises a RecipeError naming the install command when a package ONNX export needs is missing."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise RecipeError.one("export.formats", f"Received: onnx, but {', '.join(missing)} is not installed. "
                              f"Expected the onnx extra: run `{INSTALL}` (or export saved_model, keras, tflite).")


def write_onnx(served: Served, path: Path) -> Path:
    """Convert the served model, rebuilt from standard Keras layers, to ONNX at ``path``.

    Raises:
        RecipeError: at ``export.formats`` when the conversion fails.
    """
    import tensorflow as tf

    if served.tabular is not None:
        raise RecipeError.one("export.formats", "Received: onnx for a csv run. Expected saved_model or tflite: "
                              "those take the raw columns; ONNX has no string one-hot in the graph here.")
    spec = [tf.TensorSpec((None, *served.shape), tf.float32, name=INPUT_NAME)]
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # tf2onnx prints progress
            warnings.simplefilter("ignore", FutureWarning)  # Keras's tf2onnx shim probes np.object
            portable_model(served.model).export(str(path), format="onnx", input_signature=spec, verbose=False)
    except RecipeError:
        raise
    except Exception as e:  # tf2onnx raises many types for ops it cannot convert
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError.one("export.formats", f"Cannot convert the model to ONNX ({type(e).__name__}: {first}). "
                              "Remove onnx from export.formats and use saved_model.") from e
    return path


def run_onnx(path: Path, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    """Run the ONNX file in onnxruntime on ``x`` (float32), in batches."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.asarray(x, dtype=np.float32)
    parts = [session.run(None, {name: x[i:i + CHECK_BATCH]})[0] for i in range(0, len(x), CHECK_BATCH)]
    key = "probabilities" if task in CATEGORICAL else "predictions"
    return {key: np.concatenate(parts)}
