"""Commands that look into a recipe without training it: lr, augment-preview, inspect-init."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlrecipe import console
from dlrecipe.api import inspection
from dlrecipe.cli.app import ALLOW, RECIPE, SETS, app, handles_errors


@app.command()
@handles_errors
def lr(recipe: Path = RECIPE, sets: list[str] = SETS,
       out: Path = typer.Option(Path("lr.png"), "--out", help="Where to write the plot of the rate per step (PNG)."),
       replicas: int = typer.Option(1, "--replicas", min=1, metavar="N", help="Show the rates of a run on N replicas "
                                    "(with runtime.scale_learning_rate: linear, N times the recipe's).")
       ) -> None:
    """Print RECIPE's learning rate per epoch and plot it per step, without training or loading the data."""
    loaded, rates = inspection.lr(recipe, sets, out, replicas)
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
    console.echo(f"Wrote {inspection.augment_preview(recipe, sets, out, n=n, rows=rows, allow_artifacts=allow)}")


@app.command()
@handles_errors
def inspect_init(recipe: Path = RECIPE, sets: list[str] = SETS,
                 batch: int = typer.Option(256, "--batch", min=1, help="How many training examples to push through."),
                 out: Optional[Path] = typer.Option(None, "--out", help="Also write the numbers to this JSON file."),
                 allow: bool = ALLOW) -> None:
    """Push a batch of RECIPE's training data through its untrained model and report each layer.

    Per layer: output mean and std, saturated tanh/sigmoid outputs, dead ReLU units, kernel gradient norm.
    """
    loaded, report = inspection.inspect_init(recipe, sets, batch, out, allow_artifacts=allow)
    console.print_init_report(loaded, report, out)
