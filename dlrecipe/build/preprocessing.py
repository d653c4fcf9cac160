"""The fitted preprocessing as Keras layers: ``keras_layers(stats)`` computes what ``data.preprocess`` fitted.

The per-feature and per-channel kinds become ``keras.layers.Normalization``; ``gcn`` is
``dlrecipe>GlobalContrastNormalization``; ZCA and PCA are ``Flatten``, a centring ``Normalization``
and a frozen bias-free ``Dense`` holding the matrix (plus ``Reshape`` for ZCA): Keras layers only,
so they save, load and export like the rest of the model. ``normalization_args`` is the one
definition of Normalization's arguments, which ``data.preprocess.apply_numpy`` reproduces in NumPy.
This module imports Keras only inside its functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPSILON = 1e-7  # equal to keras.backend.epsilon(), which Normalization uses as the smallest divisor


def safe_scale(scale: np.ndarray) -> np.ndarray:
    """A divisor per feature: ``scale``, or 1 where it is (near) zero."""
    return np.where(scale < EPSILON, 1.0, scale)


def normalization_args(stats: dict) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(mean, variance, axis) for ``keras.layers.Normalization``, float64."""
    kind = stats["kind"]
    if kind == "minmax":
        low, high = np.asarray(stats["min"], np.float64), np.asarray(stats["max"], np.float64)
        center, scale = low, safe_scale(high - low)
    elif kind in ("standardize", "per_channel"):
        center, scale = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
    else:
        raise ValueError(f"Unknown normalization statistics of kind {kind!r}; expected minmax, standardize "
                         "or per_channel.")
    return center, np.square(scale), [int(a) for a in stats["axis"]]


def keras_layers(stats: dict) -> list:
    """Keras 3 layers that compute ``data.preprocess.apply_numpy(stats, x)`` inside a model.

    The layers compute in float32 (also under a mixed-precision policy) and
    are named ``preprocessing_<kind>``.

    Args:
        stats: what ``data.preprocess.fit_data`` returned (possibly read back from the run folder).

    Returns:
        A list of layers (empty for ``none`` without ``pca``).
    """
    layers = _normalization_layers(stats)
    if stats.get("pca"):
        pca = stats["pca"]
        layers += _projection_layers("preprocessing_pca", pca["mean"], pca["components"], None)
    return layers


def _normalization_layers(stats: dict) -> list:
    import keras

    kind = stats["kind"]
    name = f"preprocessing_{kind}"
    if kind == "none":
        return []
    if kind == "rescale":
        return [keras.layers.Rescaling(scale=float(stats["scale"]), offset=float(stats["offset"]),
                                       name=name, dtype="float32")]
    if kind == "zca":
        return _projection_layers(name, stats["mean"], stats["matrix"], tuple(stats["shape"]))
    if kind == "gcn":
        from dlrecipe.layers.preprocessing import GlobalContrastNormalization

        return [GlobalContrastNormalization(epsilon=float(stats["epsilon"]), name=name, dtype="float32")]
    center, variance, axis = normalization_args(stats)
    return [keras.layers.Normalization(axis=tuple(axis), mean=center.tolist(), variance=variance.tolist(),
                                       name=name, dtype="float32")]


def _projection_layers(name: str, mean: Any, matrix: Any, shape: tuple[int, ...] | None) -> list:
    """Flatten, centre, multiply by the frozen ``matrix`` (and reshape to ``shape``): Keras layers only."""
    import keras

    weights = np.asarray(matrix, dtype=np.float32)
    center = np.asarray(mean, dtype=np.float32)
    dense = keras.layers.Dense(weights.shape[1], use_bias=False, trainable=False, name=name, dtype="float32")
    dense.build((None, weights.shape[0]))
    dense.set_weights([weights])
    layers = [keras.layers.Flatten(name=f"{name}_flatten", dtype="float32"),
              keras.layers.Normalization(axis=-1, mean=center.tolist(), variance=[1.0] * len(center),
                                         name=f"{name}_center", dtype="float32"),
              dense]
    if shape is not None:
        layers.append(keras.layers.Reshape(shape, name=f"{name}_reshape", dtype="float32"))
    return layers
