"""What ``dlrecipe predict`` reads: image files and folders, ``.npz`` arrays, ``.csv`` rows, checked first.

``read_inputs`` checks every input against the signature before anything is predicted (a file that
is missing or unreadable, an image of another size, an array of another shape, a csv without the
training columns: a RecipeError naming the file and what was expected) and returns ``Batches``
sources that stream: images are decoded by ``image_dir.decode`` in a tf.data pipeline, arrays and
rows are sliced. Each example is named for the output's ``input`` column: the image's path,
``file.npz[index]``, ``file.csv#line`` (the header is line 1). See docs/export.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from dlrecipe.data.sources import csvfile, image_dir
from dlrecipe.data.sources.npz import NpzFile
from dlrecipe.errors import RecipeError

WHERE = "INPUTS"
ARRAY_KEYS = ("x", "x_test")


@dataclass
class Batches:
    """One input source: its examples' names and a maker of batches (arrays, tensors or column dicts)."""

    names: list[str]
    batches: Callable[[int], Iterator[Any]]
    image_paths: list[str] | None = None


def read_inputs(paths: list[Path], signature: dict, resize: bool) -> list[Batches]:
    """Check ``paths`` against the signature (``dlrecipe.json``'s ``signature``) and open them.

    Raises:
        RecipeError: at ``INPUTS`` for a path that is missing, unreadable or does not fit the model.
    """
    if not paths:
        raise RecipeError.one(WHERE, "Received no inputs. Expected image files or folders, .npz or .csv files.")
    columns = signature.get("inputs")
    spec = signature.get("input") or {}
    images: list[Path] = []
    sources: list[Batches] = []
    for path in map(Path, paths):
        if not path.exists():
            raise RecipeError.one(WHERE, f"Received: {path}, which does not exist. Expected an image file or folder, "
                                  "an .npz or a .csv file.")
        kind = "csv" if path.suffix.lower() in (".csv", ".tsv", ".tab") else "npz" if path.suffix.lower() == ".npz" \
            else "image"
        if columns is not None and kind != "csv":
            raise RecipeError.one(WHERE, f"Received: {path}. This model takes csv rows with the columns "
                                  f"{[c['column'] for c in columns]}; expected .csv files.")
        if columns is None and kind == "csv":
            raise RecipeError.one(WHERE, f"Received: {path}, a csv file, but this model takes arrays of shape "
                                  f"{_shown(spec)}. Expected image files or folders, or .npz files.")
        if kind == "image" and path.is_file() and path.suffix.lower() not in image_dir.EXTENSIONS:
            raise RecipeError.one(WHERE, f"Received: {path}. Expected an image ({', '.join(image_dir.EXTENSIONS)}) "
                                  "or a folder of them, an .npz or a .csv file.")
        if kind == "image":
            images += _image_files(path)  # consecutive image arguments stream as one source
            continue
        if images:
            sources.append(_images(images, spec, resize))
            images = []
        sources.append(_csv(path, columns) if kind == "csv" else _npz(path, spec))
    if images:
        sources.append(_images(images, spec, resize))
    return sources


def _shown(spec: dict) -> str:
    shape = ", ".join("batch" if d is None else str(d) for d in spec.get("shape", []))
    return f"({shape}) {spec.get('dtype')}"


# --------------------------------------------------------------------------- images


def _image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in image_dir.EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not found:
        raise RecipeError.one(WHERE, f"Received: the folder {path}, which holds no images "
                              f"({', '.join(image_dir.EXTENSIONS)}). Expected image files, in it or in sub-folders.")
    return found


def _images(files: list[Path], spec: dict, resize: bool) -> Batches:
    shape = tuple(spec.get("shape", [])[1:])
    if len(shape) != 3 or shape[2] not in (1, 3, 4) or spec.get("dtype") != "uint8":
        raise RecipeError.one(WHERE, f"Received: the image {files[0]}, but this model takes {_shown(spec)}, not "
                              "images. Expected .npz files holding x of that shape.")
    for path in files:
        size, _ = image_dir.read_header(path, WHERE)
        if not resize and size != shape[:2]:
            raise RecipeError.one(WHERE, f"Received: {path}, an image of {size[0]}x{size[1]} pixels (height x "
                                  f"width). Expected {shape[0]}x{shape[1]}, the size the model was trained on "
                                  "(the run does not resize: data.image_size is unset). Fix: resize the image.")
    names = [str(p) for p in files]

    def batches(n: int):
        import tensorflow as tf
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(names, tf.string))
        ds = ds.map(lambda p: image_dir.decode(p, shape, resize), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        try:
            yield from ds.batch(n).prefetch(2)
        except tf.errors.OpError as e:
            raise RecipeError.one(WHERE, image_dir.find_bad(np.asarray(names), shape, resize) or
                                  f"Cannot decode an image ({e.message.splitlines()[0]}).") from None
    return Batches(names, batches, image_paths=names)


# --------------------------------------------------------------------------- npz


def _npz(path: Path, spec: dict) -> Batches:
    npz = NpzFile(path, WHERE)
    key = next((k for k in ARRAY_KEYS if k in npz), None)
    if key is None:
        raise RecipeError.one(WHERE, f"Received: {path} with the arrays {npz.keys}. Expected an array named x or "
                              "x_test holding the examples.")
    shape = tuple(spec.get("shape", [])[1:])
    got, _ = npz.header(key)
    if tuple(got[1:]) != shape and not (tuple(got[1:]) + (1,) == shape):
        raise RecipeError.one(WHERE, f"Received: {path}[{key!r}] of shape {tuple(got)}. Expected (n, "
                              f"{', '.join(map(str, shape))}), the examples the model was trained on.")
    x = _as_dtype(npz.array(key).reshape((got[0], *shape)), spec.get("dtype", "float32"), f"{path}[{key!r}]")
    names = [f"{path}[{i}]" for i in range(len(x))]
    return Batches(names, lambda n: (x[i:i + n] for i in range(0, len(x), n)))


def _as_dtype(x: np.ndarray, dtype: str, where: str) -> np.ndarray:
    target = np.dtype(dtype)
    if x.dtype == target:
        return x
    if x.dtype.kind not in "biuf":
        raise RecipeError.one(WHERE, f"Received: {where} of dtype {x.dtype}. Expected numbers ({target}).")
    if target.kind in "ui":
        info = np.iinfo(target)
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)) or x.min(initial=0) < info.min \
                or x.max(initial=0) > info.max:
            raise RecipeError.one(WHERE, f"Received: {where} of dtype {x.dtype} with values that are not whole "
                                  f"numbers in [{info.min}, {info.max}]. Expected raw {target} values, as in "
                                  "training (e.g. pixels 0..255, not scaled to 0..1).")
    return x.astype(target)


# --------------------------------------------------------------------------- csv


def _csv(path: Path, columns: list[dict]) -> Batches:
    table = csvfile.read_table(path, WHERE)
    wanted = [c["column"] for c in columns]
    missing = [c for c in wanted if c not in table.header]
    if missing:
        raise RecipeError.one(WHERE, f"Received: {path} with the columns {table.header}. Expected the training "
                              f"feature columns {wanted} (others are ignored); missing: {missing}.")
    values = {}
    for c in columns:
        kind = "numeric" if c["dtype"] == "float32" else "categorical"
        x = csvfile.column_values(table, c["column"], kind)
        values[c["name"]] = x.astype(np.float32) if kind == "numeric" else x.astype(object)
    names = [f"{path}#{line}" for line in table.lines]
    return Batches(names, lambda n: ({k: v[i:i + n] for k, v in values.items()} for i in range(0, len(names), n)))
