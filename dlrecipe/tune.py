"""``dlrecipe tune``: KerasTuner over the search spaces of a recipe.

KerasTuner's oracle chooses the values; ``RecipeHyperModel.build(hp)`` asks
for one value per search space (named by its recipe path), validates the
recipe with those values and builds it exactly as ``dlrecipe train`` would.
Everything lives in ``<out>/<name>/tune/``; running again resumes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from . import data as datamod
from . import pipeline
from .check import build_all, finalize
from .errors import RecipeError
from .recipe import LoadedRecipe
from .runtime import make_runtime, seed_everything, set_precision
from .train import check_writable
from .yamlio import dump_yaml, write_json, write_text

TUNERS = {"random": kt.RandomSearch, "grid": kt.GridSearch, "bayesian": kt.BayesianOptimization,
          "hyperband": kt.Hyperband}
PROJECT = "keras_tuner"


@dataclass
class TuneResult:
    folder: Path
    best_path: Path
    best_values: dict[str, Any]
    rows: list[dict[str, Any]]


class RecipeHyperModel(kt.HyperModel):
    """Builds and fits the recipe with the trial's values; data is loaded once per data section."""

    def __init__(self, loaded: LoadedRecipe, log_path: Path):
        super().__init__(name=loaded.recipe.name)
        self.loaded = loaded
        self.log_path = log_path
        self.log: dict[str, dict[str, Any]] = json.loads(log_path.read_text()) if log_path.is_file() else {}
        self.trial_id: str | None = None
        self._data: dict[str, tuple] = {}

    def trial_recipe(self, hp: kt.HyperParameters) -> LoadedRecipe:
        values = {path: space.hp(hp) for path, space in self.loaded.spaces.items()}
        return self.loaded.with_values(values)

    def dataset(self, recipe) -> tuple:
        key = json.dumps(recipe.data.model_dump(mode="json"), sort_keys=True)
        if key not in self._data:
            ds = pipeline.load(recipe.data, recipe.seed)
            self._data[key] = (ds, pipeline.fit_stats(recipe.data, ds))
        return self._data[key]

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        recipe = self.trial_recipe(hp).recipe
        ds, stats = self.dataset(recipe)
        recipe = finalize(recipe, ds.info.task, ds.info.n_classes)
        steps = max(1, math.ceil(pipeline.n_train(ds) / recipe.train.batch_size))
        built = build_all(recipe, ds.info.input_shape, stats, task=ds.info.task, n_classes=ds.info.n_classes,
                          steps_per_epoch=steps)
        built.model.compile(optimizer=built.optimizer, loss=built.loss, metrics=built.metrics,
                            jit_compile=recipe.runtime.jit_compile)
        return built.model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args, **kwargs):
        recipe = self.trial_recipe(hp).recipe
        ds, _ = self.dataset(recipe)
        built_callbacks = build_all_callbacks(recipe)
        callbacks = [*kwargs.pop("callbacks", []), *built_callbacks, *kwargs.pop("extra_callbacks", [])]
        epochs = kwargs.pop("epochs", recipe.train.epochs)
        started = time.perf_counter()
        inputs = pipeline.fit_inputs(ds, finalize(recipe, ds.info.task), ds.info.n_classes)
        history = model.fit(**inputs, epochs=epochs, callbacks=callbacks, verbose=kwargs.pop("verbose", 0), **kwargs)
        entry = self.log.setdefault(self.trial_id or "?", {"epochs": 0, "seconds": 0.0})
        entry["epochs"] += len(history.history.get("loss", []))
        entry["seconds"] += time.perf_counter() - started
        write_json(self.log_path, self.log)
        return history


def build_all_callbacks(recipe) -> list:
    from . import resolve
    return [resolve.callback(cb, f"train.callbacks[{i}]") for i, cb in enumerate(recipe.train.callbacks)]


def _objective(cfg) -> Any:
    obj = cfg.tune.objective
    if isinstance(obj, str) and obj.removeprefix("val_") == "mean_iou":  # segmentation's default metric:
        return kt.Objective(obj, direction="max")  # KerasTuner cannot infer its direction
    return obj if isinstance(obj, str) else kt.Objective(obj.name, direction=obj.direction)


def _check_objective(recipe, task: str, n_classes: int | None = None) -> None:
    obj = recipe.tune.objective
    name = obj if isinstance(obj, str) else obj.name
    base = name.removeprefix("val_")
    if name.startswith("val_") and recipe.data.validation_split == 0:
        raise RecipeError.one("tune.objective", f"Received: objective={name!r}, but data.validation_split is 0, so "
                              "there is no validation data. Set data.validation_split (e.g. 0.1) or use a training "
                              "metric.")
    metrics = recipe.train.metrics if recipe.train.metrics is not None else \
        finalize(recipe, task, n_classes).train.metrics
    logged = {"loss"} | {m for m in metrics if isinstance(m, str)} | {"acc" if m == "accuracy" else m for m in metrics
                                                                    if isinstance(m, str)}
    if base not in logged and all(isinstance(m, str) for m in metrics):
        raise RecipeError.one("tune.objective", f"Received: objective={name!r}, but training logs only "
                              f"{', '.join(sorted(logged))} (and their val_ forms). Add {base} to train.metrics "
                              "or choose a logged value.")


