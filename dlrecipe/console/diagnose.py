"""What ``diagnose`` prints: the verdict, its evidence, the members' table and the fixes; or the JSON alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlrecipe.console import echo, rich_console

STYLE = {"diverging": "bold red", "overfitting": "bold yellow", "underfitting": "bold yellow",
         "still_improving": "bold cyan", "healthy": "bold green", "unclear": "bold"}
SHOWN = ("epochs", "k", "loss_first", "loss_last", "loss_min", "val_loss_min", "best_epoch", "val_loss_last",
         "gap_last", "loss_rel_slope", "val_loss_rel_slope", "val_noise", "chance_loss", "onset_epoch", "val_rise",
         "rise_margin", "gap_at_onset", "gap_end", "nonfinite_epoch", "loss_max", "loss_max_epoch", "note",
         "stopped_early", "unfinished")


def print_json(diagnosis: Any) -> None:
    echo(json.dumps(diagnosis.as_json(), indent=2))


def print_written(plot: Path | None) -> None:
    if plot is not None:
        echo(f"Wrote {plot}")


def print_diagnosis(diagnosis: Any) -> None:
    """The verdict line, a table of the numbers it relied on (or of the members), and the fixes."""
    from rich.markup import escape
    from rich.table import Table
    console = rich_console()
    name = diagnosis.verdict.replace("_", " ")
    console.print(f"[{STYLE[diagnosis.verdict]}]{escape(name)}[/]" + escape(diagnosis.line()[len(name):]),
                  highlight=False)
    if diagnosis.members:
        table = Table(title="per " + diagnosis.evidence.get("kind", "member"))
        for col in ("", "verdict", "conf.", "onset", "best", "loss", "val_loss"):
            table.add_column(col, justify="left" if col in ("", "verdict") else "right", no_wrap=True)
        for m in diagnosis.members:
            ev = m.evidence
            table.add_row(m.label, m.verdict, f"{m.confidence:.2f}", str(m.onset_epoch or ""), str(m.best_epoch or ""),
                          *(str(ev[key]) if ev.get(key) is not None else "" for key in ("loss_last", "val_loss_last")))
    else:
        table = Table(title="evidence", show_header=False)
        table.add_column("key")
        table.add_column("value", overflow="fold")
        for key in SHOWN:
            if diagnosis.evidence.get(key) is not None:
                table.add_row(key, escape(str(diagnosis.evidence[key])))
    console.print(table)
    if diagnosis.suggestions:
        echo("Fixes to try (add to `dlrecipe train RECIPE`, or run `dlrecipe train` with the --resume line):")
        for s in diagnosis.suggestions:
            echo(f"  {s}")


def print_verdict(diagnosis: Any) -> None:
    """The one line ``train`` prints after training."""
    if diagnosis is not None:
        echo(f"Diagnosis: {diagnosis.line()}")
