"""The ``.keras`` export: a byte copy of the run's ``model.keras`` (or the cut model, saved), reloaded safely."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from dlrecipe import runs
from dlrecipe.export.served import CATEGORICAL, Served, predict

KERAS_FILE = "model.keras"


def stage_keras(run_dir: Path, staging: Path, served: Served, include_preprocessing: bool) -> Path:
    """Put the ``.keras`` file in ``staging``: the run's own file, or the served (cut) model saved."""
    target = staging / KERAS_FILE
    source = run_dir / runs.MODEL
    if include_preprocessing and source.is_file():
        shutil.copyfile(source, target)
    else:
        served.model.save(str(target))
    return target


def run_keras(path: Path, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    """Reload the ``.keras`` file with safe mode on and predict ``x``."""
    import keras

    from dlrecipe.runs import register_layers
    register_layers()
    model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    key = "probabilities" if task in CATEGORICAL else "predictions"
    return {key: predict(model, x.astype(np.float32))}

