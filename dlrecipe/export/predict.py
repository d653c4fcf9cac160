"""``dlrecipe predict``: the served model (``serving_default``) run on files, its outputs written as a CSV.

``open_served`` finds what to run: a SavedModel folder (``export/saved_model/<version>``), the newest
version under ``export/saved_model`` or ``export``, or a run folder: its newest exported version, else
its ``model.keras`` wrapped in memory by ``saved_model.serving_function``, the very function the
SavedModel holds. Either way the run's fitted preprocessing is inside the graph, so ``predict`` gives
what TF Serving gives. ``write_predictions`` streams the batches to the CSV (temp file, then rename:
nothing is written on an error); segmentation masks go to a folder beside it. See docs/export.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.export.inputs import Batches
from dlrecipe.export.saved_model import METADATA, ROOT, versions
from dlrecipe.export.served import CATEGORICAL, SERVING, Served, named
from dlrecipe.io import atomic_path, write_bytes

TARGET = "RUN_OR_EXPORT"


@dataclass
class Opened:
    """What predict runs: ``call(batch) -> {output: array}``, the metadata, and where it came from."""

    call: Callable[[Any], dict[str, np.ndarray]]
    meta: dict
    source: Path


def open_served(target: Path) -> Opened:
    """The served model of ``target`` (module docstring), ready to call.

    Raises:
        RecipeError: at ``RUN_OR_EXPORT`` when ``target`` is neither a run folder nor an export.
    """
    target = Path(target)
    saved = _saved_model_dir(target)
    if saved is not None:
        return _open_saved_model(saved)
    run_dir = runs.find_run(target)
    saved = _newest(run_dir / runs.EXPORT / ROOT)
    return _open_saved_model(saved) if saved is not None else _serve_run(run_dir)


def _newest(root: Path) -> Path | None:
    found = versions(root)
    return root / str(found[-1]) if found else None


def _saved_model_dir(target: Path) -> Path | None:
    if (target / "saved_model.pb").is_file():
        return target
    return _newest(target) or _newest(target / ROOT)


def _open_saved_model(path: Path) -> Opened:
    import tensorflow as tf

    try:
        fn = tf.saved_model.load(str(path)).signatures[SERVING]
    except Exception as e:  # TensorFlow raises many types for a damaged or foreign SavedModel
        raise RecipeError.one(TARGET, f"Received: {path}, which cannot be loaded as a SavedModel with a "
                              f"{SERVING} signature ({type(e).__name__}). Expected a folder written by "
                              "`dlrecipe export`.") from None
    meta_path = path / METADATA
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else _meta_from_signature(fn)

    def call(batch):
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) if isinstance(v, np.ndarray) else v
                                               for k, v in named(batch).items()}).items()}
    return Opened(call, meta, path)


def _meta_from_signature(fn) -> dict:
    """A SavedModel without ``assets.extra/dlrecipe.json``: what its signature says."""
    specs = fn.structured_input_signature[1]
    outputs = fn.structured_outputs
    if "predictions" in outputs:
        task = "regression"
    else:
        task = "segmentation" if len(outputs["class_id"].shape) == 3 else "classification"
    if list(specs) == ["inputs"]:
        spec = specs["inputs"]
        signature = {"input": {"name": "inputs", "shape": spec.shape.as_list(), "dtype": spec.dtype.name}}
    else:
        signature = {"inputs": [{"name": k, "column": k, "dtype": "float32" if s.dtype.name == "float32" else
                                 "string"} for k, s in specs.items()]}
    return {"task": task, "class_names": None, "signature": signature, "resize_images": False}


def _serve_run(run_dir: Path) -> Opened:
    import tensorflow as tf

    from dlrecipe.export.saved_model import serving_function
    from dlrecipe.export.verify import verification
    run_dir, recipe, pre, model = runs.open_run(run_dir)
    names = recipe.export.class_names or pre.get("class_names")
    served = Served(model, tuple(pre["input_shape"]), str(np.dtype(pre["input_dtype"])), np.zeros(0),
                    tabular=pre.get("tabular"))
    model_fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    serve = serving_function(served, model_fn, pre["task"], names)
    signature = verification(served, pre["task"], names, True, {})["signature"]
    meta = {"task": pre["task"], "class_names": [str(c) for c in names] if names else None,
            "signature": signature, "resize_images": recipe.data.image_size is not None}

    def call(batch):
        arg = {k: tf.constant(v) for k, v in batch.items()} if isinstance(batch, dict) else batch
        return {k: v.numpy() for k, v in serve(arg).items()}
    return Opened(call, meta, run_dir / runs.MODEL)


# --------------------------------------------------------------------------- output


def header(task: str, top_k: int, width: int) -> list[str]:
    """The CSV's columns: ``input, class, probability`` (+ ``class_2, probability_2`` ...), or the values."""
    if task == "classification":
        return ["input", "class", "probability"] + [c for k in range(2, top_k + 1)
                                                    for c in (f"class_{k}", f"probability_{k}")]
    if task == "segmentation":
        return ["input", "mask"]
    return ["input", "prediction"] if width == 1 else ["input"] + [f"prediction_{i}" for i in range(1, width + 1)]


