"""Train a recipe into a run folder, or resume a run.

Everything that can fail on bad input (data, model, output folder) is checked
before the run folder is created. During training, every finished epoch is
checkpointed atomically, so Ctrl-C or a NaN loss leaves a resumable run.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecipe import runs
from dlrecipe.build import scaling
from dlrecipe.build.checks import build_all
from dlrecipe.build.compile import finalize
from dlrecipe.data import pipeline, preprocess
from dlrecipe.errors import RecipeError, Stopped, is_within, join_path
from dlrecipe.io import dump_yaml, write_json, write_text
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe
from dlrecipe.train.runtime import environment, make_runtime, seed_everything, set_precision
from dlrecipe.train.workers import Process, shard


class TrainingStopped(Stopped):
    """Training ended early (Ctrl-C or a NaN loss); the run folder is resumable."""

    def __init__(self, message: str, run_dir: Path, exit_code: int):
        super().__init__(message, exit_code)
        self.run_dir = run_dir


@dataclass
class Result:
    run_dir: Path
    history: list[dict[str, Any]]
    model: keras.Model
    dataset: Any


def check_writable(out: Path) -> None:
    """``out`` can hold a run folder: a folder is created and removed in its nearest existing parent."""
    out = Path(out).absolute()
    probe = out
    while not probe.exists():
        probe = probe.parent
    reason = f"{probe} is not a folder" if not probe.is_dir() else None
    if reason is None:
        try:
            Path(tempfile.mkdtemp(dir=probe, prefix=".dlrecipe-probe-")).rmdir()
        except OSError as e:
            reason = f"{probe} is not writable ({e.strerror})"
    if reason:
        raise RecipeError.one("--out", f"Cannot write run folders under {out}: {reason}. Choose another --out.")


def train(loaded: LoadedRecipe, out: Path, argv: list[str], *, resume: Path | None = None,
          verbose: int | str = "auto", process: "Process | None" = None, run_dir: Path | None = None) -> Result:
    """Train ``loaded`` into a new run folder under ``out`` (or continue the run ``resume``).

    A recipe with ``train.ensemble`` > 1 or ``train.cross_validation`` > 1 trains several models in one
    run folder (see ``dlrecipe.ensemble``), each with ``fit_unit`` below.

    ``process``, when given, makes this one worker of a multi-process run (see ``workers``): it trains
    on its shard with ``batch_size / N`` examples per step, and only worker 0 writes the run folder
    (``run_dir`` when the launcher chose it).

    Raises:
        RecipeError: bad input, before anything is written.
        TrainingStopped: interrupted or NaN; the run folder keeps its last good epoch.
    """
    recipe = loaded.recipe
    if recipe.train.ensemble > 1 or recipe.train.cross_validation > 1:
        if process is not None:
            raise RecipeError.one("train.ensemble" if recipe.train.ensemble > 1 else "train.cross_validation",
                                  "An ensemble or a cross-validation trains its models one after another in one "
                                  "process; --workers trains one model. Fix: leave out --workers, or set "
                                  "train.ensemble: 1 and train.cross_validation: 0.")
        from dlrecipe.train.ensemble import train_group
        return train_group(loaded, out, argv, resume=resume, verbose=verbose)
    cfg = recipe.runtime
    set_precision(cfg.mixed_precision)
    seed_everything(recipe.seed, cfg.deterministic)
    dataset = pipeline.load(recipe.data, recipe.seed)
    info = dataset.info
    chief = process is None or process.chief
    if resume is None and chief:
        check_writable(out)
    try:
        stats = pipeline.fit_stats(recipe.data, dataset)
    except Exception as e:
        raise pipeline.data_error(dataset, e) or e
    recipe = finalize(recipe, info.task, info.n_classes)
    batch = recipe.train.batch_size // (process.count if process else 1)
    if process is not None:
        if pipeline.is_streamed(dataset):
            raise RecipeError.one("data.source", f"Received: source={recipe.data.source!r} with --workers "
                                  f"{process.count}. Multi-process training shards in-memory arrays. Fix: convert the "
                                  "data to an .npz (source: npz), or train in one process.")
        n_all = len(dataset.x_train)
        x_train, y_train = shard(dataset.x_train, dataset.y_train, process)
        x_val, y_val = shard(dataset.x_val, dataset.y_val, process)
        dataset = dataclasses.replace(dataset, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
        print(f"worker {process.index} of {process.count}: {len(x_train)} of {n_all} training "
              f"examples (#{process.index}, #{process.index + process.count}, ...), {batch} per step of the global "
              f"batch {recipe.train.batch_size}", flush=True)
    rt = make_runtime(cfg)
    run_dir = Path(resume or run_dir or runs.new_run_dir(out, recipe.name))

    def start(model: keras.Model) -> None:
        if resume is None and chief:
            write_start(run_dir, loaded, recipe, info, stats, rt, argv, getattr(dataset, "tabular", None), process,
                        xla=model.jit_compile)
        elif chief:
            write_text(run_dir / runs.RECIPE, dump_yaml(recipe.model_dump(mode="json", exclude_none=True)))

    unit = Unit(run_dir, recipe.seed, dataset, stats, batch_size=batch, chief=chief)
    model, rows = fit_unit(recipe, rt, info, unit, run_dir=run_dir, resume=resume is not None, on_start=start,
                           verbose=verbose, resume_rate=loaded.resume_rate)
    return Result(run_dir, rows, model, dataset)


@dataclass
class Unit:
    """One model to fit: a single run, an ensemble member or a cross-validation fold.

    Attributes:
        work_dir: where its checkpoints/, history.csv, tensorboard/ and model.keras go.
        seed: the seed of its weights, shuffling and dropout.
        data: its data, what ``pipeline.load`` returns (a ``data.Dataset`` of arrays, or streamed);
            a fold is a ``Dataset`` whose validation split is the fold.
        stats: the normalization fitted on its training split.
        label: names it in messages (``"member 2 of 3"``); empty for a single run.
    """

    work_dir: Path
    seed: int
    data: Any
    stats: dict
    label: str = ""
    batch_size: int | None = None  # examples per step of this process (--workers: batch_size / N)
    chief: bool = True  # False for workers other than 0 of a multi-process run: they write nothing


def fit_unit(recipe, rt, info, unit: Unit, *, run_dir: Path, resume: bool, on_start, verbose: int | str = "auto",
             resume_rate: float | None = None, done_ok: bool = False) -> tuple[keras.Model, list[dict[str, Any]]]:
    """Build (or restore from ``unit.work_dir``'s checkpoint) and fit one model; save its model.keras.

    ``recipe`` is finalized (loss and metrics written in). ``on_start(model)`` is called once the model is
    built and compiled, before anything is written, to create the run folder. ``run_dir`` is the folder that
    ``--resume`` takes, named in the messages. ``resume_rate`` (see ``load_for_resume``) replaces the
    restored optimizer's learning rate, scaled as the recipe's rate is. ``done_ok`` (an ensemble member or
    fold, whose group records "finished" only after this returns): a resumed unit that is done (all
    epochs, or stopped by EarlyStopping) and saved its model.keras returns that model instead of
    being refused.

    Returns:
        The fitted model and its history rows.

    Raises:
        RecipeError: bad input, before ``on_start``; or nothing left to train.
        TrainingStopped: interrupted or NaN; ``unit.work_dir`` keeps its last good epoch.
    """
    cfg = recipe.runtime
    seed_everything(unit.seed, cfg.deterministic)
    batch = unit.batch_size or recipe.train.batch_size
    steps = max(1, math.ceil(pipeline.n_train(unit.data) / batch))
    with rt.scope:
        built = build_all(scaling.scaled(recipe, rt.replicas), info.input_shape, unit.stats, task=info.task,
                          n_classes=info.n_classes, steps_per_epoch=steps)
        start_epoch, prior, states = 0, [], None
        if resume:
            model, start_epoch, prior, states = _restore(unit.work_dir)
            if resume_rate is not None:
                model.optimizer.learning_rate = resume_rate * scaling.factor(cfg, rt.replicas)
        else:
            model = built.model
            model.compile(optimizer=built.optimizer, loss=built.loss, metrics=built.metrics,
                          jit_compile=cfg.jit_compile, steps_per_execution=recipe.train.steps_per_execution)
    stopped = _early_stopped(built.callbacks, states, start_epoch, unit.label)
    if (start_epoch >= recipe.train.epochs or stopped) and resume:
        if not (unit.work_dir / runs.MODEL).is_file():
            # its last epoch was committed, but the run stopped before it saved model.keras: save it now
            on_start(model)
            return finish_from_checkpoint(model, unit.work_dir, states, unit.chief), prior
        if done_ok:
            return runs.load_model(unit.work_dir / runs.MODEL), prior
    if stopped:
        raise stopped
    if start_epoch >= recipe.train.epochs:
        raise RecipeError.one(str(run_dir), f"This run already finished its {recipe.train.epochs} epochs. To train "
                              f"longer, resume with --set train.epochs=N (N > {start_epoch}).")
    on_start(model)
    watcher = _Watcher(unit.work_dir, prior, unit.chief, tracked=built.callbacks, states=states)
    callbacks = [*built.callbacks, watcher, keras.callbacks.TerminateOnNaN()]
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(str(unit.work_dir / runs.TENSORBOARD), write_graph=False,
                                                     profile_batch=0))
    inputs = pipeline.fit_inputs(unit.data, recipe.model_copy(update={
        "seed": unit.seed, "train": recipe.train.model_copy(update={"batch_size": batch})}), info.n_classes)
    where = f" ({unit.label})" if unit.label else ""
    try:
        with stop_on_sigint(watcher):
            model.fit(**inputs, epochs=recipe.train.epochs, initial_epoch=start_epoch, callbacks=callbacks,
                      verbose=verbose)
        if watcher.interrupted:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise TrainingStopped(f"Interrupted after {watcher.last_epoch} finished epoch(s){where}. The run keeps them: "
                              f"resume with `dlrecipe train --resume {run_dir}`.", run_dir, 130) from None
    except Exception as e:  # a streamed file that cannot be decoded: name it, keep nothing half-written
        error = pipeline.data_error(unit.data, e)
        if error is None:
            raise
        raise _data_stop(error, run_dir, watcher.last_epoch, not resume) from None
    if watcher.nan_epoch is not None:
        raise TrainingStopped(f"The loss became NaN in epoch {watcher.nan_epoch}{where}; training stopped. The run "
                              f"keeps epoch {watcher.last_epoch}. Lower the learning rate (or add clipnorm to the "
                              f"optimizer) and resume with `dlrecipe train --resume {run_dir} --set "
                              "train.learning_rate=...`.", run_dir, 1)
    save_model(model, unit.work_dir / runs.MODEL, unit.chief)
    return model, watcher.rows


def _data_stop(error: RecipeError, run_dir: Path, finished: int, new_run: bool) -> RecipeError:
    """A data error met while training: the run folder is removed if it holds no finished epoch."""
    if finished == 0 and new_run:
        remove_run(run_dir)
        note = "The run folder was removed (no epoch had finished)."
    else:
        note = (f"The run keeps {finished} finished epoch(s): fix the data and resume with "
                f"`dlrecipe train --resume {run_dir}`.")
    return RecipeError([type(p)(p.path, f"{p.message} {note}") for p in error.problems])


class stop_on_sigint:
    """Ctrl-C during ``fit`` asks the watcher to stop at the next batch end instead of raising mid-step.

    A KeyboardInterrupt raised inside a compiled training step can be swallowed by the runtime (the
    process then trains on); a flag checked between batches cannot. A second Ctrl-C raises at once.
    ``watcher`` is any callback with an ``interrupted`` flag that it acts on between batches.
    """

    def __init__(self, watcher: keras.callbacks.Callback):
        self.watcher, self.previous = watcher, None

    def _handler(self, signum, frame):
        self.watcher.interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def write_start(run_dir: Path, loaded: LoadedRecipe, recipe, info, stats, rt, argv, tabular=None,
                process=None, xla: bool | None = None) -> None:
    """Create the run folder and write recipe.yaml, environment.json and preprocessing.json.

    ``xla``: whether Keras compiled the model with XLA (``runtime.jit_compile`` as Keras resolved it).
    """
    try:
        # A launcher of --workers made the folder (it holds the workers' logs); a single process did not.
        run_dir.mkdir(parents=True, exist_ok=process is not None)
    except OSError as e:
        raise RecipeError.one("--out", f"Cannot create the run folder {run_dir}: {e.strerror}. Choose another --out.") from None
    write_text(run_dir / runs.RECIPE, dump_yaml(recipe.model_dump(mode="json", exclude_none=True)))
    env = environment(recipe.seed, rt, recipe.runtime, argv)
    env["workers"] = process.count if process else 1
    env["learning_rate_scale"] = scaling.describe(recipe.runtime, rt.replicas)
    env["xla"] = None if xla is None else bool(xla)
    write_json(run_dir / runs.ENVIRONMENT, env)
    # cross-validation fits per fold (stored in each fold.json): nothing run-wide to store
    sections, arrays = preprocess.stored(stats) if stats is not None else ({"normalization": None}, {})
    if arrays:  # ZCA / PCA matrices; written first, so preprocessing.json never names a missing file
        preprocess.write_arrays(run_dir / preprocess.ARRAYS_FILE, arrays)
    write_json(run_dir / runs.PREPROCESSING, {
        "input_shape": list(info.input_shape), "input_dtype": info.input_dtype, "task": info.task,
        "class_names": info.class_names, **sections,
        **({"tabular": tabular} if tabular is not None else {})})  # csv: imputation and categories


def _restore(run_dir: Path) -> tuple[keras.Model, int, list[dict], list[dict | None] | None]:
    """The checkpoint's model, its epoch, the history rows up to it and the recipe callbacks' counters."""
    state = read_state(run_dir)
    model = runs.load_model(run_dir / runs.LAST_CHECKPOINT)
    rows = _read_history(run_dir / runs.HISTORY)[: state["epoch"]]
    return model, state["epoch"], rows, state.get("callbacks")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _state_problem(state: Any) -> str | None:
    """What is wrong with a state.json (``_Watcher.on_epoch_end`` writes it), or None."""
    if not isinstance(state, dict) or not _is_int(state.get("epoch")):
        return "Expected an object whose 'epoch' is a whole number >= 0"
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
    """checkpoints/state.json, checked: the committed epoch and the recipe callbacks' counters."""
    path = run_dir / runs.STATE
    state = runs.read_json(path)
    problem = _state_problem(state)
    if problem:
        raise RecipeError.one(str(path), f"{problem}; the run folder is damaged. Train the recipe again.")
    return state


# Keras callbacks that count across epochs, and the integer counters state.json keeps for them beside
# their best monitored value (None before their first epoch), so that --resume goes on where the run
# stopped. An EarlyStopping with restore_best_weights also keeps its best weights, in
# checkpoints/best_weights_<i>.npz.
CALLBACK_COUNTERS = {"ReduceLROnPlateau": ("wait", "cooldown_counter"), "EarlyStopping": ("wait", "best_epoch")}


def _best_weights_path(run_dir: Path, index: int) -> Path:
    return run_dir / runs.CHECKPOINTS / f"best_weights_{index}.npz"


def _callback_states(callbacks: list[keras.callbacks.Callback]) -> list[dict | None]:
    """Per recipe callback: its type, monitor, best and counters (``CALLBACK_COUNTERS``), or None (nothing kept)."""
    states: list[dict | None] = []
    for cb in callbacks:
        counters = CALLBACK_COUNTERS.get(type(cb).__name__)
        states.append(None if counters is None else {
            "type": type(cb).__name__, "monitor": cb.monitor, "best": None if cb.best is None else float(cb.best),
            **{k: int(getattr(cb, k)) for k in counters}})
    return states


def _same_callback(cb: keras.callbacks.Callback, state: dict | None) -> bool:
    """Whether ``state`` (kept at the same position) is this callback's: same type and monitor.

    A callback that ``--set train.callbacks`` replaced or moved starts fresh, as Keras would start it.
    """
    return bool(state) and state.get("type") == type(cb).__name__ and state.get("monitor") == cb.monitor


def _set_callback_states(callbacks: list[keras.callbacks.Callback], states: list[dict | None],
                         run_dir: Path) -> None:
    """Give each callback the counters it had at the checkpoint, where it is still the same callback."""
    for i, (cb, state) in enumerate(zip(callbacks, states)):
        if not _same_callback(cb, state):
            continue
        cb.best = state["best"]
        for key in CALLBACK_COUNTERS[type(cb).__name__]:
            setattr(cb, key, state[key])
        path = _best_weights_path(run_dir, i)
        if getattr(cb, "restore_best_weights", False) and path.is_file():
            cb.best_weights = _read_best_weights(path)


def _early_stopped(callbacks: list[keras.callbacks.Callback], states: list[dict | None] | None,
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


def _read_best_weights(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return [arrays[f"w{j}"] for j in range(len(arrays.files))]
    except (OSError, ValueError, KeyError) as e:
        raise RecipeError.one(str(path), f"Unreadable ({e}); the run folder is damaged. Train the recipe "
                              "again.") from None


def finish_from_checkpoint(model: keras.Model, work_dir: Path, states: list[dict | None] | None,
                           chief: bool = True) -> keras.Model:
    """Save model.keras for a run whose every epoch was committed but which stopped before saving it.

    ``model`` is its restored checkpoint. As at the end of ``fit``, an EarlyStopping with
    restore_best_weights gives the model its best weights (the last such callback, as Keras calls them
    in order).
    """
    kept = [i for i, state in enumerate(states or [])
            if state and state["type"] == "EarlyStopping" and _best_weights_path(work_dir, i).is_file()]
    if kept:
        path = _best_weights_path(work_dir, kept[-1])
        try:
            model.set_weights(_read_best_weights(path))
        except ValueError as e:
            raise RecipeError.one(str(path), f"These weights do not fit the checkpoint's model ({e}); the run "
                                  "folder is damaged. Train the recipe again.") from None
    save_model(model, work_dir / runs.MODEL, chief)
    return model


RESUMABLE = ("train.epochs", "train.learning_rate", "train.batch_size", "train.callbacks", "train.ensemble",
             "train.cross_validation", "export", "tune")  # what --set may change on --resume (see load_for_resume)


def load_for_resume(run_dir: Path, overrides: list[str]) -> LoadedRecipe:
    """The recipe of a run to resume, with ``--set`` overrides (e.g. more epochs).

    The model, its optimizer state and the data's normalization come from the run's checkpoint, so
    ``--set`` may change only what a resumed fit uses afresh (``RESUMABLE``). A new constant
    ``train.learning_rate`` replaces the restored optimizer's rate (``LoadedRecipe.resume_rate``).

    Raises:
        RecipeError: not a run folder, no checkpoint, or an override that a resumed run cannot honour.
    """
    run_dir = Path(run_dir)
    if not (run_dir / runs.RECIPE).is_file():
        raise RecipeError.one(str(run_dir), "Not a run folder (no recipe.yaml). Give the folder that "
                              "`dlrecipe train` printed, e.g. runs/<name>/<timestamp>.")
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
        from dlrecipe.train.ensemble import check_resume  # members (folds) without a checkpoint start afresh
        check_resume(run_dir, stored, loaded)
        return loaded
    if not (run_dir / runs.STATE).is_file() or not (run_dir / runs.LAST_CHECKPOINT).is_file():
        raise RecipeError.one(str(run_dir), "This run has no checkpoint yet (it stopped before its first epoch "
                              "ended). Train the recipe again instead.")
    return loaded


def _changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two resolved recipes differ (a changed list is one path)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(set(old) | set(new), key=str)
                for p in _changed_paths(old.get(k), new.get(k), join_path(path, k))]
    return [] if old == new else [path]


def save_model(model: keras.Model, path: Path, chief: bool = True) -> None:
    """``model.save`` to a temp file beside ``path``, then rename (atomic).

    ``chief=False`` (workers other than 0 of a multi-process run): saving reads the replicated
    variables through a collective that every process must join, so these workers save too, to a
    scratch file that is thrown away.
    """
    if not chief:
        with tempfile.TemporaryDirectory(prefix="dlrecipe-worker-") as scratch:
            model.save(Path(scratch) / "model.keras")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (float(v) if k != "epoch" else int(v)) for k, v in row.items() if v != ""}
                for row in csv.DictReader(f)]


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    keys = ["epoch", *[k for k in keys if k not in ("epoch", "learning_rate")], "learning_rate"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


class _Watcher(keras.callbacks.Callback):
    """history.csv (with the learning rate at each epoch's first step) and an atomic checkpoint per epoch.

    An epoch whose loss is NaN is neither logged nor checkpointed: the run keeps its last good state.
    """

    def __init__(self, run_dir: Path, prior: list[dict[str, Any]], chief: bool = True, *,
                 tracked: list[keras.callbacks.Callback] = (), states: list[dict | None] | None = None):
        super().__init__()
        self.run_dir, self.chief = run_dir, chief
        self.tracked, self.states = list(tracked), states  # the recipe's callbacks, before this one in fit
        self.rows = list(prior)
        self.last_epoch = prior[-1]["epoch"] if prior else 0
        self.nan_epoch: int | None = None
        self.interrupted = False
        self._lr = float("nan")

    def on_train_begin(self, logs=None):
        # after the recipe's callbacks reset themselves in their own on_train_begin
        if self.states:
            _set_callback_states(self.tracked, self.states, self.run_dir)

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        if self.interrupted:
            self.model.stop_training = True
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.nan_epoch = self.last_epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        if self.interrupted:  # a partial epoch: fit ends it early, but it must not be committed
            self.model.stop_training = True
            return
        logs = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        if self.nan_epoch is not None or not all(math.isfinite(v) for v in logs.values()):
            self.nan_epoch = epoch + 1
            return
        logs.pop("learning_rate", None)
        self.rows.append({"epoch": epoch + 1, **logs, "learning_rate": self._lr})
        # state.json is written last: it commits the epoch. A Ctrl-C between these writes leaves the
        # previous epoch committed, and resume drops history rows beyond the committed epoch.
        save_model(self.model, self.run_dir / runs.LAST_CHECKPOINT, self.chief)
        if self.chief:
            _write_history(self.run_dir / runs.HISTORY, self.rows)
            for i, cb in enumerate(self.tracked):  # an EarlyStopping's new best weights
                if getattr(cb, "best_weights", None) is not None and getattr(cb, "best_epoch", None) == epoch:
                    preprocess.write_arrays(_best_weights_path(self.run_dir, i),
                                            {f"w{j}": w for j, w in enumerate(cb.best_weights)})
            write_json(self.run_dir / runs.STATE, {"epoch": epoch + 1, "callbacks": _callback_states(self.tracked)})
            # a model.keras here is from before this epoch (a run resumed to train longer): once the epoch is
            # committed it is outdated, and a run stopped before saving the new one must not pass it off as
            # finished (resume saves the model from the checkpoint when none is there)
            (self.run_dir / runs.MODEL).unlink(missing_ok=True)
        self.last_epoch = epoch + 1


def remove_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
