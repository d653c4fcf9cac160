"""``train --resume``: which recipe a run resumes with, and the state its model and callbacks go on from.

The model and optimizer come from checkpoints/last.keras, the epoch, the recipe callbacks' counters
(ReduceLROnPlateau, EarlyStopping and its best weights) and the model's seed generator states from
checkpoints/state.json (``dlrecipe.runs``); the data order of each epoch depends on (seed, epoch) only
(``pipeline.epoch_orders``). So a resumed run goes on as the uninterrupted run would have. See
docs/training.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrecipe import runs
from dlrecipe.errors import RecipeError, is_within, join_path
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe

if TYPE_CHECKING:  # no Keras at import: the CLI reads a run's recipe before it imports Keras quietly
    import keras

RESUMABLE = ("train.epochs", "train.learning_rate", "train.batch_size", "train.callbacks", "train.ensemble",
             "train.cross_validation", "export", "tune")  # what --set may change on --resume (see load_for_resume)


def load_for_resume(run_dir: Path, overrides: list[str]) -> LoadedRecipe:
    """The recipe of a run to resume, with ``--set`` overrides (e.g. more epochs).

    The model, its optimizer state and the data's normalization come from the run's checkpoint, so
    ``--set`` may change only what a resumed fit uses afresh (``RESUMABLE``). A new constant
    ``train.learning_rate`` replaces the restored optimizer's rate (``LoadedRecipe.resume_rate``).

    Raises:
        RecipeError: not a run folder, no checkpoint, or an override that a resumed run cannot honour.

    Example:
        >>> load_for_resume(Path("runs/mnist/20240101-120000"), ["train.epochs=20"]).recipe.train.epochs
        20
    """
    run_dir = Path(run_dir)
    if not (run_dir / runs.RECIPE).is_file():
        raise RecipeError.one(str(run_dir), "Not a run folder (no recipe.yaml). Give the folder that "
                              "`dlrecipe train` printed, e.g. runs/<name>/<timestamp>.")
    runs.check_run_writable(run_dir, runs.CHECKPOINTS)
    stored = load_recipe(run_dir / runs.RECIPE)
    loaded = load_recipe(run_dir / runs.RECIPE, overrides)
    changed = _changed_paths(stored.resolved(), loaded.resolved())
    fixed = [p for p in changed if not any(is_within(p, k) for k in RESUMABLE)]
    if fixed:
        raise RecipeError.one(fixed[0], f"--set changes {', '.join(fixed)}, which a resumed run cannot: its model, "
                              "optimizer and data normalization come from the checkpoint. On --resume, --set may "
                              f"change {', '.join(RESUMABLE)}. Fix: drop that --set, or train the recipe anew.")
    before, after = stored.recipe.train.learning_rate, loaded.recipe.train.learning_rate
    if any(is_within(p, "train.learning_rate") for p in changed):
        if not isinstance(after, (int, float)) or not isinstance(before, (int, float, type(None))):
            raise RecipeError.one("train.learning_rate", f"Received: {after!r} on --resume of a run trained with "
                                  f"{before!r}. A schedule is saved with the optimizer in the checkpoint, so a resumed "
                                  "run can only take a new constant rate from a constant one. Fix: give a number, "
                                  "or train the recipe anew with the schedule.")
        loaded = dataclasses.replace(loaded, resume_rate=float(after))
    if loaded.recipe.train.ensemble > 1 or loaded.recipe.train.cross_validation > 1:
        check_resume(run_dir, stored, loaded)  # members (folds) without a checkpoint start afresh
        return loaded
    if not (run_dir / runs.STATE).is_file() or not (run_dir / runs.LAST_CHECKPOINT).is_file():
        raise RecipeError.one(str(run_dir), "This run has no checkpoint yet (it stopped before its first epoch "
                              "ended). Train the recipe again instead.")
    return loaded


def check_resume(run_dir: Path, stored: LoadedRecipe, loaded: LoadedRecipe) -> None:
    """``--resume`` of a run keeps its kind: one model, an ensemble, or the same k folds.

    ``stored`` is the run's recipe as saved, ``loaded`` the same with the ``--set`` overrides.

    Raises:
        RecipeError: an override that turns the run into another kind, or changes k.
    """
    stored, now = stored.recipe.train, loaded.recipe.train
    if stored.cross_validation != now.cross_validation and max(stored.cross_validation, now.cross_validation) > 1:
        raise RecipeError.one("train.cross_validation", f"Received: cross_validation={now.cross_validation}, but the "
                              f"run {run_dir} was started with {stored.cross_validation}. Resume keeps the folds; "
                              "train the recipe again for another k.")
    if (stored.ensemble > 1) != (now.ensemble > 1):
        raise RecipeError.one("train.ensemble", f"Received: ensemble={now.ensemble}, but the run {run_dir} was "
                              f"started with {stored.ensemble}. A run stays a single model or an ensemble; train "
                              "the recipe again instead.")


def _changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two resolved recipes differ (a changed list is one path)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(set(old) | set(new), key=str)
                for p in _changed_paths(old.get(k), new.get(k), join_path(path, k))]
    return [] if old == new else [path]


def restore(work_dir: Path) -> tuple[keras.Model, int, list[dict], list[dict | None] | None, list | None]:
    """The checkpoint's model, its epoch, the history rows up to it, the recipe callbacks' counters and the
    model's seed generator states (None in a checkpoint written before they were kept).

    Raises:
        RecipeError: a damaged state.json, checkpoint or history.csv; a history.csv with fewer rows than
            the checkpoint's epochs (emptied or cut: resuming would lose them).
    """
    state = runs.read_state(work_dir)
    path = work_dir / runs.HISTORY
    rows = runs.read_history(path)[: state["epoch"]]
    if [r.get("epoch") for r in rows] != list(range(1, state["epoch"] + 1)):
        have = ", ".join(str(r.get("epoch")) for r in rows) or "none"
        raise RecipeError.one(str(path), f"The checkpoint has {state['epoch']} finished epoch(s), but history.csv "
                              f"holds the rows of epochs: {have}. Resumed, the run would lose the missing rows. Fix: "
                              "put back the history.csv the run wrote, or train the recipe again.")
    model = runs.load_model(work_dir / runs.LAST_CHECKPOINT)
    return model, state["epoch"], rows, state.get("callbacks"), state.get("seed_generators")


def _seed_generators(model: keras.Model) -> list:
    """The model's ``keras.random.SeedGenerator``s (dropout, in-model augmentation), in the model's layer order."""
    return [sg for layer in model._flatten_layers(include_self=True) for sg in getattr(layer, "_seed_generators", [])]


def seed_states(model: keras.Model) -> list[list[int]]:
    """Each seed generator's state ``[seed, counter]``: Keras saves none of them with the model, and a resumed
    run that started them afresh would draw the first epoch's dropout masks and augmentations again."""
    import keras
    return [[int(v) for v in keras.ops.convert_to_numpy(sg.state.value)] for sg in _seed_generators(model)]


