"""Shared by the benchmarks (run as `python bench/NAME.py`, so this folder is on sys.path)."""

from __future__ import annotations

import shutil
import sys
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
