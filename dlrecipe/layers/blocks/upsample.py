"""Upsampling by an integer factor (``upsample``): nearest, bed of nails, subpixel, transpose."""

from __future__ import annotations

import keras
from keras import ops

from dlrecipe.layers.blocks.base import BadArgument, Block, build_chain, run_chain


@keras.saving.register_keras_serializable(package="dlrecipe")
class Upsample(Block):
    """Upsampling by an integer ``factor`` along every spatial dimension (``upsample``).

    Modes:
        nearest: repeat each value (``UpSampling1D/2D/3D``).
        bed_of_nails: each value at the top-left corner of a ``factor x factor`` block of zeros.
        subpixel: conv kxk (``kernel_size``, default 3) to ``filters * factor ** dims`` channels,
            then depth-to-space in ``tf.nn.depth_to_space``'s channel order (Shi et al. 2016).
        transpose: ``Conv1D/2D/3DTranspose(filters, kernel_size, strides=factor, padding="same")``,
            ``kernel_size`` defaulting to ``factor``.
    ``filters``, ``kernel_size``, ``activation`` and the weight arguments apply to subpixel and
    transpose only; nearest and bed_of_nails keep the channels.

    Example:
        >>> Upsample(mode="subpixel", factor=2, filters=16, name="up1")  # up1_conv, 64 channels, shuffled
    """

    def __init__(self, mode="nearest", factor=2, filters=None, kernel_size=None, activation=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._store(locals())
        if mode in ("subpixel", "transpose") and filters is None:
            raise BadArgument("filters", f"upsample mode '{mode}' needs filters: the number of output channels.")

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        self.chain = []
        if self.mode == "nearest":
            cls = (keras.layers.UpSampling1D, keras.layers.UpSampling2D, keras.layers.UpSampling3D)[dims - 1]
            if dims == 1:
                self.chain = [cls(size=self.factor, **self._sub("upsample"))]
            else:
                self.chain = [cls(size=self.factor, data_format="channels_last", **self._sub("upsample"))]
        elif self.mode == "subpixel":
            self.chain = [self._conv(dims, "conv", self.filters * self.factor ** dims, self.kernel_size or 3,
                                     activation=self.activation)]
        elif self.mode == "transpose":
            cls = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)[dims - 1]
            self.chain = [cls(self.filters, self.kernel_size or self.factor, strides=self.factor, padding="same",
                              data_format="channels_last", activation=self.activation, **self._weights(),
                              **self._sub("transpose"))]
        build_chain(self.chain, input_shape)

    def call(self, inputs):
        x = run_chain(self.chain, inputs, None)
        if self.mode == "bed_of_nails":
            return self._bed_of_nails(x)
        if self.mode == "subpixel":
            return self._depth_to_space(x)
        return x

    def _bed_of_nails(self, x):
        dims, f = len(x.shape) - 2, self.factor
        shape = ops.shape(x)
        # (b, s1, s2, c) -> (b, s1, 1, s2, 1, c) -> zero-pad the new axes to f -> (b, s1*f, s2*f, c)
        for j in range(1, dims + 1):
            x = ops.expand_dims(x, 2 * j)
        pads = [(0, 0)] + [(0, 0), (0, f - 1)] * dims + [(0, 0)]
        x = ops.pad(x, pads)
        return ops.reshape(x, [-1] + [shape[1 + i] * f for i in range(dims)] + [shape[-1]])

    def _depth_to_space(self, x):
        dims, f, c = len(x.shape) - 2, self.factor, self.filters
        shape = ops.shape(x)
        spatial = [shape[1 + i] for i in range(dims)]
        # channel index = ((i1 * f + i2) * f + ...) * c + ch, as in tf.nn.depth_to_space (2D)
        x = ops.reshape(x, [-1] + spatial + [f] * dims + [c])
        perm = [0] + [a for i in range(dims) for a in (1 + i, 1 + dims + i)] + [1 + 2 * dims]
        x = ops.transpose(x, perm)
        return ops.reshape(x, [-1] + [s * f for s in spatial] + [c])

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] if self.mode in ("nearest", "bed_of_nails") else self.filters
        spatial = [None if s is None else s * self.factor for s in input_shape[1:-1]]
        return (input_shape[0], *spatial, channels)
