"""Export a trained model (SavedModel, .keras, TFLite) and prove each export serves like the model.

What is written, under ``<run>/export/``:

``saved_model/``
    A TensorFlow SavedModel written with ``keras.export.ExportArchive``. Its
    ``serving_default`` signature takes ``inputs`` (raw examples: shape
    ``(None, *input_shape)``, dtype ``input_dtype``, e.g. uint8 pixels), casts
    them to float32, runs the model (preprocessing included) and returns
    ``probabilities`` (float32), ``class_id`` (int64, the argmax; a single
    sigmoid unit is thresholded at 0.5) and, when class names are known,
    ``class_name`` (string); for regression it returns ``predictions``; for
    segmentation ``probabilities`` (N, H, W, classes) and ``class_id`` (N, H, W),
    without per-pixel names (the names are in ``verification.json``). The
    graph holds every layer (dlrecipe's custom layers included, traced by
    ExportArchive), so it loads with ``tf.saved_model.load`` in a Python that
    has TensorFlow but neither dlrecipe nor Keras. A second signature,
    ``predict_float32``, is the model alone on float32 inputs (ExportArchive
    needs it to trace the model under every Keras backend, JAX included).
``model.keras``
    A byte copy of the run's ``model.keras`` (raw float32 inputs in).
``model.tflite``
    The SavedModel's ``serving_default`` signature, converted by
    ``tf.lite.TFLiteConverter.from_saved_model`` (same inputs and outputs).
``verification.json``
    For each format, the largest absolute difference between its outputs and
    ``model.predict`` on the check examples.

``include_preprocessing: false``: the model's leading preprocessing layers (those
whose name starts with ``preprocessing_``) are cut off and every format serves
the rest of the graph, which takes already-preprocessed float32 inputs. The cut
is made on the functional graph: the output tensor of the last preprocessing
layer becomes the input of a new ``keras.Model`` that shares the trained layers
(``keras.Model(cut_tensor, model.outputs)``). This needs a functional (or
Sequential) model whose preprocessing layers form a prefix of the graph: one
input, preprocessing layers first, and nothing after them that reads the raw
input. Any other layout is a RecipeError that says so. ``model.keras`` is then
the cut model (saved, not copied).

Nothing is reported as exported before it is verified: every format is built
in a hidden staging folder ``export/.staging-*``, reloaded the way a user would
load it (``tf.saved_model.load``, ``keras.saving.load_model(safe_mode=True)``,
``tf.lite.Interpreter``), run on the check examples and compared with the
trained model (max abs difference <= 1e-4, same predicted class). Only when
every requested format passes are they moved into place, each by a rename (a
folder replaces the old one by two renames, so an existing export stays whole
until the new one is verified). A failure leaves the previous export untouched
and removes the staging folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe import runs
from dlrecipe.errors import RecipeError, suggest
from dlrecipe.io import write_json

SAVED_MODEL = "saved_model"
KERAS = "keras"
TFLITE = "tflite"
ONNX = "onnx"
SUPPORTED = (SAVED_MODEL, KERAS, TFLITE)
KNOWN = SUPPORTED + (ONNX,)
TARGETS = {SAVED_MODEL: "saved_model", KERAS: "model.keras", TFLITE: "model.tflite"}
VERIFICATION = "verification.json"
SERVING = "serving_default"
FLOAT_ENDPOINT = "predict_float32"
INPUT_NAME = "inputs"
PREPROCESSING_PREFIX = "preprocessing_"
TOLERANCE = 1e-4
CHECK_BATCH = 64
CATEGORICAL = ("classification", "segmentation")  # tasks served as probabilities and class ids


@dataclass(frozen=True)
class Served:
    """What the exports serve.

    Attributes:
        model: the Keras model that is exported (the trained one, or the part
            after preprocessing).
        shape: the signature's input shape without the batch axis.
        dtype: the signature's input dtype.
        check_inputs: the check examples as the exports take them.
        tabular: csv runs: the stored encoding; the SavedModel's signature then takes one raw
            input per column and encodes it in the graph (see ``csvserve``).
        raw_inputs: csv runs: the check rows as raw columns, by signature input name.
    """

    model: Any
    shape: tuple
    dtype: str
    check_inputs: np.ndarray
    tabular: dict | None = None
    raw_inputs: dict | None = None


def export(run_dir: Path, model, *, formats: list[str], include_preprocessing: bool, class_names: list[str] | None,
           input_shape, input_dtype: str, x_check: np.ndarray, task: str | None = None,
           tabular: dict | None = None, raw_check: dict | None = None) -> dict[str, Path]:
    """Export ``model`` in each format under ``run_dir/export/``, verified before it is reported.

    Args:
        run_dir: the run folder (its ``model.keras`` is copied for ``keras``).
        model: the trained Keras model: raw examples as float32 in, class
            probabilities (or regression values) out.
        formats: any of ``saved_model``, ``keras``, ``tflite`` (``onnx`` is
            refused: it needs tf2onnx, which dlrecipe does not install).
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

    Returns:
        ``{format: path}`` in the order of ``formats``; the largest absolute
        differences are in ``run_dir/export/verification.json``.

    Raises:
        RecipeError: unknown or unsupported format, class names that do not fit
            the model, a model whose preprocessing cannot be cut off, a failed
            conversion, or an export that does not reproduce the model.
    """
    formats = check_formats(formats)
    task = task or _task_from_run(run_dir)
    _check_output(model, task, class_names)
    x_check = _check_inputs(x_check, input_shape, input_dtype)
    raw_inputs = None
    if tabular is not None and include_preprocessing:
        from dlrecipe.export.csvserve import check_rows
        raw_inputs, x_check = check_rows(tabular, raw_check, len(x_check))
    expected = _predict(model, x_check.astype(np.float32))
    served = _served(model, include_preprocessing, x_check, input_shape, input_dtype)
    if raw_inputs is not None:
        served = replace(served, tabular=tabular, raw_inputs=raw_inputs)
    export_dir = Path(run_dir) / runs.EXPORT
    export_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=export_dir, prefix=".staging-"))
    try:
        staged, diffs = _build_all(Path(run_dir), staging, served, formats, task, class_names, expected,
                                   include_preprocessing)
        paths = {fmt: _move_into_place(staged[fmt], export_dir / TARGETS[fmt]) for fmt in formats}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json(export_dir / VERIFICATION, _verification(served, task, class_names, include_preprocessing, diffs))
    return paths


# --------------------------------------------------------------------------- checks


def check_formats(formats) -> list[str]:
    """The requested formats, deduplicated in order.

    Raises:
        RecipeError: at ``export.formats`` for an empty list, an unknown name or ``onnx``.
    """
    if isinstance(formats, str):
        formats = [formats]
    formats = list(dict.fromkeys(formats or []))
    if not formats:
        raise RecipeError.one("export.formats", f"Received an empty list. Expected one or more of {list(SUPPORTED)}, "
                              "e.g. formats: [saved_model].")
    for fmt in formats:
        if fmt == ONNX:
            raise RecipeError.one("export.formats", "Received: onnx. ONNX export needs tf2onnx, which dlrecipe does "
                                  "not install. Expected one of saved_model, keras, tflite; use saved_model (or "
                                  "convert the exported SavedModel yourself with `python -m tf2onnx.convert "
                                  "--saved-model <run>/export/saved_model`).")
        if fmt not in SUPPORTED:
            raise RecipeError.one("export.formats", f"Received: {fmt!r}. Expected one of {list(SUPPORTED)}."
                                  + suggest(str(fmt), KNOWN))
    return formats


def _task_from_run(run_dir: Path) -> str:
    task = runs.read_json(Path(run_dir) / runs.PREPROCESSING).get("task")
    if task not in ("classification", "regression", "segmentation"):
        raise RecipeError.one(str(Path(run_dir) / runs.PREPROCESSING), f"Received task={task!r}. Expected "
                              "'classification', 'regression' or 'segmentation'; the run folder is damaged. "
                              "Train it again.")
    return task


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


# --------------------------------------------------------------------------- what is served


def _served(model, include_preprocessing: bool, x_check: np.ndarray, input_shape, input_dtype: str) -> Served:
    if include_preprocessing:
        return Served(model, tuple(input_shape), str(np.dtype(input_dtype)), x_check)
    pre, core = split_preprocessing(model)
    x = x_check.astype(np.float32)
    check = _predict(pre, x) if pre is not None else x
    return Served(core, tuple(core.inputs[0].shape[1:]), "float32", check.astype(np.float32))


def split_preprocessing(model):
    """Cut ``model`` after its leading ``preprocessing_*`` layers.

    Returns:
        ``(preprocess, core)``: ``preprocess`` maps raw float32 inputs to what
        ``core`` takes, and ``core`` shares the trained layers after the cut.
        ``preprocess`` is None when the model has no preprocessing layer.

    Raises:
        RecipeError: at ``export.include_preprocessing`` when the model is not
            functional, has several inputs, or its preprocessing layers are not
            a prefix of the graph.
    """
    import keras

    pre_layers = [layer for layer in model.layers if layer.name.startswith(PREPROCESSING_PREFIX)]
    if not pre_layers:
        return None, model
    fix = "Set export.include_preprocessing: true (the served model then takes raw inputs)."
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1:
        raise RecipeError.one("export.include_preprocessing", "Received a model that is not a single-input "
                              "functional model. Expected one built from keras.Input, so that its preprocessing "
                              f"layers can be cut off. {fix}")
    last = pre_layers[-1]
    if len(getattr(last, "_inbound_nodes", [])) != 1:
        raise RecipeError.one("export.include_preprocessing", f"Received preprocessing layer '{last.name}' used "
                              f"{len(last._inbound_nodes)} times. Expected each preprocessing layer once. {fix}")
    cut = last.output
    try:
        core = keras.Model(cut, model.outputs, name=f"{model.name}_without_preprocessing")
        preprocess = keras.Model(inputs, cut, name=f"{model.name}_preprocessing")
    except ValueError as e:
        raise RecipeError.one("export.include_preprocessing", f"Cannot cut the model after '{last.name}' ({e}). "
                              "Expected the preprocessing layers to come first, with nothing after them reading the "
                              f"raw input. {fix}") from None
    inside = [layer.name for layer in core.layers if layer.name.startswith(PREPROCESSING_PREFIX)]
    missing = [layer.name for layer in pre_layers if layer not in preprocess.layers]
    if inside or missing:
        raise RecipeError.one("export.include_preprocessing", f"Received preprocessing layers {inside or missing} "
                              f"that are not before '{last.name}'. Expected every preprocessing layer at the start "
                              f"of the model. {fix}")
    return preprocess, core


# --------------------------------------------------------------------------- build and verify


def _build_all(run_dir: Path, staging: Path, served: Served, formats: list[str], task: str, class_names,
               expected: np.ndarray, include_preprocessing: bool) -> tuple[dict[str, Path], dict[str, float]]:
    staged: dict[str, Path] = {}
    diffs: dict[str, float] = {}
    saved_model = staging / TARGETS[SAVED_MODEL]
    if SAVED_MODEL in formats or TFLITE in formats:
        write_saved_model(served, saved_model, task=task, class_names=class_names)
        staged[SAVED_MODEL] = saved_model
        if SAVED_MODEL in formats:
            outputs = run_saved_model(saved_model, _signature_inputs(served))
            diffs[SAVED_MODEL] = compare(SAVED_MODEL, outputs, expected, task=task, class_names=class_names)
    if KERAS in formats:
        staged[KERAS] = _stage_keras(run_dir, staging, served, include_preprocessing)
        outputs = run_keras(staged[KERAS], served.check_inputs, task)
        diffs[KERAS] = compare(KERAS, outputs, expected, task=task, class_names=class_names)
    if TFLITE in formats:
        staged[TFLITE] = write_tflite(saved_model, staging / TARGETS[TFLITE])
        outputs = run_tflite(staged[TFLITE], _signature_inputs(served))
        diffs[TFLITE] = compare(TFLITE, outputs, expected, task=task, class_names=class_names)
    return staged, diffs


def write_saved_model(served: Served, path: Path, *, task: str, class_names) -> None:
    """Write the SavedModel with its ``serving_default`` signature (see the module docstring)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(served.model)
    float_spec = tf.TensorSpec((None, *served.shape), tf.float32, name=INPUT_NAME)
    model_fn = archive.add_endpoint(FLOAT_ENDPOINT, lambda x: served.model(x, training=False),
                                    input_signature=[float_spec])
    names = [str(c) for c in class_names] if class_names is not None else None

    if served.tabular is not None:  # csv: one raw input per column, encoded in the graph
        from dlrecipe.export import csvserve

        @tf.function(input_signature=[csvserve.input_signature(served.tabular)])
        def serve(inputs):
            outputs = tf.cast(model_fn(csvserve.encode(served.tabular, inputs)), tf.float32)
            return serving_outputs(outputs, task, names)
    else:
        @tf.function(input_signature=[tf.TensorSpec((None, *served.shape), served.dtype, name=INPUT_NAME)])
        def serve(inputs):
            outputs = tf.cast(model_fn(tf.cast(inputs, tf.float32)), tf.float32)
            return serving_outputs(outputs, task, names)

    serve.get_concrete_function()
    archive.add_endpoint(SERVING, serve)
    try:
        archive.write_out(str(path), verbose=False)
    except Exception as e:  # TensorFlow raises many types for layers it cannot trace or save
        raise RecipeError.one("export.formats", f"Cannot write the SavedModel ({type(e).__name__}: {e}). A layer "
                              "of the model does not export; try the keras format.") from e


