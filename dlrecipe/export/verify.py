"""Verification of an export against the trained model, and ``verification.json``.

An export passes when its outputs are within ``TOLERANCE`` (max abs difference) of
``model.predict`` on the check examples and it predicts the same class. ``verification.json``
holds, per format, the largest absolute difference and the path (``formats``), with the signature
that was checked last; exporting one format keeps the entries of the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.export.served import CATEGORICAL, INPUT_NAME, SERVING, Served

VERIFICATION = "verification.json"
TOLERANCE = 1e-4


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


def verification(served: Served, task: str, class_names, include_preprocessing: bool,
                 diffs: dict[str, float]) -> dict:
    """``verification.json``'s content: ``max_abs_diff`` per format, the tolerance and the signature."""
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


def merged(path: Path, report: dict, paths: dict[str, str]) -> dict:
    """``report`` with the per-format entries of the ``verification.json`` at ``path`` kept (if readable).

    ``paths``: ``{format: path under export/}`` of the formats just exported; their entries are replaced.
    """
    try:
        previous = runs.read_json(path) if Path(path).is_file() else {}
    except RecipeError:
        previous = {}  # a damaged file: start again with what was just verified
    if not isinstance(previous, dict):
        previous = {}
    old_diffs = previous.get("max_abs_diff") if isinstance(previous.get("max_abs_diff"), dict) else {}
    old_formats = previous.get("formats") if isinstance(previous.get("formats"), dict) else {}
    diffs = {**old_diffs, **report["max_abs_diff"]}
    formats = {**old_formats, **{fmt: {"path": paths[fmt], "max_abs_diff": report["max_abs_diff"][fmt]}
                                 for fmt in paths}}
    return {**report, "max_abs_diff": diffs, "formats": formats}


def max_abs_diffs(export_dir: Path) -> dict[str, float]:
    """The largest absolute difference per format of the export in ``export_dir`` (its ``verification.json``).

    Example:
        >>> max_abs_diffs(run_dir / "export")
        {'saved_model': 2.9e-08, 'tflite': 5.9e-08}
    """
    return dict(runs.read_json(Path(export_dir) / VERIFICATION).get("max_abs_diff", {}))