def classification_rows(names: list[str], out: dict, top_k: int, class_names) -> list[list[str]]:
    """One row per example: the served ``class_id`` first, then the next most probable classes."""
    p = np.asarray(out["probabilities"], dtype=np.float64).reshape(len(names), -1)
    if p.shape[1] == 1:  # one sigmoid unit: class 1 has p, class 0 has 1 - p
        p = np.concatenate([1.0 - p, p], axis=1)
    first = np.asarray(out["class_id"]).reshape(-1).astype(np.int64)
    rows = np.arange(len(names))
    if top_k > 1:
        ranked = p.copy()
        ranked[rows, first] = np.inf  # the served class first, whatever a tie would pick
        order = np.argsort(-ranked, axis=1, kind="stable")[:, :top_k]
    else:
        order = first[:, None]
    # One object matrix (input, class, probability, class_2, ...) filled column-wise, then .tolist(): Python
    # floats format about twice as fast as NumPy scalars, and no per-row generators are made.
    labels = np.asarray(class_names if class_names else [str(i) for i in range(p.shape[1])], dtype=object)
    cells = np.empty((len(names), 1 + 2 * order.shape[1]), dtype=object)
    cells[:, 0] = names
    cells[:, 1::2] = labels[order]
    probs = [f"{q:.6g}" for q in p[rows[:, None], order].ravel().tolist()]
    cells[:, 2::2] = np.asarray(probs, dtype=object).reshape(order.shape)
    return cells.tolist()


def _mask_png(ids: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    image = Image.fromarray(ids.astype(np.uint8)) if ids.max(initial=0) < 256 else \
        Image.fromarray(ids.astype(np.uint16))
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Written:
    """What ``write_predictions`` wrote: the CSV, the masks folder (segmentation), rows, and the loop's seconds."""

    out: Path
    masks: Path | None
    n: int
    seconds: float


def write_predictions(opened: Opened, sources: list[Batches], out: Path, *, top_k: int, batch: int,
                      progress: Callable[[int, int], None] | None = None) -> Written:
    """Predict every source in batches of ``batch``, streaming rows to ``out`` (atomic), masks beside it.

    The model runs one batch ahead in a thread (TensorFlow releases the GIL), so writing the rows of
    one batch overlaps computing the next.
    """
    import csv
    from concurrent.futures import ThreadPoolExecutor

    task, class_names = opened.meta["task"], opened.meta.get("class_names")
    key = "predictions" if task not in CATEGORICAL else "probabilities"
    total, state = sum(len(s.names) for s in sources), {"done": 0, "seconds": 0.0, "header": False}
    masks = out.parent / f"{out.stem}_masks" if task == "segmentation" else None
    made = _missing_folders(out.parent)  # removed again on an error: nothing written
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.stem}_masks.")) if masks else None

    began = time.perf_counter()

    try:
        with atomic_path(out, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f, \
                ThreadPoolExecutor(1) as pool:
            writer = csv.writer(f, lineterminator="\n")

            def write(source: Batches, start: int, future) -> int:
                result = future.result()
                n = len(result[key])
                if not state["header"]:
                    width = int(np.prod(result[key].shape[1:])) if task not in CATEGORICAL else 0
                    writer.writerow(header(task, top_k, width))
                    state["header"] = True
                writer.writerows(_rows(task, source.names[start:start + n], result, top_k, class_names, staging,
                                       state["done"], masks))
                state["done"] += n
                if progress is not None:
                    progress(state["done"], total)
                return start + n

            for source in sources:
                start, pending = 0, None
                for x in source.batches(batch):
                    future = pool.submit(opened.call, x)
                    if pending is not None:
                        start = write(source, start, pending)
                    pending = future
                if pending is not None:
                    write(source, start, pending)
        state["seconds"] = time.perf_counter() - began  # the streaming loop's wall time (decoding included)
        if staging is not None:
            _replace_folder(staging, masks)
        made = []
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # on an error: the folders this call made, deepest first, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
    return Written(out, masks, state["done"], state["seconds"])


def _rows(task, names, result, top_k, class_names, staging, offset, masks) -> list[list[str]]:
    if task == "classification":
        return classification_rows(names, result, top_k, class_names)
    if task == "segmentation":
        rows = []
        for j, (name, ids) in enumerate(zip(names, np.asarray(result["class_id"]))):
            file = f"{offset + j + 1:06d}_{Path(name.split('[')[0].split('#')[0]).stem}.png"
            write_bytes(staging / file, _mask_png(ids))
            rows.append([name, str(Path(masks.name) / file)])
        return rows
    values = np.asarray(result["predictions"]).reshape(len(names), -1)
    return [[name, *(f"{v:.7g}" for v in row)] for name, row in zip(names, values.tolist())]


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _replace_folder(source: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
