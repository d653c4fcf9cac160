"""``dlrecipe tune``: KerasTuner over the search spaces of a recipe.

KerasTuner's oracle chooses the values; ``RecipeHyperModel.build(hp)`` asks
for one value per search space (named by its recipe path), validates the
recipe with those values and builds it exactly as ``dlrecipe train`` would.
Everything lives in ``<out>/<name>/tune/``; running again resumes.

One search runs in one of these roles:

- ``single``: this process is oracle and trainer (the default).
- ``launcher`` (``--workers N``): this process starts a chief and N workers
  (``dlrecipe.tune_launch``), supervises them and writes the results.
- ``chief`` / ``worker``: KerasTuner's distributed roles, chosen by the
  ``KERASTUNER_*`` environment variables (set by the launcher, or by hand on
  several hosts).

Decisions where the format is silent:

- ``--max-time``: no trial starts once the budget is spent; a running trial
  finishes (a trial stopped half-way would be scored on fewer epochs than the
  others). The clock starts when the first trial of the run starts (after
  imports, data loading and, with workers, process start-up).
- ``--retrain-best`` trains ``best.yaml`` with ``data.validation_split: 0``
  (training + validation data) for the number of epochs at which the best
  trial reached its best objective (as in KerasTuner's own tutorials).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import keras_tuner as kt

from dlrecipe.build import scaling
from dlrecipe.build.checks import build_all
from dlrecipe.build.compile import finalize
from dlrecipe.data import pipeline
from dlrecipe.data import source as datamod
from dlrecipe.errors import RecipeError
from dlrecipe.io import _atomic_write, dump_yaml, write_json, write_text
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.train.fit import check_writable, stop_on_sigint
from dlrecipe.train.runtime import Runtime, make_runtime, seed_everything, set_precision

TUNERS = {"random": kt.RandomSearch, "grid": kt.GridSearch, "bayesian": kt.BayesianOptimization,
          "hyperband": kt.Hyperband}
PROJECT = "keras_tuner"
TRIAL_RECORD = "dlrecipe.json"  # per trial, beside KerasTuner's trial.json: worker, epochs, seconds
SEARCH_RECIPE = "search.yaml"   # the recipe the search runs (merged, overrides applied, spaces in)
BUDGET_MARK = "budget_ended"    # written by the oracle when --max-time refused a new trial
ENDED = ("COMPLETED", "FAILED", "INVALID")


@dataclass
class TuneResult:
    folder: Path
    best_path: Path
    best_values: dict[str, Any]
    rows: list[dict[str, Any]]
    best_epochs: int | None = None
    budget_ended: bool = False
    written: list[Path] = field(default_factory=list)


def role() -> str:
    """``chief``, ``worker`` or ``single``, from KerasTuner's environment variables."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


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

    def begin_trial(self, trial_dir: str, trial_id: str) -> None:
        self.record_path = Path(trial_dir) / TRIAL_RECORD
        self.record = {"trial": trial_id, "worker": os.environ.get("KERASTUNER_TUNER_ID", "tuner0"),
                       "pid": os.getpid(), "epochs": 0, "seconds": 0.0}
        write_json(self.record_path, self.record)

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        self.stopper.check()
        if self.spaces_only:
            self.trial_recipe(hp)
            return None
        recipe = self.trial_recipe(hp).recipe
        replicas = 1
        if self.runtime is not None:  # KerasTuner cleared the session before this build
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
        started = time.perf_counter()
        inputs = pipeline.fit_inputs(ds, finalize(recipe, ds.info.task, ds.info.n_classes), ds.info.n_classes)
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
    from dlrecipe.build import resolve
    return [resolve.callback(cb, f"train.callbacks[{i}]") for i, cb in enumerate(recipe.train.callbacks)]


def _objective(cfg) -> Any:
    obj = cfg.tune.objective
    if isinstance(obj, str) and obj.removeprefix("val_") == "mean_iou":  # segmentation's default metric:
        return kt.Objective(obj, direction="max")  # KerasTuner cannot infer its direction
    return obj if isinstance(obj, str) else kt.Objective(obj.name, direction=obj.direction)


def _objective_name(recipe) -> str:
    obj = recipe.tune.objective
    return obj if isinstance(obj, str) else obj.name


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


