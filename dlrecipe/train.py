"""Train a recipe into a run folder, or resume a run.

Everything that can fail on bad input (data, model, output folder) is checked
before the run folder is created. During training, every finished epoch is
checkpointed atomically, so Ctrl-C or a NaN loss leaves a resumable run.
"""

from __future__ import annotations

import csv
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

from . import data as datamod
from . import preprocess, runs, scaling
from .check import build_all, finalize
from .errors import RecipeError
from .recipe import LoadedRecipe, load_recipe
from .runtime import environment, make_runtime, seed_everything, set_precision
from .workers import Process, shard
from .yamlio import dump_yaml, write_json, write_text


class TrainingStopped(Exception):
    """Training ended early (Ctrl-C or a NaN loss); the run folder is resumable."""

    def __init__(self, message: str, run_dir: Path, exit_code: int):
        super().__init__(message)
        self.run_dir, self.exit_code = run_dir, exit_code


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

    ``process``, when given, makes this one worker of a multi-process run (see ``workers``): it trains
    on its shard with ``batch_size / N`` examples per step, and only worker 0 writes the run folder
    (``run_dir`` when the launcher chose it).

    Raises:
        RecipeError: bad input, before anything is written.
        TrainingStopped: interrupted or NaN; the run folder keeps its last good epoch.
    """
    recipe = loaded.recipe
    cfg = recipe.runtime
    set_precision(cfg.mixed_precision)
    seed_everything(recipe.seed, cfg.deterministic)
    dataset = datamod.load(recipe.data, recipe.seed)
    info = dataset.info
    chief = process is None or process.chief
    if resume is None and chief:
        check_writable(out)
    stats = preprocess.fit(recipe.data.normalize, dataset.x_train)
    recipe = finalize(recipe, info.task)
    x_train, y_train = shard(dataset.x_train, dataset.y_train, process)
    x_val, y_val = shard(dataset.x_val, dataset.y_val, process)
    batch = recipe.train.batch_size // (process.count if process else 1)
    steps = max(1, math.ceil(len(x_train) / batch))
    if process is not None:
        print(f"worker {process.index} of {process.count}: {len(x_train)} of {len(dataset.x_train)} training "
              f"examples (#{process.index}, #{process.index + process.count}, ...), {batch} per step of the global "
              f"batch {recipe.train.batch_size}", flush=True)
    rt = make_runtime(cfg)
    with rt.scope:
        built = build_all(scaling.scaled(recipe, rt.replicas), info.input_shape, stats, task=info.task,
                          n_classes=info.n_classes, steps_per_epoch=steps)
        start_epoch, prior = 0, []
        if resume is not None:
            model, start_epoch, prior = _restore(resume)
        else:
            model = built.model
            model.compile(optimizer=built.optimizer, loss=built.loss, metrics=built.metrics,
                          jit_compile=cfg.jit_compile, steps_per_execution=recipe.train.steps_per_execution)
    if start_epoch >= recipe.train.epochs:
        raise RecipeError.one(str(resume), f"This run already finished its {recipe.train.epochs} epochs. To train "
                              f"longer, resume with --set train.epochs=N (N > {start_epoch}).")
    run_dir = Path(resume or run_dir or runs.new_run_dir(out, recipe.name))
    if resume is None and chief:
        _write_start(run_dir, loaded, recipe, info, stats, rt, argv, process)
    elif chief:
        write_text(run_dir / runs.RECIPE, dump_yaml(recipe.model_dump(mode="json", exclude_none=True)))
    watcher = _Watcher(run_dir, prior, chief)
    callbacks = [*built.callbacks, watcher, keras.callbacks.TerminateOnNaN()]
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / runs.TENSORBOARD), write_graph=False,
                                                     profile_batch=0))
    validation = (x_val, y_val) if x_val is not None else None
    try:
        with _stop_on_sigint(watcher):
            model.fit(x_train, y_train, batch_size=batch, epochs=recipe.train.epochs,
                      initial_epoch=start_epoch, validation_data=validation, callbacks=callbacks, shuffle=True,
                      verbose=verbose)
        if watcher.interrupted:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise TrainingStopped(f"Interrupted after {watcher.last_epoch} finished epoch(s). The run keeps them: resume "
                              f"with `dlrecipe train --resume {run_dir}`.", run_dir, 130) from None
    if watcher.nan_epoch is not None:
        raise TrainingStopped(f"The loss became NaN in epoch {watcher.nan_epoch}; training stopped. The run keeps "
                              f"epoch {watcher.last_epoch}. Lower the learning rate (or add clipnorm to the optimizer)"
                              f" and resume with `dlrecipe train --resume {run_dir} --set train.learning_rate=...`.",
                              run_dir, 1)
    save_model(model, run_dir / runs.MODEL, chief)
    return Result(run_dir, watcher.rows, model, dataset)


class _stop_on_sigint:
    """Ctrl-C during ``fit`` asks the watcher to stop at the next batch end instead of raising mid-step.

    A KeyboardInterrupt raised inside a compiled training step can be swallowed by the runtime (the
    process then trains on); a flag checked between batches cannot. A second Ctrl-C raises at once.
    """

    def __init__(self, watcher: "_Watcher"):
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


def _write_start(run_dir: Path, loaded: LoadedRecipe, recipe, info, stats, rt, argv, process=None) -> None:
    try:
        # A launcher of --workers made the folder (it holds the workers' logs); a single process did not.
        run_dir.mkdir(parents=True, exist_ok=process is not None)
    except OSError as e:
        raise RecipeError.one("--out", f"Cannot create the run folder {run_dir}: {e.strerror}. Choose another --out.") from None
    write_text(run_dir / runs.RECIPE, dump_yaml(recipe.model_dump(mode="json", exclude_none=True)))
    env = environment(recipe.seed, rt, recipe.runtime, argv)
    env["workers"] = process.count if process else 1
    env["learning_rate_scale"] = scaling.describe(recipe.runtime, rt.replicas)
    write_json(run_dir / runs.ENVIRONMENT, env)
    write_json(run_dir / runs.PREPROCESSING, {
        "input_shape": list(info.input_shape), "input_dtype": info.input_dtype, "task": info.task,
        "class_names": info.class_names, "normalization": stats})


def _restore(run_dir: Path) -> tuple[keras.Model, int, list[dict]]:
    state = runs.read_json(run_dir / runs.STATE)
    model = runs.load_model(run_dir / runs.LAST_CHECKPOINT)
    rows = _read_history(run_dir / runs.HISTORY)[: int(state["epoch"])]
    return model, int(state["epoch"]), rows


def load_for_resume(run_dir: Path, overrides: list[str]) -> LoadedRecipe:
    """The recipe of a run to resume, with ``--set`` overrides (e.g. more epochs)."""
    run_dir = Path(run_dir)
    if not (run_dir / runs.RECIPE).is_file():
        raise RecipeError.one(str(run_dir), "Not a run folder (no recipe.yaml). Give the folder that "
                              "`dlrecipe train` printed, e.g. runs/<name>/<timestamp>.")
    if not (run_dir / runs.STATE).is_file() or not (run_dir / runs.LAST_CHECKPOINT).is_file():
        raise RecipeError.one(str(run_dir), "This run has no checkpoint yet (it stopped before its first epoch "
                              "ended). Train the recipe again instead.")
    return load_recipe(run_dir / runs.RECIPE, overrides)


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

    def __init__(self, run_dir: Path, prior: list[dict[str, Any]], chief: bool = True):
        super().__init__()
        self.run_dir, self.chief = run_dir, chief
        self.rows = list(prior)
        self.last_epoch = prior[-1]["epoch"] if prior else 0
        self.nan_epoch: int | None = None
        self.interrupted = False
        self._lr = float("nan")

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
            write_json(self.run_dir / runs.STATE, {"epoch": epoch + 1})
        self.last_epoch = epoch + 1


def remove_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
