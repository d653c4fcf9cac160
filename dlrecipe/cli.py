"""The ``dlrecipe`` command: each command parses its arguments, calls one ``dlrecipe.api`` function, prints.

TensorFlow is imported inside the api functions that need it, so ``dlrecipe --help`` and the structural part
of ``validate`` stay instant. Bad input prints every problem with its path and exits with code 2.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from dlrecipe import api, console
from dlrecipe.backend import quiet_backend
from dlrecipe.errors import RecipeError, Stopped

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="One YAML recipe in: a trained, tuned, evaluated and exported Keras model out.")

RECIPE = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file.")
RUN = typer.Argument(..., metavar="RUN", help="A run folder, or runs/<name> for its newest run.")
SETS = typer.Option([], "--set", help="Override a recipe value: --set train.epochs=5 --set model.layers[0].filters=64.",
                    metavar="PATH=VALUE")
OUT = typer.Option(Path("runs"), "--out", help="Folder that holds the run folders.")
ALLOW = typer.Option(False, "--allow-artifacts", help="Let the recipe load files it names as Keras artifacts "
                     "(TFSMLayer, file vocabularies): outside code. See docs/security.md.")


def handles_errors(fn: Callable) -> Callable:
    """Bad input exits 2 with every problem printed; a stopped training or search exits with its code; no traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        quiet_backend()
        try:
            return fn(*args, **kwargs)
        except RecipeError as e:
            console.report(e.problems)
            console.err(f"{len(e.problems)} problem(s); nothing was written.")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.err("Interrupted.")
            raise typer.Exit(130) from None
        except Stopped as e:  # a training (NaN: 1, Ctrl-C: 130) or a search that stopped, keeping what it had
            console.err(f"{e.prefix}{e}")
            raise typer.Exit(e.exit_code) from None
    return wrapper


@app.command()
@handles_errors
def validate(recipe: Path = RECIPE, sets: list[str] = SETS, allow: bool = ALLOW) -> None:
    """Check every key, name and argument of RECIPE and build its model, without loading data or training.

    Structural errors print at once (before TensorFlow is imported), then the errors that need Keras.
    """
    found = api.validate(recipe, sets, report=console.report, allow_artifacts=allow)
    if found.problems or found.model is None:
        console.err(f"{found.problems} problem(s).")
        raise typer.Exit(2)
    console.print_validation(recipe, found)


@app.command()
@handles_errors
def show(recipe: Path = RECIPE, sets: list[str] = SETS) -> None:
    """Print the resolved RECIPE: extends merged, overrides applied, defaults filled in, search spaces at their defaults."""
    console.print_show(api.show(recipe, sets))


@app.command()
@handles_errors
def train(recipe: Optional[Path] = typer.Argument(None, metavar="RECIPE", help="The recipe YAML file (omit with --resume)."),
          sets: list[str] = SETS, out: Path = OUT,
          resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run folder after its last "
                                                "finished epoch."),
          evaluate_after: bool = typer.Option(False, "--evaluate", help="Evaluate on the test split when done."),
          workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help="Train in N local processes "
                                                "(data parallel, KERAS_BACKEND=jax); batch_size stays the global "
                                                "batch."), allow: bool = ALLOW) -> None:
    """Train RECIPE into runs/<name>/<timestamp>/ (or continue a run with --resume RUN)."""
    done = api.train(recipe, sets, out, resume=resume, evaluate=evaluate_after, workers=workers, argv=sys.argv,
                     allow_artifacts=allow)
    console.print_trained(done)
    if evaluate_after and done.run_dir is not None:
        console.print_evaluation(api.evaluate(done.run_dir, model=done.model, dataset=done.dataset))


@app.command()
@handles_errors
def evaluate(run: Path = RUN) -> None:
    """Evaluate RUN on its test split: loss, every metric, per-class report, confusion matrix, plots."""
    console.print_evaluation(api.evaluate(run))


@app.command()
@handles_errors
def export(run: Path = RUN,
           formats: list[str] = typer.Option([], "--format", help="saved_model, keras or tflite; default: the "
                                             "recipe's export.formats.")) -> None:
    """Export RUN for serving (SavedModel by default), reload it and check it against the trained model."""
    console.print_exported(api.export(run, formats))


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
         overwrite: bool = typer.Option(False, "--overwrite", help="Start the search afresh."), allow: bool = ALLOW) -> None:
    """Search RECIPE's search spaces with KerasTuner in <out>/<name>/tune/.

    Prints a line per trial and a table; writes trials.csv, objective.png and best.yaml. Running the same
    command again resumes the search; finished trials are not run again.
    """
    result = api.tune(recipe, sets, out, max_trials=max_trials, max_time=max_time, workers=workers,
                      overwrite=overwrite, console=console.rich_console(), allow_artifacts=allow)
    console.print_tuned(result)
    if retrain_best and result.rows:
        console.print_retrained(result, api.retrain_best(result, out, sys.argv))


@app.command()
@handles_errors
def lr(recipe: Path = RECIPE, sets: list[str] = SETS,
       out: Path = typer.Option(Path("lr.png"), "--out", help="Where to write the plot of the rate per step (PNG)."),
       replicas: int = typer.Option(1, "--replicas", min=1, metavar="N", help="Show the rates of a run on N replicas "
                                    "(with runtime.scale_learning_rate: linear, N times the recipe's).")
       ) -> None:
    """Print RECIPE's learning rate per epoch and plot it per step, without training or loading the data."""
    loaded, rates = api.lr(recipe, sets, out, replicas)
    console.print_rates(loaded, rates, out)


@app.command()
@handles_errors
def augment_preview(recipe: Path = RECIPE, sets: list[str] = SETS,
                    out: Optional[Path] = typer.Option(None, "--out", help="The PNG to write; default: "
                                                       "runs/<name>/augment-preview.png."),
                    n: int = typer.Option(8, "--n", min=1, help="How many training images (grid columns)."),
                    rows: int = typer.Option(3, "--rows", min=1, help="How many augmented versions of each "
                                             "(grid rows below the originals)."), allow: bool = ALLOW) -> None:
    """Write a PNG grid of RECIPE's first training images (top row) and their augmented versions (rows below).

    The augmentation layers run in training mode with the recipe's seeds, as in training; nothing is trained.
    """
    console.echo(f"Wrote {api.augment_preview(recipe, sets, out, n=n, rows=rows, allow_artifacts=allow)}")


@app.command()
@handles_errors
def inspect_init(recipe: Path = RECIPE, sets: list[str] = SETS,
                 batch: int = typer.Option(256, "--batch", min=1, help="How many training examples to push through."),
                 out: Optional[Path] = typer.Option(None, "--out", help="Also write the numbers to this JSON file."),
                 allow: bool = ALLOW) -> None:
    """Push a batch of RECIPE's training data through its untrained model and report each layer.

    Per layer: output mean and std, saturated tanh/sigmoid outputs, dead ReLU units, kernel gradient norm.
    """
    loaded, report = api.inspect_init(recipe, sets, batch, out, allow_artifacts=allow)
    console.print_init_report(loaded, report, out)


def main() -> None:
    """The ``dlrecipe`` entry point: the Typer app, then a fast exit once TensorFlow is loaded.

    Python's normal shutdown after TensorFlow has been imported takes about a second (module and thread
    teardown). Every file dlrecipe writes is complete (atomic) before the command returns, so once the
    output streams are flushed, the process can end at once with the command's exit code.
    """
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            console.err(e.code)
    if "tensorflow" in sys.modules and not os.environ.get("DLRECIPE_SLOW_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
