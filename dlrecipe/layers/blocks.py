"""Blocks dlrecipe adds to Keras (residual, inception, dense_block, ...), by lower_snake_case name.

Each block is a real Keras layer, registered for saving (``dlrecipe>Residual``, ...),
that creates its sub-layers in ``build()`` from the rank of its input: a 3-D input
``(batch, steps, channels)`` gives ``Conv1D``/``MaxPooling1D``, a 4-D input gives
the 2D layers and a 5-D input the 3D layers. Inputs are channels-last. Sub-layers are
named after the block (``res1_conv1``, ``res1_bn1``, ...), so a model that holds blocks
saves to ``.keras`` and loads back with ``safe_mode=True`` once ``dlrecipe.blocks`` is
imported.

Blocks accept ``name``, ``dtype`` and ``trainable`` like any Keras layer, and those of
the weight arguments ``kernel_initializer``, ``bias_initializer``, ``kernel_regularizer``,
``bias_regularizer``, ``kernel_constraint``, ``bias_constraint`` (Keras's defaults) that
apply: they go to every convolution / dense layer inside. Blocks with batch norm take
``momentum`` and ``epsilon`` for all their ``BatchNormalization`` layers. ``model.defaults``
fills any argument a block accepts and the recipe leaves out, as for Keras layers.

Example:
    >>> layer = BLOCKS["residual"]({"filters": 64, "strides": 2}, "model.layers[3]", {})
    >>> model = keras.Sequential([keras.Input((32, 32, 16)), layer])  # Conv2Ds inside
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable

import keras
from keras import ops

from dlrecipe.build.resolve import keras_reason, resolve_nested_args
from dlrecipe.errors import Problem, RecipeError, join_path, suggest

# name -> function(args, path, defaults) -> keras.layers.Layer
BLOCKS: dict[str, Callable[[dict[str, Any], str, dict[str, Any]], Any]] = {}

# Arguments every block takes because keras.layers.Layer takes them.
BASE_ARGS = ("name", "dtype", "trainable")

_NESTED = {
    "_initializer": keras.initializers,
    "_regularizer": keras.regularizers,
    "_constraint": keras.constraints,
}

# The weight arguments a block passes to each of its convolution / dense layers.
WEIGHT_DEFAULTS: dict[str, Any] = {
    "kernel_initializer": "glorot_uniform",
    "bias_initializer": "zeros",
    "kernel_regularizer": None,
    "bias_regularizer": None,
    "kernel_constraint": None,
    "bias_constraint": None,
}


def build(kind: str, args: dict[str, Any], path: str, defaults: dict[str, Any]) -> Any:
    return BLOCKS[kind](args, path, defaults)


def accepted_args(kind: str) -> set[str]:
    """The constructor arguments of block ``kind`` (``model.defaults`` fill those the recipe leaves out)."""
    return set(_params(BLOCK_CLASSES[kind]))


# --- argument checks ------------------------------------------------------------------------------------
# Each check returns None when the value is fine, else what was expected. The factory runs them all to
# report every bad argument at once; the constructor runs them again for direct Python use.


class BadArgument(ValueError):
    """A bad block argument; ``arg`` names it so the factory can point at ``path.arg``."""

    def __init__(self, arg: str, message: str):
        super().__init__(f"{arg}: {message}")
        self.arg = arg
        self.message = message


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive_int(v: Any) -> str | None:
    return None if _is_int(v) and v > 0 else "Expected a positive integer."


def _positive_ints(v: Any) -> str | None:
    if _is_int(v) and v > 0:
        return None
    if isinstance(v, (list, tuple)) and v and all(_is_int(i) and i > 0 for i in v):
        return None
    return "Expected a positive integer or a list of them (one per spatial dimension)."


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "Expected true or false."


def _number(v: Any) -> str | None:
    return None if _is_number(v) else "Expected a number."


def _positive_number(v: Any) -> str | None:
    return None if _is_number(v) and v > 0 else "Expected a positive number."


def _fraction(v: Any) -> str | None:
    return None if _is_number(v) and 0 < v <= 1 else "Expected a number in (0, 1]."


def _unit_interval(v: Any) -> str | None:
    return None if _is_number(v) and 0 <= v <= 1 else "Expected a number in [0, 1]."


def _non_negative_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else "Expected a non-negative integer."


def _one_of(*options: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v in options:
            return None
        hint = suggest(v, options) if isinstance(v, str) else ""
        return f"Expected one of: {', '.join(options)}.{hint}"
    return check


def _activation(v: Any) -> str | None:
    if v is None or callable(v):
        return None
    try:
        keras.activations.get(v)
    except Exception:
        return "Expected a Keras activation name such as 'relu', or null for none."
    return None


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "filters": _positive_int, "kernel_size": _positive_ints, "strides": _positive_ints,
    "padding": _one_of("same", "valid"), "activation": _activation, "order": _one_of("pre", "post"),
    "use_bias": _boolean, "convs": _positive_int, "batch_norm": _boolean,
    "filters_1x1": _positive_int, "filters_3x3_reduce": _positive_int, "filters_3x3": _positive_int,
    "filters_5x5_reduce": _positive_int, "filters_5x5": _positive_int, "filters_pool": _positive_int,
    "bottleneck": _boolean, "preactivation": _boolean, "expansion": _positive_int,
    "cardinality": _positive_int, "bottleneck_width": _positive_int,
    "num_layers": _positive_int, "growth_rate": _positive_int, "compression": _fraction,
    "units": _positive_int, "pieces": _positive_int,
    "depth_radius": _non_negative_int, "bias": _number, "alpha": _number, "beta": _number,
    "mode": _one_of("nearest", "bed_of_nails", "subpixel", "transpose"), "factor": _positive_int,
    "momentum": _unit_interval, "epsilon": _positive_number,
}


def _check(name: str, value: Any, default: Any) -> str | None:
    """What is wrong with ``value`` for argument ``name``, or None. ``None`` passes where it is the default."""
    if value is None and default is None:
        return None
    check = CHECKS.get(name)
    return check(value) if check else None


@functools.cache
def _params(cls: type) -> dict[str, inspect.Parameter]:
    """The block's own named constructor arguments, in order (without ``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters
    return {n: p for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _fresh(module: Any, value: Any) -> Any:
    """A new copy of an initializer (or regularizer, constraint) for one sub-layer.

    Keras 3 gives an unseeded initializer a fixed seed when it is created, so one instance
    shared by two same-shaped convolutions would give them identical starting kernels.
    """
    if value is None:
        return None
    return module.deserialize(module.serialize(value))


# --- the shared base class -------------------------------------------------------------------------------


class Block(keras.layers.Layer):
    """Plumbing shared by all blocks: argument storage and checks, config, sub-layer factories.

    A block's ``__init__`` lists its arguments and calls ``self._store(locals())``; each
    argument becomes an attribute of the same name and an entry of ``get_config()``.
    """

    def _store(self, values: dict[str, Any]) -> None:
        for name, param in _params(type(self)).items():
            value = values[name]
            for suffix, module in _NESTED.items():
                if name.endswith(suffix):
                    try:
                        value = module.get(value)
                    except Exception as e:
                        raise BadArgument(name, f"Received: {value!r}. {keras_reason(e)}") from e
                    break
            else:
                problem = _check(name, value, param.default)
                if problem:
                    raise BadArgument(name, f"Received: {name}={value!r}. {problem}")
            if isinstance(value, list):
                value = tuple(value)  # plain data, not a tracked list
            setattr(self, name, value)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for name in _params(type(self)):
            value = getattr(self, name)
            for suffix, module in _NESTED.items():
                if name.endswith(suffix):
                    value = module.serialize(value) if value is not None else None
            if name == "activation" and callable(value):
                value = keras.activations.serialize(value)
            config[name] = value
        return config

    # -- shapes --

    def _spatial_dims(self, input_shape: tuple) -> int:
        """1, 2 or 3: the number of spatial dimensions of a channels-last input."""
        rank = len(input_shape)
        if rank not in (3, 4, 5):
            raise ValueError(
                f"Block '{self.name}' needs a 3-D, 4-D or 5-D input (batch, spatial..., channels) to build "
                f"1D, 2D or 3D layers; received shape {tuple(input_shape)}.")
        if input_shape[-1] is None:
            raise ValueError(f"Block '{self.name}' needs a known number of channels; received shape "
                             f"{tuple(input_shape)}.")
        return rank - 2

    # -- sub-layers, named after the block --

    def _sub(self, suffix: str) -> dict[str, Any]:
        return {"name": f"{self.name}_{suffix}", "dtype": self.dtype_policy}

    def _weights(self) -> dict[str, Any]:
        out = {}
        for key in WEIGHT_DEFAULTS:
            module = next(m for s, m in _NESTED.items() if key.endswith(s))
            out[key] = _fresh(module, getattr(self, key))
        return out

    def _conv(self, dims: int, suffix: str, filters: int, kernel_size: Any, strides: Any = 1, *,
              use_bias: bool = True, activation: Any = None, groups: int = 1) -> keras.layers.Layer:
        classes = (GroupedConv1D, GroupedConv2D, GroupedConv3D) if groups > 1 else \
            (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
        cls = classes[dims - 1]
        return cls(filters, kernel_size, strides=strides, padding="same", data_format="channels_last",
                   groups=groups, activation=activation, use_bias=use_bias, **self._weights(), **self._sub(suffix))

    def _bn(self, suffix: str) -> keras.layers.Layer:
        return keras.layers.BatchNormalization(axis=-1, momentum=self.momentum, epsilon=self.epsilon,
                                               **self._sub(suffix))

    def _act(self, suffix: str) -> keras.layers.Layer:
        return keras.layers.Activation(self.activation, **self._sub(suffix))


@functools.cache
def _split_groups() -> bool:
    """Whether to run a grouped convolution as one convolution per group.

    TensorFlow's CPU kernels compute the gradients of a grouped convolution dozens of times slower
    than those of a plain one (a 3x3 conv on 128x28x28x32 with groups=8: 5 s against 0.06 s), which
    made a ResNeXt step take 22 s. Splitting gives the same numbers with the same weights. GPUs and
    other backends keep the native grouped convolution.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    return not tf.config.list_logical_devices("GPU")


class _SplitGroupsMixin:
    def convolution_op(self, inputs, kernel):
        if self.groups == 1 or not _split_groups():
            return super().convolution_op(inputs, kernel)
        pieces = zip(ops.split(inputs, self.groups, axis=-1), ops.split(kernel, self.groups, axis=-1))
        return ops.concatenate([ops.conv(x, k, strides=list(self.strides), padding=self.padding,
                                         dilation_rate=self.dilation_rate, data_format=self.data_format)
                                for x, k in pieces], axis=-1)


@keras.saving.register_keras_serializable(package="dlrecipe")
class GroupedConv1D(_SplitGroupsMixin, keras.layers.Conv1D):
    """Conv1D whose grouped form is fast on TensorFlow's CPU (see ``_split_groups``)."""


@keras.saving.register_keras_serializable(package="dlrecipe")
class GroupedConv2D(_SplitGroupsMixin, keras.layers.Conv2D):
    """Conv2D whose grouped form is fast on TensorFlow's CPU (see ``_split_groups``)."""


@keras.saving.register_keras_serializable(package="dlrecipe")
class GroupedConv3D(_SplitGroupsMixin, keras.layers.Conv3D):
    """Conv3D whose grouped form is fast on TensorFlow's CPU (see ``_split_groups``)."""


def _build_chain(layers: list, shape: tuple) -> tuple:
    """Build ``layers`` one after the other from ``shape``; the output shape of the last."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return tuple(shape)


def _run_chain(layers: list, x: Any, training: Any) -> Any:
    for layer in layers:
        # Only batch norm behaves differently in training; pass the flag to it explicitly.
        x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
    return x


def _changes_shape(strides: Any) -> bool:
    return any(s != 1 for s in (strides if isinstance(strides, (tuple, list)) else (strides,)))


# --- conv_bn_act -----------------------------------------------------------------------------------------


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
        _build_chain(self.chain, input_shape)

    def call(self, inputs, training=None):
        return _run_chain(self.chain, inputs, training)


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
        _build_chain(self.chain, input_shape)

    def call(self, inputs, training=None):
        return _run_chain(self.chain, inputs, training)


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
            _build_chain(branch, input_shape)

    def call(self, inputs, training=None):
        branches = (self.branch_1x1, self.branch_3x3, self.branch_5x5, self.branch_pool)
        return ops.concatenate([_run_chain(b, inputs, training) for b in branches], axis=-1)


# --- residual and resnext --------------------------------------------------------------------------------


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
        shape = _build_chain(self.preact, input_shape)
        shape = _build_chain(self.main, shape)
        _build_chain(self.shortcut, input_shape)
        _build_chain(self.out_act, shape)

    def call(self, inputs, training=None):
        x = _run_chain(self.preact, inputs, training)
        # v2 projects from the pre-activated input; an identity shortcut carries the raw input.
        shortcut = _run_chain(self.shortcut, x, training) if self.shortcut else inputs
        return _run_chain(self.out_act, ops.add(_run_chain(self.main, x, training), shortcut), training)


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
        shape = _build_chain(self.main, input_shape)
        _build_chain(self.shortcut, input_shape)
        _build_chain(self.out_act, shape)

    def call(self, inputs, training=None):
        shortcut = _run_chain(self.shortcut, inputs, training) if self.shortcut else inputs
        return _run_chain(self.out_act, ops.add(_run_chain(self.main, inputs, training), shortcut), training)


# --- DenseNet: dense_block and transition ----------------------------------------------------------------


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
            out = _build_chain(layers, shape)
            shape = shape[:-1] + (shape[-1] + out[-1],)

    def _per_layer(self) -> list[list]:
        n = len(self.chain) // self.num_layers
        return [self.chain[i:i + n] for i in range(0, len(self.chain), n)]

    def call(self, inputs, training=None):
        x = inputs
        for layers in self._per_layer():
            x = ops.concatenate([x, _run_chain(layers, x, training)], axis=-1)
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
        _build_chain(self.chain, input_shape)

    def call(self, inputs, training=None):
        return _run_chain(self.chain, inputs, training)


# --- maxout and lrn --------------------------------------------------------------------------------------


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


# --- upsample --------------------------------------------------------------------------------------------


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
        _build_chain(self.chain, input_shape)

    def call(self, inputs):
        x = _run_chain(self.chain, inputs, None)
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


# --- the recipe-facing factories -------------------------------------------------------------------------

# Arguments that only some upsample modes use: naming them explicitly for another mode is an error
# (a value from model.defaults is ignored where it does not apply).
_UPSAMPLE_CONV_ONLY = ("filters", "kernel_size")


def _factory(kind: str, cls: type) -> Callable[[dict[str, Any], str, dict[str, Any]], keras.layers.Layer]:
    """``make(args, path, defaults)``: the block ``cls`` from recipe arguments, or a RecipeError at ``path``."""

    def make(args: dict[str, Any], path: str, defaults: dict[str, Any]) -> keras.layers.Layer:
        params = _params(cls)
        accepted = [*params, *BASE_ARGS]
        problems: list[Problem] = []
        given: dict[str, Any] = {}
        for key, value in args.items():
            if key not in accepted:
                problems.append(Problem(join_path(path, key), f"Unknown argument '{key}' for block {kind}."
                                        f"{suggest(key, accepted)} {kind} takes: {', '.join(accepted)}."))
                continue
            try:
                given.update(resolve_nested_args({key: value}, path))
            except RecipeError as e:
                problems.extend(e.problems)
        from_defaults = {k: v for k, v in (defaults or {}).items() if k in params and k not in args}
        merged = {**from_defaults, **given}
        for key, value in merged.items():
            if key in params and not any(key.endswith(s) for s in _NESTED):
                problem = _check(key, value, params[key].default)
                if problem:
                    origin = " (from model.defaults)" if key in from_defaults else ""
                    problems.append(Problem(join_path(path, key), f"Received: {key}={value!r}{origin}. {problem}"))
        for key, param in params.items():
            if param.default is param.empty and key not in merged:
                problems.append(Problem(join_path(path, key), f"Missing required argument '{key}' for block {kind}."))
        if kind == "upsample" and merged.get("mode", "nearest") in ("nearest", "bed_of_nails"):
            for key in _UPSAMPLE_CONV_ONLY:
                if key in args:
                    problems.append(Problem(join_path(path, key), f"upsample mode '{merged.get('mode', 'nearest')}' "
                                            f"takes no {key}; only subpixel and transpose do."))
        if problems:
            raise RecipeError(problems)
        try:
            return cls(**merged)
        except BadArgument as e:
            raise _error(join_path(path, e.arg), e.message, e) from e
        except (ValueError, TypeError) as e:
            raise _error(path, f"Block {kind} was refused: {keras_reason(e)}", e) from e

    make.__name__ = f"make_{kind}"
    make.__doc__ = f"The ``{kind}`` block ({cls.__name__}) from recipe arguments."
    return make


def _error(path: str, message: str, cause: BaseException) -> RecipeError:
    err = RecipeError.one(path, message)
    err.__cause__ = cause
    return err


BLOCK_CLASSES: dict[str, type] = {
    "conv_bn_act": ConvBNAct,
    "vgg_block": VggBlock,
    "inception": Inception,
    "residual": Residual,
    "resnext": Resnext,
    "dense_block": DenseBlock,
    "transition": Transition,
    "maxout": Maxout,
    "lrn": LRN,
    "upsample": Upsample,
}
BLOCKS.update({kind: _factory(kind, cls) for kind, cls in BLOCK_CLASSES.items()})
