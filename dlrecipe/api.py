"""Every command as a plain Python function: what the CLI, tests and notebooks call.

Each function takes what the command line gives (paths, ``--set`` overrides, flags), does the work and
returns a result object; it prints nothing itself (``dlrecipe.console`` does) and raises ``RecipeError``
for bad input. Stages are imported inside the functions, so importing this module imports no TensorFlow.
See docs/commands.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dlrecipe.backend import import_keras_quietly
from dlrecipe.build.safety import allow_artifacts as allow
from dlrecipe.errors import Problem, Problems, RecipeError
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe

Report = Callable[[list[Problem], dict[str, str]], None]


def with_lines(error: RecipeError, lines: dict[str, str]) -> RecipeError:
    """``error`` with the YAML line of each problem's recipe path filled in."""
    found = Problems(lines=lines)
    found.extend(error)
    return RecipeError(found.items)


def _in_recipe(loaded: LoadedRecipe, fn: Callable, *args, **kwargs):
    """Call ``fn``; problems it raises (data, model, training) get the YAML line of their recipe path."""
    try:
        return fn(*args, **kwargs)
    except RecipeError as e:
        raise with_lines(e, loaded.lines) from None


# --------------------------------------------------------------------------- validate, show


@dataclass
class Validation:
    """What ``validate`` found: the problem count, and for a valid recipe its model, data facts and warnings."""

    problems: int
    model: Any = None
    info: Any = None
    warnings: list[str] = field(default_factory=list)


def validate(recipe: Path, sets: list[str], report: Report, allow_artifacts: bool = False) -> Validation:
    """Check every key, name and argument of ``recipe`` and build its model, without loading data or training.

    Three passes, each handing its problems to ``report`` as soon as it is done: the structure (before
    TensorFlow is imported, so these print at once), the Keras names and arguments, then the model built
    from the data's shape (read from file headers only).

    Example:
        >>> found = validate(Path("recipes/quickstart.yaml"), [], report=lambda problems, lines: None)
        >>> found.problems, found.model.count_params() > 0
    """
    from dlrecipe.recipe.loader import inspect_recipe
    allow(allow_artifacts)
    found = inspect_recipe(recipe, sets)
    if found.problems:
        report(found.problems, found.lines)
    if found.fixed is None:
        return Validation(len(found.problems))
    import_keras_quietly()
    from dlrecipe.build.checks import keras_problems
    problems = keras_problems(found.fixed, found.problems)
    report(problems, found.lines)
    total = len(found.problems) + len(problems)
    if total or found.loaded is None:
        return Validation(total)
    import keras
    keras.backend.clear_session()  # the checks above built layers: restart Keras's name counters
    try:
        from dlrecipe.inspect.validation import build_for_validation
        model, info, warnings = _in_recipe(found.loaded, build_for_validation, found.loaded)
    except RecipeError as e:
        report(e.problems, found.lines)
        return Validation(len(e.problems))
    return Validation(0, model, info, warnings)


def show(recipe: Path, sets: list[str]) -> LoadedRecipe:
    """The loaded recipe (``loaded.resolved()`` is what ``dlrecipe show`` prints)."""
    return load_recipe(recipe, sets)


# --------------------------------------------------------------------------- train


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