def _check_max_trials(loaded: LoadedRecipe, max_trials: int | None) -> None:
    if loaded.recipe.tune.tuner == "hyperband" and max_trials is not None:
        raise RecipeError.one("--max-trials", "Hyperband sets its own number of trials from tune.max_epochs; "
                              "--max-trials applies to random, grid and bayesian. Use --max-time to bound it.")


def _make_tuner(loaded: LoadedRecipe, hypermodel: RecipeHyperModel, folder: Path, max_trials: int | None,
                overwrite: bool = False, strategy: Any = None):
    """The KerasTuner tuner of the recipe, reloading the search in ``folder`` when there is one.

    KerasTuner reloads only when ``<tuner id>.json`` exists, which a tuner writes after its first trial: a
    search killed in its first trial, or resumed under another tuner id (a single-process search extended
    with workers), would start from scratch and overwrite the trials. When the oracle's file exists, an
    empty tuner file (the state of a KerasTuner ``Tuner`` is empty) makes it reload.
    """
    cfg = loaded.recipe.tune
    project = folder / PROJECT
    tuner_file = project / f"{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}.json"
    if not overwrite and (project / "oracle.json").is_file() and not tuner_file.is_file():
        write_text(tuner_file, "{}")
    common = dict(hypermodel=hypermodel, objective=_objective(loaded.recipe), seed=loaded.recipe.seed,
                  directory=str(folder), project_name=PROJECT, overwrite=overwrite,
                  executions_per_trial=cfg.executions_per_trial, distribution_strategy=strategy)
    cls = TUNERS[cfg.tuner]

    class RecipeTuner(cls):  # gives the hypermodel the trial's folder, for its record of epochs and time
        def on_trial_begin(self, trial):
            hypermodel.begin_trial(self.get_trial_dir(trial.trial_id), trial.trial_id)
            return super().on_trial_begin(trial)

    _check_max_trials(loaded, max_trials)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner prints "Reloading Tuner from ..."
            if cfg.tuner == "hyperband":
                tuner = RecipeTuner(max_epochs=cfg.max_epochs or loaded.recipe.train.epochs, **common)
            else:
                tuner = RecipeTuner(max_trials=max_trials or cfg.max_trials, **common)
    except ValueError as e:
        if "optimization direction" in str(e):
            raise RecipeError.one("tune.objective", f"KerasTuner cannot tell whether to minimize or maximize "
                                  f"{_objective(loaded.recipe)!r}. Write it as {{name: ..., direction: min|max}}."
                                  ) from None
        raise
    if role() != "worker":
        # A trial whose trial.json says COMPLETED has ended, whatever the oracle's file says (a process
        # stopped between the two writes): reloading must not queue it to run again.
        oracle = tuner.oracle
        oracle._retry_queue = [t for t in oracle._retry_queue if str(oracle.trials[t].status) != "COMPLETED"]
    return tuner


def _early_stopping(recipe) -> list:
    if recipe.tune.early_stopping is None:
        return []
    es = recipe.tune.early_stopping
    return [keras.callbacks.EarlyStopping(monitor=es.monitor or _objective_name(recipe), patience=es.patience,
                                          min_delta=es.min_delta)]


# --------------------------------------------------------------------------- the oracle's hooks


def _instrument_oracle(oracle, folder: Path, max_time: float | None, on_end: Callable | None) -> None:
    """Refuse new trials ``max_time`` seconds after the first one (and mark it), report ended trials to ``on_end``.

    Works in the single process and in the chief, where workers reach the oracle through gRPC. A
    tuner that already holds a trial (a restarted worker) gets it again: the running trial finishes.
    The clock starts when the first trial of this run starts, so start-up (imports, data, starting
    worker processes) is not counted and at least one trial runs.
    """
    create, end = oracle.create_trial, oracle.end_trial
    clock: dict[str, float] = {}

    def create_trial(tuner_id):
        started = clock.setdefault("started", time.time())
        if max_time is not None and time.time() - started >= max_time and tuner_id not in oracle.ongoing_trials:
            write_text(folder / BUDGET_MARK, f"{time.time()}\n")
            oracle.tuner_ids.discard(tuner_id)  # as KerasTuner does when it stops a tuner: lets the chief exit
            return kt.engine.trial.Trial(oracle.get_space(), trial_id="stopped",
                                         status=kt.engine.trial.TrialStatus.STOPPED)
        return create(tuner_id)

    def end_trial(trial):
        result = end(trial)
        # KerasTuner saves the oracle before it drops the trial from its ongoing trials, and a chief never
        # saves it again once its workers are told to stop: the saved oracle would still list the trial as
        # running, and a resumed or extended search would run it again.
        oracle.save()
        if on_end is not None:
            on_end(oracle.trials[trial.trial_id])
        return result

    oracle.create_trial, oracle.end_trial = create_trial, end_trial


