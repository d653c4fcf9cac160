"""The ``dlrecipe`` command. Each command parses, calls one function, maps errors.

TensorFlow and Keras are imported inside the commands that need them, so
``dlrecipe --help`` and the structural part of ``validate`` stay instant.
Bad input prints every problem with its path and exits with code 2.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from dlrecipe.backend import _quiet_backend, import_keras_quietly
from dlrecipe.errors import Problem, Problems, RecipeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="One YAML recipe in: a trained, tuned, evaluated and exported Keras model out.")

SETS = typer.Option([], "--set", help="Override a recipe value: --set train.epochs=5 --set model.layers[0].filters=64.",
                    metavar="PATH=VALUE")
OUT = typer.Option(Path("runs"), "--out", help="Folder that holds the run folders.")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def report(problems: list[Problem], lines: dict[str, str] | None = None) -> None:
    """Print problems, each on its own line(s), with the YAML line when known."""
    found = Problems(lines=lines or {})
    found.extend(RecipeError(problems))
    for p in found.items:
        _err(f"error: {p}")


def handles_errors(fn: Callable) -> Callable:
    """Map RecipeError to exit code 2 and a stopped training to its code, without a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _quiet_backend()
        try:
            return fn(*args, **kwargs)
        except RecipeError as e:
            report(e.problems)
            _err(f"{len(e.problems)} problem(s); nothing was written.")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _err("Interrupted.")
            raise typer.Exit(130) from None
    return wrapper


@contextlib.contextmanager
def recipe_lines(lines: dict[str, str]):
    """Give problems raised inside (data, model, training) the YAML line of their recipe path."""
    try:
        yield
    except RecipeError as e:
        found = Problems(lines=lines)
        found.extend(e)
        raise RecipeError(found.items) from None


def _console():
    from rich.console import Console
    return Console()


@app.command()
@handles_errors
def validate(recipe: Path = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file."), sets: list[str] = SETS) -> None:
    """Check every key, name and argument of RECIPE and build its model, without loading data or training.

    Structural errors print at once (before TensorFlow is imported), then the errors that need Keras.
    """
    from dlrecipe.recipe.loader import inspect_recipe
    found = inspect_recipe(recipe, sets)
    if found.problems:
        report(found.problems, found.lines)
    if found.fixed is None:
        _err(f"{len(found.problems)} problem(s).")
        raise typer.Exit(2)
    import_keras_quietly()
    from dlrecipe.build.checks import keras_problems
    problems = keras_problems(found.fixed, found.problems)
    report(problems, found.lines)
    total = len(found.problems) + len(problems)
    if total or found.loaded is None:
        _err(f"{total} problem(s).")
        raise typer.Exit(2)
    import keras

    from dlrecipe.api import build_for_validation
    keras.backend.clear_session()  # the checks above built layers: restart Keras's name counters
    try:
        with recipe_lines(found.lines):
            model, info, warnings = build_for_validation(found.loaded)
    except RecipeError as e:
        report(e.problems, found.lines)
        _err(f"{len(e.problems)} problem(s).")
        raise typer.Exit(2) from None
    for w in warnings:
        _err(f"warning: {w}")
    model.summary(print_fn=lambda line, **_: typer.echo(line))
    typer.echo(f"{recipe}: valid. Input {tuple(info.input_shape)} {info.input_dtype}, task {info.task}"
               + (f", {info.n_classes} classes" if info.n_classes else "") + ".")


@app.command()
@handles_errors
def show(recipe: Path = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file."), sets: list[str] = SETS) -> None:
    """Print the resolved RECIPE: extends merged, overrides applied, defaults filled in, search spaces at their defaults."""
    from dlrecipe.recipe.loader import dump_recipe, load_recipe
    loaded = load_recipe(recipe, sets)
    typer.echo(dump_recipe(loaded.resolved()), nl=False)
    if loaded.spaces:
        typer.echo(f"# {len(loaded.spaces)} search space(s): {', '.join(loaded.spaces)}")


@app.command()
@handles_errors
def train(recipe: Optional[Path] = typer.Argument(None, metavar="RECIPE", help="The recipe YAML file (omit with --resume)."),
          sets: list[str] = SETS, out: Path = OUT,
          resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run folder after its last "
                                                "finished epoch."),
          evaluate_after: bool = typer.Option(False, "--evaluate", help="Evaluate on the test split when done."),
          workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help="Train in N local processes "
                                                "(data parallel, KERAS_BACKEND=jax); batch_size stays the global "
                                                "batch.")) -> None:
    """Train RECIPE into runs/<name>/<timestamp>/ (or continue a run with --resume RUN)."""
    from dlrecipe.recipe.loader import load_recipe
    from dlrecipe.train.resume import load_for_resume
    if (recipe is None) == (resume is None):
        raise RecipeError.one("RECIPE", "Give a recipe to train, or --resume RUN to continue a run (not both).")
    loaded = load_recipe(recipe, sets) if resume is None else load_for_resume(resume, sets)
    if evaluate_after and loaded.recipe.train.cross_validation > 1:
        raise RecipeError.one("--evaluate", "A cross-validation run has no model to evaluate: it reports each "
                              "fold's validation metrics (cv.json). Leave out --evaluate.")
    if workers is not None:
        _train_workers(loaded, recipe, sets, out, resume, workers, evaluate_after)
        return
    trainmod = _train_module()
    from dlrecipe.train.unit import TrainingStopped
    try:
        with recipe_lines(loaded.lines):
            result = trainmod.train(loaded, out, sys.argv, resume=resume)
    except TrainingStopped as e:
        _err(str(e))
        raise typer.Exit(e.exit_code) from None
    if hasattr(result, "kind"):  # an ensemble or a cross-validation
        from dlrecipe.train.group import print_group
        print_group(result, _console())
    else:
        last = result.history[-1] if result.history else {}
        shown = ", ".join(f"{k}={v:.4f}" for k, v in last.items() if k not in ("epoch", "learning_rate"))
        typer.echo(f"Trained {loaded.recipe.name}: {shown}")
        if last and last["epoch"] < loaded.recipe.train.epochs:
            typer.echo(f"EarlyStopping stopped training after epoch {last['epoch']} of {loaded.recipe.train.epochs}.")
    typer.echo(f"Run folder: {result.run_dir}")
    if evaluate_after:
        _evaluate(result.run_dir, model=result.model, dataset=result.dataset)


