"""The dense ``maxout`` unit (Goodfellow et al. 2013)."""

from __future__ import annotations

import keras
from keras import ops

from dlrecipe.layers.blocks.base import Block


@keras.saving.register_keras_serializable(package="dlrecipe")
class Maxout(Block):
    """Dense maxout unit (``maxout``, Goodfellow et al. 2013) on flat features ``(batch, features)``.

    ``Dense(units * pieces)``, then the maximum over each unit's ``pieces``: output unit ``u``
    is ``max(dense[:, u * pieces : (u + 1) * pieces])``.

    Example:
        >>> Maxout(units=240, pieces=5, name="mx1")  # mx1_dense, 240 outputs
    """

    def __init__(self, units, pieces, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"Block '{self.name}' (maxout) needs flat features (batch, features); received shape "
                             f"{tuple(input_shape)}. Put a Flatten or a global pooling layer before it.")
        self.dense = keras.layers.Dense(self.units * self.pieces, use_bias=self.use_bias, **self._weights(),
                                        **self._sub("dense"))
        self.dense.build(input_shape)

    def call(self, inputs):
        z = ops.reshape(self.dense(inputs), (-1, self.units, self.pieces))
        return ops.max(z, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)
