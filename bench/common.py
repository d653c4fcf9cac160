"""Shared by the benchmarks (run as `python bench/NAME.py`, so this folder is on sys.path)."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def find_dlrecipe() -> str:
    """The `dlrecipe` console script beside this Python (the one being measured), else on PATH."""
    beside = Path(sys.executable).parent / "dlrecipe"
    if beside.is_file():
        return str(beside)
    found = shutil.which("dlrecipe")
    if not found:
        sys.exit("dlrecipe is not installed next to this Python nor on PATH; run with .venv/bin/python.")
    return found


@contextlib.contextmanager
def scratch(name: str, keep: bool = False) -> Iterator[Path]:
    """A temp folder for one benchmark's files: removed at the end unless ``keep``, and kept (with a line
    saying where) when the benchmark fails or is interrupted, for its logs."""
    folder = Path(tempfile.mkdtemp(prefix=f"dlrecipe-{name}-"))
    failed = True
    try:
        yield folder
        failed = False
    finally:
        if keep or failed:
            print(f"kept {folder}" + (" (the logs of the failed run)" if failed else ""))
        else:
            shutil.rmtree(folder, ignore_errors=True)
