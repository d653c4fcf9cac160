"""Fitted input normalization: statistics from the training split, applied alike everywhere.

``fit`` computes JSON-able statistics from ``x_train`` only (NumPy, float64
accumulation). ``apply_numpy`` is the reference transform; ``keras_layers``
builds Keras layers that compute exactly the same thing inside a model, so
evaluation and the exported model normalize as training did.

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

The per-feature and per-channel kinds become ``keras.layers.Normalization``
with the fitted mean and variance; ``gcn`` is the small serializable layer
``dlrecipe>GlobalContrastNormalization``. This module imports Keras only
inside ``keras_layers`` and ``register_keras_objects``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import RecipeError, suggest

KINDS = ("none", "rescale", "minmax", "standardize", "per_channel", "gcn")
PLANNED = ("zca", "pca")
EPSILON = 1e-7  # equal to keras.backend.epsilon(), which Normalization uses as the smallest divisor
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
        RecipeError: a planned or unknown kind, empty or non-finite inputs.
    """
    if kind in PLANNED:
        raise RecipeError.one("data.normalize" if kind == "zca" else "data.pca",
                              f"Received: {kind!r}. {kind.upper()} is planned but not yet supported. Use one of "
                              f"{', '.join(KINDS)}.")
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
    per_channel = kind == "per_channel"
    mean, std = _moments(x, per_channel)
    axis = [x.ndim - 1] if per_channel else list(range(1, x.ndim))
    return {"kind": kind, "axis": axis, "mean": mean.tolist(), "std": _safe(std).tolist()}


def apply_numpy(stats: dict, x: np.ndarray) -> np.ndarray:
    """Apply fitted statistics with NumPy: the reference for ``keras_layers``.

    Args:
        stats: what ``fit`` returned (possibly read back from JSON).
        x: inputs of the same per-example shape as the training inputs.

    Returns:
        A new float32 array of the shape of ``x``.
    """
    kind = stats["kind"]
    out = np.array(x, dtype=np.float32)  # always a copy: the transforms below work in place
    if kind == "none":
        return out
    if kind == "rescale":
        out *= np.float32(stats["scale"])
        out += np.float32(stats["offset"])
        return out
    if kind == "gcn":
        return _gcn_numpy(out, float(stats["epsilon"]))
    center, variance, axis = _normalization_args(stats)
    shape = _broadcast_shape(stats, center, axis, out)
    # The same float32 steps as keras.layers.Normalization: (x - mean) / maximum(sqrt(variance), epsilon).
    out -= center.astype(np.float32).reshape(shape)
    out /= np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(EPSILON)).reshape(shape)
    return out


def keras_layers(stats: dict) -> list:
    """Keras 3 layers that compute ``apply_numpy(stats, x)`` inside a model.

    The layers compute in float32 (also under a mixed-precision policy) and
    are named ``preprocessing_<kind>``.

    Args:
        stats: what ``fit`` returned.

    Returns:
        A list of layers (empty for ``none``).
    """
    import keras

    kind = stats["kind"]
    name = f"preprocessing_{kind}"
    if kind == "none":
        return []
    if kind == "rescale":
        return [keras.layers.Rescaling(scale=float(stats["scale"]), offset=float(stats["offset"]),
                                       name=name, dtype="float32")]
    if kind == "gcn":
        layer_cls = register_keras_objects()["GlobalContrastNormalization"]
        return [layer_cls(epsilon=float(stats["epsilon"]), name=name, dtype="float32")]
    center, variance, axis = _normalization_args(stats)
    return [keras.layers.Normalization(axis=tuple(axis), mean=center.tolist(), variance=variance.tolist(),
                                       name=name, dtype="float32")]


_KERAS_OBJECTS: dict[str, Any] = {}


def register_keras_objects() -> dict[str, Any]:
    """Define and register dlrecipe's preprocessing layers with Keras (once).

    Call it before ``keras.saving.load_model`` on a model that contains
    them (``keras_layers`` calls it too); the result can also be passed as
    ``custom_objects``.

    Returns:
        ``{"GlobalContrastNormalization": <class>}``.
    """
    if _KERAS_OBJECTS:
        return _KERAS_OBJECTS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="dlrecipe")
    class GlobalContrastNormalization(keras.layers.Layer):
        """Per example: subtract its mean, divide by its standard deviation plus ``epsilon``.

        Statistics are taken over all axes but the batch axis.

        Args:
            epsilon: added to the standard deviation, so a constant example maps to 0.
        """

        def __init__(self, epsilon: float = GCN_EPSILON, **kwargs: Any):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def call(self, inputs: Any) -> Any:
            x = ops.cast(inputs, self.compute_dtype)
            axes = tuple(range(1, len(x.shape)))
            centered = x - ops.mean(x, axis=axes, keepdims=True)
            std = ops.sqrt(ops.mean(ops.square(centered), axis=axes, keepdims=True))
            return centered / (std + self.epsilon)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict:
            return {**super().get_config(), "epsilon": self.epsilon}

    _KERAS_OBJECTS["GlobalContrastNormalization"] = GlobalContrastNormalization
    return _KERAS_OBJECTS


# --------------------------------------------------------------------------- helpers


def _fixed(kind: str) -> dict:
    if kind == "rescale":
        return {"kind": "rescale", "scale": 1.0 / 255.0, "offset": 0.0}
    if kind == "gcn":
        return {"kind": "gcn", "epsilon": GCN_EPSILON}
    return {"kind": "none"}


def _safe(scale: np.ndarray) -> np.ndarray:
    """A divisor per feature: ``scale``, or 1 where it is (near) zero."""
    return np.where(scale < EPSILON, 1.0, scale)


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
    return {"kind": kind, "axis": axis, "mean": mean.tolist(), "std": _safe(std).tolist()}


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


def _normalization_args(stats: dict) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(mean, variance, axis) for ``keras.layers.Normalization``, float64."""
    kind = stats["kind"]
    if kind == "minmax":
        low, high = np.asarray(stats["min"], np.float64), np.asarray(stats["max"], np.float64)
        center, scale = low, _safe(high - low)
    elif kind in ("standardize", "per_channel"):
        center, scale = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
    else:
        raise ValueError(f"Unknown normalization statistics of kind {kind!r}; expected one of {KINDS}.")
    return center, np.square(scale), [int(a) for a in stats["axis"]]


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