def serving_outputs(outputs, task: str, class_names: list[str] | None) -> dict:
    """The signature's outputs from the model's float32 outputs (a traced TensorFlow function body)."""
    import tensorflow as tf

    if task not in CATEGORICAL:
        return {"predictions": outputs}
    if task == "segmentation":  # per pixel: (N, H, W, C) -> (N, H, W)
        return {"probabilities": outputs, "class_id": tf.argmax(outputs, axis=-1, output_type=tf.int64)}
    if outputs.shape[-1] == 1:
        class_id = tf.cast(outputs[:, 0] > 0.5, tf.int64)
    else:
        class_id = tf.argmax(outputs, axis=-1, output_type=tf.int64)
    result = {"probabilities": outputs, "class_id": class_id}
    if class_names is not None:
        result["class_name"] = tf.gather(tf.constant(class_names, dtype=tf.string), class_id)
    return result


def _stage_keras(run_dir: Path, staging: Path, served: Served, include_preprocessing: bool) -> Path:
    target = staging / TARGETS[KERAS]
    source = run_dir / runs.MODEL
    if include_preprocessing and source.is_file():
        shutil.copyfile(source, target)
    else:
        served.model.save(str(target))
    return target


def write_tflite(saved_model: Path, path: Path) -> Path:
    """Convert the SavedModel's ``serving_default`` signature to ``path``."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SERVING])
        path.write_bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError and others, with long logs
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError.one("export.formats", f"Cannot convert the model to TFLite ({type(e).__name__}: "
                              f"{first}). The model uses an operation TFLite lacks; remove tflite from "
                              "export.formats and use saved_model or keras.") from e
    return path


def run_saved_model(path: Path, x) -> dict[str, np.ndarray]:
    """Reload the SavedModel with plain TensorFlow and run ``serving_default`` on ``x``.

    ``x`` is an array (the ``inputs`` argument), or a csv run's ``{input name: column}``.
    """
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures[SERVING]
    return _batched(lambda batch: {k: v.numpy() for k, v in
                                   fn(**{k: tf.constant(v) for k, v in _named(batch).items()}).items()}, x)


def run_keras(path: Path, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    """Reload the ``.keras`` file with safe mode on and predict ``x``."""
    import keras

    from dlrecipe.runs import register_layers
    register_layers()
    model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    key = "probabilities" if task in CATEGORICAL else "predictions"
    return {key: _predict(model, x.astype(np.float32))}


def run_tflite(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Load the ``.tflite`` file in a TFLite interpreter and run its ``serving_default`` signature on ``x``."""
    import tensorflow as tf

    with warnings.catch_warnings():  # TF 2.20+ warns that tf.lite.Interpreter moves to ai_edge_litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(SERVING)
    return _batched(lambda batch: dict(runner(**_named(batch))), x)