# --------------------------------------------------------------------------- progress


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def read_record(project: Path, trial_id: str) -> dict[str, Any]:
    try:
        return json.loads((project / f"trial_{trial_id}" / TRIAL_RECORD).read_text())
    except (OSError, ValueError):
        return {}


class Progress:
    """One line per ended trial: its number, values, objective, the best so far, epochs, time, elapsed."""

    def __init__(self, loaded: LoadedRecipe, project: Path, total: int | None, direction: str, emit: Callable,
                 show_worker: bool = False):
        self.loaded, self.project, self.total, self.direction, self.emit = loaded, project, total, direction, emit
        self.show_worker = show_worker
        self.started = time.time()
        self.best: float | None = None
        self.done = 0

    def count_existing(self, trials) -> None:
        """Trials ended before this run (a resumed search) count in the numbering and the best."""
        for t in trials:
            if str(t.status) in ENDED:
                self.done += 1
                self._update_best(t.score if str(t.status) == "COMPLETED" else None)

    def _update_best(self, score) -> None:
        if score is None or not math.isfinite(score):
            return
        if self.best is None or (score > self.best if self.direction == "max" else score < self.best):
            self.best = score

    def trial_ended(self, trial_id: str, status: str, values: dict, score, message: str | None = None) -> None:
        self.done += 1
        self._update_best(score if status == "COMPLETED" else None)
        record = read_record(self.project, trial_id)
        shown = ", ".join(f"{p}={_fmt(self.loaded.spaces[p].tidy(values.get(p)))}" for p in self.loaded.spaces)
        head = f"Trial {self.done}/{self.total}" if self.total else f"Trial {self.done}"
        name = _objective_name(self.loaded.recipe)
        if status == "COMPLETED" and score is not None:
            result = f"{name} {_fmt(score)} (best {_fmt(self.best)})"
        else:
            last = ((message or "").strip().splitlines()[-1:] or ["no message"])[0]
            last = re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", last)  # dlrecipe.errors.RecipeError: -> RecipeError:
            result = f"{status.lower()}: {last} (traceback in trial_{trial_id}/trial.json)"
        cost = []
        if record.get("epochs") is not None and record.get("seconds") is not None:
            cost.append(f"{record['epochs']} epoch(s) in {record['seconds']:.1f}s")
        if self.show_worker:
            cost.append(f"on {record.get('worker', '?')}")
        cost.append(f"elapsed {duration(time.time() - self.started)}")
        self.emit(f"{head} [{trial_id}] {shown} | {result} | {', '.join(cost)}")


def plain(console, line: str) -> None:
    """One unwrapped, unstyled line (paths and recipe paths contain brackets rich would read as markup)."""
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# --------------------------------------------------------------------------- the search


def prepare(loaded: LoadedRecipe, out: Path, max_trials: int | None) -> Path:
    """Every check that needs no trial; returns the search folder. Builds the recipe at its defaults."""
    recipe = loaded.recipe
    if not loaded.spaces:
        raise RecipeError.one("", "The recipe has no search space, so there is nothing to tune. Make a value a "
                              "space, e.g. units: {choice: [64, 128], default: 128}.")
    _check_max_trials(loaded, max_trials)
    check_writable(out)
    set_precision(recipe.runtime.mixed_precision)
    seed_everything(recipe.seed, recipe.runtime.deterministic)
    info = datamod.peek(recipe.data, recipe.seed)
    _check_objective(recipe, info.task, info.n_classes)
    return Path(out) / recipe.name / "tune"


