"""dlrecipe's own augmentation layers: ``FancyPCA`` (``fancy_pca``) and ``ScaledGaussianNoise`` (``gaussian_noise``).

Both act in training only (the identity at inference), draw their numbers from a seeded
``keras.random.SeedGenerator``, and are registered for saving (``dlrecipe>FancyPCA``, ...).
``dlrecipe.build.augment`` builds them from ``data.augment`` and fits FancyPCA's eigen-decomposition.

Example:
    >>> ScaledGaussianNoise(stddev=0.05, value_range=[0, 255], seed=1)  # noise of stddev 12.75, clipped
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

FANCY_PCA_STDDEV = 0.1  # AlexNet's standard deviation of the random weights alpha


@keras.saving.register_keras_serializable(package="dlrecipe")
class FancyPCA(keras.layers.Layer):
    """AlexNet's PCA lighting noise: one random RGB shift per image along the principal colour axes.

    In training, adds ``eigenvectors @ (alpha * sqrt(eigenvalues))`` to every pixel of an image, with
    ``alpha ~ N(0, stddev)`` (3 values per image): Krizhevsky et al. 2012, section 4.1, with the
    eigen-decomposition of the 3x3 RGB covariance of the training split's pixels. The square roots
    (standard deviations along the principal axes) make the noise scale with the data, whatever its
    pixel range. The identity at inference.

    Args:
        stddev: standard deviation of ``alpha`` (AlexNet: 0.1).
        eigenvalues: the 3 eigenvalues of the training pixels' RGB covariance.
        eigenvectors: 3x3, its columns the matching eigenvectors.
        seed: seed of the random weights.
    """

    def __init__(self, stddev: float = FANCY_PCA_STDDEV, eigenvalues: Any = (1.0, 1.0, 1.0),
                 eigenvectors: Any = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), seed: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        values = np.asarray(eigenvalues, dtype=np.float64)
        vectors = np.asarray(eigenvectors, dtype=np.float64)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0 <= stddev <= 10:
            raise ValueError(f"Expected stddev to be a number between 0 and 10 (AlexNet: 0.1). Received: "
                             f"stddev={stddev!r}")
        if values.shape != (3,) or vectors.shape != (3, 3) or np.any(values < 0):
            raise ValueError("Expected 3 non-negative eigenvalues and a 3x3 matrix of eigenvectors. Received: "
                             f"eigenvalues of shape {values.shape}, eigenvectors of shape {vectors.shape}")
        self.stddev = float(stddev)
        self.eigenvalues = values.tolist()
        self.eigenvectors = vectors.tolist()
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # (alpha * sqrt(lambda)) @ V^T gives per image the RGB shift sum_i alpha_i sqrt(lambda_i) p_i.
        self._basis = (np.sqrt(values)[:, None] * vectors.T).astype(np.float32)

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 4 or input_shape[-1] != 3:
            raise ValueError("fancy_pca expects RGB image batches (batch, height, width, 3). Received: "
                             f"input_shape={tuple(input_shape)}")

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return inputs
        x = ops.cast(inputs, self.compute_dtype)
        alpha = keras.random.normal((ops.shape(x)[0], 3), stddev=self.stddev, seed=self.seed_generator,
                                    dtype=self.compute_dtype)
        shift = ops.matmul(alpha, ops.cast(self._basis, self.compute_dtype))
        return x + shift[:, None, None, :]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "stddev": self.stddev, "eigenvalues": self.eigenvalues,
                "eigenvectors": self.eigenvectors, "seed": self.seed}


@keras.saving.register_keras_serializable(package="dlrecipe")
class ScaledGaussianNoise(keras.layers.Layer):
    """Additive Gaussian noise of standard deviation ``stddev * (high - low)``, clipped to ``value_range``.

    Active in training only (the identity at inference). Works on inputs of any rank. Keras's
    ``GaussianNoise`` takes ``stddev`` in input units, invisible on raw 0..255 pixels; this one takes
    it as a fraction of the data's range.

    Args:
        stddev: a fraction of the value range, between 0 and 1 (0.05 on 0..255 pixels: about 13 levels).
        value_range: ``[low, high]`` of the raw inputs (default ``[0, 255]``).
        seed: seed of the noise.
    """

    def __init__(self, stddev: float = 0.05, value_range: Any = (0, 255), seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0 <= stddev <= 1:
            raise ValueError(f"Expected stddev to be a fraction of the value range, between 0 and 1. Received: "
                             f"stddev={stddev!r}")
        if (not isinstance(value_range, (list, tuple)) or len(value_range) != 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value_range)
                or value_range[0] >= value_range[1]):
            raise ValueError(f"Expected value_range to be [low, high] with low < high. Received: "
                             f"value_range={value_range!r}")
        self.stddev = float(stddev)
        self.value_range = [float(v) for v in value_range]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training or self.stddev == 0:
            return inputs
        x = ops.cast(inputs, self.compute_dtype)
        low, high = self.value_range
        noise = keras.random.normal(ops.shape(x), stddev=self.stddev * (high - low), seed=self.seed_generator,
                                    dtype=self.compute_dtype)
        return ops.clip(x + noise, low, high)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "stddev": self.stddev, "value_range": self.value_range,
                "seed": self.seed}
