"""Blocks with a shortcut: ResNet's ``residual`` and ``resnext``."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from dlrecipe.layers.blocks.base import Block, build_chain, run_chain


def _changes_shape(strides: Any) -> bool:
    return any(s != 1 for s in (strides if isinstance(strides, (tuple, list)) else (strides,)))


class _ShortcutBlock(Block):
    """A main path added to a shortcut: identity, or a 1x1 projection when the shape changes."""

    def _shortcut(self, dims: int, in_channels: int, out_channels: int, *, with_bn: bool) -> list:
        if not _changes_shape(self.strides) and in_channels == out_channels:
            return []
        conv = self._conv(dims, "shortcut_conv", out_channels, 1, self.strides, use_bias=not with_bn)
        return [conv, self._bn("shortcut_bn")] if with_bn else [conv]


@keras.saving.register_keras_serializable(package="dlrecipe")
class Residual(_ShortcutBlock):
    """ResNet block (``residual``): a main path plus a shortcut.

    Main path, v1 (``preactivation: false``, He et al. 2015), every conv followed by BN:
    basic: conv kxk (stride) -> BN -> act -> conv kxk -> BN; ``bottleneck: true``:
    conv 1x1 (``filters``) -> BN -> act -> conv kxk (``filters``, stride) -> BN -> act ->
    conv 1x1 (``expansion * filters``, 4x by default as in ResNet-50) -> BN. The stride sits on
    the kxk conv (ResNet v1.5, as in torchvision). Shortcut: identity, or conv 1x1 (stride) ->
    BN when the stride or the channel count changes. Output: act(main + shortcut).

    v2 (``preactivation: true``, He et al. 2016): BN -> act first, then the same convs
    without the BN after the last one and no activation after the addition; a projection
    shortcut (1x1 conv, no BN) starts from the pre-activated input. Convs directly followed
    by BN have no bias, the others do (as keras.applications.ResNetV2).

    Output channels: ``filters``, or ``expansion * filters`` with ``bottleneck``.

    Example:
        >>> Residual(128, strides=2, name="res3a")  # res3a_conv1, res3a_bn1, ..., res3a_shortcut_conv
    """

    def __init__(self, filters, kernel_size=3, strides=1, activation="relu", bottleneck=False, expansion=4,
                 preactivation=False, momentum=0.99, epsilon=1e-3, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        f, k, s, v1 = self.filters, self.kernel_size, self.strides, not self.preactivation
        out = f * self.expansion if self.bottleneck else f
        if self.bottleneck:
            main = [self._conv(dims, "conv1", f, 1, use_bias=False), self._bn("bn1"), self._act("act1"),
                    self._conv(dims, "conv2", f, k, s, use_bias=False), self._bn("bn2"), self._act("act2"),
                    self._conv(dims, "conv3", out, 1, use_bias=not v1)]
            main += [self._bn("bn3")] if v1 else []
        else:
            main = [self._conv(dims, "conv1", f, k, s, use_bias=False), self._bn("bn1"), self._act("act1"),
                    self._conv(dims, "conv2", f, k, use_bias=not v1)]
            main += [self._bn("bn2")] if v1 else []
        self.preact = [] if v1 else [self._bn("preact_bn"), self._act("preact_act")]
        self.main = main
        self.shortcut = self._shortcut(dims, input_shape[-1], out, with_bn=v1)
        self.out_act = [self._act("out_act")] if v1 else []
        shape = build_chain(self.preact, input_shape)
        shape = build_chain(self.main, shape)
        build_chain(self.shortcut, input_shape)
        build_chain(self.out_act, shape)

    def call(self, inputs, training=None):
        x = run_chain(self.preact, inputs, training)
        # v2 projects from the pre-activated input; an identity shortcut carries the raw input.
        shortcut = run_chain(self.shortcut, x, training) if self.shortcut else inputs
        return run_chain(self.out_act, ops.add(run_chain(self.main, x, training), shortcut), training)


@keras.saving.register_keras_serializable(package="dlrecipe")
class Resnext(_ShortcutBlock):
    """ResNeXt block (``resnext``, Xie et al. 2017): a grouped-convolution bottleneck.

    conv 1x1 to ``cardinality * bottleneck_width`` -> BN -> act -> grouped conv kxk
    (``groups=cardinality``, stride) -> BN -> act -> conv 1x1 to ``filters`` -> BN, plus the
    shortcut of ``residual`` v1, then act. ``filters`` is the output width: ResNeXt-50 32x4d's
    first stage is ``filters: 256, cardinality: 32, bottleneck_width: 4`` (inner width 128).

    Example:
        >>> Resnext(256, cardinality=32, bottleneck_width=4, name="rx1")
    """

    def __init__(self, filters, cardinality=32, bottleneck_width=4, kernel_size=3, strides=1, activation="relu",
                 momentum=0.99, epsilon=1e-3, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        width = self.cardinality * self.bottleneck_width
        self.main = [
            self._conv(dims, "conv1", width, 1, use_bias=False), self._bn("bn1"), self._act("act1"),
            self._conv(dims, "conv2", width, self.kernel_size, self.strides, use_bias=False, groups=self.cardinality),
            self._bn("bn2"), self._act("act2"),
            self._conv(dims, "conv3", self.filters, 1, use_bias=False), self._bn("bn3")]
        self.shortcut = self._shortcut(dims, input_shape[-1], self.filters, with_bn=True)
        self.out_act = [self._act("out_act")]
        shape = build_chain(self.main, input_shape)
        build_chain(self.shortcut, input_shape)
        build_chain(self.out_act, shape)

    def call(self, inputs, training=None):
        shortcut = run_chain(self.shortcut, inputs, training) if self.shortcut else inputs
        return run_chain(self.out_act, ops.add(run_chain(self.main, inputs, training), shortcut), training)