def search(loaded: LoadedRecipe, folder: Path, *, max_trials: int | None, max_time: float | None,
           emit: Callable[[str], None] | None, status=None, overwrite: bool = False) -> Any:
    """Run (or resume) the search in this process, in the role the environment gives; returns the tuner."""
    recipe = loaded.recipe
    this_role = role()
    hypermodel = RecipeHyperModel(loaded, spaces_only=this_role == "chief")
    rt = make_runtime(recipe.runtime)
    hypermodel.runtime = rt
    # KerasTuner clears the session before each trial, which would leave a strategy scope entered here
    # unbalanced: it enters the strategy itself around each build and fit.
    with contextlib.nullcontext() if rt.strategy is not None else rt.scope:
        tuner = _make_tuner(loaded, hypermodel, folder, max_trials, overwrite, strategy=rt.strategy)
        if this_role != "worker":
            progress = None
            if emit is not None:
                progress = Progress(loaded, folder / PROJECT, tuner.oracle.max_trials,
                                    tuner.oracle.objective.direction, emit, show_worker=this_role == "chief")
                progress.count_existing(tuner.oracle.trials.values())

            def on_end(trial):
                if progress is not None and str(trial.status) in ENDED:
                    progress.trial_ended(trial.trial_id, str(trial.status), trial.hyperparameters.values,
                                         trial.score, trial.message)
            _instrument_oracle(tuner.oracle, folder, max_time, on_end)
        if status is not None:
            hypermodel.status = status.update
        # KerasTuner prints the traceback of every failed trial (its DEBUG flag is on by default); the
        # progress line shows the error, and the trial's trial.json keeps the traceback.
        from keras_tuner.src import config as kt_config
        kt_config.DEBUG = False
        with stop_on_sigint(hypermodel.stopper):
            tuner.search(epochs=recipe.train.epochs, extra_callbacks=_early_stopping(recipe), verbose=0)
        hypermodel.stopper.check()  # a Ctrl-C after the last trial's last batch
    return tuner


def tune(loaded: LoadedRecipe, out: Path, *, max_trials: int | None = None, overwrite: bool = False,
         max_time: float | None = None, workers: int = 0, console=None) -> TuneResult:
    """Run (or resume, or extend) the search; write trials.csv, objective.png and best.yaml.

    Args:
        loaded: the recipe, with its search spaces.
        out: the root of run folders; the search lives in ``<out>/<name>/tune``.
        max_trials: overrides ``tune.max_trials`` (a finished search is extended by a larger one).
        overwrite: start afresh.
        max_time: seconds after which no new trial starts.
        workers: 0 runs the search in this process; N starts a chief and N worker processes.
        console: a rich console for progress and the table, or None.

    Raises:
        RecipeError: bad recipe, no search spaces, or an objective that training does not log.
    """
    recipe = loaded.recipe
    folder = prepare(loaded, out, max_trials)
    this_role = role()
    if workers and this_role != "single":
        raise RecipeError.one("--workers", f"KERASTUNER_TUNER_ID and KERASTUNER_ORACLE_IP are set (this process is "
                              f"a {this_role}), and --workers starts its own chief and workers. Unset them, or "
                              "leave out --workers.")
    if overwrite and this_role == "worker":
        raise RecipeError.one("--overwrite", "This process is a worker (KERASTUNER_TUNER_ID is set and is not "
                              "chief): only the chief may start the search afresh. Leave out --overwrite here.")
    say = (lambda line: plain(console, line)) if console is not None else None
    # Build the recipe at its defaults first: every error is reported before anything is written.
    with make_runtime(recipe.runtime).scope:
        RecipeHyperModel(loaded).build(kt.HyperParameters())
    if overwrite:
        for name in (PROJECT, "logs"):
            shutil.rmtree(folder / name, ignore_errors=True)
        for name in ("trials.csv", "objective.png", "best.yaml", BUDGET_MARK, SEARCH_RECIPE):
            (folder / name).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    if this_role != "worker":
        (folder / BUDGET_MARK).unlink(missing_ok=True)
    if say:
        resumed = (folder / PROJECT / "oracle.json").is_file()
        if this_role != "single":
            say(f"KerasTuner {this_role} {os.environ.get('KERASTUNER_TUNER_ID')}, oracle at "
                f"{os.environ.get('KERASTUNER_ORACLE_IP')}:{os.environ.get('KERASTUNER_ORACLE_PORT')}")
        say(f"{'Resuming' if resumed else 'Starting'} the search of {len(loaded.spaces)} space(s) with "
            f"{recipe.tune.tuner} in {folder}" + (f", {workers} worker process(es)" if workers else "")
            + (f", for at most {duration(max_time)}" if max_time is not None else ""))
    started = time.time()
    try:
        if workers:
            from dlrecipe.tune.launch import launch
            # In this process: the objective's direction and the tuner's arguments are checked before any start.
            oracle = _make_tuner(loaded, RecipeHyperModel(loaded, spaces_only=True), folder, max_trials).oracle
            progress = Progress(loaded, folder / PROJECT, oracle.max_trials, oracle.objective.direction,
                                say or (lambda line: None), show_worker=True)
            progress.count_existing(oracle.trials.values())
            write_text(folder / SEARCH_RECIPE, dump_yaml(loaded.raw))
            launch(folder, workers, max_trials=max_trials, max_time=max_time, progress=progress, emit=say)
            tuner = _make_tuner(loaded, RecipeHyperModel(loaded, spaces_only=True), folder, max_trials)
        else:
            with _live_status(console) as status:
                tuner = search(loaded, folder, max_trials=max_trials, max_time=max_time, emit=say, status=status)
    except KeyboardInterrupt:
        if say:
            say(f"Interrupted. Finished trials are kept in {folder}; run the same command to resume.")
        raise
    if this_role == "worker":
        return TuneResult(folder, folder / "best.yaml", {}, [])
    return finish(loaded, tuner, folder, console, budget_ended=(folder / BUDGET_MARK).is_file(),
                  seconds=time.time() - started, show_worker=bool(workers) or this_role == "chief")


