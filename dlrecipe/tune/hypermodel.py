"""The recipe as a KerasTuner HyperModel: one trial's values in, the recipe built as ``train`` builds it out.

``build(hp)`` asks for one value per search space (named by its recipe path), validates the recipe with
those values and builds and compiles it exactly as ``dlrecipe train`` would; ``fit`` trains it and keeps
dlrecipe's record of the trial (worker, epochs, seconds) beside KerasTuner's ``trial.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import keras
import keras_tuner as kt

from dlrecipe.backend import TracedGraphs
from dlrecipe.build import scaling
from dlrecipe.build.checks import build_all
from dlrecipe.build.compile import finalize
from dlrecipe.data import pipeline
from dlrecipe.io import write_json
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.train.runtime import Runtime, seed_everything
from dlrecipe.tune.results import TRIAL_RECORD


class RecipeHyperModel(kt.HyperModel):
    """Builds and fits the recipe with the trial's values; data is loaded once per data section."""

    def __init__(self, loaded: LoadedRecipe, spaces_only: bool = False):
        super().__init__(name=loaded.recipe.name)
        self.loaded = loaded
        self.spaces_only = spaces_only  # the chief only declares the spaces: no data, no model
        self.runtime: Runtime | None = None  # what trials train under (set by ``search``)
        self.record_path: Path | None = None
        self.record: dict[str, Any] = {}
        self.status: Callable[[str], None] | None = None
        self.stopper = _RaiseOnSigint()  # flagged by Ctrl-C while ``search`` runs (see ``search``)
        self.tracking = None  # train.tracking.TrialRuns under tune --mlflow: a nested MLflow run per trial
        self._data: dict[str, tuple] = {}
        self._graphs = TracedGraphs()  # the graphs earlier trials traced, freed before each build

    def trial_recipe(self, hp: kt.HyperParameters) -> LoadedRecipe:
        """The recipe with the trial's value in each search space (declaring the spaces to ``hp``)."""
        values = {path: space.hp(hp) for path, space in self.loaded.spaces.items()}
        return self.loaded.with_values(values)

    def dataset(self, recipe) -> tuple:
        """The dataset of ``recipe.data`` and its statistics, loaded once per distinct data section."""
        key = json.dumps(recipe.data.model_dump(mode="json"), sort_keys=True)
        if key not in self._data:
            ds = pipeline.load(recipe.data, recipe.seed)
            self._data[key] = (ds, pipeline.fit_stats(recipe.data, ds))
        return self._data[key]

    def begin_trial(self, trial_dir: str, trial_id: str, hp: kt.HyperParameters | None = None) -> None:
        """Start the trial's record (its worker and pid: a launcher finds a dead worker's trial by them)."""
        self.record_path = Path(trial_dir) / TRIAL_RECORD
        self.record = {"trial": trial_id, "worker": os.environ.get("KERASTUNER_TUNER_ID", "tuner0"),
                       "pid": os.getpid(), "epochs": 0, "seconds": 0.0}
        write_json(self.record_path, self.record)
        if self.tracking is not None and hp is not None:
            self.tracking.begin(trial_id, self.trial_recipe(hp.copy()))

    def end_trial(self, status: str, score: Any) -> None:
        """End the trial's MLflow run, if any."""
        if self.tracking is not None:
            self.tracking.end(status, score)

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        self.stopper.check()
        if self.spaces_only:
            self.trial_recipe(hp)
            return None
        recipe = self.trial_recipe(hp).recipe
        # Every trial starts from the same state, whatever this process trained before (earlier trials, or
        # none in a resumed search): a fresh session, the recipe's seeds. So a resumed search scores as the
        # uninterrupted one (docs/tuning.md).
        if not _in_strategy_scope():  # inside a tf.distribute scope, clearing the session would pop it
            keras.backend.clear_session()
        self._graphs.release()  # else each trial's traced steps stay in memory for ever (TracedGraphs)
        seed_everything(recipe.seed, recipe.runtime.deterministic)
        replicas = 1
        if self.runtime is not None:  # the session was cleared: the dtype policy and distribution again
            self.runtime.reapply(recipe.runtime)
            replicas = self.runtime.replicas
        ds, stats = self.dataset(recipe)
        recipe = finalize(recipe, ds.info.task, ds.info.n_classes)
        steps = max(1, math.ceil(pipeline.n_train(ds) / recipe.train.batch_size))
        # The trial's rates are base rates (best.yaml keeps them); they train scaled, as `train` scales them.
        built = build_all(scaling.scaled(recipe, replicas), ds.info.input_shape, stats, task=ds.info.task,
                          n_classes=ds.info.n_classes, steps_per_epoch=steps)
        self.record["learning_rate_scale"] = scaling.describe(recipe.runtime, replicas)
        self.record["learning_rate"] = float(keras.ops.convert_to_numpy(built.optimizer.learning_rate))  # at step 0
        self.record["dtype_policy"] = keras.config.dtype_policy().name
        built.model.compile(optimizer=built.optimizer, loss=built.loss, metrics=built.metrics,
                            jit_compile=recipe.runtime.jit_compile)
        return built.model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, **kwargs):
        recipe = self.trial_recipe(hp).recipe
        ds, _ = self.dataset(recipe)
        built_callbacks = build_all_callbacks(recipe)
        callbacks = [*kwargs.pop("callbacks", []), *built_callbacks, *kwargs.pop("extra_callbacks", [])]
        epochs = kwargs.pop("epochs", recipe.train.epochs)
        if self.status is not None:
            callbacks.append(_EpochStatus(self.status, epochs))
        if self.tracking is not None:
            callbacks += self.tracking.callbacks()
        started = time.perf_counter()
        # each epoch's order from (seed, epoch): a trial Hyperband continues from initial_epoch sees the
        # batches of an uninterrupted one
        inputs = pipeline.fit_inputs(ds, finalize(recipe, ds.info.task, ds.info.n_classes), ds.info.n_classes,
                                     epochs=(kwargs.get("initial_epoch", 0), epochs))
        self.stopper.check()
        history = model.fit(**inputs, epochs=epochs, callbacks=[self.stopper, *callbacks],
                            verbose=kwargs.pop("verbose", 0), **kwargs)
        self.record["epochs"] = self.record.get("epochs", 0) + len(history.history.get("loss", []))
        self.record["seconds"] = self.record.get("seconds", 0.0) + time.perf_counter() - started
        if self.record_path is not None:
            write_json(self.record_path, self.record)
        return history


