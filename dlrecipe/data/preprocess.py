"""Fitted input normalization: statistics from the training split, applied alike everywhere.

``fit`` computes JSON-able statistics from ``x_train`` only (NumPy, float64
accumulation). ``apply_numpy`` is the reference transform;
``dlrecipe.build.preprocessing.keras_layers`` builds Keras layers that compute
exactly the same thing inside a model, so evaluation and the exported model
normalize as training did.

Kinds:
    none: the inputs as float32.
    rescale: ``x / 255`` (pixel data); nothing is fitted.
    minmax: ``(x - min) / (max - min)`` per feature (each position of one
        example); a constant feature maps to 0.
    standardize: ``(x - mean) / std`` per feature; a constant feature
        (std < 1e-7) is only centred (std is stored as 1).
    per_channel: as standardize, with statistics per channel (the last axis),
        over all examples and positions.
    gcn: global contrast normalization, per example: ``(x - mean(x)) /
        (std(x) + 1e-7)``; nothing is fitted.
    zca: ZCA whitening, ``(x_flat - mean) @ W`` reshaped back, with
        ``W = U diag(1 / sqrt(lambda + epsilon)) U^T`` from the eigen-decomposition
        ``U diag(lambda) U^T`` of the training covariance (per feature, float64).
        ``epsilon = ZCA_EPSILON * mean(lambda)`` (1e-2 times the average feature
        variance): relative, so the scale of the data does not matter, and large
        enough that near-constant features (image borders) are not blown up. The
        whitened training data has covariance ``U diag(lambda / (lambda + epsilon)) U^T``,
        the identity for every direction whose variance is well above epsilon.

``pca: N`` (``fit_data``) runs after the normalization: it keeps the first N
principal components of the flattened normalized training features,
``(x_flat - mean) @ V_N`` (columns of ``V_N`` are the eigenvectors of the
covariance with the largest eigenvalues, each signed so that its largest entry
is positive). The model then sees N features; the exported model still takes
raw inputs. ZCA and PCA need the full covariance: they are refused beyond
``MAX_COVARIANCE_FEATURES`` features.

Stored (``stored``): ``preprocessing.json`` holds every statistic, except the
2-D matrices (ZCA's ``matrix``, PCA's ``components``), which go to
``preprocessing.npz`` beside it (float32; the JSON names the file and key).

This module imports no Keras (the layers: ``dlrecipe.build.preprocessing``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlrecipe.build.preprocessing import EPSILON, normalization_args, safe_scale
from dlrecipe.errors import RecipeError, suggest

KINDS = ("none", "rescale", "minmax", "standardize", "per_channel", "gcn", "zca")
ZCA_EPSILON = 1e-2  # times the mean eigenvalue of the training covariance
MAX_COVARIANCE_FEATURES = 4096  # ZCA and PCA: a 4096 x 4096 float64 covariance is 128 MiB
ARRAYS_FILE = "preprocessing.npz"
GCN_EPSILON = 1e-7
_CHUNK_VALUES = 1 << 22  # values per float64 chunk while fitting (32 MiB)


def fit(kind: str, x_train: np.ndarray) -> dict:
    """Fit the statistics of a normalization on the training inputs.

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
    if kind == "minmax":
        return _fit_minmax(x)
    if kind == "zca":
        return _fit_zca(x)
    per_channel = kind == "per_channel"
    mean, std = _moments(x, per_channel)
    axis = [x.ndim - 1] if per_channel else list(range(1, x.ndim))
    return {"kind": kind, "axis": axis, "mean": mean.tolist(), "std": safe_scale(std).tolist()}