def _train_workers(loaded, recipe: Optional[Path], sets: list[str], out: Path, resume: Optional[Path], n: int,
                   evaluate_after: bool) -> None:
    """``train --workers N``: launch N local workers, or be one of them (DLRECIPE_PROCESS_ID set)."""
    from dlrecipe.train import workers as wk
    process = wk.from_env(n)
    if process is not None:  # one worker: join the cluster before JAX starts, then train this shard
        wk.join(process, loaded.recipe.train.batch_size)
        trainmod = _train_module()
        from dlrecipe.train.unit import TrainingStopped
        run_dir = os.environ.get(wk.RUN_DIR)
        try:
            with recipe_lines(loaded.lines):
                result = trainmod.train(loaded, out, wk.command_line(), resume=resume, verbose=2, process=process,
                                        run_dir=Path(run_dir) if run_dir else None)
        except TrainingStopped as e:
            _err(str(e))
            raise typer.Exit(e.exit_code) from None
        if process.chief and not run_dir:  # started by hand (several hosts): no launcher to say it
            typer.echo(f"Run folder: {result.run_dir}")
        return
    import_keras_quietly()
    import keras
    wk.check_request(n, loaded.recipe.train.batch_size, keras.backend.backend())
    from dlrecipe import runs
    if resume is None:
        runs.check_writable(out)
    run_dir = resume or runs.new_run_dir(out, loaded.recipe.name)
    args = ["train", *([str(recipe)] if recipe is not None else []), *[a for s in sets for a in ("--set", s)],
            "--out", str(out), *(["--resume", str(resume)] if resume is not None else []), "--workers", str(n)]
    outcome = wk.launch(args, n, Path(run_dir), sys.argv, new_run=resume is None, echo=typer.echo)
    if outcome.exit_code:
        _err(outcome.message)
        raise typer.Exit(outcome.exit_code)
    rows = runs.read_history(Path(run_dir) / runs.HISTORY)
    last = rows[-1] if rows else {}
    shown = ", ".join(f"{k}={v:.4f}" for k, v in last.items() if k not in ("epoch", "learning_rate"))
    typer.echo(f"Trained {loaded.recipe.name} in {n} workers: {shown}")
    typer.echo(f"Run folder: {run_dir}")
    if evaluate_after:
        _evaluate(Path(run_dir))


