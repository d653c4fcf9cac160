"""The plumbing every block shares: argument checks, the ``Block`` base class, sub-layer chains.

Each check returns None when a value is fine, else what was expected; ``build.blocks`` runs them
all to report every bad recipe argument at once, and ``Block`` runs them again for direct Python use.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import keras

from dlrecipe.errors import keras_reason, shown, suggest
from dlrecipe.layers.blocks.grouped import GroupedConv1D, GroupedConv2D, GroupedConv3D

# Arguments every block takes because keras.layers.Layer takes them.
BASE_ARGS = ("name", "dtype", "trainable")

# Argument-name suffix -> the Keras module that resolves its value.
NESTED = {
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


# --- argument checks ------------------------------------------------------------------------------------


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


def check_value(name: str, value: Any, default: Any) -> str | None:
    """What is wrong with ``value`` for argument ``name``, or None. ``None`` passes where it is the default."""
    if value is None and default is None:
        return None
    check = CHECKS.get(name)
    return check(value) if check else None


@functools.cache
def block_params(cls: type) -> dict[str, inspect.Parameter]:
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
        for name, param in block_params(type(self)).items():
            value = values[name]
            for suffix, module in NESTED.items():
                if name.endswith(suffix):
                    try:
                        value = module.get(value)
                    except Exception as e:
                        raise BadArgument(name, f"Received: {shown(value)}. {keras_reason(e)}") from e
                    break
            else:
                problem = check_value(name, value, param.default)
                if problem:
                    raise BadArgument(name, f"Received: {name}={value!r}. {problem}")
            if isinstance(value, list):
                value = tuple(value)  # plain data, not a tracked list
            setattr(self, name, value)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for name in block_params(type(self)):
            value = getattr(self, name)
            for suffix, module in NESTED.items():
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
            module = next(m for s, m in NESTED.items() if key.endswith(s))
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


def build_chain(layers: list, shape: tuple) -> tuple:
    """Build ``layers`` one after the other from ``shape``; the output shape of the last."""
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return tuple(shape)


def run_chain(layers: list, x: Any, training: Any) -> Any:
    """Call ``layers`` one after the other on ``x``, passing ``training`` to batch norm."""
    for layer in layers:
        # Only batch norm behaves differently in training; pass the flag to it explicitly.
        x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
    return x
