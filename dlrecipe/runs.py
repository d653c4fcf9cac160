"""The run folder: layout, finding runs, and loading what they hold.

Layout (``runs/<name>/<timestamp>/``)::

    recipe.yaml          fully resolved recipe (train it again to reproduce the run)
    environment.json     versions, devices, backend, seed, command line
    preprocessing.json   input shape and dtype, task, class names, fitted statistics
    preprocessing.npz    the ZCA / PCA matrices that preprocessing.json names (only with zca or pca)
    history.csv          one row per finished epoch, with the learning rate
    checkpoints/         last.keras + state.json, to resume
    model.keras          the final (or best) model: raw inputs in, probabilities out
    metrics.json         written by evaluate
    plots/               curves, confusion matrix
    tensorboard/         TensorBoard logs
    export/              written by export

An ensemble keeps each member in ``members/<i>/`` (its own history.csv, checkpoints/, model.keras) and
``model.keras`` is the averaging ensemble; a cross-validation run keeps its folds in ``folds/<i>/`` and
its report in cv.json and cv.csv, and has no model.keras (see ``dlrecipe.ensemble``).
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrecipe.errors import RecipeError

RECIPE = "recipe.yaml"
ENVIRONMENT = "environment.json"
PREPROCESSING = "preprocessing.json"
HISTORY = "history.csv"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = "checkpoints/last.keras"
STATE = "checkpoints/state.json"
MODEL = "model.keras"
METRICS = "metrics.json"
PLOTS = "plots"
TENSORBOARD = "tensorboard"
EXPORT = "export"


def new_run_dir(out: Path, name: str) -> Path:
    """A fresh ``<out>/<name>/<timestamp>`` path (not created)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(out) / name
    path, n = base / stamp, 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    return path


def find_run(path: Path, need: str = MODEL) -> Path:
    """The run folder at ``path``, or the newest run inside ``path`` (``runs/<name>``) holding ``need``.

    Raises:
        RecipeError: when ``path`` is not a run folder and holds none.
    """
    path = Path(path)
    if (path / RECIPE).is_file() and (path / need).exists():
        return path
    if (path / RECIPE).is_file() and (path / "folds").is_dir():
        raise RecipeError.one(str(path), f"This is a cross-validation run: it estimates how well the recipe "
                              f"generalizes (cv.json) and has no {need}. Train the recipe with --set "
                              "train.cross_validation=0 for a model to evaluate or export.")
    if (path / RECIPE).is_file():
        raise RecipeError.one(str(path), f"This run has no {need}. It has not finished training: resume it with "
                              f"`dlrecipe train --resume {path}`.")
    if path.is_dir():
        runs = sorted((p for p in path.iterdir() if (p / RECIPE).is_file() and (p / need).exists()),
                      key=lambda p: p.name)
        if runs:
            return runs[-1]
    hint = "it does not exist" if not path.exists() else f"it holds no run with {need}"
    raise RecipeError.one(str(path), f"Not a run folder: {hint}. Expected a folder written by `dlrecipe train` "
                          "(runs/<name>/<timestamp>) or runs/<name> for its newest run.")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RecipeError.one(str(path), "Missing from the run folder; the run is incomplete or was edited. "
                              "Train it again.") from None
    except (OSError, ValueError) as e:
        raise RecipeError.one(str(path), f"Unreadable ({e}); the run folder is damaged. Train it again.") from None


def register_layers() -> None:
    """Register dlrecipe's serializable layers and schedules with Keras, so saved models load in safe mode."""
    from dlrecipe.layers import registry  # noqa: F401  (its classes register with Keras on import)


def load_model(path: Path):
    """Load a ``.keras`` model with safe mode on (no arbitrary code), dlrecipe's layers registered."""
    import keras

    register_layers()
    try:
        with warnings.catch_warnings():  # compiled before mark_jit_support: Keras may warn about jit_compile
            warnings.filterwarnings("ignore", message="Model doesn't support")
            model = keras.saving.load_model(str(path), safe_mode=True, compile=True)
    except FileNotFoundError:
        raise RecipeError.one(str(path), "Missing from the run folder; train the run again.") from None
    except Exception as e:  # Keras raises ValueError/TypeError/OSError for damaged files
        raise RecipeError.one(str(path), f"Cannot load this model ({type(e).__name__}: {e}). The file is damaged "
                              "or was written by another program; train the run again.") from e
    from dlrecipe.layers.jit import mark_jit_support
    return mark_jit_support(model)