@contextlib.contextmanager
def _live_status(console):
    """A transient line with the running trial's epoch, on a terminal only (logs get the per-trial lines)."""
    if console is None or not console.is_terminal:
        yield None
        return
    status = console.status("Trial running")
    status.start()

    class Updater:
        def update(self, text: str) -> None:
            status.update(f"Trial running: {text}")
    try:
        yield Updater()
    finally:
        status.stop()


def finish(loaded: LoadedRecipe, tuner, folder: Path, console, *, budget_ended: bool, seconds: float,
           show_worker: bool = False) -> TuneResult:
    """The results from the oracle: trials.csv, objective.png, best.yaml, the table and the summary."""
    recipe = loaded.recipe
    oracle = tuner.oracle
    rows = trial_rows(oracle.trials, loaded, folder / PROJECT, show_worker)
    write_text(folder / "trials.csv", _csv(rows))
    written = [folder / "trials.csv"]
    png = folder / "objective.png"
    if plot_objective(rows, _objective_name(recipe), oracle.objective.direction, png):
        written.append(png)
    best_trials = [t for t in oracle.get_best_trials(1) if str(t.status) == "COMPLETED"]
    if console is not None:
        print_trials(rows, console)
    done = sum(1 for r in rows if r["status"] == "COMPLETED")
    if not best_trials:
        from dlrecipe.tune.launch import SearchFailed
        raise SearchFailed(f"No trial completed (tracebacks in {folder / PROJECT}/trial_*/trial.json). Fix the "
                           "cause (see the trial lines above); the same command with --overwrite starts afresh.")
    best = best_trials[0]
    values = {p: loaded.spaces[p].tidy(best.hyperparameters.get(p)) for p in loaded.spaces}
    fixed = loaded.with_values(values)
    best_path = folder / "best.yaml"
    write_text(best_path, f"# Best of {done} trial(s): trial {best.trial_id}, {_objective_name(recipe)} = "
               f"{best.score}; train it with: dlrecipe train {best_path}\n" + dump_yaml(fixed.fixed_raw()))
    written.append(best_path)
    best_epochs = int(best.hyperparameters.values.get("tuner/initial_epoch", 0)) + int(best.best_step or 0) + 1
    if console is not None:
        total = oracle.max_trials
        why = ("the --max-time budget ended the search" if budget_ended else
               "the search is complete" if total is None or done >= total else
               "the search space is exhausted or trials failed")
        plain(console, f"{done} trial(s) completed{f' of {total}' if total else ''} in {duration(seconds)}: {why}. "
              f"Best: trial {best.trial_id}, {_objective_name(recipe)} {_fmt(best.score)}.")
        plain(console, f"Wrote {', '.join(p.name for p in written)} in {folder}")
    return TuneResult(folder, best_path, values, rows, best_epochs, budget_ended, written)


