"""Fitted input normalization: statistics from the training split, applied alike everywhere.

``fit`` computes JSON-able statistics from ``x_train`` only (NumPy, float64 accumulation, ``data.moments``;
ZCA and PCA in ``data.projection``). ``apply_numpy`` is the reference transform;
``build.preprocessing.keras_layers`` builds Keras layers that compute exactly the same thing inside a model,
so evaluation and the exported model normalize as training did. ``stored`` splits the statistics into
``preprocessing.json`` and the 2-D matrices into ``preprocessing.npz``. NumPy only. See docs/data.md.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from dlrecipe.build.preprocessing import EPSILON, normalization_args
from dlrecipe.data.moments import array_chunks, chunks, fit_moments
from dlrecipe.data.projection import MAX_COVARIANCE_FEATURES, ZCA_EPSILON, check_pca, fit_pca, fit_zca, too_many
from dlrecipe.errors import RecipeError, suggest

KINDS = ("none", "rescale", "minmax", "standardize", "per_channel", "gcn", "zca")
ARRAYS_FILE = "preprocessing.npz"
GCN_EPSILON = 1e-7


def fit(kind: str, x_train: np.ndarray) -> dict:
    """Fit the statistics of a normalization on the training inputs.

    Kinds: ``none`` (the inputs as float32); ``rescale`` (``x / 255``, nothing fitted); ``minmax``
    (``(x - min) / (max - min)`` per feature, a constant feature maps to 0); ``standardize`` (``(x - mean) /
    std`` per feature; a constant feature, std < 1e-7, is only centred); ``per_channel`` (as standardize,
    per channel, the last axis); ``gcn`` (per example, ``(x - mean(x)) / (std(x) + 1e-7)``, nothing
    fitted); ``zca`` (ZCA whitening, ``(x_flat - mean) @ W`` reshaped back, see ``data.projection``).

    Args:
        kind: one of ``KINDS``.
        x_train: the training inputs, shape ``(N, ...)``; the caller passes
            the training split only. Or an iterator of such arrays (batches of
            a streamed source): the statistics are merged batch by batch and
            equal those of the concatenated batches up to float64 rounding.

    Returns:
        ``{"kind": kind, ...}`` with plain floats and nested lists, ready for
        ``json.dumps``.

    Raises:
        RecipeError: an unknown kind, empty or non-finite inputs, ZCA on too many features.
    """
    if kind not in KINDS:
        raise RecipeError.one("data.normalize", f"Received: normalize={kind!r}. Expected one of "
                              f"{', '.join(KINDS)}.{suggest(kind, KINDS)}")
    if not isinstance(x_train, np.ndarray) and not isinstance(x_train, (list, tuple)):
        return _fit_batches(kind, iter(x_train))
    x = np.asarray(x_train)
    if x.ndim < 2 or len(x) == 0:
        raise RecipeError.one("data.normalize", f"Received: training inputs of shape {x.shape}. Expected at least "
                              "one example, with shape (N, ...), to fit the normalization on.")
    if kind in ("none", "rescale", "gcn"):
        return _fixed(kind)
    if kind == "zca":
        return fit_zca(x)
    return fit_moments(kind, array_chunks(x), x.ndim, x.dtype.kind == "f")


def apply_numpy(stats: dict, x: np.ndarray) -> np.ndarray:
    """Apply fitted statistics with NumPy: the reference for ``keras_layers``.

    Args:
        stats: what ``fit`` returned (possibly read back from JSON).
        x: inputs of the same per-example shape as the training inputs.

    Returns:
        A new float32 array of the shape of ``x``, or ``(n, N)`` with ``pca``.
    """
    out = _normalize_numpy(stats, x)
    if stats.get("pca"):
        out = _project(out, stats["pca"]["mean"], stats["pca"]["components"])
    return out


def _normalize_numpy(stats: dict, x: np.ndarray) -> np.ndarray:
    kind = stats["kind"]
    out = np.array(x, dtype=np.float32)  # always a copy: the transforms below work in place
    if kind == "zca":
        return _project(out, stats["mean"], stats["matrix"]).reshape(out.shape)
    if kind == "none":
        return out
    if kind == "rescale":
        out *= np.float32(stats["scale"])
        out += np.float32(stats["offset"])
        return out
    if kind == "gcn":
        return _gcn_numpy(out, float(stats["epsilon"]))
    center, variance, axis = normalization_args(stats)
    shape = _broadcast_shape(stats, center, axis, out)
    # The same float32 steps as keras.layers.Normalization: (x - mean) / maximum(sqrt(variance), epsilon).
    out -= center.astype(np.float32).reshape(shape)
    out /= np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(EPSILON)).reshape(shape)
    return out


def _fixed(kind: str) -> dict:
    if kind == "rescale":
        return {"kind": "rescale", "scale": 1.0 / 255.0, "offset": 0.0}
    if kind == "gcn":
        return {"kind": "gcn", "epsilon": GCN_EPSILON}
    return {"kind": "none"}


def _fit_batches(kind: str, batches) -> dict:
    """``fit`` over an iterator of batches (a streamed training split), one pass."""
    first = next(batches, None)
    if first is None or np.ndim(first) < 2 or len(first) == 0:
        raise RecipeError.one("data.normalize", "Received: no training batches. Expected at least one example, "
                              "with shape (N, ...), to fit the normalization on.")
    first = np.asarray(first)
    if kind in ("none", "rescale", "gcn"):
        return _fixed(kind)
    return fit_moments(kind, itertools.chain([first], map(np.asarray, batches)), first.ndim, first.dtype.kind == "f")


def _broadcast_shape(stats: dict, center: np.ndarray, axis: list[int], x: np.ndarray) -> tuple[int, ...]:
    """The shape the statistics take to broadcast against ``x``; checks that they fit it."""
    if any(a >= x.ndim for a in axis) or center.shape != tuple(x.shape[a] for a in axis):
        raise ValueError(f"Inputs of shape {x.shape} do not match the fitted {stats['kind']} statistics of shape "
                         f"{center.shape} (axes {axis}); normalize data shaped like the training inputs.")
    shape = [1] * x.ndim
    for a in axis:
        shape[a] = x.shape[a]
    return tuple(shape)


def _gcn_numpy(out: np.ndarray, epsilon: float) -> np.ndarray:
    axes = tuple(range(1, out.ndim))
    for chunk in array_chunks(out):  # views: the chunks are normalized in place
        chunk -= chunk.astype(np.float64).mean(axis=axes, keepdims=True).astype(np.float32)
        std = np.sqrt(np.square(chunk, dtype=np.float64).mean(axis=axes, keepdims=True)).astype(np.float32)
        chunk /= std + np.float32(epsilon)
    return out


def _project(x: np.ndarray, mean: Any, matrix: Any) -> np.ndarray:
    """``(x_flat - mean) @ matrix`` in float32, as the Keras layers compute it."""
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    center = np.asarray(mean, dtype=np.float32)
    weights = np.asarray(matrix, dtype=np.float32)
    if flat.shape[1] != center.shape[0]:
        raise ValueError(f"Inputs with {flat.shape[1]} features per example do not match the fitted statistics of "
                         f"{center.shape[0]} features; transform data shaped like the training inputs.")
    out = np.empty((len(flat), weights.shape[1]), dtype=np.float32)
    step = chunks(flat).step
    for start in range(0, len(flat), step):
        np.matmul(flat[start:start + step] - center, weights, out=out[start:start + step])
    return out


def fit_data(cfg: Any, x_train: np.ndarray) -> dict:
    """Every statistic of the ``data:`` section, fitted on the training split ``x_train`` only.

    Args:
        cfg: the validated ``data:`` section (``normalize``, ``pca``, ``augment``).
        x_train: the training split's inputs.

    Returns:
        ``fit(cfg.normalize, x_train)``, plus ``"pca"`` (``projection.fit_pca``) when ``cfg.pca`` is set and
        ``"augment"`` (``augment.fit_stats``) when an augmentation needs fitted statistics.
    """
    from dlrecipe.build import augment

    x = np.asarray(x_train)
    if cfg.pca is not None:
        check_pca(cfg.pca, math.prod(x.shape[1:]))
    stats = fit(cfg.normalize, x)
    if cfg.pca is not None:
        stats["pca"] = fit_pca(cfg.pca, x, lambda chunk: _normalize_numpy(stats, chunk))
    fitted = augment.fit_stats(cfg.augment, x)
    if fitted:
        stats["augment"] = fitted
    return stats


def placeholder(cfg: Any, input_shape: tuple[int, ...], dtype: str) -> dict:
    """Statistics with the shapes ``fit_data`` would give, without data (for ``validate``).

    Runs the same checks as ``fit_data`` on the shapes (feature limits, ``pca`` size, fancy_pca on RGB).
    """
    from dlrecipe.build import augment

    shape = tuple(input_shape)
    features = math.prod(shape)
    if cfg.pca is not None:
        check_pca(cfg.pca, features)
    if cfg.normalize == "zca":
        if features > MAX_COVARIANCE_FEATURES:
            raise too_many("data.normalize", "normalize: zca", features)
        stats = {"kind": "zca", "shape": list(shape), "epsilon": 1.0, "epsilon_relative": ZCA_EPSILON,
                 "mean": [0.0] * features, "matrix": np.eye(features, dtype=np.float32)}
    else:
        stats = fit(cfg.normalize, np.zeros((2, *shape), dtype=dtype))
    if cfg.pca is not None:
        stats["pca"] = {"n_components": cfg.pca, "mean": [0.0] * features,
                        "components": np.eye(features, cfg.pca, dtype=np.float32)}
    fitted = augment.placeholder_stats(cfg.augment, shape)
    if fitted:
        stats["augment"] = fitted
    return stats


def stored(stats: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """What the run folder keeps: JSON sections, and the 2-D matrices for ``preprocessing.npz``.

    Returns:
        ``({"normalization": ..., "pca": ..., "augmentation": ...}, {key: array})``; in the JSON each
        matrix is ``{"file": "preprocessing.npz", "key": ..., "shape": [...]}``. ``pca`` and
        ``augmentation`` appear only when fitted.
    """
    arrays: dict[str, np.ndarray] = {}

    def out(section: str, values: dict) -> dict:
        result = {}
        for key, value in values.items():
            if isinstance(value, np.ndarray) and value.ndim >= 2:
                arrays[f"{section}.{key}"] = value
                value = {"file": ARRAYS_FILE, "key": f"{section}.{key}", "shape": list(value.shape)}
            result[key] = value
        return result

    sections = {"normalization": out("normalization", {k: v for k, v in stats.items() if k not in ("pca", "augment")})}
    if stats.get("pca"):
        sections["pca"] = out("pca", stats["pca"])
    if stats.get("augment"):
        sections["augmentation"] = stats["augment"]
    return sections, arrays


def write_arrays(path: Any, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to the ``.npz`` at ``path`` atomically."""
    from dlrecipe.io import write_npz
    write_npz(path, arrays)


def load_stored(run_dir: Any) -> dict:
    """The statistics of a run folder, as ``fit_data`` returned them (matrices read from the ``.npz``)."""
    import json
    from pathlib import Path

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "preprocessing.json").read_text())
    arrays = None

    def back(values: dict) -> dict:
        nonlocal arrays
        result = dict(values)
        for key, value in values.items():
            if isinstance(value, dict) and value.get("file") == ARRAYS_FILE:
                if arrays is None:
                    arrays = np.load(run_dir / ARRAYS_FILE, allow_pickle=False)
                result[key] = arrays[value["key"]]
        return result

    stats = back(meta.get("normalization") or {})
    if meta.get("pca"):
        stats["pca"] = back(meta["pca"])
    if meta.get("augmentation"):
        stats["augment"] = meta["augmentation"]
    return stats
