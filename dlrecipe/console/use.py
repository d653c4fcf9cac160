"""What ``dlrecipe predict`` prints: a progress bar on a terminal, then what was written."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

from dlrecipe.console import echo


@contextlib.contextmanager
def progress(description: str = "Predicting") -> Iterator[Callable[[int, int], None] | None]:
    """A ``(done, total)`` callback drawing a rich progress bar on stderr, or None when it is not a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
        yield update


def print_predicted(done: Any) -> None:
    """The CSV (and masks folder) written, how many examples, from which model, and the rate."""
    w = done.written
    rate = f", {w.n / w.seconds:,.0f} examples/s" if w.seconds > 0 else ""
    echo(f"Wrote {w.n} prediction(s) to {w.out} (model {done.source}{rate}).")
    if w.masks is not None:
        echo(f"Masks: {w.masks}/ (one PNG per image, pixel value = class id)")