def _signature_inputs(served: Served):
    return served.raw_inputs if served.raw_inputs is not None else served.check_inputs


def _named(batch) -> dict:
    """The signature's keyword arguments: ``inputs``, or a csv run's one per column."""
    return dict(batch) if isinstance(batch, dict) else {INPUT_NAME: batch}


def _batched(fn, x) -> dict[str, np.ndarray]:
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)

    def rows(i):
        if isinstance(x, dict):
            return {k: v[i:i + CHECK_BATCH] for k, v in x.items()}
        return x[i:i + CHECK_BATCH]
    parts = [fn(rows(i)) for i in range(0, n, CHECK_BATCH)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=CHECK_BATCH, verbose=0), dtype=np.float32)


def compare(fmt: str, outputs: dict[str, np.ndarray], expected: np.ndarray, *, task: str, class_names) -> float:
    """The largest absolute difference between an export's outputs and the model's.

    An export passes when the difference is at most 1e-4 and it predicts the
    same class (an example whose two best classes are within 1e-4 of each other
    may pick either), and its ``class_name`` is the name of its ``class_id``.

    Raises:
        RecipeError: at ``export.formats`` when the export does not reproduce the model.
    """
    key = "probabilities" if task in CATEGORICAL else "predictions"
    got = np.asarray(outputs[key], dtype=np.float32).reshape(expected.shape)
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if not np.isfinite(diff) or diff > TOLERANCE:
        _mismatch(fmt, f"its {key} differ from the trained model's by up to {diff:.3g} (expected <= {TOLERANCE:g}) "
                       f"on {len(expected)} test examples")
    if task == "classification":
        _check_classes(fmt, outputs, expected, class_names)
    elif task == "segmentation":
        _check_pixel_classes(fmt, outputs, expected)
    return diff


