"""Export a trained model (SavedModel, .keras, TFLite, ONNX) and prove each export serves like the model.

Under ``<run>/export/``: ``saved_model/<version>/`` (``saved_model.py``), ``model.keras``
(``keras_file.py``), ``model.tflite`` (``tflite.py``), ``model.onnx`` (``onnx_file.py``) and
``verification.json`` (``verify.py``, one entry per format ever exported). Nothing is reported as
exported before it is verified: every format is built in a hidden staging folder
``export/.staging-*``, reloaded the way a user would load it, run on the check examples and
compared with the trained model. Only when every requested format passes are they moved into
place, each by a rename (a folder by two), so a failure leaves the previous export untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from dlrecipe import runs
from dlrecipe.errors import RecipeError, suggest
from dlrecipe.export.keras_file import KERAS_FILE, run_keras, stage_keras
from dlrecipe.export.onnx_file import ONNX_FILE, check_installed, run_onnx, write_onnx
from dlrecipe.export.saved_model import ROOT, next_version, run_saved_model, write_metadata, write_saved_model
from dlrecipe.export.served import CATEGORICAL, Served, make_served, predict, signature_inputs
from dlrecipe.export.tflite import run_tflite, write_tflite
from dlrecipe.export.verify import VERIFICATION, compare, merged, verification
from dlrecipe.io import write_json

SAVED_MODEL = "saved_model"
KERAS = "keras"
TFLITE = "tflite"
ONNX = "onnx"
SUPPORTED = (SAVED_MODEL, KERAS, TFLITE, ONNX)
KNOWN = SUPPORTED
FILES = {KERAS: KERAS_FILE, TFLITE: "model.tflite", ONNX: ONNX_FILE}


def export(run_dir: Path, model, *, formats: list[str], include_preprocessing: bool, class_names: list[str] | None,
           input_shape, input_dtype: str, x_check: np.ndarray, task: str | None = None,
           tabular: dict | None = None, raw_check: dict | None = None, resize_images: bool = False) -> dict[str, Path]:
    """Export ``model`` in each format under ``run_dir/export/``, verified before it is reported.

    Args:
        run_dir: the run folder (its ``model.keras`` is copied for ``keras``).
        model: the trained Keras model: raw examples as float32 in, class
            probabilities (or regression values) out.
        formats: any of ``saved_model``, ``keras``, ``tflite``, ``onnx`` (the
            last needs the ``onnx`` extra).
        include_preprocessing: False serves the model without its leading
            ``preprocessing_*`` layers, on preprocessed float32 inputs.
        class_names: class names in label order (classification), or None.
        input_shape: one raw example's shape, e.g. ``[28, 28, 1]``.
        input_dtype: the raw examples' dtype, e.g. ``"uint8"``.
        x_check: raw examples (a few hundred) to compare the exports with the
            model on; shape ``(n, *input_shape)``.
        task: ``"classification"`` or ``"regression"``; None reads it from the
            run's ``preprocessing.json``.
        tabular: a csv run's stored encoding; with ``include_preprocessing`` the
            SavedModel (and TFLite) signature takes raw columns and encodes them.
        raw_check: a csv run's raw test columns (``x_check`` are their encoding);
            probe rows with missing values and unseen categories are added.
        resize_images: the run resizes images to ``input_shape`` (``data.image_size``); recorded
            for ``dlrecipe predict`` in the SavedModel's ``assets.extra/dlrecipe.json``.

    Returns:
        ``{format: path}`` in the order of ``formats``; the largest absolute
        differences are in ``run_dir/export/verification.json``.

    Raises:
        RecipeError: unknown or unsupported format, class names that do not fit
            the model, a model whose preprocessing cannot be cut off, a failed
            conversion, or an export that does not reproduce the model.
    """
    formats = check_formats(formats)
    task = task or runs.read_preprocessing(run_dir)["task"]
    _check_output(model, task, class_names)
    x_check = _check_inputs(x_check, input_shape, input_dtype)
    raw_inputs = None
    if tabular is not None and include_preprocessing:
        from dlrecipe.export.csv_inputs import check_rows
        raw_inputs, x_check = check_rows(tabular, raw_check, len(x_check))
    expected = predict(model, x_check.astype(np.float32))
    served = make_served(model, include_preprocessing, x_check, input_shape, input_dtype)
    if raw_inputs is not None:
        served = replace(served, tabular=tabular, raw_inputs=raw_inputs)
    export_dir = Path(run_dir) / runs.EXPORT
    export_dir.mkdir(parents=True, exist_ok=True)
    targets = {**FILES, SAVED_MODEL: f"{ROOT}/{next_version(export_dir / ROOT)}"}
    report = verification(served, task, class_names, include_preprocessing, {})
    meta = {"task": task, "class_names": report.get("class_names") or (
        [str(c) for c in class_names] if class_names is not None else None),
        "signature": report["signature"], "resize_images": bool(resize_images)}
    staging = Path(tempfile.mkdtemp(dir=export_dir, prefix=".staging-"))
    try:
        staged, diffs = _build_all(Path(run_dir), staging, served, formats, task, class_names, expected,
                                   include_preprocessing, meta)
        paths = {fmt: _place(staged[fmt], export_dir, targets[fmt]) for fmt in formats}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = verification(served, task, class_names, include_preprocessing, diffs)
    write_json(export_dir / VERIFICATION, merged(export_dir / VERIFICATION, report,
                                                 {fmt: targets[fmt] for fmt in formats}))
    return paths


# --------------------------------------------------------------------------- checks


def check_formats(formats) -> list[str]:
    """The requested formats, deduplicated in order.

    Raises:
        RecipeError: at ``export.formats`` for an empty list, an unknown name, or ``onnx`` without its extra.
    """
    if isinstance(formats, str):
        formats = [formats]
    formats = list(dict.fromkeys(formats or []))
    if not formats:
        raise RecipeError.one("export.formats", f"Received an empty list. Expected one or more of {list(SUPPORTED)}, "
                              "e.g. formats: [saved_model].")
    for fmt in formats:
        if fmt == ONNX:
            check_installed()
        if fmt not in SUPPORTED:
            raise RecipeError.one("export.formats", f"Received: {fmt!r}. Expected one of {list(SUPPORTED)}."
                                  + suggest(str(fmt), KNOWN))
    return formats


def _check_output(model, task: str, class_names) -> None:
    if len(model.outputs) != 1:
        raise RecipeError.one("export", f"Received a model with {len(model.outputs)} outputs. Expected one output "
                              "(probabilities or values); export supports single-output models only.")
    if task not in CATEGORICAL or class_names is None:
        return
    units = model.outputs[0].shape[-1]
    expected = 2 if units == 1 and task == "classification" else units
    if len(class_names) != expected:
        raise RecipeError.one("export.class_names", f"Received {len(class_names)} class names, but the model "
                              f"predicts {expected} classes. Expected one name per class, in label order; fix "
                              "export.class_names (or leave it out to use the data's names).")


def _check_inputs(x_check, input_shape, input_dtype: str) -> np.ndarray:
    x = np.asarray(x_check)
    shape = tuple(input_shape)
    if x.ndim != len(shape) + 1 or any(s is not None and s != d for s, d in zip(shape, x.shape[1:])):
        raise RecipeError.one("export", f"Received check examples of shape {x.shape[1:]}. Expected {shape} "
                              "(preprocessing.json's input_shape); the run folder and the data disagree.")
    if len(x) == 0:
        raise RecipeError.one("export", "Received no check examples. Expected a few test examples to verify the "
                              "export with; check the test split of the data.")
    try:
        dtype = np.dtype(input_dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise RecipeError.one("export", f"Received input_dtype={input_dtype!r}. Expected a numeric dtype (uint8, "
                              "float32, ...); models on other inputs cannot be exported yet.")
    return x.astype(dtype, copy=False)


# --------------------------------------------------------------------------- build and verify


def _build_all(run_dir: Path, staging: Path, served: Served, formats: list[str], task: str, class_names,
               expected: np.ndarray, include_preprocessing: bool, meta: dict
               ) -> tuple[dict[str, Path], dict[str, float]]:
    staged: dict[str, Path] = {}
    diffs: dict[str, float] = {}
    saved_model = staging / SAVED_MODEL
    if SAVED_MODEL in formats or TFLITE in formats:
        write_saved_model(served, saved_model, task=task, class_names=class_names)
        write_metadata(saved_model, meta)
        staged[SAVED_MODEL] = saved_model
        if SAVED_MODEL in formats:
            outputs = run_saved_model(saved_model, signature_inputs(served))
            diffs[SAVED_MODEL] = compare(SAVED_MODEL, outputs, expected, task=task, class_names=class_names)
    if KERAS in formats:
        staged[KERAS] = stage_keras(run_dir, staging, served, include_preprocessing)
        outputs = run_keras(staged[KERAS], served.check_inputs, task)
        diffs[KERAS] = compare(KERAS, outputs, expected, task=task, class_names=class_names)
    if TFLITE in formats:
        staged[TFLITE] = write_tflite(saved_model, staging / FILES[TFLITE])
        outputs = run_tflite(staged[TFLITE], signature_inputs(served))
        diffs[TFLITE] = compare(TFLITE, outputs, expected, task=task, class_names=class_names)
    if ONNX in formats:
        staged[ONNX] = write_onnx(served, staging / FILES[ONNX])
        outputs = run_onnx(staged[ONNX], served.check_inputs, task)
        diffs[ONNX] = compare(ONNX, outputs, expected, task=task, class_names=class_names)
    return staged, diffs


# --------------------------------------------------------------------------- files


def _place(source: Path, export_dir: Path, target: str) -> Path:
    """Move a staged export to ``export_dir/target``; a SavedModel of the old flat layout is replaced."""
    root = export_dir / ROOT
    if target.startswith(f"{ROOT}/") and (root / "saved_model.pb").is_file():  # before versions: replace it
        holder = source.parent / f".{ROOT}-versions"
        (holder / Path(target).name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, holder / Path(target).name)
        _move_into_place(holder, root)
        return export_dir / target
    (export_dir / target).parent.mkdir(parents=True, exist_ok=True)
    return _move_into_place(source, export_dir / target)


def _move_into_place(source: Path, target: Path) -> Path:
    """Rename ``source`` to ``target``; an existing ``target`` is removed only once ``source`` is in place."""
    if not target.exists() and not target.is_symlink():
        os.replace(source, target)
        return target
    if source.is_file() and target.is_file():
        os.replace(source, target)  # atomic for a file
        return target
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
    os.replace(target, old / target.name)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(old / target.name, target)  # put the previous export back
        raise
    finally:
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
    return target