def set_seed_states(model: keras.Model, states: list[list[int]], work_dir: Path) -> None:
    """Give the model's seed generators the states ``seed_states`` kept.

    Raises:
        RecipeError: a state.json whose count of seed generators is not the model's (a damaged run folder).
    """
    import numpy as np
    generators = _seed_generators(model)
    if len(generators) != len(states):
        raise RecipeError.one(str(work_dir / runs.STATE), f"seed_generators: {len(states)} kept, but the checkpoint's "
                              f"model has {len(generators)}; the run folder is damaged. Train the recipe again.")
    for sg, state in zip(generators, states):
        sg.state.assign(np.asarray(state, dtype=sg.state.dtype))


def callback_states(callbacks: list[keras.callbacks.Callback]) -> list[dict | None]:
    """Per recipe callback: its type, monitor, best and counters (``runs.CALLBACK_COUNTERS``), or None."""
    states: list[dict | None] = []
    for cb in callbacks:
        counters = runs.CALLBACK_COUNTERS.get(type(cb).__name__)
        states.append(None if counters is None else {
            "type": type(cb).__name__, "monitor": cb.monitor, "best": None if cb.best is None else float(cb.best),
            **{k: int(getattr(cb, k)) for k in counters}})
    return states


def _same_callback(cb: keras.callbacks.Callback, state: dict | None) -> bool:
    """Whether ``state`` (kept at the same position) is this callback's: same type and monitor.

    A callback that ``--set train.callbacks`` replaced or moved starts fresh, as Keras would start it.
    """
    return bool(state) and state.get("type") == type(cb).__name__ and state.get("monitor") == cb.monitor


def set_callback_states(callbacks: list[keras.callbacks.Callback], states: list[dict | None],
                        work_dir: Path) -> None:
    """Give each callback the counters it had at the checkpoint, where it is still the same callback."""
    for i, (cb, state) in enumerate(zip(callbacks, states)):
        if not _same_callback(cb, state):
            continue
        cb.best = state["best"]
        for key in runs.CALLBACK_COUNTERS[type(cb).__name__]:
            setattr(cb, key, state[key])
        path = runs.best_weights_path(work_dir, i)
        if getattr(cb, "restore_best_weights", False) and path.is_file():
            cb.best_weights = runs.read_best_weights(path)


def early_stopped(callbacks: list[keras.callbacks.Callback], states: list[dict | None] | None,
                  epoch: int, label: str) -> RecipeError | None:
    """The error to give when a recipe EarlyStopping (its counters kept) stopped the run, or None.

    Keras stops when ``wait >= patience`` after an epoch other than the first; the kept counters say
    whether it did.
    """
    for i, (cb, state) in enumerate(zip(callbacks, states or [])):
        if (type(cb).__name__ == "EarlyStopping" and _same_callback(cb, state) and epoch >= 2
                and state["wait"] >= cb.patience):
            where = f" ({label})" if label else ""
            return RecipeError.one(
                f"train.callbacks[{i}]", f"EarlyStopping stopped this run{where} after epoch {epoch}: {cb.monitor} "
                f"had not improved for {state['wait']} epochs (patience {cb.patience}). Resumed, it would stop "
                f"again after one epoch. Fix: resume with a larger patience, e.g. --set "
                f"train.callbacks[{i}].patience={state['wait'] + cb.patience}, or without this callback.")
    return None


def finish_from_checkpoint(model: keras.Model, work_dir: Path, states: list[dict | None] | None,
                           chief: bool = True) -> keras.Model:
    """Save model.keras for a run whose every epoch was committed but which stopped before saving it.

    ``model`` is its restored checkpoint. As at the end of ``fit``, an EarlyStopping with
    restore_best_weights gives the model its best weights (the last such callback, as Keras calls them
    in order).

    Raises:
        RecipeError: kept best weights that are unreadable or do not fit the model.
    """
    kept = [i for i, state in enumerate(states or [])
            if state and state["type"] == "EarlyStopping" and runs.best_weights_path(work_dir, i).is_file()]
    if kept:
        path = runs.best_weights_path(work_dir, kept[-1])
        try:
            model.set_weights(runs.read_best_weights(path))
        except ValueError as e:
            raise RecipeError.one(str(path), f"These weights do not fit the checkpoint's model ({e}); the run "
                                  "folder is damaged. Train the recipe again.") from None
    runs.save_model(model, work_dir / runs.MODEL, chief)
    return model
