"""Atomic writes (a temp file, then a rename): text, bytes, JSON, YAML, npz, or any file a writer makes; and
the checks that a folder can be written before the work that writes it (``check_writable``, ``check_run_writable``).

Every file dlrecipe writes goes through ``atomic_path``: a reader sees the old file or the new one, never half
of one, and the new file gets the mode ``open()`` would give it (0666 less the umask), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from dlrecipe.errors import RecipeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp file beside ``path`` to write; renamed onto ``path`` when the block ends without an error.

    Example:
        >>> with atomic_path(Path("plots/curves.png"), ".png") as tmp:
        ...     figure.savefig(tmp, format="png")
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except PermissionError as e:  # a folder made unwritable (chmod, chattr +i) after the checks: name it
        raise RecipeError.one(str(path.parent), f"Cannot write {path.name} in this folder ({e.strerror}). Fix: make "
                              "it writable (chmod u+w; chattr -i if it was made immutable).") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- can a write succeed


def check_writable(out: Path) -> None:
    """``out`` can hold a run folder: a folder is created and removed in its nearest existing parent.

    Raises:
        RecipeError: ``--out`` is a file or lies in a folder that cannot be written.
    """
    out = Path(out).absolute()
    probe = out
    while not probe.exists():
        probe = probe.parent
    reason = f"{probe} is not a folder" if not probe.is_dir() else None
    if reason is None:
        try:
            Path(tempfile.mkdtemp(dir=probe, prefix=".dlrecipe-probe-")).rmdir()
        except OSError as e:
            reason = f"{probe} is not writable ({e.strerror})"
    if reason:
        raise RecipeError.one("--out", f"Cannot write run folders under {out}: {reason}. Choose another --out.")


def check_run_writable(run_dir: Path, *subfolders: str) -> None:
    """dlrecipe can write in the run folder ``run_dir`` and in those of its ``subfolders`` that exist (a file is
    created and removed in each): checked before evaluate, export or --resume do any work.

    Raises:
        RecipeError: naming the folder that cannot be written (permissions, ``chattr +i``, a read-only disk).
    """
    for folder in (Path(run_dir), *(Path(run_dir) / s for s in subfolders)):
        if folder != Path(run_dir) and not folder.is_dir():
            continue
        try:
            fd, name = tempfile.mkstemp(dir=folder, prefix=".dlrecipe-probe-")
            os.close(fd)
            os.unlink(name)
        except OSError as e:
            raise RecipeError.one(str(folder), f"Cannot write in this folder ({e.strerror or e}). Fix: make it "
                                  "writable (chmod u+w; chattr -i if it was made immutable), or copy the run "
                                  "folder somewhere writable and give that.") from None


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to the ``.npz`` at ``path`` atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _atomic_write(Path(path), buf.getvalue())


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, then rename)."""
    _atomic_write(Path(path), text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename)."""
    _atomic_write(Path(path), data)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_yaml(path: Path, obj: Any) -> None:
    """Write ``obj`` as block-style YAML, keys in their given order, atomically."""
    write_text(path, dump_yaml(obj))


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN), NumPy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)
