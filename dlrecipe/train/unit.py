"""Fit one model (a single run, an ensemble member or a cross-validation fold) into its folder.

The untrained state and every finished epoch are checkpointed atomically (model, history.csv, then
state.json, which commits it, with the callbacks' counters and the seed generators' states), so Ctrl-C, a
NaN loss or an undecodable file leaves a run that ``--resume`` continues as if never stopped. See
docs/training.md.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecipe import runs
from dlrecipe.build import scaling
from dlrecipe.build.checks import build_all
from dlrecipe.data import pipeline
from dlrecipe.errors import RecipeError, Stopped
from dlrecipe.train import resume as resuming
from dlrecipe.train.runtime import seed_everything


class TrainingStopped(Stopped):
    """Training ended early (Ctrl-C or a NaN loss); the run folder is resumable."""

    def __init__(self, message: str, run_dir: Path, exit_code: int, nan_epoch: int | None = None):
        super().__init__(message, exit_code)
        self.run_dir = run_dir
        self.nan_epoch = nan_epoch  # the epoch whose loss became NaN; None for Ctrl-C


@dataclass
class Result:
    """What ``train`` returns: the run folder, the history rows, the fitted model and the data it used."""

    run_dir: Path
    history: list[dict[str, Any]]
    model: keras.Model
    dataset: Any


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
             resume_rate: float | None = None, done_ok: bool = False,
             extra_callbacks: tuple = ()) -> tuple[keras.Model, list[dict[str, Any]]]:
    """Build (or restore from ``unit.work_dir``'s checkpoint) and fit one model; save its model.keras.

    ``recipe`` is finalized (loss and metrics written in). ``on_start(model)`` is called once the model is
    built and compiled, before anything is written, to create the run folder. ``run_dir`` is the folder that
    ``--resume`` takes, named in the messages. ``resume_rate`` (see ``load_for_resume``) replaces the
    restored optimizer's learning rate, scaled as the recipe's rate is. ``done_ok`` (an ensemble member or
    fold, whose group records "finished" only after this returns): a resumed unit that is done (all
    epochs, or stopped by EarlyStopping) and saved its model.keras returns that model instead of
    being refused.
    ``verbose`` is Keras's, or ``"line"``: one line per epoch (``EpochLine``), for a pipe or a log file.
    ``extra_callbacks`` run after dlrecipe's own (e.g. MLflow's, ``train.tracking``).

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
        start_epoch, prior, states, seed_states = 0, [], None, None
        if resume:
            model, start_epoch, prior, states, seed_states = resuming.restore(unit.work_dir)
            if resume_rate is not None:
                model.optimizer.learning_rate = resume_rate * scaling.factor(cfg, rt.replicas)
        else:
            model = built.model
            model.compile(optimizer=built.optimizer, loss=built.loss, metrics=built.metrics,
                          jit_compile=cfg.jit_compile, steps_per_execution=recipe.train.steps_per_execution)
    stopped = resuming.early_stopped(built.callbacks, states, start_epoch, unit.label)
    if (start_epoch >= recipe.train.epochs or stopped) and resume:
        if not (unit.work_dir / runs.MODEL).is_file():
            # its last epoch was committed, but the run stopped before it saved model.keras: save it now
            on_start(model)
            return resuming.finish_from_checkpoint(model, unit.work_dir, states, unit.chief), prior
        if done_ok:
            return runs.load_model(unit.work_dir / runs.MODEL), prior
    if stopped:
        raise stopped
    if start_epoch >= recipe.train.epochs:
        raise RecipeError.one(str(run_dir), f"This run already finished its {recipe.train.epochs} epochs. To train "
                              f"longer, resume with --set train.epochs=N (N > {start_epoch}).")
    # each epoch's order comes from (seed, epoch), so a resumed run sees the batches the uninterrupted run saw
    inputs = pipeline.fit_inputs(unit.data, recipe.model_copy(update={
        "seed": unit.seed, "train": recipe.train.model_copy(update={"batch_size": batch})}), info.n_classes,
        epochs=(start_epoch, recipe.train.epochs))
    on_start(model)
    watcher = _Watcher(unit.work_dir, prior, unit.chief, tracked=built.callbacks, states=states,
                       seeds=seed_states)
    callbacks = [*built.callbacks, watcher, keras.callbacks.TerminateOnNaN(), *extra_callbacks]
    if verbose == "line":  # stdout is not a terminal: one plain line per epoch instead of the progress bar
        verbose = 0
        callbacks.append(EpochLine(recipe.train.epochs, unit.label))
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(str(unit.work_dir / runs.TENSORBOARD), write_graph=False,
                                                     profile_batch=0))
    where = f" ({unit.label})" if unit.label else ""
    try:
        with stop_on_sigint(watcher):
            model.fit(**inputs, epochs=recipe.train.epochs, initial_epoch=start_epoch, callbacks=callbacks,
                      verbose=verbose)
        if watcher.interrupted:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        kept = "them" if watcher.last_epoch else "its starting state"
        raise TrainingStopped(f"Interrupted after {watcher.last_epoch} finished epoch(s){where}. The run keeps {kept}: "
                              f"resume with `dlrecipe train --resume {run_dir}`.", run_dir, 130) from None
    except Exception as e:  # a streamed file that cannot be decoded: name it, keep nothing half-written
        error = pipeline.data_error(unit.data, e)
        if error is None:
            if watcher.last_epoch == 0 and not resume and unit.work_dir == run_dir and unit.chief:
                runs.remove_run(run_dir)  # failed in its first step: no half-made run folder is left
            raise
        raise _data_stop(error, run_dir, watcher.last_epoch, not resume) from None
    if watcher.nan_epoch is not None:
        kept = f"epoch {watcher.last_epoch}" if watcher.last_epoch else "its starting state"
        raise TrainingStopped(f"The loss became NaN in epoch {watcher.nan_epoch}{where}; training stopped. The run "
                              f"keeps {kept}. Lower the learning rate (or add clipnorm to the "
                              f"optimizer) and resume with `dlrecipe train --resume {run_dir} --set "
                              "train.learning_rate=...`.", run_dir, 1, nan_epoch=watcher.nan_epoch)
    runs.save_model(model, unit.work_dir / runs.MODEL, unit.chief)
    return model, watcher.rows


