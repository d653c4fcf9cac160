"""DenseNet's blocks: ``dense_block`` and ``transition`` (Huang et al. 2017)."""

from __future__ import annotations

import math

import keras
from keras import ops

from dlrecipe.layers.blocks.base import Block, build_chain, run_chain


@keras.saving.register_keras_serializable(package="dlrecipe")
class DenseBlock(Block):
    """DenseNet dense block (``dense_block``, Huang et al. 2017).

    Each of ``num_layers`` layers computes BN -> act -> conv 1x1 (``4 * growth_rate``) ->
    BN -> act -> conv kxk (``growth_rate``) (``bottleneck: false``: BN -> act -> conv kxk)
    and concatenates its output to its input, so the block adds ``num_layers * growth_rate``
    channels. Convs have no bias (as keras.applications.DenseNet).

    Example:
        >>> DenseBlock(num_layers=6, growth_rate=32, name="dense1")  # dense1_l1_bn1, dense1_l1_conv1, ...
    """

    BOTTLENECK_FACTOR = 4  # the 1x1 conv's width, in growth rates (DenseNet-BC)

    def __init__(self, num_layers, growth_rate, bottleneck=True, kernel_size=3, activation="relu", momentum=0.99,
                 epsilon=1e-3, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        k = self.growth_rate
        # One flat list (Keras saves flat lists of layers); each dense layer is `per_layer` consecutive entries.
        chain = []
        for i in range(1, self.num_layers + 1):
            p = f"l{i}_"
            if self.bottleneck:
                chain += [self._bn(p + "bn1"), self._act(p + "act1"),
                          self._conv(dims, p + "conv1", self.BOTTLENECK_FACTOR * k, 1, use_bias=False),
                          self._bn(p + "bn2"), self._act(p + "act2"),
                          self._conv(dims, p + "conv2", k, self.kernel_size, use_bias=False)]
            else:
                chain += [self._bn(p + "bn1"), self._act(p + "act1"),
                          self._conv(dims, p + "conv1", k, self.kernel_size, use_bias=False)]
        self.chain = chain
        shape = tuple(input_shape)
        for layers in self._per_layer():
            out = build_chain(layers, shape)
            shape = shape[:-1] + (shape[-1] + out[-1],)

    def _per_layer(self) -> list[list]:
        n = len(self.chain) // self.num_layers
        return [self.chain[i:i + n] for i in range(0, len(self.chain), n)]

    def call(self, inputs, training=None):
        x = inputs
        for layers in self._per_layer():
            x = ops.concatenate([x, run_chain(layers, x, training)], axis=-1)
        return x


@keras.saving.register_keras_serializable(package="dlrecipe")
class Transition(Block):
    """DenseNet transition (``transition``): BN -> act -> conv 1x1 -> 2x2 average pooling (stride 2).

    The conv has ``floor(channels * compression)`` filters (at least 1) and no bias.

    Example:
        >>> Transition(compression=0.5, name="trans1")  # 256 channels in, 128 out, half the size
    """

    def __init__(self, compression=0.5, activation="relu", momentum=0.99, epsilon=1e-3,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        # The tolerance keeps 100 * 0.29 (= 28.999999999999996 in floating point) at 29.
        filters = max(1, math.floor(input_shape[-1] * self.compression + 1e-9))
        pool = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D)[dims - 1]
        self.chain = [self._bn("bn"), self._act("act"), self._conv(dims, "conv", filters, 1, use_bias=False),
                      pool(pool_size=2, strides=2, padding="valid", data_format="channels_last", **self._sub("pool"))]
        build_chain(self.chain, input_shape)

    def call(self, inputs, training=None):
        return run_chain(self.chain, inputs, training)
