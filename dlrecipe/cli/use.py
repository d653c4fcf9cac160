"""Using a trained model: predict (docs/commands.md#predict)."""

from __future__ import annotations

from pathlib import Path

import typer

from dlrecipe.api import use
from dlrecipe.cli.app import app, handles_errors
from dlrecipe.console import use as console_use


@app.command()
@handles_errors
def predict(target: Path = typer.Argument(..., metavar="RUN_OR_EXPORT", help="A run folder (runs/<name>: its "
                                          "newest run) or an export folder (export/saved_model[/<version>])."),
            inputs: list[Path] = typer.Argument(..., metavar="INPUTS...", help="Image files or folders, .npz "
                                                "(x or x_test) or .csv files (the training columns)."),
            out: Path = typer.Option(Path("predictions.csv"), "--out", help="The CSV to write."),
            top_k: int = typer.Option(1, "--top-k", metavar="K", help="Also write the next K-1 classes."),
            batch: int = typer.Option(128, "--batch", metavar="N", help="Examples per call of the model.")) -> None:
    """Run RUN_OR_EXPORT's served model (its fitted preprocessing included) on INPUTS; write a CSV."""
    with console_use.progress() as bar:
        done = use.predict(target, inputs, out, top_k=top_k, batch=batch, progress=bar)
    console_use.print_predicted(done)