def apply_numpy(stats: dict, x: np.ndarray) -> np.ndarray:
    """Apply fitted statistics with NumPy: the reference for ``build.preprocessing.keras_layers``.

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


# --------------------------------------------------------------------------- helpers


def _fixed(kind: str) -> dict:
    if kind == "rescale":
        return {"kind": "rescale", "scale": 1.0 / 255.0, "offset": 0.0}
    if kind == "gcn":
        return {"kind": "gcn", "epsilon": GCN_EPSILON}
    return {"kind": "none"}


def _chunks(x: np.ndarray) -> range:
    per_example = max(1, math.prod(x.shape[1:]))
    return range(0, len(x), max(1, _CHUNK_VALUES // per_example))


def _check_finite(chunk: np.ndarray) -> None:
    if not np.all(np.isfinite(chunk)):
        raise RecipeError.one("data.normalize", "Received: training inputs holding NaN or infinite values. Expected "
                              "finite numbers; the normalization statistics would be NaN. Fix: clean the data.")


def _fit_minmax(x: np.ndarray) -> dict:
    low = np.min(x, axis=0).astype(np.float64)
    high = np.max(x, axis=0).astype(np.float64)
    if x.dtype.kind == "f":
        _check_finite(low)
        _check_finite(high)
    return {"kind": "minmax", "axis": list(range(1, x.ndim)), "min": low.tolist(), "max": high.tolist()}


def _fit_batches(kind: str, batches) -> dict:
    """``fit`` over an iterator of batches (a streamed training split), one pass."""
    first = next(batches, None)
    if first is None or np.ndim(first) < 2 or len(first) == 0:
        raise RecipeError.one("data.normalize", "Received: no training batches. Expected at least one example, "
                              "with shape (N, ...), to fit the normalization on.")
    first = np.asarray(first)
    if kind in ("none", "rescale", "gcn"):
        return _fixed(kind)

    def all_batches():
        yield first
        for b in batches:
            yield np.asarray(b)

    if kind == "minmax":
        low = high = None
        for b in all_batches():
            b_low, b_high = np.min(b, axis=0).astype(np.float64), np.max(b, axis=0).astype(np.float64)
            low = b_low if low is None else np.minimum(low, b_low)
            high = b_high if high is None else np.maximum(high, b_high)
        if first.dtype.kind == "f":
            _check_finite(low)
            _check_finite(high)
        return {"kind": "minmax", "axis": list(range(1, first.ndim)), "min": low.tolist(), "max": high.tolist()}
    per_channel = kind == "per_channel"
    mean, std = _merge_moments(all_batches(), per_channel, first.ndim)
    axis = [first.ndim - 1] if per_channel else list(range(1, first.ndim))
    return {"kind": kind, "axis": axis, "mean": mean.tolist(), "std": safe_scale(std).tolist()}


def _moments(x: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation, float64, over chunks merged exactly (Chan et al.).

    Per feature (over axis 0) or, with ``per_channel``, over all axes but the last.
    """
    step = _chunks(x).step
    return _merge_moments((x[start:start + step] for start in _chunks(x)), per_channel, x.ndim)


def _merge_moments(chunks, per_channel: bool, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """The moments of ``chunks`` (arrays of one per-example shape), merged exactly chunk by chunk."""
    axes = tuple(range(ndim - 1)) if per_channel else (0,)
    count, mean, m2 = 0, None, None
    for raw in chunks:
        chunk = raw.astype(np.float64)
        if raw.dtype.kind == "f":
            _check_finite(chunk)
        n = chunk.size // math.prod(chunk.shape[a] for a in range(chunk.ndim) if a not in axes)
        c_mean = chunk.mean(axis=axes)
        c_m2 = np.square(chunk - np.expand_dims(c_mean, axes)).sum(axis=axes)
        if mean is None:
            count, mean, m2 = n, c_mean, c_m2
            continue
        delta = c_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + c_m2 + np.square(delta) * (count * n / total)
        count = total
    assert mean is not None and m2 is not None
    return mean, np.sqrt(m2 / count)


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
    step = _chunks(out).step
    for start in _chunks(out):
        chunk = out[start:start + step]
        chunk -= chunk.astype(np.float64).mean(axis=axes, keepdims=True).astype(np.float32)
        std = np.sqrt(np.square(chunk, dtype=np.float64).mean(axis=axes, keepdims=True)).astype(np.float32)
        chunk /= std + np.float32(epsilon)
    return out


# --------------------------------------------------------------------------- ZCA and PCA


def _too_many(path: str, what: str, features: int) -> RecipeError:
    fix = ("use normalize: standardize or per_channel" if path == "data.normalize"
           else "remove data.pca, or use smaller inputs")
    return RecipeError.one(path, f"Received: {what} on examples of {features} features. {what.split(':')[0].upper()} "
                           f"needs the {features} x {features} covariance; dlrecipe allows at most "
                           f"{MAX_COVARIANCE_FEATURES} features ({math.isqrt(MAX_COVARIANCE_FEATURES)}x"
                           f"{math.isqrt(MAX_COVARIANCE_FEATURES)} grey or 32x32x3 colour images). Fix: {fix} "
                           "(e.g. resize the images when you build the data).")


def _covariance(x: np.ndarray, transform: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) covariance of the flattened examples, float64, over chunks.

    ``transform`` (optional) maps a chunk of raw examples to the features to use (e.g. normalized).
    Sums are taken around a shift (the first chunk's mean), so large offsets do not cancel precision.
    """
    step = _chunks(x).step
    n, shift, total, cross = 0, None, None, None
    for start in _chunks(x):
        chunk = x[start:start + step]
        if transform is not None:
            chunk = transform(chunk)
        flat = np.asarray(chunk, dtype=np.float64).reshape(len(chunk), -1)
        if x.dtype.kind == "f":
            _check_finite(flat)
        if shift is None:
            shift = flat.mean(axis=0)
            total, cross = np.zeros_like(shift), np.zeros((len(shift), len(shift)))
        flat -= shift
        total += flat.sum(axis=0)
        cross += flat.T @ flat
        n += len(flat)
    assert shift is not None and cross is not None
    d = total / n
    return shift + d, cross / n - np.outer(d, d)


def _eigen(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing, >= 0) and eigenvectors (columns, largest entry positive) of ``cov``."""
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values, kind="stable")[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    signs = np.where(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])] < 0, -1.0, 1.0)
    return values, vectors * signs


