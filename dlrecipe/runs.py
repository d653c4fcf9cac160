"""The run folder (``runs/<name>/<timestamp>/``): its layout, finding runs, and reading and writing its files.

Everything ``train`` writes and ``evaluate``/``export``/``--resume`` read goes through here: history.csv,
checkpoints/state.json and the best weights, atomic model saves, and safe-mode model loading. An ensemble
keeps each member in ``members/<i>/`` and a cross-validation each fold in ``folds/<i>/``, each laid out as a
run (see ``dlrecipe.train.ensemble`` and ``dlrecipe.train.crossval``). A seed group (``train --seeds N``)
keeps each seed's complete run in ``seed-<s>/`` beside seeds.json (``find_run_or_group``, ``group_runs``).
See docs/training.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import tempfile
import warnings
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.io import atomic_path, check_run_writable, check_writable, write_json, write_npz, write_text  # noqa: F401

RECIPE = "recipe.yaml"                 # the fully resolved recipe (train it again to reproduce the run)
ENVIRONMENT = "environment.json"       # versions, devices, backend, seed, command line
PREPROCESSING = "preprocessing.json"   # input shape and dtype, task, class names, fitted statistics
# (preprocessing.npz beside it holds the ZCA / PCA matrices that preprocessing.json names)
HISTORY = "history.csv"                # one row per finished epoch, with the learning rate
CHECKPOINTS = "checkpoints"            # last.keras + state.json (+ best_weights_<i>.npz), to resume
LAST_CHECKPOINT = "checkpoints/last.keras"
STATE = "checkpoints/state.json"       # commits an epoch: its number, the callbacks' counters, the RNG states
MODEL = "model.keras"                  # the final (or best) model: raw inputs in, probabilities out
METRICS = "metrics.json"               # written by evaluate
PLOTS = "plots"                        # curves, confusion matrix
TENSORBOARD = "tensorboard"
EXPORT = "export"                      # written by export
SEEDS = "seeds.json"                   # a seed group's folder: its seeds, and which have finished
SEED_PREFIX = "seed-"                  # a seed group's runs: seed-42/, seed-43/, ...
RETRAINED = "retrained.json"           # in a tune folder: the run folder `tune --retrain-best` trained

# Keras callbacks that count across epochs, and the integer counters state.json keeps for them beside
# their best monitored value (None before their first epoch), so that --resume goes on where the run
# stopped. An EarlyStopping with restore_best_weights also keeps its best weights (``best_weights_path``).
CALLBACK_COUNTERS = {"ReduceLROnPlateau": ("wait", "cooldown_counter"), "EarlyStopping": ("wait", "best_epoch")}


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
    if is_group(path):
        seeds = group_runs(path)
        example = seeds[0] if seeds else path / f"{SEED_PREFIX}<seed>"
        raise RecipeError.one(str(path), f"This is a seed group (train --seeds): each seed is a run of its own. "
                              f"Give one of its runs, e.g. {example}; `dlrecipe compare {path}` compares them.")
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


def is_group(path: Path) -> bool:
    """Whether ``path`` is the folder of a seed group (``train --seeds N``)."""
    return (Path(path) / SEEDS).is_file()


def group_runs(group: Path) -> list[Path]:
    """The run folders of a seed group that have started (hold a recipe.yaml), in the order of their seeds.

    Raises:
        RecipeError: an unreadable seeds.json.
    """
    about = read_json(Path(group) / SEEDS)
    seeds = about.get("seeds") if isinstance(about, dict) else None
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise RecipeError.one(str(Path(group) / SEEDS), "Expected an object whose 'seeds' is a list of whole "
                              "numbers (written by `dlrecipe train --seeds N`); the group folder is damaged.")
    return [d for d in (seed_dir(group, s) for s in seeds) if (d / RECIPE).is_file()]


def seed_dir(group: Path, seed: int) -> Path:
    """The run folder of ``seed`` in a seed group: ``<group>/seed-<seed>``."""
    return Path(group) / f"{SEED_PREFIX}{seed}"


def find_run_or_group(path: Path) -> tuple[str, Path]:
    """``("run", folder)`` or ``("group", folder)``: ``path`` itself, or the newest of either inside ``runs/<name>``.

    Raises:
        RecipeError: ``path`` is neither and holds neither.
    """
    path = Path(path)
    if is_group(path):
        return "group", path
    if (path / RECIPE).is_file():
        return "run", path
    if path.is_dir():
        found = sorted((p for p in path.iterdir() if p.is_dir() and (is_group(p) or (p / RECIPE).is_file())),
                       key=lambda p: p.name)
        if found:
            return ("group" if is_group(found[-1]) else "run"), found[-1]
    hint = "it does not exist" if not path.exists() else "it holds no run folder and no seed group"
    raise RecipeError.one(str(path), f"Not a run folder: {hint}. Expected a folder written by `dlrecipe train` "
                          "(runs/<name>/<timestamp>, a seed group of `train --seeds N`), or runs/<name> for the "
                          "newest one.")


def summarize(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of the finite ``values`` (runs of a group); ``std`` is the sample standard
    deviation (ddof 1), None for fewer than two values; ``mean`` is None when there is none."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(finite.size)
    return {"mean": float(finite.mean()) if n else None, "std": float(finite.std(ddof=1)) if n > 1 else None, "n": n}


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RecipeError.one(str(path), "Missing from the run folder; the run is incomplete or was edited. "
                              "Train it again.") from None
    except (OSError, ValueError) as e:
        raise RecipeError.one(str(path), f"Unreadable ({e}); the run folder is damaged. Train it again.") from None


def read_preprocessing(run_dir: Path) -> dict[str, Any]:
    """preprocessing.json, checked to be an object naming a known ``task``; else RecipeError naming the file."""
    path, tasks = Path(run_dir) / PREPROCESSING, ("classification", "regression", "segmentation")
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("task") not in tasks:
        got = "no object" if not isinstance(meta, dict) else f"task={meta['task']!r}" if "task" in meta else "no task"
        raise RecipeError.one(str(path), f"Received {got}. Expected an object whose 'task' is one of {', '.join(tasks)}"
                              " (written by `dlrecipe train`); the run folder is damaged. Train it again.")
    return meta


def remove_run(run_dir: Path) -> None:
    """Delete a run folder and everything in it (a run that failed before its first epoch)."""
    shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- history.csv


def _history_table(path: Path) -> tuple[list[str], list[list[str]]] | None:
    """history.csv's header and its non-empty rows of cells, or None when there is no file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
        if "\x00" in text:  # valid UTF-8, yet no CSV dlrecipe writes holds a NUL: binary garbage
            raise csv.Error("it holds NUL characters, so it is not a CSV file")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RecipeError.one(str(path), f"Unreadable ({e}); the run folder is damaged. Train it again.") from None
    if not rows or "epoch" not in rows[0]:
        raise RecipeError.one(str(path), f"Received header {rows[0] if rows else 'none'}. Expected a CSV whose "
                              "first column is 'epoch' (written by `dlrecipe train`); train the run again.")
    return rows[0], [r for r in rows[1:] if r]


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv's rows, one per finished epoch: ``{"epoch": 1, "loss": ..., "learning_rate": ...}``.

    ``epoch`` is an int. An empty cell (a column that appeared in a later epoch) is left out of its row,
    and a cell that is not a number reads as NaN. No file: no rows.

    Raises:
        RecipeError: the file is unreadable, or its header has no ``epoch`` column.

    Example:
        >>> read_history(run_dir / HISTORY)[-1]["val_loss"]
        0.4213
    """
    table = _history_table(path)
    if table is None:
        return []
    header, body = table
    rows = []
    for cells in body:
        row: dict[str, Any] = {name: _to_float(cell) for name, cell in zip(header, cells) if cell != ""}
        if "epoch" in row and math.isfinite(row["epoch"]):
            row["epoch"] = int(row["epoch"])
        rows.append(row)
    return rows


def history_columns(path: Path) -> dict[str, list[float]] | None:
    """history.csv as ``{column: one value per epoch}`` (NaN where a row has none), or None when there is no file.

    Raises:
        RecipeError: the file is unreadable, or its header has no ``epoch`` column.
    """
    table = _history_table(path)
    if table is None:
        return None
    header, body = table
    return {name: [_to_float(r[i]) if i < len(r) else math.nan for r in body] for i, name in enumerate(header)}


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write history.csv atomically: ``epoch`` first, ``learning_rate`` last, the other columns as they appeared."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    keys = ["epoch", *[k for k in keys if k not in ("epoch", "learning_rate")], "learning_rate"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- checkpoints/


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _state_problem(state: Any) -> str | None:
    """What is wrong with a state.json (``write_state`` writes it), or None."""
    if not isinstance(state, dict) or not _is_int(state.get("epoch")):
        return "Expected an object whose 'epoch' is a whole number >= 0"
    seeds = state.get("seed_generators")
    if seeds is not None and not (isinstance(seeds, list) and all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in s)
            for s in seeds)):
        return "Expected 'seed_generators' to be a list of [seed, counter] pairs of whole numbers"
    entries = state.get("callbacks")
    if entries is None:
        return None  # written before the callbacks' counters were kept: they start afresh
    if not isinstance(entries, list):
        return "Expected 'callbacks' to be a list"
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        kind = entry.get("type") if isinstance(entry, dict) else None
        counters = CALLBACK_COUNTERS.get(kind) if isinstance(kind, str) else None
        if counters is None or not isinstance(entry.get("monitor"), str):
            return f"callbacks[{i}]: expected null or an object with a 'type' of {', '.join(CALLBACK_COUNTERS)} " \
                   "and a 'monitor'"
        best = entry.get("best")
        if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
            return f"callbacks[{i}].best: expected a number or null, got {best!r}"
        for key in counters:
            if not _is_int(entry.get(key)):
                return f"callbacks[{i}].{key}: expected a whole number >= 0, got {entry.get(key)!r}"
    return None


def read_state(run_dir: Path) -> dict[str, Any]:
    """checkpoints/state.json, checked: the committed ``epoch`` and the recipe ``callbacks``' counters.

    Raises:
        RecipeError: missing, unreadable, or not what ``write_state`` writes.
    """
    path = Path(run_dir) / STATE
    state = read_json(path)
    problem = _state_problem(state)
    if problem:
        raise RecipeError.one(str(path), f"{problem}; the run folder is damaged. Train the recipe again.")
    return state


def write_state(run_dir: Path, epoch: int, callbacks: list[dict | None],
                seed_generators: list[list[int]] | None = None) -> None:
    """Commit ``epoch`` (written last, after its checkpoint and history row), with the callbacks' counters.

    ``callbacks``: per recipe callback, ``{"type", "monitor", "best", <its CALLBACK_COUNTERS>}`` or None.
    ``seed_generators``: the model's seed generator states ``[seed, counter]`` (dropout, augmentation),
    which the .keras checkpoint does not hold.
    """
    state: dict[str, Any] = {"epoch": epoch, "callbacks": callbacks}
    if seed_generators is not None:
        state["seed_generators"] = seed_generators
    write_json(Path(run_dir) / STATE, state)


def best_weights_path(run_dir: Path, index: int) -> Path:
    """Where the best weights of the recipe's callback ``index`` (an EarlyStopping) are kept."""
    return Path(run_dir) / CHECKPOINTS / f"best_weights_{index}.npz"