def _make_tuner(loaded: LoadedRecipe, hypermodel: RecipeHyperModel, folder: Path, max_trials: int | None,
                overwrite: bool):
    cfg = loaded.recipe.tune
    common = dict(hypermodel=hypermodel, objective=_objective(loaded.recipe), seed=loaded.recipe.seed,
                  directory=str(folder), project_name=PROJECT, overwrite=overwrite,
                  executions_per_trial=cfg.executions_per_trial)
    cls = TUNERS[cfg.tuner]

    class Logged(cls):  # records the trial id so the hypermodel can log epochs and time per trial
        def on_trial_begin(self, trial):
            hypermodel.trial_id = trial.trial_id
            return super().on_trial_begin(trial)

    try:
        if cfg.tuner == "hyperband":
            if max_trials is not None:
                raise RecipeError.one("--max-trials", "Hyperband sets its own number of trials from "
                                      "tune.max_epochs; --max-trials applies to random, grid and bayesian.")
            return Logged(max_epochs=cfg.max_epochs or loaded.recipe.train.epochs, **common)
        return Logged(max_trials=max_trials or cfg.max_trials, **common)
    except ValueError as e:
        if "optimization direction" in str(e):
            raise RecipeError.one("tune.objective", f"KerasTuner cannot tell whether to minimize or maximize "
                                  f"{_objective(loaded.recipe)!r}. Write it as {{name: ..., direction: min|max}}.") from None
        raise


def tune(loaded: LoadedRecipe, out: Path, *, max_trials: int | None = None, overwrite: bool = False,
         console=None) -> TuneResult:
    """Run (or resume) the search; write trials.csv and best.yaml.

    Raises:
        RecipeError: bad recipe, no search spaces, or an objective that training does not log.
    """
    recipe = loaded.recipe
    if not loaded.spaces:
        raise RecipeError.one("", "The recipe has no search space, so there is nothing to tune. Make a value a "
                              "space, e.g. units: {choice: [64, 128], default: 128}.")
    check_writable(out)
    set_precision(recipe.runtime.mixed_precision)
    seed_everything(recipe.seed, recipe.runtime.deterministic)
    folder = Path(out) / recipe.name / "tune"
    info = datamod.peek(recipe.data, recipe.seed)
    _check_objective(recipe, info.task, info.n_classes)
    hypermodel = RecipeHyperModel(loaded, folder / "trial_log.json")
    # Build the recipe at its defaults first: every error is reported before any trial runs.
    rt = make_runtime(recipe.runtime)
    with rt.scope:
        hypermodel.build(kt.HyperParameters())
        folder.mkdir(parents=True, exist_ok=True)
        if overwrite:
            hypermodel.log = {}
        tuner = _make_tuner(loaded, hypermodel, folder, max_trials, overwrite)
        if console is not None:
            console.print(f"Searching {len(loaded.spaces)} space(s) with {recipe.tune.tuner} in {folder}")
        early = []
        if recipe.tune.early_stopping is not None:
            es = recipe.tune.early_stopping
            early = [keras.callbacks.EarlyStopping(monitor=es.monitor or _objective_name(recipe),
                                                   patience=es.patience, min_delta=es.min_delta)]
        tuner.search(epochs=recipe.train.epochs, extra_callbacks=early, verbose=0)
    rows = trial_rows(tuner, loaded, hypermodel.log)
    write_text(folder / "trials.csv", _csv(rows))
    best_hp = tuner.get_best_hyperparameters(1)
    if not best_hp:
        raise RecipeError.one("", f"No trial finished (see {folder}); check the errors above.")
    values = {p: loaded.spaces[p].tidy(best_hp[0].get(p)) for p in loaded.spaces}
    best = loaded.with_values(values)
    best_path = folder / "best.yaml"
    write_text(best_path, f"# Best of {len(rows)} trial(s), objective {_objective_name(recipe)}; "
               f"train it with: dlrecipe train {best_path}\n" + dump_yaml(best.fixed_raw()))
    if console is not None:
        print_trials(rows, console)
    return TuneResult(folder, best_path, values, rows)


def _objective_name(recipe) -> str:
    obj = recipe.tune.objective
    return obj if isinstance(obj, str) else obj.name


def trial_rows(tuner, loaded: LoadedRecipe, log: dict) -> list[dict[str, Any]]:
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        row = {"trial": trial_id, "status": str(trial.status)}
        for path, space in loaded.spaces.items():
            row[path] = space.tidy(trial.hyperparameters.values.get(path))
        row["objective"] = trial.score
        row["epochs"] = log.get(trial_id, {}).get("epochs")
        seconds = log.get(trial_id, {}).get("seconds")
        row["seconds"] = round(seconds, 2) if seconds is not None else None
        rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def print_trials(rows: list[dict[str, Any]], console) -> None:
    from rich.table import Table
    if not rows:
        return
    table = Table(title="Trials")
    for key in rows[0]:
        table.add_column(str(key))
    for row in rows:
        table.add_row(*["" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row.values()])
    console.print(table)
