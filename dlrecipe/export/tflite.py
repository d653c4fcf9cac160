"""The TFLite export: the SavedModel's ``serving_default`` signature converted, and run in an interpreter."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.export.served import SERVING, batched, named


def write_tflite(saved_model: Path, path: Path) -> Path:
    """Convert the SavedModel's ``serving_default`` signature to ``path``."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SERVING])
        path.write_bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError and others, with long logs
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError.one("export.formats", f"Cannot convert the model to TFLite ({type(e).__name__}: "
                              f"{first}). The model uses an operation TFLite lacks; remove tflite from "
                              "export.formats and use saved_model or keras.") from e
    return path


def run_tflite(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Load the ``.tflite`` file in a TFLite interpreter and run its ``serving_default`` signature on ``x``."""
    import tensorflow as tf

    with warnings.catch_warnings():  # TF 2.20+ warns that tf.lite.Interpreter moves to ai_edge_litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(SERVING)
    return batched(lambda batch: dict(runner(**named(batch))), x)

