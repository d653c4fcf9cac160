"""Plain convolution blocks: ``conv_bn_act``, ``vgg_block`` and GoogLeNet's ``inception``."""

from __future__ import annotations

import keras
from keras import ops

from dlrecipe.layers.blocks.base import Block, build_chain, run_chain


@keras.saving.register_keras_serializable(package="dlrecipe")
class ConvBNAct(Block):
    """Convolution, batch norm and activation (``conv_bn_act``).

    ``order: pre`` puts batch norm before the activation (conv -> BN -> act, the usual
    order); ``order: post`` puts it after (conv -> act -> BN). The convolution has no bias
    when batch norm follows it directly (``pre``), since BN's beta replaces it; with
    ``post`` the activation sits between them, so the bias stays. ``use_bias`` overrides.

    Example:
        >>> ConvBNAct(32, kernel_size=3, strides=2, name="stem")  # stem_conv, stem_bn, stem_act
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", activation="relu", order="pre",
                 use_bias=None, momentum=0.99, epsilon=1e-3, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        use_bias = self.use_bias if self.use_bias is not None else self.order == "post"
        cls = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)[dims - 1]
        conv = cls(self.filters, self.kernel_size, strides=self.strides, padding=self.padding,
                   data_format="channels_last", use_bias=use_bias, **self._weights(), **self._sub("conv"))
        bn = self._bn("bn")
        act = [self._act("act")] if self.activation is not None else []
        self.chain = [conv, bn, *act] if self.order == "pre" else [conv, *act, bn]
        build_chain(self.chain, input_shape)

    def call(self, inputs, training=None):
        return run_chain(self.chain, inputs, training)


# --- vgg_block -------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="dlrecipe")
class VggBlock(Block):
    """VGG block (``vgg_block``): ``convs`` same-padded convolutions, then 2x2 max pooling (stride 2).

    With ``batch_norm: true`` each convolution is conv (no bias) -> BN -> activation.

    Example:
        >>> VggBlock(64, convs=2, name="vgg1")  # vgg1_conv1, vgg1_conv2, vgg1_pool
    """

    def __init__(self, filters, convs=2, kernel_size=3, activation="relu", batch_norm=False, momentum=0.99,
                 epsilon=1e-3, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        chain = []
        for i in range(1, self.convs + 1):
            if self.batch_norm:
                chain += [self._conv(dims, f"conv{i}", self.filters, self.kernel_size, use_bias=False),
                          self._bn(f"bn{i}"), self._act(f"act{i}")]
            else:
                chain.append(self._conv(dims, f"conv{i}", self.filters, self.kernel_size, activation=self.activation))
        pool = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)[dims - 1]
        chain.append(pool(pool_size=2, strides=2, padding="valid", data_format="channels_last", **self._sub("pool")))
        self.chain = chain
        build_chain(self.chain, input_shape)

    def call(self, inputs, training=None):
        return run_chain(self.chain, inputs, training)


# --- inception -------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="dlrecipe")
class Inception(Block):
    """GoogLeNet inception module (``inception``), four branches concatenated on channels.

    Branches, in output order: 1x1 conv (``filters_1x1``); 1x1 conv (``filters_3x3_reduce``)
    then 3x3 conv (``filters_3x3``); 1x1 conv (``filters_5x5_reduce``) then 5x5 conv
    (``filters_5x5``); 3x3 max pooling (stride 1, same) then 1x1 conv (``filters_pool``).
    Every conv is followed by the activation (ReLU); ``batch_norm: true`` adds BN between
    (conv without bias -> BN -> activation). In 1D and 3D, "3x3" means 3 or 3x3x3.

    Example:
        >>> Inception(64, 96, 128, 16, 32, 32, name="inc3a")  # GoogLeNet 3a: 256 channels out
    """

    def __init__(self, filters_1x1, filters_3x3_reduce, filters_3x3, filters_5x5_reduce, filters_5x5, filters_pool,
                 activation="relu", batch_norm=False, momentum=0.99, epsilon=1e-3,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self._store(locals())

    def _unit(self, dims: int, suffix: str, filters: int, kernel_size: int) -> list:
        if self.batch_norm:
            return [self._conv(dims, suffix, filters, kernel_size, use_bias=False),
                    self._bn(f"{suffix}_bn"), self._act(f"{suffix}_act")]
        return [self._conv(dims, suffix, filters, kernel_size, activation=self.activation)]

    def build(self, input_shape):
        dims = self._spatial_dims(input_shape)
        pool = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)[dims - 1]
        self.branch_1x1 = self._unit(dims, "1x1", self.filters_1x1, 1)
        self.branch_3x3 = self._unit(dims, "3x3_reduce", self.filters_3x3_reduce, 1) + \
            self._unit(dims, "3x3", self.filters_3x3, 3)
        self.branch_5x5 = self._unit(dims, "5x5_reduce", self.filters_5x5_reduce, 1) + \
            self._unit(dims, "5x5", self.filters_5x5, 5)
        self.branch_pool = [pool(pool_size=3, strides=1, padding="same", data_format="channels_last",
                                 **self._sub("pool"))] + self._unit(dims, "pool_proj", self.filters_pool, 1)
        for branch in (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool):
            build_chain(branch, input_shape)

    def call(self, inputs, training=None):
        branches = (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool)
        return ops.concatenate([run_chain(b, inputs, training) for b in branches], axis=-1)