def train(recipe: Path | None, sets: list[str], out: Path, *, resume: Path | None = None, evaluate: bool = False,
          workers: int | None = None, argv: list[str] | None = None, allow_artifacts: bool = False) -> Trained:
    """Train ``recipe`` into ``<out>/<name>/<timestamp>/``, or continue the run ``resume``.

    ``evaluate`` is only checked here (a cross-validation has no model to evaluate): call ``evaluate`` after.
    Raises ``train.unit.TrainingStopped`` when training fails (NaN, Ctrl-C) after the run folder was made.

    Example:
        >>> done = train(Path("recipes/quickstart.yaml"), ["train.epochs=1"], Path("runs"))
        >>> done.run_dir, done.last["val_accuracy"]
    """
    if (recipe is None) == (resume is None):
        raise RecipeError.one("RECIPE", "Give a recipe to train, or --resume RUN to continue a run (not both).")
    allow(allow_artifacts)
    argv = list(argv or [])
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
        return _train_workers(loaded, recipe, sets, out, resume, workers)
    import_keras_quietly()
    from dlrecipe.train.fit import train as run_train
    result = _in_recipe(loaded, run_train, loaded, out, argv, resume=resume)
    if hasattr(result, "kind"):  # an ensemble or a cross-validation
        return Trained(loaded, result.run_dir, group=result, model=result.model, dataset=result.dataset)
    return Trained(loaded, result.run_dir, result.history[-1] if result.history else {}, model=result.model,
                   dataset=result.dataset)


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
        result = _in_recipe(loaded, run_train, loaded, out, wk.command_line(), resume=resume, verbose=2,
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
         workers: int = 0, overwrite: bool = False, console: Any = None, allow_artifacts: bool = False):
    """Search the recipe's search spaces with KerasTuner in ``<out>/<name>/tune/`` (resumes a stopped search).

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
    return _in_recipe(loaded, run_tune, loaded, out, max_trials=max_trials, overwrite=overwrite, max_time=seconds,
                      workers=workers, console=console)


def retrain_best(result: Any, out: Path, argv: list[str]):
    """Train a search's best.yaml on training + validation data into a run folder (``tune --retrain-best``)."""
    from dlrecipe.tune.tuner import retrain_best as run_retrain
    return run_retrain(result, out, argv)


# --------------------------------------------------------------------------- inspect


def _output_file(out: Path, suffix: str) -> None:
    from dlrecipe.inspect.outfile import check_out_file
    check_out_file(out, suffix)


def _write(write: Callable[[], Any], out: Path) -> None:
    from dlrecipe.inspect.outfile import write_out
    write_out(write, out)


def lr(recipe: Path, sets: list[str], out: Path, replicas: int = 1):
    """The learning rate of every step of ``recipe``, printed per epoch by the CLI and plotted to ``out``.

    Example:
        >>> rates = lr(Path("recipes/quickstart.yaml"), [], Path("lr.png"))
        >>> rates.per_step[:3]
    """
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.lr import learning_rates, plot_learning_rates
    _output_file(out, ".png")
    rates = _in_recipe(loaded, learning_rates, loaded, replicas)
    _write(lambda: plot_learning_rates(rates, loaded.recipe.name, out), out)
    return loaded, rates


def augment_preview(recipe: Path, sets: list[str], out: Path | None, n: int = 8, rows: int = 3,
                    allow_artifacts: bool = False) -> Path:
    """Write a PNG grid of the first ``n`` training images and ``rows`` augmented versions of them; its path."""
    allow(allow_artifacts)
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.preview import augment_preview as run_preview
    from dlrecipe.inspect.preview import default_out
    out = out or default_out(loaded)
    _output_file(out, ".png")
    _in_recipe(loaded, _write, lambda: run_preview(loaded, out, n=n, rows=rows), out)
    return out


def inspect_init(recipe: Path, sets: list[str], batch: int = 256, out: Path | None = None,
                 allow_artifacts: bool = False):
    """Per layer statistics of the untrained model on ``batch`` training examples; also as JSON to ``out``."""
    allow(allow_artifacts)
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.init import inspect_init as run_inspect
    from dlrecipe.io import write_json
    if out is not None:
        _output_file(out, ".json")
    report = _in_recipe(loaded, run_inspect, loaded, batch)
    if out is not None:
        _write(lambda: write_json(out, report.as_json()), out)
    return loaded, report


# --------------------------------------------------------------------------- evaluate, export (run folders)


def evaluate(run: Path, model: Any = None, dataset: Any = None):
    """Evaluate the run on its test split: ``(run_dir, metrics, written files)``.

    ``model`` and ``dataset``, when given (``train --evaluate``), are the ones training just used.

    Example:
        >>> run_dir, metrics, written = evaluate(Path("runs/quickstart"))
        >>> metrics["accuracy"]
    """
    import_keras_quietly()
    return evaluate_run(run, model=model, dataset=dataset)


def export(run: Path, formats: list[str]):
    """Export the run in ``formats`` (default: its recipe's), each reloaded and verified: ``(run_dir, paths, diffs)``."""
    import_keras_quietly()
    return export_run(run, formats)


