"""The Typer app, the options commands share, and ``handles_errors`` (bad input: exit 2, no traceback)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import typer

from dlrecipe import console
from dlrecipe.backend import quiet_backend
from dlrecipe.errors import RecipeError, Stopped

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="One YAML recipe in: a trained, tuned, evaluated and exported Keras model out.")

RECIPE = typer.Argument(..., metavar="RECIPE", help="The recipe YAML file.")
RUN = typer.Argument(..., metavar="RUN", help="A run folder, or runs/<name> for its newest run.")
SETS = typer.Option([], "--set", help="Override a recipe value: --set train.epochs=5 --set model.layers[0].filters=64.",
                    metavar="PATH=VALUE")


def _out_folder(value) -> Path:
    """``--out``: refused when empty (``Path("")`` is the current folder, where runs would land unasked)."""
    if not str(value).strip():
        raise typer.BadParameter("Received an empty folder, which would put run folders in the current folder. "
                                 "Give a folder, e.g. --out runs (or --out . to mean the current folder).")
    return Path(value)


OUT = typer.Option(Path("runs"), "--out", parser=_out_folder, metavar="PATH", help="Folder that holds the run folders.")
MLFLOW = typer.Option(False, "--mlflow", help="Log params, metrics per epoch and the run folder to MLflow "
                      "(MLFLOW_TRACKING_URI, else <out>/mlflow.db). Needs pip install -e '.[mlflow]'.")
QUIET = typer.Option(False, "--quiet", "-q", help="Print only errors and the final line (no progress, no tables).")
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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        try:
            typer.echo(f"dlrecipe {version('dlrecipe')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("dlrecipe (not installed)")
        raise typer.Exit()


@app.callback()
def _options(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                               help="Print dlrecipe's version and exit.")) -> None:
    """One YAML recipe in: a trained, tuned, evaluated and exported Keras model out."""
