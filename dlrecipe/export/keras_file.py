"""The ``.keras`` export: the served model rebuilt from standard Keras layers, without the optimizer.

``model.keras`` in ``export/`` loads with ``keras.saving.load_model(path)`` (safe mode on) where dlrecipe
is not installed (``portable.py``); the run's own ``model.keras`` stays the training model (optimizer
included, for ``--resume``). The check reloads the file and refuses one that names anything outside Keras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.export.portable import foreign_objects, portable_model
from dlrecipe.export.served import CATEGORICAL, Served, predict

KERAS_FILE = "model.keras"


def stage_keras(run_dir: Path, staging: Path, served: Served, include_preprocessing: bool) -> Path:
    """Save the served model, rebuilt from standard Keras layers, as ``staging/model.keras``."""
    target = staging / KERAS_FILE
    portable_model(served.model).save(str(target))
    return target


def run_keras(path: Path, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    """Check the ``.keras`` file names only Keras objects, reload it with safe mode on and predict ``x``.

    Raises:
        RecipeError: at ``export.formats`` when the file names an object outside Keras.
    """
    import keras

    foreign = foreign_objects(path)
    if foreign:
        raise RecipeError.one("export.formats", f"The keras export still names {', '.join(foreign)}, so it would "
                              "not load without dlrecipe. Nothing was exported; use saved_model, and report this "
                              "with the recipe.")
    model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    key = "probabilities" if task in CATEGORICAL else "predictions"
    return {key: predict(model, x.astype(np.float32))}
