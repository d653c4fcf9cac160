"""Commands that help understand training: lr-find (a recipe's range test) and inspect (a trained run)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlrecipe.api import understand
from dlrecipe.cli.app import ALLOW, RECIPE, RUN, SETS, app, handles_errors
from dlrecipe.console import understand as printed

JSON = typer.Option(False, "--json", help="Print the results as JSON instead of the table.")


@app.command()
@handles_errors
def lr_find(recipe: Path = RECIPE, sets: list[str] = SETS,
            start: float = typer.Option(1e-7, "--start", help="The first learning rate."),
            end: float = typer.Option(10.0, "--end", help="The last learning rate (if the loss has not diverged)."),
            steps: Optional[int] = typer.Option(None, "--steps", metavar="N", help="Steps of the test; default: "
                                                "one epoch of the recipe's batches."),
            out: Path = typer.Option(Path("lr-find.png"), "--out", help="Where to write the plot (PNG)."),
            json: bool = JSON, allow: bool = ALLOW) -> None:
    """Find a learning rate for RECIPE: the range test (Smith; fastai's lr_find), the rate growing every step.

    Writes only the plot (no run folder) and prints the suggestion with the --set line that uses it.
    """
    loaded, found = understand.lr_find(recipe, sets, out, start=start, end=end, steps=steps, allow_artifacts=allow)
    if json:
        return printed.print_json(found.as_json())
    printed.print_lr_find(recipe, loaded, found, out)


@app.command("inspect")
@handles_errors
def inspect_run(run: Path = RUN, n: int = typer.Option(16, "--n", min=1, help="How many top losses to show."),
                json: bool = JSON) -> None:
    """Look into RUN's trained network on its test split; pictures and inspect.json in RUN/inspect/.

    First-layer filters, dead ReLU units, occlusion maps, the images channels like most, predictions on
    noise, the top losses and most confused classes; for a table, permutation importance per column.
    """
    report = understand.inspect(run, n=n)
    if json:
        return printed.print_json(report.as_json())
    printed.print_inspection(report)