def read_best_weights(path: Path) -> list[np.ndarray]:
    """The weights ``write_best_weights`` wrote, in order.

    Raises:
        RecipeError: the file is unreadable.
    """
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return [arrays[f"w{j}"] for j in range(len(arrays.files))]
    except (OSError, ValueError, KeyError) as e:
        raise RecipeError.one(str(path), f"Unreadable ({e}); the run folder is damaged. Train the recipe "
                              "again.") from None


def write_best_weights(path: Path, weights: list[np.ndarray]) -> None:
    """Write a model's weights (``model.get_weights()`` order) to an ``.npz`` atomically."""
    write_npz(path, {f"w{j}": w for j, w in enumerate(weights)})


def save_model(model, path: Path, chief: bool = True) -> None:
    """``model.save`` to a temp file beside ``path``, then rename (atomic).

    ``chief=False`` (workers other than 0 of a multi-process run): saving reads the replicated
    variables through a collective that every process must join, so these workers save too, to a
    scratch file that is thrown away.
    """
    if not chief:
        with tempfile.TemporaryDirectory(prefix="dlrecipe-worker-") as scratch:
            model.save(Path(scratch) / "model.keras")
        return
    with atomic_path(path, ".keras") as tmp:
        model.save(tmp)


def saved_compile_config(path: Path) -> dict[str, Any]:
    """The ``compile_config`` of a saved ``.keras`` file (optimizer class and config, loss), read from the zip's
    config.json without Keras; ``{}`` when the file is missing or unreadable.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    return (config.get("compile_config") or {}) if isinstance(config, dict) else {}


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


def open_run(run: Path) -> tuple[Path, Any, dict, Any]:
    """``(run_dir, recipe, preprocessing, model)``: ``find_run(run)``, its ``Recipe``, preprocessing.json, model."""
    from dlrecipe.recipe.loader import load_recipe
    run_dir = find_run(run)
    recipe = load_recipe(run_dir / RECIPE).recipe
    return run_dir, recipe, read_preprocessing(run_dir), load_model(run_dir / MODEL)