def retrain_best(result: TuneResult, out: Path, argv: list[str]):
    """Train ``best.yaml`` on training + validation data into a normal run folder (``train.train``).

    ``data.validation_split`` becomes 0 and ``train.epochs`` the epoch at which the best trial reached its
    best objective. Callbacks of the recipe that watch a ``val_`` value then have nothing to watch (Keras
    warns and ignores them).
    """
    from dlrecipe.recipe.loader import load_recipe
    from dlrecipe.train.fit import train
    sets = ["data.validation_split=0"]
    if result.best_epochs is not None:
        sets.append(f"train.epochs={result.best_epochs}")
    return train(load_recipe(result.best_path, sets), out, argv)


def trial_rows(trials: dict, loaded: LoadedRecipe, project: Path, show_worker: bool = False) -> list[dict[str, Any]]:
    """One row per trial, in the order of their ids: status, values, objective, epochs, seconds."""
    rows = []
    for trial_id in sorted(trials, key=lambda t: (int(t) if t.isdigit() else math.inf, t)):
        trial = trials[trial_id]
        status = str(trial.status)
        row = {"trial": trial_id, "status": status if status in ENDED else "UNFINISHED"}
        for path, space in loaded.spaces.items():
            row[path] = space.tidy(trial.hyperparameters.values.get(path))
        row["objective"] = trial.score if status == "COMPLETED" else None
        record = read_record(project, trial_id)
        row["epochs"] = record.get("epochs")
        seconds = record.get("seconds")
        row["seconds"] = round(seconds, 2) if seconds is not None else None
        if show_worker:
            row["worker"] = record.get("worker")
        rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def plot_objective(rows: list[dict[str, Any]], name: str, direction: str, path: Path) -> bool:
    """``objective.png``: the objective of each completed trial and the best so far, written atomically.

    The plotted series are also stored in the PNG's ``dlrecipe`` text chunk (JSON), read back from the
    plot's own lines, so what the image shows can be checked against trials.csv. False if nothing to plot.
    """
    points = [(r["trial"], r["objective"]) for r in rows if r["objective"] is not None]
    if not points:
        return False
    from matplotlib.figure import Figure
    xs = list(range(1, len(points) + 1))
    ys = [float(v) for _, v in points]
    best = []
    for y in ys:
        best.append(y if not best else (max if direction == "max" else min)(best[-1], y))
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    trials_line, = ax.plot(xs, ys, "o", label="trial")
    best_line, = ax.step(xs, best, where="post", color="tab:orange", label=f"best so far ({direction})")
    ax.set_xticks(xs, [t for t, _ in points], rotation=90 if len(xs) > 20 else 0)
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per trial")
    ax.grid(alpha=0.3)
    ax.legend()
    meta = {"trial": [t for t, _ in points], "objective": [float(v) for v in trials_line.get_ydata()],
            "best_so_far": [float(v) for v in best_line.get_ydata()]}
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"dlrecipe": json.dumps(meta)})
    _atomic_write(path, buf.getvalue())
    return True


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


def run_child(spec: dict) -> int:
    """A chief or worker started by the launcher (``python -m dlrecipe.tune_launch``): run the search."""
    from dlrecipe.recipe.loader import load_recipe
    loaded = load_recipe(Path(spec["recipe"]))
    folder = Path(spec["folder"])
    if role() != "chief":  # the chief trains nothing (and Keras's seeding would import TensorFlow)
        set_precision(loaded.recipe.runtime.mixed_precision)
        seed_everything(loaded.recipe.seed, loaded.recipe.runtime.deterministic)

    def emit(line):
        print(line, flush=True)
    search(loaded, folder, max_trials=spec.get("max_trials"), max_time=spec.get("max_time"), emit=emit)
    print(f"{role()} {os.environ.get('KERASTUNER_TUNER_ID')} done", flush=True)
    sys.stdout.flush()
    return 0