def _train_module():
    import_keras_quietly()
    from dlrecipe.train import fit as trainmod
    return trainmod


@app.command()
@handles_errors
def evaluate(run: Path = typer.Argument(..., metavar="RUN", help="A run folder, or runs/<name> for its newest run.")) -> None:
    """Evaluate RUN on its test split: loss, every metric, per-class report, confusion matrix, plots."""
    _evaluate(run)


def _evaluate(run: Path, model=None, dataset=None) -> None:
    import_keras_quietly()
    from dlrecipe.api import evaluate_run
    from dlrecipe.evaluate.metrics import print_summary
    run_dir, metrics, written = evaluate_run(run, model=model, dataset=dataset)
    print_summary(metrics, _console())
    if metrics.get("members"):
        from dlrecipe.train.ensemble import print_members
        print_members(metrics, _console())
    typer.echo(f"Wrote {', '.join(str(p.relative_to(run_dir)) for p in written)} in {run_dir}")
    if "accuracy" in metrics:
        typer.echo(f"Test accuracy: {metrics['accuracy']:.4f}")


@app.command()
@handles_errors
def export(run: Path = typer.Argument(..., metavar="RUN", help="A run folder, or runs/<name> for its newest run."),
           formats: list[str] = typer.Option([], "--format", help="saved_model, keras or tflite; default: the "
                                             "recipe's export.formats.")) -> None:
    """Export RUN for serving (SavedModel by default), reload it and check it against the trained model."""
    import_keras_quietly()
    from dlrecipe.api import export_run
    run_dir, paths, diffs = export_run(run, formats)
    for fmt, path in paths.items():
        typer.echo(f"{fmt}: {path} (verified, max abs difference {diffs.get(fmt, 0.0):.2e})")


@app.command()
@handles_errors
def tune(recipe: Path = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file with search spaces."),
         sets: list[str] = SETS, out: Path = OUT,
         max_trials: Optional[int] = typer.Option(None, "--max-trials", min=1, metavar="N", help="Override tune.max_trials; a "
                                                  "larger value extends a finished search."),
         max_time: Optional[str] = typer.Option(None, "--max-time", metavar="DURATION", help="Start no trial after "
                                                "this long (90s, 30m, 2h, 1h30m); the running trial finishes."),
         workers: int = typer.Option(0, "--workers", min=0, metavar="N", help="Run trials in N worker processes beside a chief "
                                     "(oracle) process on this machine; 0: all in this process."),
         retrain_best: bool = typer.Option(False, "--retrain-best", help="Then train best.yaml on training + "
                                           "validation data into a run folder."),
         overwrite: bool = typer.Option(False, "--overwrite", help="Start the search afresh.")) -> None:
    """Search RECIPE's search spaces with KerasTuner in <out>/<name>/tune/.

    Prints a line per trial and a table; writes trials.csv, objective.png and best.yaml. Running the same
    command again resumes the search; finished trials are not run again.
    """
    from dlrecipe.recipe.loader import load_recipe
    from dlrecipe.tune.launch import SearchFailed, parse_duration
    seconds = parse_duration(max_time) if max_time is not None else None
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.train.unit import TrainingStopped
    from dlrecipe.tune.tuner import retrain_best as run_retrain
    from dlrecipe.tune.tuner import tune as run_tune
    try:
        with recipe_lines(loaded.lines):
            result = run_tune(loaded, out, max_trials=max_trials, overwrite=overwrite, max_time=seconds,
                              workers=workers, console=_console())
    except SearchFailed as e:
        _err(f"error: {e}")
        raise typer.Exit(1) from None
    if not result.rows:  # a worker of a search over several hosts: the chief writes the results
        typer.echo(f"This worker is done; the chief writes the results in {result.folder}.")
        return
    typer.echo(f"Best recipe: {result.best_path}  (train it with: dlrecipe train {result.best_path})")
    if retrain_best:
        try:
            trained = run_retrain(result, out, sys.argv)
        except TrainingStopped as e:
            _err(str(e))
            raise typer.Exit(e.exit_code) from None
        typer.echo(f"Retrained the best recipe on training + validation data for {result.best_epochs} epoch(s).")
        typer.echo(f"Run folder: {trained.run_dir}")


