"""``train`` (one process, or --workers N) and ``tune``, with ``--retrain-best``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrecipe.api.common import in_recipe
from dlrecipe.backend import import_keras_quietly
from dlrecipe.build.safety import allow_artifacts as allow
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe



@dataclass
class Trained:
    """What ``train`` did: the recipe, the run folder, the last history row, and the evaluation when asked for."""

    loaded: LoadedRecipe
    run_dir: Path | None
    last: dict[str, Any] = field(default_factory=dict)
    group: Any = None            # an ensemble's or a cross-validation's result (members, folds)
    workers: int | None = None
    model: Any = None            # the trained model and its data, for evaluate() without reading them again
    dataset: Any = None
    evaluation: Any = None       # train(..., evaluate=True, mlflow=True) evaluates inside the MLflow run


def train(recipe: Path | None, sets: list[str], out: Path, *, resume: Path | None = None, evaluate: bool = False,
          workers: int | None = None, argv: list[str] | None = None, allow_artifacts: bool = False,
          seeds: int | None = None, mlflow: bool = False, verbose: int | str = "auto") -> Trained:
    """Train ``recipe`` into ``<out>/<name>/<timestamp>/``, or continue the run ``resume``.

    ``seeds`` N trains the recipe with seeds seed..seed+N-1 into ``<out>/<name>/<timestamp>/seed-<s>/``
    (``train.seeds``); ``resume`` may be such a group, whose unfinished seeds are trained.

    ``evaluate`` is only checked here (a cross-validation has no model to evaluate): call ``evaluate`` after,
    unless ``mlflow``, where the evaluation is done here, logged, and kept in ``Trained.evaluation``.
    ``mlflow`` logs the run to MLflow (``train.tracking``); ``verbose`` is Keras's, or ``"line"`` (one line
    per epoch).
    Raises ``train.unit.TrainingStopped`` when training fails (NaN, Ctrl-C) after the run folder was made.

    Example:
        >>> done = train(Path("recipes/quickstart.yaml"), ["train.epochs=1"], Path("runs"))
        >>> done.run_dir, done.last["val_accuracy"]
    """
    if (recipe is None) == (resume is None):
        raise RecipeError.one("RECIPE", "Give a recipe to train, or --resume RUN to continue a run (not both).")
    allow(allow_artifacts)
    argv = list(argv or [])
    from dlrecipe import runs
    if resume is not None and runs.is_group(resume):
        return _train_seeds(None, sets, out, resume, seeds, workers, argv, verbose)
    if seeds is not None and mlflow:
        raise RecipeError.one("--mlflow", "--mlflow logs one run; --seeds trains several. Leave out one of them.")
    if seeds is not None:
        if resume is not None:
            raise RecipeError.one("--seeds", f"--resume {resume} continues one run, which has one seed. Fix: leave "
                                  "out --seeds (--resume of a seed group resumes each of its seeds).")
        return _train_seeds(recipe, sets, out, None, seeds, workers, argv, verbose)
    if resume is None:
        loaded = load_recipe(recipe, sets)
    else:
        import_keras_quietly()
        from dlrecipe.train.resume import load_for_resume
        loaded = load_for_resume(resume, sets)
    if evaluate and loaded.recipe.train.cross_validation > 1:
        raise RecipeError.one("--evaluate", "A cross-validation run has no model to evaluate: it reports each "
                              "fold's validation metrics (cv.json). Leave out --evaluate.")
    if workers is not None:
        if mlflow:
            raise RecipeError.one("--mlflow", "--mlflow logs a run trained in this process; --workers trains in "
                                  "several. Leave out one of them.")
        return _train_workers(loaded, recipe, sets, out, resume, workers)
    import_keras_quietly()
    from dlrecipe.train.fit import train as run_train
    if mlflow:
        from dlrecipe.train import tracking
        tracking.require()
        with tracking.tracked_run(loaded, out) as tracked:
            result = in_recipe(loaded, run_train, loaded, out, argv, resume=resume, verbose=verbose,
                               callbacks=tracked.callbacks)
            tracked.folder = result.run_dir
            done = _trained(loaded, result)
            if evaluate:  # inside the MLflow run: the test metrics and the plots are logged with it
                from dlrecipe.api.run_folders import evaluate_run
                done.evaluation = evaluate_run(done.run_dir, model=done.model, dataset=done.dataset)
                tracking.log_test_metrics(done.evaluation[1])
        return done
    return _trained(loaded, in_recipe(loaded, run_train, loaded, out, argv, resume=resume, verbose=verbose))


def _trained(loaded: LoadedRecipe, result: Any) -> Trained:
    if hasattr(result, "kind"):  # an ensemble or a cross-validation
        return Trained(loaded, result.run_dir, group=result, model=result.model, dataset=result.dataset)
    return Trained(loaded, result.run_dir, result.history[-1] if result.history else {}, model=result.model,
                   dataset=result.dataset)


def _train_seeds(recipe: Path | None, sets: list[str], out: Path, resume: Path | None, n: int | None,
                 workers: int | None, argv: list[str], verbose: int | str = "auto") -> Trained:
    """``train --seeds N`` (a new group) or ``train --resume GROUP``."""
    if resume is not None and n is not None:
        raise RecipeError.one("--seeds", f"--resume {resume} resumes the seeds the group was started with. Fix: "
                              "leave out --seeds.")
    if resume is None:
        loaded = load_recipe(recipe, sets)
    else:
        from dlrecipe.train.seeds import load_group
        loaded = load_group(resume, sets)
    from dlrecipe.train.seeds import check_request
    check_request(loaded.recipe, n if resume is None else 1, workers)
    import_keras_quietly()
    from dlrecipe.train.seeds import train_seeds
    result = in_recipe(loaded, train_seeds, loaded, out, argv, n=n, resume=resume, sets=sets, verbose=verbose)
    return Trained(loaded, result.run_dir, group=result)


def _train_workers(loaded: LoadedRecipe, recipe: Path | None, sets: list[str], out: Path, resume: Path | None,
                   n: int) -> Trained:
    """``train --workers N``: launch N local workers, or be one of them (DLRECIPE_PROCESS_ID set)."""
    from dlrecipe.train import workers as wk
    process = wk.from_env(n)
    if process is not None:  # one worker: join the cluster before JAX starts, then train this shard
        wk.join(process, loaded.recipe.train.batch_size)
        import_keras_quietly()
        from dlrecipe.train.fit import train as run_train
        run_dir = os.environ.get(wk.RUN_DIR)
        result = in_recipe(loaded, run_train, loaded, out, wk.command_line(), resume=resume, verbose=2,
                            process=process, run_dir=Path(run_dir) if run_dir else None)
        # Started by hand (several hosts), the chief says where the run is; under the launcher, the launcher does.
        return Trained(loaded, result.run_dir if process.chief and not run_dir else None, workers=n)
    import_keras_quietly()
    import keras

    from dlrecipe import runs
    from dlrecipe.train.unit import TrainingStopped
    wk.check_request(n, loaded.recipe.train.batch_size, keras.backend.backend())
    if resume is None:
        runs.check_writable(out)
    run_dir = Path(resume or runs.new_run_dir(out, loaded.recipe.name))
    args = ["train", *([str(recipe)] if recipe is not None else []), *[a for s in sets for a in ("--set", s)],
            "--out", str(out), *(["--resume", str(resume)] if resume is not None else []), "--workers", str(n)]
    import sys
    outcome = wk.launch(args, n, run_dir, sys.argv, new_run=resume is None, echo=_echo)
    if outcome.exit_code:
        raise TrainingStopped(outcome.message, run_dir, outcome.exit_code)
    rows = runs.read_history(run_dir / runs.HISTORY)
    return Trained(loaded, run_dir, rows[-1] if rows else {}, workers=n)


def _echo(line: str) -> None:
    from dlrecipe.console import echo
    echo(line)


# --------------------------------------------------------------------------- tune


def tune(recipe: Path, sets: list[str], out: Path, *, max_trials: int | None = None, max_time: str | None = None,
         workers: int = 0, overwrite: bool = False, console: Any = None, allow_artifacts: bool = False,
         mlflow: bool = False):
    """Search the recipe's search spaces with KerasTuner in ``<out>/<name>/tune/`` (resumes a stopped search).

    ``mlflow``: the search is an MLflow run, each trial a nested run (also in ``workers`` processes).

    Raises ``tune.launch.SearchFailed`` when the search's processes fail.

    Example:
        >>> result = tune(Path("recipes/tune_quickstart.yaml"), [], Path("runs"), max_trials=2)
        >>> result.best_path, result.best_values
    """
    from dlrecipe.tune.results import parse_duration
    allow(allow_artifacts)
    seconds = parse_duration(max_time) if max_time is not None else None
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.tune.tuner import tune as run_tune
    if not mlflow:
        return in_recipe(loaded, run_tune, loaded, out, max_trials=max_trials, overwrite=overwrite, max_time=seconds,
                         workers=workers, console=console)
    from dlrecipe.train import tracking
    tracking.require()
    with tracking.tracked_run(loaded, out, search=True) as tracked:
        result = in_recipe(loaded, run_tune, loaded, out, max_trials=max_trials, overwrite=overwrite,
                           max_time=seconds, workers=workers, console=console, on_checked=tracked.start)
        tracked.folder = result.folder
    return result


def retrain_best(result: Any, out: Path, argv: list[str]):
    """Train a search's best.yaml on training + validation data into a run folder (``tune --retrain-best``)."""
    from dlrecipe.tune.tuner import retrain_best as run_retrain
    return run_retrain(result, out, argv)
