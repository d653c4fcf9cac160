"""The data sources, one module each, and the keys of ``data:`` that each takes (``check_source``).

``data.source`` chooses among them; every source module checks its own keys with ``check_source``.
"""

from __future__ import annotations

import errno
import os

from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig

STREAMED_SOURCES = ("image_dir", "tfds")  # streamed from disk (data.pipeline), never loaded into arrays

# The keys of ``data:`` that belong to particular sources, and which source takes which; the others
# (task, test_split, validation_split, subset, normalize, pca, augment) apply to every source.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("path",),
    "npz": ("path", "test_path", "keys"),
    "csv": ("path", "test_path", "label", "features", "missing"),
    "image_dir": ("path", "test_path", "image_size", "color_mode"),
    "tfds": ("name", "split", "data_dir", "image_size", "color_mode"),
}
_WHY_NOT = {("fashion_mnist", "test_path"): ", which has its own test split (10,000 images)",
            ("csv", "keys"): ": a CSV names its columns with label and features"}


def check_source(cfg: DataConfig) -> None:
    """Refuse a source-specific key given to a source that does not take it (it would be ignored).

    Raises:
        RecipeError: at ``data.<key>``, naming the sources the key is for and the keys ``cfg.source`` takes.
    """
    takes = SOURCE_KEYS[cfg.source]
    for key in sorted({k for keys in SOURCE_KEYS.values() for k in keys} - set(takes)):
        value = getattr(cfg, key)
        if value is None:
            continue
        owners = [source for source, keys in SOURCE_KEYS.items() if key in keys]
        shown = dict(value) if isinstance(value, dict) else value
        raise RecipeError.one(f"data.{key}", f"Received: {key}={shown!r}. {key} does not apply to source: "
                              f"{cfg.source}{_WHY_NOT.get((cfg.source, key), '')} ({key} is for source "
                              f"{' or '.join(owners)}; {cfg.source} takes {', '.join(takes)} besides the keys every "
                              f"source takes). Fix: remove {key}.")
    for key in ("path", "test_path", "data_dir"):
        if key in takes and isinstance(getattr(cfg, key), str):
            _check_usable_path(f"data.{key}", getattr(cfg, key))


def _check_usable_path(where: str, path: str) -> None:
    """Refuse a path the system cannot even look up (too long, a loop of links, no permission on a folder).

    A path that does not exist is left to the source, which says what file it expected there.
    """
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        why = {errno.ENAMETOOLONG: "the name is too long for the file system",
               errno.ELOOP: "its symbolic links form a loop",
               errno.EACCES: "a folder on the way cannot be read (permission denied)"}.get(e.errno, e.strerror)
        shown = path if len(path) <= 120 else f"{path[:60]}...{path[-40:]} ({len(path)} characters)"
        raise RecipeError.one(where, f"Received: {shown}, which cannot be opened: {why}. Fix: give the path "
                              "of an existing file you can read.") from None
    except ValueError:  # an embedded NUL byte
        raise RecipeError.one(where, f"Received: {path!r}, which holds a NUL character. Fix: give a plain "
                              "file path.") from None

