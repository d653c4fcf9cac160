"""How much the long commands print: ``--quiet`` keeps the final line; a pipe gets one line per epoch.

``quiet(True)`` holds back what a command writes to stdout and prints only its last line when the command
ends well (errors go to stderr as ever). ``fit_verbosity`` picks Keras's progress bar on a terminal and
dlrecipe's one line per epoch (``"line"``, see ``train.unit``) when stdout is a pipe or a file.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Iterator


def fit_verbosity(quiet: bool = False) -> int | str:
    """0 when quiet; Keras's progress bar (``"auto"``) on a terminal; else ``"line"``: one line per epoch."""
    if quiet:
        return 0
    return "auto" if sys.stdout.isatty() else "line"


@contextlib.contextmanager
def quiet(enabled: bool) -> Iterator[None]:
    """Only the last line written to stdout inside the block is printed, once the block ends without error."""
    if not enabled:
        yield
        return
    held = io.StringIO()
    with contextlib.redirect_stdout(held):
        yield
    lines = [line for line in held.getvalue().splitlines() if line.strip()]
    if lines:
        sys.stdout.write(lines[-1] + "\n")
        sys.stdout.flush()
