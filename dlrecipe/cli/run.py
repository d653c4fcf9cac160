"""The commands of a run's life: validate, show, train, evaluate, export, tune (docs/commands.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from dlrecipe import console
from dlrecipe.api import diagnose, experiments, recipes, run_folders, training
from dlrecipe.cli.app import ALLOW, MLFLOW, OUT, QUIET, RECIPE, RUN, SETS, app, handles_errors
from dlrecipe.console.diagnose import print_verdict
from dlrecipe.console.experiments import print_seed_evaluation, print_trained
from dlrecipe.console.habits import fit_verbosity, quiet
from dlrecipe.console.tta import print_metrics_json


@app.command()
@handles_errors
def validate(recipe: Path = RECIPE, sets: list[str] = SETS, allow: bool = ALLOW) -> None:
    """Check every key, name and argument of RECIPE and build its model, without loading data or training.

    Structural errors print at once (before TensorFlow is imported), then the errors that need Keras.
    """
    found = recipes.validate(recipe, sets, report=console.report, allow_artifacts=allow)
    if found.problems or found.model is None:
        console.err(f"{found.problems} problem(s).")
        raise typer.Exit(2)
    console.print_validation(recipe, found)


@app.command()
@handles_errors
def show(recipe: Path = RECIPE, sets: list[str] = SETS) -> None:
    """Print the resolved RECIPE: extends merged, overrides applied, defaults filled in, search spaces at their defaults."""
    console.print_show(recipes.show(recipe, sets))


@app.command()
@handles_errors
def train(recipe: Optional[Path] = typer.Argument(None, metavar="RECIPE", help="The recipe YAML file (omit with --resume)."),
          sets: list[str] = SETS, out: Path = OUT,
          resume: Optional[Path] = typer.Option(None, "--resume", help="Continue this run folder after its last "
                                                "finished epoch."),
          evaluate_after: bool = typer.Option(False, "--evaluate", help="Evaluate on the test split when done."),
          workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help="Train in N local processes "
                                                "(data parallel, KERAS_BACKEND=jax); batch_size stays the global "
                                                "batch."), allow: bool = ALLOW,
          seeds: Optional[int] = typer.Option(None, "--seeds", metavar="N", help="Train N runs with seeds seed.."
                                              "seed+N-1 into runs/<name>/<timestamp>/seed-<s>/ and print mean ± std."),
          mlflow: bool = MLFLOW, quiet_: bool = QUIET) -> None:
    """Train RECIPE into runs/<name>/<timestamp>/ (or continue a run, or a seed group, with --resume)."""
    with quiet(quiet_):
        done = training.train(recipe, sets, out, resume=resume, evaluate=evaluate_after, workers=workers,
                              argv=sys.argv, allow_artifacts=allow, seeds=seeds, mlflow=mlflow,
                              verbose=fit_verbosity(quiet_))
        print_trained(done)
        if not quiet_:  # --quiet: only the final line (the run folder)
            print_verdict(diagnose.after_training(done.run_dir))
        if evaluate_after and getattr(done.group, "kind", None) == "seeds":
            print_seed_evaluation(experiments.evaluate_seeds(done))
        elif evaluate_after and done.run_dir is not None:
            console.print_evaluation(done.evaluation or run_folders.evaluate(done.run_dir, model=done.model,
                                                                             dataset=done.dataset))


@app.command()
@handles_errors
def evaluate(run: Path = RUN,
             tta: bool = typer.Option(False, "--tta", help="Also average the probabilities over flips/shifts "
                                      "that the recipe's data.augment implies (test-time augmentation)."),
             mc_dropout: Optional[int] = typer.Option(None, "--mc-dropout", metavar="N", help="Also average N "
                                                      "passes with dropout active (batch norm in inference)."),
             as_json: bool = typer.Option(False, "--json", help="Print metrics.json alone."),
             quiet_: bool = QUIET) -> None:
    """Evaluate RUN on its test split: loss, every metric, per-class report, confusion matrix, plots."""
    if as_json:
        return print_metrics_json(run_folders.evaluate(run, tta=tta, mc_dropout=mc_dropout))
    with quiet(quiet_):
        console.print_evaluation(run_folders.evaluate(run, tta=tta, mc_dropout=mc_dropout))


@app.command()
@handles_errors
def export(run: Path = RUN,
           formats: list[str] = typer.Option([], "--format", help="saved_model, keras or tflite; default: the "
                                             "recipe's export.formats."), quiet_: bool = QUIET) -> None:
    """Export RUN for serving (SavedModel by default), reload it and check it against the trained model."""
    with quiet(quiet_):
        console.print_exported(run_folders.export(run, formats))


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
         overwrite: bool = typer.Option(False, "--overwrite", help="Start the search afresh."), allow: bool = ALLOW,
         mlflow: bool = MLFLOW, quiet_: bool = QUIET) -> None:
    """Search RECIPE's search spaces with KerasTuner in <out>/<name>/tune/.

    Prints a line per trial and a table; writes trials.csv, objective.png and best.yaml. Running the same
    command again resumes the search; finished trials are not run again.
    """
    with quiet(quiet_):
        result = training.tune(recipe, sets, out, max_trials=max_trials, max_time=max_time, workers=workers,
                               overwrite=overwrite, console=None if quiet_ else console.rich_console(),
                               allow_artifacts=allow, mlflow=mlflow)
        console.print_tuned(result)
        if retrain_best and result.rows:
            console.print_retrained(result, training.retrain_best(result, out, sys.argv))