def _open_run(run: Path):
    from dlrecipe import runs
    run_dir = runs.find_run(run)
    loaded = load_recipe(run_dir / runs.RECIPE)
    meta = runs.read_json(run_dir / runs.PREPROCESSING)
    model = runs.load_model(run_dir / runs.MODEL)
    return run_dir, loaded.recipe, meta, model


def _test_split(recipe, run_dir: Path, meta: dict | None = None):
    from dlrecipe.data import pipeline
    from dlrecipe.train.runtime import seed_everything
    seed_everything(recipe.seed, False)
    ds = pipeline.load(recipe.data, recipe.seed, tabular=(meta or {}).get("tabular"))  # csv: the stored encoding
    if not pipeline.has_test(ds):
        raise _no_test_split(run_dir)
    return ds


def _no_test_split(run_dir: Path) -> RecipeError:
    return RecipeError.one("data.test_split", f"The run {run_dir} has no test split: its data source has none and "
                           "the recipe sets neither data.test_split nor data.test_path. Add one and train again.")


def evaluate_run(run: Path, model=None, dataset=None):
    """Evaluate a run on its test split; writes metrics.json and plots. Returns (run_dir, metrics, paths).

    ``model`` and ``dataset``, when given (``train --evaluate``), are the ones training just used,
    so nothing is read again from disk.
    """
    from dlrecipe import runs
    from dlrecipe.data import pipeline
    from dlrecipe.evaluate.metrics import evaluate, write_report
    if model is None or dataset is None:
        run_dir, recipe, meta, model = _open_run(run)
        ds = _test_split(recipe, run_dir, meta)
    else:
        run_dir = Path(run)
        recipe = load_recipe(run_dir / runs.RECIPE).recipe
        meta = runs.read_json(run_dir / runs.PREPROCESSING)
        ds = dataset
        if not pipeline.has_test(ds):
            raise _no_test_split(run_dir)
    x_test, y_test = pipeline.test_inputs(ds, recipe, len(meta.get("class_names") or []) or None)
    try:
        metrics = evaluate(model, x_test, y_test, task=meta["task"], class_names=meta.get("class_names"),
                           batch_size=recipe.train.batch_size)
    except Exception as e:
        raise pipeline.data_error(ds, e) or e
    if recipe.train.ensemble > 1:
        from dlrecipe.train.ensemble import member_metrics, member_plots
        metrics["members"] = member_metrics(run_dir, recipe, meta, x_test, y_test)
    written = write_report(run_dir, metrics)
    if meta["task"] == "segmentation":
        from dlrecipe.evaluate.segmentation import write_examples
        written.append(write_examples(run_dir, model, ds.x_test, ds.y_test, list(metrics["per_class"])))
    if recipe.train.ensemble > 1:
        written += member_plots(run_dir, recipe)
    return run_dir, metrics, written


def export_run(run: Path, formats: list[str]):
    """Export a run in ``formats`` (default: the recipe's), verified against the trained model."""
    from dlrecipe import runs
    from dlrecipe.data import pipeline
    from dlrecipe.export.exporter import export
    from dlrecipe.export.verify import max_abs_diffs
    run_dir, recipe, meta, model = _open_run(run)
    allowed = ("saved_model", "keras", "tflite", "onnx")
    for f in formats:
        if f not in allowed:
            from dlrecipe.errors import suggest
            raise RecipeError.one("--format", f"Received: {f!r}. Expected one of {', '.join(allowed)}.{suggest(f, allowed)}")
    ds = _test_split(recipe, run_dir, meta)
    class_names = recipe.export.class_names or meta.get("class_names")
    if recipe.export.class_names and meta.get("class_names") and len(recipe.export.class_names) != len(meta["class_names"]):
        raise RecipeError.one("export.class_names", f"Received {len(recipe.export.class_names)} names, but the model "
                              f"has {len(meta['class_names'])} classes.")
    result = export(run_dir, model, formats=list(formats or recipe.export.formats),
                    include_preprocessing=recipe.export.include_preprocessing, class_names=class_names,
                    input_shape=tuple(meta["input_shape"]), input_dtype=meta["input_dtype"],
                    x_check=pipeline.first_examples(ds, 256), tabular=meta.get("tabular"),
                    raw_check=getattr(ds, "raw_test", None))
    diffs = max_abs_diffs(run_dir / runs.EXPORT)  # {format: max abs difference}, as verification.json holds it
    return run_dir, result, diffs