def _fit_zca(x: np.ndarray) -> dict:
    features = math.prod(x.shape[1:])
    if features > MAX_COVARIANCE_FEATURES:
        raise _too_many("data.normalize", "normalize: zca", features)
    mean, cov = _covariance(x)
    values, vectors = _eigen(cov)
    average = float(values.mean())
    epsilon = ZCA_EPSILON * average if average > 0 else 1.0
    matrix = (vectors / np.sqrt(values + epsilon)) @ vectors.T
    return {"kind": "zca", "shape": list(x.shape[1:]), "epsilon": epsilon, "epsilon_relative": ZCA_EPSILON,
            "mean": mean.tolist(), "matrix": matrix.astype(np.float32)}


def fit_pca(n_components: int, x_train: np.ndarray, normalization: dict) -> dict:
    """The first ``n_components`` principal components of the normalized, flattened training inputs.

    Raises:
        RecipeError: at ``data.pca`` when N exceeds the number of features or the features are too many.
    """
    features = math.prod(x_train.shape[1:])
    _check_pca(n_components, features)
    mean, cov = _covariance(x_train, lambda chunk: _normalize_numpy(normalization, chunk))
    values, vectors = _eigen(cov)
    total = float(values.sum())
    kept = values[:n_components]
    return {"n_components": int(n_components), "mean": mean.tolist(),
            "components": vectors[:, :n_components].astype(np.float32),
            "explained_variance": kept.tolist(),
            "explained_variance_ratio": (kept / total).tolist() if total > 0 else [0.0] * n_components}


def _check_pca(n_components: int, features: int) -> None:
    if n_components > features:
        raise RecipeError.one("data.pca", f"Received: pca={n_components}, but the examples have only {features} "
                              f"features. Expected at most {features}. Fix: set data.pca to {features} or fewer, "
                              "or remove it.")
    if features > MAX_COVARIANCE_FEATURES:
        raise _too_many("data.pca", f"pca: {n_components}", features)


def _project(x: np.ndarray, mean: Any, matrix: Any) -> np.ndarray:
    """``(x_flat - mean) @ matrix`` in float32, as the Keras layers compute it."""
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    center = np.asarray(mean, dtype=np.float32)
    weights = np.asarray(matrix, dtype=np.float32)
    if flat.shape[1] != center.shape[0]:
        raise ValueError(f"Inputs with {flat.shape[1]} features per example do not match the fitted statistics of "
                         f"{center.shape[0]} features; transform data shaped like the training inputs.")
    out = np.empty((len(flat), weights.shape[1]), dtype=np.float32)
    step = max(1, _CHUNK_VALUES // max(1, flat.shape[1]))
    for start in range(0, len(flat), step):
        np.matmul(flat[start:start + step] - center, weights, out=out[start:start + step])
    return out


# --------------------------------------------------------------------------- the data section as a whole


def fit_data(cfg: Any, x_train: np.ndarray) -> dict:
    """Every statistic of the ``data:`` section, fitted on the training split ``x_train`` only.

    Args:
        cfg: the validated ``data:`` section (``normalize``, ``pca``, ``augment``).
        x_train: the training split's inputs.

    Returns:
        ``fit(cfg.normalize, x_train)``, plus ``"pca"`` (``fit_pca``) when ``cfg.pca`` is set and
        ``"augment"`` (``augment.fit_stats``) when an augmentation needs fitted statistics.
    """
    from dlrecipe.build import augment

    x = np.asarray(x_train)
    if cfg.pca is not None:
        _check_pca(cfg.pca, math.prod(x.shape[1:]))
    stats = fit(cfg.normalize, x)
    if cfg.pca is not None:
        stats["pca"] = fit_pca(cfg.pca, x, stats)
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
        _check_pca(cfg.pca, features)
    if cfg.normalize == "zca":
        if features > MAX_COVARIANCE_FEATURES:
            raise _too_many("data.normalize", "normalize: zca", features)
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
    import io

    from dlrecipe.io import write_bytes
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


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
