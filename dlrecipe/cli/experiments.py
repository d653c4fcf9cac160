"""The commands that read several runs at once: compare, report (docs/commands.md). No TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlrecipe.api import experiments
from dlrecipe.cli.app import app, handles_errors
from dlrecipe.console.experiments import print_compare, print_report

RUNS = typer.Argument(..., metavar="RUN_OR_GROUP...", help="Run folders, seed groups (train --seeds N), or "
                      "runs/<name> for the newest of either.")


@app.command()
@handles_errors
def compare(paths: list[Path] = RUNS,
            as_json: bool = typer.Option(False, "--json", help="Print compare.json instead of the table."),
            out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Folder for compare.json and "
                                               "curves_<metric>.png; default runs/compare/<timestamp>/.")) -> None:
    """Compare runs and seed groups: a row each (a group as mean ± std over its seeds), the recipe values that
    differ, the best and final validation metrics and the test metrics, sorted by the objective; overlaid curves.
    """
    print_compare(experiments.compare(paths, out), as_json=as_json)


@app.command()
@handles_errors
def report(paths: list[Path] = RUNS,
           out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="The HTML file to write; "
                                              "default report.html.")) -> None:
    """Write one self-contained HTML page about runs and seed groups: recipe, environment, curves, diagnosis,
    test metrics, per-class table, confusion matrix, top losses, export check (several: the comparison first).
    """
    print_report(experiments.report(paths, out))
