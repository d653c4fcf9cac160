"""The ``--out`` file of the inspect commands (``lr``, ``augment-preview``, ``inspect-init``): checked, then written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrecipe.errors import RecipeError


def check_out_file(out: Path, suffix: str) -> None:
    """``--out`` names a file to write, not a folder, with the expected suffix."""
    if out.suffix.lower() != suffix:
        raise RecipeError.one("--out", f"Received: {out}. Expected a file name ending in {suffix}.")
    if out.is_dir():
        raise RecipeError.one("--out", f"Received: {out}, which is a folder. Expected a file name, e.g. "
                              f"{out / ('lr' + suffix)}.")


def write_out(write: Any, out: Path) -> None:
    """Run ``write()``; an unwritable ``--out`` becomes a recipe error."""
    try:
        write()
    except OSError as e:
        raise RecipeError.one("--out", f"Cannot write {out}: {e.strerror or e}. Choose another --out.") from None
