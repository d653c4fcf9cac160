"""What ``lr-find`` and ``inspect`` print: the suggested rates, the summary of a trained network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlrecipe.console import echo, rich_console


def print_json(data: dict) -> None:
    """``--json``: the report alone on stdout."""
    echo(json.dumps(data, indent=2))


def print_lr_find(recipe: Path, loaded: Any, found: Any, out: Path) -> None:
    """The suggestion of ``lr-find`` with the other estimates, and the line to use it."""
    def rate(v):
        return "none" if v is None else f"{v:.3g}"

    echo(f"{loaded.recipe.name}: learning-rate range test, {len(found.lrs)} of {found.planned_steps} steps "
         f"(batch {found.batch_size}, {found.steps_per_epoch} steps per epoch)")
    echo(f"  rates from {found.lrs[0]:.3g} to {found.lrs[-1]:.3g}"
         + (": stopped, the loss diverged." if found.stopped == "diverged" else "."))
    echo(f"  steepest descent  {rate(found.steepest)}")
    echo(f"  valley            {rate(found.valley)}")
    echo(f"  min loss at       {rate(found.min_loss_lr)}  (where the loss stops falling: train below it)")
    echo(f"Suggestion: {rate(found.suggestion)}")
    for note in found.notes:
        echo(f"note: {note}")
    if found.set_line:
        echo(f"Use it: dlrecipe train {recipe} {found.set_line}")
    echo(f"Wrote {out}")


def print_inspection(report: Any) -> None:
    """``inspect``'s summary table, the most confused pairs, and the files written."""
    from rich import box
    from rich.table import Table

    data = report.as_json()
    con = rich_console()
    table = Table(title=f"{data['run']}: {data['n_test']} test examples", box=box.SIMPLE_HEAD, show_header=True)
    table.add_column("what")
    table.add_column("finding", overflow="fold")
    if data.get("accuracy") is not None:
        table.add_row("accuracy", f"{data['accuracy']:.4f}")
    for d in data.get("dead_units") or []:
        table.add_row(f"dead units {d['layer']}", f"{100 * d['dead']:.1f}% of {d['units']} ({d['activation']})")
    noise = data.get("noise")
    if noise:
        top = sorted(((k, v) for k, v in noise["counts"].items() if v), key=lambda kv: -kv[1])[:3]
        table.add_row("random noise in", f"{noise['n']} images -> " + ", ".join(f"{k}: {v}" for k, v in top)
                      + f"; mean top probability {noise['mean_top_probability']:.2f}")
    for pair in (data.get("most_confused") or [])[:5]:
        table.add_row("confused", f"{pair['true']} -> {pair['predicted']}: {pair['count']}")
    for entry in (data.get("permutation_importance") or [])[:8]:
        table.add_row(f"importance {entry['column']}",
                      f"{data['permutation_metric']} drops by {entry['importance']:.4f} (± {entry['std']:.4f})")
    for loss in (data.get("top_losses") or [])[:3]:
        table.add_row("top loss", f"#{loss['index']}: true {loss['true']}, predicted {loss['predicted']} "
                      f"(p={loss['probability']:.2f}, loss {loss['loss']:.2f})")
    con.print(table)
    for note in data.get("notes") or []:
        echo(f"note: {note}")
    for name in data.get("files") or []:
        echo(f"Wrote {Path(data['folder']) / name}")