def _check_pixel_classes(fmt: str, outputs: dict[str, np.ndarray], expected: np.ndarray) -> None:
    """Every pixel's served class is the model's (or ties with it within the tolerance)."""
    scores = expected.reshape(-1, expected.shape[-1])
    ids = outputs.get("class_id", np.argmax(np.asarray(outputs["probabilities"]), axis=-1))
    ids = np.asarray(ids).reshape(-1).astype(np.int64)
    if len(ids) != len(scores):
        _mismatch(fmt, f"its class_id has {len(ids)} values, expected one per pixel ({len(scores)})")
    wrong = scores[np.arange(len(scores)), ids] < scores.max(axis=1) - TOLERANCE
    if wrong.any():
        _mismatch(fmt, f"it predicts another class than the trained model for {int(wrong.sum())} of "
                       f"{len(scores)} pixels of {len(expected)} test images")


def _check_classes(fmt: str, outputs: dict[str, np.ndarray], expected: np.ndarray, class_names) -> None:
    flat = expected.reshape(len(expected), -1)
    if flat.shape[1] == 1:  # one sigmoid unit: the export's class must agree unless the score is ~0.5
        chosen = (flat[:, 0] > 0.5).astype(np.int64)
        ids = outputs.get("class_id", (np.asarray(outputs["probabilities"]).reshape(-1) > 0.5).astype(np.int64))
        wrong = (np.asarray(ids).reshape(-1) != chosen) & (np.abs(flat[:, 0] - 0.5) > TOLERANCE)
    else:
        ids = outputs.get("class_id", np.argmax(np.asarray(outputs["probabilities"]).reshape(flat.shape), axis=1))
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        wrong = flat[np.arange(len(flat)), ids] < flat.max(axis=1) - TOLERANCE
    if wrong.any():
        _mismatch(fmt, f"it predicts another class than the trained model for {int(wrong.sum())} of "
                       f"{len(expected)} test examples")
    if class_names is not None and "class_name" in outputs:
        got = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in np.asarray(outputs["class_name"])]
        want = [str(class_names[i]) for i in np.asarray(ids).reshape(-1)]
        if got != want:
            _mismatch(fmt, "its class_name output is not the name of its class_id")


