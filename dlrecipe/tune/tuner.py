"""``dlrecipe tune``: KerasTuner over the search spaces of a recipe (see docs/tuning.md).

``tune`` checks the recipe, then runs (or resumes, or extends) the search in ``<out>/<name>/tune/``:
in this process (``search``), or with ``--workers N`` through a chief and N worker processes
(``dlrecipe.tune.launch``). The trials are ``RecipeHyperModel``'s (``tune.hypermodel``), the oracle one
of KerasTuner's with dlrecipe's ``--max-time`` budget (``tune.oracle``), and the results are written by
``tune.results``. ``--retrain-best`` then trains ``best.yaml`` into a normal run folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import keras
import keras_tuner as kt

from dlrecipe.build.compile import finalize
from dlrecipe.data import source as datamod
from dlrecipe.errors import RecipeError
from dlrecipe import runs
from dlrecipe.io import dump_yaml, write_json, write_text
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.runs import check_writable
from dlrecipe.train.runtime import make_runtime, seed_everything, set_precision
from dlrecipe.train.unit import stop_on_sigint
from dlrecipe.tune.hypermodel import RecipeHyperModel
from dlrecipe.tune.launch import launch
from dlrecipe.tune.oracle import ORACLES
from dlrecipe.tune.results import (
    BUDGET_MARK,
    ENDED,
    PROJECT,
    SEARCH_RECIPE,
    Progress,
    TuneResult,
    duration,
    finish,
    objective_name,
    plain,
)


def role() -> str:
    """This process's part in a search, from KerasTuner's ``KERASTUNER_*`` environment variables.

    ``single``: oracle and trainer (the default). ``chief`` / ``worker``: KerasTuner's distributed roles,
    set by the launcher of ``--workers N`` (``tune.launch``), or by hand on several hosts.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def _objective(recipe) -> Any:
    obj = recipe.tune.objective
    if isinstance(obj, str) and obj.removeprefix("val_") == "mean_iou":  # segmentation's default metric:
        return kt.Objective(obj, direction="max")  # KerasTuner cannot infer its direction
    return obj if isinstance(obj, str) else kt.Objective(obj.name, direction=obj.direction)


def _check_objective(recipe, task: str, n_classes: int | None = None) -> None:
    name = objective_name(recipe)
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


class RecipeTuner(kt.Tuner):
    """KerasTuner's Tuner, giving the hypermodel each trial's folder for its record of epochs and time."""

    def on_trial_begin(self, trial):
        self.hypermodel.begin_trial(self.get_trial_dir(trial.trial_id), trial.trial_id, trial.hyperparameters)
        return super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.hypermodel.end_trial(str(trial.status), trial.score)


class RecipeHyperband(RecipeTuner, kt.Hyperband):
    """KerasTuner's Hyperband tuner (each round's epochs, weights carried from the round before), on our oracle."""

    def __init__(self, oracle: kt.Oracle, hypermodel: RecipeHyperModel, **kwargs):
        # Hyperband's own __init__ only makes a plain HyperbandOracle: the Tuner takes ours instead.
        kt.Tuner.__init__(self, oracle, hypermodel, **kwargs)


def _make_tuner(loaded: LoadedRecipe, hypermodel: RecipeHyperModel, folder: Path, max_trials: int | None,
                overwrite: bool = False, strategy: Any = None) -> RecipeTuner:
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
    _check_max_trials(loaded, max_trials)
    size = {"max_epochs": cfg.max_epochs or loaded.recipe.train.epochs} if cfg.tuner == "hyperband" else \
        {"max_trials": max_trials or cfg.max_trials}
    tuner_class = RecipeHyperband if cfg.tuner == "hyperband" else RecipeTuner
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner prints "Reloading Tuner from ..."
            oracle = ORACLES[cfg.tuner](objective=_objective(loaded.recipe), seed=loaded.recipe.seed, **size)
            return tuner_class(oracle, hypermodel, directory=str(folder), project_name=PROJECT, overwrite=overwrite,
                               executions_per_trial=cfg.executions_per_trial, distribution_strategy=strategy)
    except ValueError as e:
        if "optimization direction" in str(e):
            raise RecipeError.one("tune.objective", f"KerasTuner cannot tell whether to minimize or maximize "
                                  f"{_objective(loaded.recipe)!r}. Write it as {{name: ..., direction: min|max}}."
                                  ) from None
        raise


