"""Everything the commands print: problems, results, tables.

Problems and warnings go to stderr, results to stdout. See docs/commands.md for what each command shows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from dlrecipe.errors import Problem, Problems, RecipeError


def err(text: str) -> None:
    """Write one line to stderr at once (problems must show before a slow import that follows)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def echo(text: str = "", nl: bool = True) -> None:
    """Write ``text`` to stdout, with a newline unless ``nl`` is False."""
    typer.echo(text, nl=nl)


def report(problems: list[Problem], lines: dict[str, str] | None = None) -> None:
    """Print problems, each as ``error: path (file:line): message``, the YAML line filled in where known."""
    found = Problems(lines=lines or {})
    found.extend(RecipeError(problems))
    for p in found.items:
        err(f"error: {p}")


def rich_console():
    """A rich console for tables and live progress."""
    from rich.console import Console
    return Console()


def _metrics_line(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "learning_rate"))


def print_validation(recipe: Path, found: Any) -> None:
    """Warnings, the model's summary and the one-line verdict of a valid recipe."""
    for w in found.warnings:
        err(f"warning: {w}")
    found.model.summary(print_fn=lambda line, **_: echo(line))
    info = found.info
    echo(f"{recipe}: valid. Input {tuple(info.input_shape)} {info.input_dtype}, task {info.task}"
         + (f", {info.n_classes} classes" if info.n_classes else "") + ".")


def print_show(loaded: Any) -> None:
    """The resolved recipe as YAML, and the search spaces it holds."""
    from dlrecipe.recipe.loader import dump_recipe
    echo(dump_recipe(loaded.resolved()), nl=False)
    if loaded.spaces:
        echo(f"# {len(loaded.spaces)} search space(s): {', '.join(loaded.spaces)}")


def print_trained(done: Any) -> None:
    """The last epoch's metrics (or the members' / folds' table), how training ended, and the run folder."""
    name, epochs = done.loaded.recipe.name, done.loaded.recipe.train.epochs
    if done.group is not None:
        from dlrecipe.train.group import print_group
        print_group(done.group, rich_console())
    elif done.workers is not None:
        if done.run_dir is None:  # a worker under the launcher: the launcher reports
            return
        echo(f"Trained {name} in {done.workers} workers: {_metrics_line(done.last)}")
    else:
        echo(f"Trained {name}: {_metrics_line(done.last)}")
        if done.last and done.last["epoch"] < epochs:
            echo(f"EarlyStopping stopped training after epoch {done.last['epoch']} of {epochs}.")
    echo(f"Run folder: {done.run_dir}")


def print_evaluation(evaluation: tuple) -> None:
    """The test metrics' tables, the ensemble members' table, the files written and the test accuracy."""
    from dlrecipe.evaluate.summary import print_averaged, print_summary
    run_dir, metrics, written, *note = evaluation  # note: which run of runs/<name> was taken, and why
    if note and note[0]:
        echo(note[0])
    print_summary(metrics, rich_console())
    if metrics.get("members"):
        from dlrecipe.train.ensemble import print_members
        print_members(metrics, rich_console())
    print_averaged(metrics, rich_console())  # evaluate --tta / --mc-dropout
    echo(f"Wrote {', '.join(str(p.relative_to(run_dir)) for p in written)} in {run_dir}")
    if "accuracy" in metrics:
        echo(f"Test accuracy: {metrics['accuracy']:.4f}")


def print_exported(exported: tuple) -> None:
    """One line per verified export format, with its largest difference from the trained model."""
    _, paths, diffs = exported
    for fmt, path in paths.items():
        echo(f"{fmt}: {path} (verified, max abs difference {diffs.get(fmt, 0.0):.2e})")


def print_tuned(result: Any) -> None:
    """Where the best recipe is, or that a worker of a multi-host search is done."""
    if not result.rows:  # a worker of a search over several hosts: the chief writes the results
        echo(f"This worker is done; the chief writes the results in {result.folder}.")
        return
    echo(f"Best recipe: {result.best_path}  (train it with: dlrecipe train {result.best_path})")


def print_retrained(result: Any, trained: Any) -> None:
    """The run folder of ``tune --retrain-best``."""
    echo(f"Retrained the best recipe on training + validation data for {result.best_epochs} epoch(s).")
    echo(f"Run folder: {trained.run_dir}")


def print_rates(loaded: Any, rates: Any, out: Path) -> None:
    """The learning rate per epoch (``dlrecipe lr``) and the plot's path."""
    from dlrecipe.inspect.lr import print_learning_rates
    print_learning_rates(rates, loaded.recipe.name, rich_console())
    echo(f"Wrote {out}")


def print_init_report(loaded: Any, report_: Any, out: Path | None) -> None:
    """``inspect-init``'s warnings and per-layer table, and the JSON file written."""
    from dlrecipe.inspect.init import print_init
    for w in report_.warnings:
        err(f"warning: {w}")
    print_init(report_, loaded.recipe.name, rich_console())
    if out is not None:
        echo(f"Wrote {out}")
