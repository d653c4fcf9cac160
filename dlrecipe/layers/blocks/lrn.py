"""Local response normalization across channels (``lrn``, AlexNet)."""

from __future__ import annotations

import keras
from keras import ops

from dlrecipe.layers.blocks.base import Block


@keras.saving.register_keras_serializable(package="dlrecipe")
class LRN(Block):
    """Local response normalization across channels (``lrn``, AlexNet).

    The formula of ``tf.nn.local_response_normalization``, written with ``keras.ops``:

    ``out[..., c] = x[..., c] / (bias + alpha * sum(x[..., c - r : c + r + 1] ** 2)) ** beta``
    with ``r = depth_radius``; the window is cut at the first and last channel, and
    ``alpha`` is not divided by the window size (TensorFlow's convention). Computed in float32.

    Example:
        >>> LRN(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)  # AlexNet's n=5, k=2
    """

    def __init__(self, depth_radius=5, bias=1.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Block '{self.name}' (lrn) needs a known channel axis last; received shape "
                             f"{tuple(input_shape)}.")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        channels, r = x.shape[-1], self.depth_radius
        # Zero padding on the channel axis makes every window 2r + 1 wide; the sum of the shifted
        # slices is exact (no cumulative-sum cancellation).
        padded = ops.pad(ops.square(x), [(0, 0)] * (len(x.shape) - 1) + [(r, r)])
        window = padded[..., 0:channels]
        for i in range(1, 2 * r + 1):
            window = window + padded[..., i:i + channels]
        out = x / ops.power(self.bias + self.alpha * window, self.beta)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