def _early_stopping(recipe) -> list:
    if recipe.tune.early_stopping is None:
        return []
    es = recipe.tune.early_stopping
    return [keras.callbacks.EarlyStopping(monitor=es.monitor or objective_name(recipe), patience=es.patience,
                                          min_delta=es.min_delta)]


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
    if this_role != "chief":  # under tune --mlflow: the search's run id and store are in the environment
        from dlrecipe.train.tracking import TrialRuns
        hypermodel.tracking = TrialRuns.from_env()
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
            tuner.oracle.watch(folder, max_time, on_end)
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
         max_time: float | None = None, workers: int = 0, console=None,
         on_checked: Callable[[], None] | None = None) -> TuneResult:
    """Run (or resume, or extend) the search; write trials.csv, objective.png and best.yaml.

    Args:
        loaded: the recipe, with its search spaces.
        out: the root of run folders; the search lives in ``<out>/<name>/tune``.
        max_trials: overrides ``tune.max_trials`` (a finished search is extended by a larger one).
        overwrite: start afresh.
        max_time: seconds after which no new trial starts.
        workers: 0 runs the search in this process; N starts a chief and N worker processes.
        console: a rich console for progress and the table, or None.
        on_checked: called once the recipe is checked, before anything is written (``tune --mlflow``).

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
    # Build the recipe at its defaults first: every error is reported before anything is written.
    with make_runtime(recipe.runtime).scope:
        RecipeHyperModel(loaded).build(kt.HyperParameters())
    if on_checked is not None:
        on_checked()
    if overwrite:
        for name in (PROJECT, "logs"):
            shutil.rmtree(folder / name, ignore_errors=True)
        for name in ("trials.csv", "objective.png", "best.yaml", BUDGET_MARK, SEARCH_RECIPE):
            (folder / name).unlink(missing_ok=True)
    created = _first_missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _run(loaded, folder, max_trials=max_trials, max_time=max_time, workers=workers, console=console)
    except BaseException:
        _remove_if_unstarted(created, folder)
        raise


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (what ``mkdir`` creates), or None."""
    missing = None
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing = path
    return missing


def _remove_if_unstarted(created: Path | None, folder: Path) -> None:
    """A search that failed before any trial began (nor any worker wrote a log) leaves no folder behind."""
    if created is None:
        return
    if any((folder / PROJECT).glob("trial_*")) or any(p.is_file() for p in (folder / "logs").glob("**/*")):
        return
    shutil.rmtree(created, ignore_errors=True)


def _run(loaded: LoadedRecipe, folder: Path, *, max_trials: int | None, max_time: float | None, workers: int,
         console) -> TuneResult:
    """The search in ``folder`` (made), then its results."""
    recipe = loaded.recipe
    this_role = role()
    say = (lambda line: plain(console, line)) if console is not None else None
    if this_role != "worker":
        (folder / BUDGET_MARK).unlink(missing_ok=True)
        (folder / runs.RETRAINED).unlink(missing_ok=True)  # the best may change: retrain again to record it
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


def retrain_best(result: TuneResult, out: Path, argv: list[str]):
    """Train ``best.yaml`` on training + validation data into a normal run folder (``train.train``).

    ``data.validation_split`` becomes 0 and ``train.epochs`` the epoch at which the best trial reached its
    best objective. Callbacks of the recipe that watch a ``val_`` value then have nothing to watch (Keras
    warns and ignores them). ``retrained.json`` in the search's folder records the run (``compare TUNE_DIR``
    reads it).
    """
    from dlrecipe.recipe.loader import load_recipe
    from dlrecipe.train.fit import train
    sets = ["data.validation_split=0"]
    if result.best_epochs is not None:
        sets.append(f"train.epochs={result.best_epochs}")
    done = train(load_recipe(result.best_path, sets), out, argv)
    write_json(result.folder / runs.RETRAINED, {"run": str(done.run_dir), "best": str(result.best_path)})
    return done