class _RaiseOnSigint(keras.callbacks.Callback):
    """Ctrl-C (flagged by ``train.stop_on_sigint``) raises KeyboardInterrupt at the next safe point.

    A KeyboardInterrupt raised wherever the signal lands (inside a compiled step, in tracing) can be
    swallowed, and the search then runs on. The flag is checked at the next batch end and before a
    trial builds or fits; the trial is left unfinished (KerasTuner runs it again on resume), never
    scored on a partial epoch.
    """

    interrupted = False

    def check(self) -> None:
        if self.interrupted:
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch, logs=None):
        self.check()

    on_test_batch_end = on_train_batch_end


class _EpochStatus(keras.callbacks.Callback):
    """Feeds the live status line (a terminal only) with the epoch being trained."""

    def __init__(self, update: Callable[[str], None], epochs: int):
        super().__init__()
        self.update, self.epochs = update, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.update(f"epoch {epoch + 1}/{self.epochs}")


def build_all_callbacks(recipe) -> list:
    """The Keras callbacks of ``train.callbacks``."""
    from dlrecipe.build import resolve
    return [resolve.callback(cb, f"train.callbacks[{i}]") for i, cb in enumerate(recipe.train.callbacks)]


def _in_strategy_scope() -> bool:
    """A ``tf.distribute`` strategy scope is open (KerasTuner builds each trial in one when given a strategy)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    return tf.distribute.has_strategy()