@app.command()
@handles_errors
def lr(recipe: Path = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file."), sets: list[str] = SETS,
       out: Path = typer.Option(Path("lr.png"), "--out", help="Where to write the plot of the rate per step (PNG)."),
       replicas: int = typer.Option(1, "--replicas", min=1, metavar="N", help="Show the rates of a run on N replicas "
                                    "(with runtime.scale_learning_rate: linear, N times the recipe's).")
       ) -> None:
    """Print RECIPE's learning rate per epoch and plot it per step, without training or loading the data."""
    from dlrecipe.recipe.loader import load_recipe
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.diagnose import (
        check_out_file,
        learning_rates,
        plot_learning_rates,
        print_learning_rates,
        write_out,
    )
    check_out_file(out, ".png")
    with recipe_lines(loaded.lines):
        rates = learning_rates(loaded, replicas)
    print_learning_rates(rates, loaded.recipe.name, _console())
    write_out(lambda: plot_learning_rates(rates, loaded.recipe.name, out), out)
    typer.echo(f"Wrote {out}")


@app.command()
@handles_errors
def augment_preview(recipe: Path = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file."),
                    sets: list[str] = SETS,
                    out: Optional[Path] = typer.Option(None, "--out", help="The PNG to write; default: "
                                                       "runs/<name>/augment-preview.png."),
                    n: int = typer.Option(8, "--n", min=1, help="How many training images (grid columns)."),
                    rows: int = typer.Option(3, "--rows", min=1, help="How many augmented versions of each "
                                             "(grid rows below the originals).")) -> None:
    """Write a PNG grid of RECIPE's first training images (top row) and their augmented versions (rows below).

    The augmentation layers run in training mode with the recipe's seeds, as in training; nothing is trained.
    """
    from dlrecipe.recipe.loader import load_recipe
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.diagnose import check_out_file, write_out
    from dlrecipe.inspect.preview import augment_preview as run_preview
    from dlrecipe.inspect.preview import default_out
    out = out or default_out(loaded)
    check_out_file(out, ".png")
    with recipe_lines(loaded.lines):
        write_out(lambda: run_preview(loaded, out, n=n, rows=rows), out)
    typer.echo(f"Wrote {out}")


@app.command()
@handles_errors
def inspect_init(recipe: Path = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file."), sets: list[str] = SETS,
                 batch: int = typer.Option(256, "--batch", min=1, help="How many training examples to push through."),
                 out: Optional[Path] = typer.Option(None, "--out", help="Also write the numbers to this JSON file.")
                 ) -> None:
    """Push a batch of RECIPE's training data through its untrained model and report each layer.

    Per layer: output mean and std, saturated tanh/sigmoid outputs, dead ReLU units, kernel gradient norm.
    """
    from dlrecipe.recipe.loader import load_recipe
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.diagnose import check_out_file, print_init, write_out
    from dlrecipe.inspect.diagnose import inspect_init as run_inspect
    from dlrecipe.io import write_json
    if out is not None:
        check_out_file(out, ".json")
    with recipe_lines(loaded.lines):
        report = run_inspect(loaded, batch)
    for w in report.warnings:
        _err(f"warning: {w}")
    print_init(report, loaded.recipe.name, _console())
    if out is not None:
        write_out(lambda: write_json(out, report.as_json()), out)
        typer.echo(f"Wrote {out}")


def main() -> None:
    """The ``dlrecipe`` entry point: the Typer app, then a fast exit once TensorFlow is loaded.

    Python's normal shutdown after TensorFlow has been imported takes about a second (module and
    thread teardown), longer than many commands themselves. Every file dlrecipe writes is complete
    (atomic) before the command returns, so once the output streams are flushed, the process can end
    at once with the command's exit code.
    """
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            _err(e.code)
    if "tensorflow" in sys.modules and not os.environ.get("DLRECIPE_SLOW_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
