"""The ``dlrecipe`` entry point: the app with every command module registered."""

from __future__ import annotations

import os
import sys

from dlrecipe import console
# Importing a command module registers its commands; --help lists them in this order.
from dlrecipe.cli import run  # noqa: F401  isort: skip
from dlrecipe.cli import inspect  # noqa: F401  isort: skip
from dlrecipe.cli import diagnose  # noqa: F401  isort: skip
from dlrecipe.cli import understand  # noqa: F401  isort: skip
from dlrecipe.cli import experiments  # noqa: F401  isort: skip
from dlrecipe.cli import use  # noqa: F401  isort: skip
from dlrecipe.cli import tools  # noqa: F401  isort: skip
from dlrecipe.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``dlrecipe`` entry point: the Typer app, then a fast exit once TensorFlow is loaded.

    Python's normal shutdown after TensorFlow has been imported takes about a second (module and thread
    teardown). Every file dlrecipe writes is complete (atomic) before the command returns, so once the
    output streams are flushed, the process can end at once with the command's exit code.
    """
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            console.err(e.code)
    if "tensorflow" in sys.modules and not os.environ.get("DLRECIPE_SLOW_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
