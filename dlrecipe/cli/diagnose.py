"""``diagnose``: read a run's curves and name the regime, with the fixes (docs/commands.md#diagnose)."""

from __future__ import annotations

from pathlib import Path

import typer

from dlrecipe.api import diagnose as api
from dlrecipe.cli.app import RUN, app, handles_errors
from dlrecipe.console import diagnose as show


@app.command()
@handles_errors
def diagnose(run: Path = RUN, as_json: bool = typer.Option(False, "--json", help="Print the diagnosis as JSON only.")
             ) -> None:
    """Name RUN's regime from its curves (diverging, overfitting, underfitting, still improving, healthy).

    Prints the numbers it relied on and fixes as --set lines on the recipe's own paths; writes
    RUN/plots/diagnosis.png. Reads history.csv only (no TensorFlow).
    """
    _, plot = api.diagnose(run, show=show.print_json if as_json else show.print_diagnosis)
    if not as_json:
        show.print_written(plot)
