"""``GlobalContrastNormalization``: the layer of ``data.normalize: gcn``, registered for saving.

``dlrecipe.build.preprocessing`` puts it in a model with the epsilon fitted by ``data.preprocess``.

Example:
    >>> GlobalContrastNormalization(epsilon=1e-7, name="preprocessing_gcn", dtype="float32")
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlrecipe")
class GlobalContrastNormalization(keras.layers.Layer):
    """Per example: subtract its mean, divide by its standard deviation plus ``epsilon``.

    Statistics are taken over all axes but the batch axis.

    Args:
        epsilon: added to the standard deviation, so a constant example maps to 0.
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs: Any):
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