def _data_stop(error: RecipeError, run_dir: Path, finished: int, new_run: bool) -> RecipeError:
    """A data error met while training: the run folder is removed if it holds no finished epoch."""
    if finished == 0 and new_run:
        runs.remove_run(run_dir)
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


class _Watcher(keras.callbacks.Callback):
    """history.csv (with the learning rate at each epoch's first step) and an atomic checkpoint per epoch.

    An epoch whose loss is NaN is neither logged nor checkpointed: the run keeps its last good state.
    """

    def __init__(self, run_dir: Path, prior: list[dict[str, Any]], chief: bool = True, *,
                 tracked: list[keras.callbacks.Callback] = (), states: list[dict | None] | None = None,
                 seeds: list[list[int]] | None = None):
        super().__init__()
        self.run_dir, self.chief = run_dir, chief
        self.tracked, self.states = list(tracked), states  # the recipe's callbacks, before this one in fit
        self.seeds = seeds  # the model's seed generators (dropout, augmentation) at the checkpoint
        self.rows = list(prior)
        self.last_epoch = prior[-1]["epoch"] if prior else 0
        self.nan_epoch: int | None = None
        self.interrupted = False
        self._lr = float("nan")

    def on_train_begin(self, logs=None):
        # after the recipe's callbacks reset themselves in their own on_train_begin
        if self.states:
            resuming.set_callback_states(self.tracked, self.states, self.run_dir)
        if self.seeds is not None:
            resuming.set_seed_states(self.model, self.seeds, self.run_dir)
        if self.last_epoch == 0 and not self.rows:
            # a checkpoint of the untrained state: Ctrl-C or a NaN in the first epoch leaves a run that
            # --resume starts from epoch 1 (the optimizer is built now, as fit would build it at its first step)
            if not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self._commit(0)

    def _commit(self, epoch: int) -> None:
        """Checkpoint the model, then (chief) history.csv, the best weights and state.json, which commits ``epoch``."""
        # state.json is written last: it commits the epoch. A Ctrl-C between these writes leaves the
        # previous epoch committed, and resume drops history rows beyond the committed epoch.
        runs.save_model(self.model, self.run_dir / runs.LAST_CHECKPOINT, self.chief)
        if not self.chief:
            return
        if epoch:
            runs.write_history(self.run_dir / runs.HISTORY, self.rows)
        for i, cb in enumerate(self.tracked):  # an EarlyStopping's new best weights
            if epoch and getattr(cb, "best_weights", None) is not None and getattr(cb, "best_epoch", -1) == epoch - 1:
                runs.write_best_weights(runs.best_weights_path(self.run_dir, i), cb.best_weights)
        runs.write_state(self.run_dir, epoch, resuming.callback_states(self.tracked),
                         resuming.seed_states(self.model))

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
        self._commit(epoch + 1)
        if self.chief:
            # a model.keras here is from before this epoch (a run resumed to train longer): once the epoch is
            # committed it is outdated, and a run stopped before saving the new one must not pass it off as
            # finished (resume saves the model from the checkpoint when none is there)
            (self.run_dir / runs.MODEL).unlink(missing_ok=True)
        self.last_epoch = epoch + 1


class EpochLine(keras.callbacks.Callback):
    """One plain line per finished epoch (no progress bar, no escape codes): for a pipe or a log file."""

    def __init__(self, epochs: int, label: str = ""):
        super().__init__()
        self.epochs, self.label = epochs, f" ({label})" if label else ""
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        shown = " - ".join(f"{k}: {float(v):.4g}" for k, v in (logs or {}).items()
                           if np.ndim(v) == 0 and k != "learning_rate")
        print(f"Epoch {epoch + 1}/{self.epochs}{self.label} - {time.perf_counter() - self._started:.1f}s - {shown}",
              flush=True)