def _mismatch(fmt: str, what: str) -> None:
    raise RecipeError.one("export.formats", f"The {fmt} export failed verification: {what}. Nothing was exported "
                          "(a previous export, if any, is untouched). The model has a layer that does not export "
                          f"faithfully; remove {fmt} from export.formats, and report this with the recipe.")


# --------------------------------------------------------------------------- files


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


def _verification(served: Served, task: str, class_names, include_preprocessing: bool,
                  diffs: dict[str, float]) -> dict:
    if task == "classification":
        outputs = ["probabilities", "class_id"] + (["class_name"] if class_names is not None else [])
    elif task == "segmentation":
        outputs = ["probabilities", "class_id"]
    else:
        outputs = ["predictions"]
    return {
        "max_abs_diff": diffs,
        "tolerance": TOLERANCE,
        "n_checked": int(len(served.check_inputs)),
        "include_preprocessing": bool(include_preprocessing),
        "task": task,
        **({"class_names": [str(c) for c in class_names]} if task == "segmentation" and class_names else {}),
        "signature": {
            "name": SERVING,
            **({"inputs": [{"name": c["input"], "column": c["name"], "shape": [None],
                            "dtype": "float32" if c["kind"] == "numeric" else "string"}
                           for c in served.tabular["columns"]]} if served.tabular is not None else
               {"input": {"name": INPUT_NAME, "shape": [None, *served.shape], "dtype": served.dtype}}),
            "outputs": outputs,
        },
    }
