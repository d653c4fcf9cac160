"""dlrecipe's blocks by their recipe names: ``{type: residual, filters: 64}`` -> ``layers.blocks`` classes.

Every bad argument of a block is reported at once, each at its recipe path with a suggestion;
``model.defaults`` fill the arguments a block accepts and the recipe leaves out.

Example:
    >>> layer = BLOCKS["residual"]({"filters": 64, "strides": 2}, "model.layers[3]", {})
"""

from __future__ import annotations

from typing import Any, Callable

import keras

from dlrecipe.build.resolve import recipe_error, resolve_nested_args
from dlrecipe.errors import Problem, RecipeError, join_path, keras_reason, suggest
from dlrecipe.layers.blocks.base import BASE_ARGS, NESTED, BadArgument, block_params, check_value
from dlrecipe.layers.blocks.conv import ConvBNAct, Inception, VggBlock
from dlrecipe.layers.blocks.densenet import DenseBlock, Transition
from dlrecipe.layers.blocks.lrn import LRN
from dlrecipe.layers.blocks.maxout import Maxout
from dlrecipe.layers.blocks.residual import Residual, Resnext
from dlrecipe.layers.blocks.upsample import Upsample

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

# Arguments that only some upsample modes use: naming them explicitly for another mode is an error
# (a value from model.defaults is ignored where it does not apply).
_UPSAMPLE_CONV_ONLY = ("filters", "kernel_size")


def accepted_args(kind: str) -> set[str]:
    """The constructor arguments of block ``kind`` (``model.defaults`` fill those the recipe leaves out)."""
    return set(block_params(BLOCK_CLASSES[kind]))


def _factory(kind: str, cls: type) -> Callable[[dict[str, Any], str, dict[str, Any]], keras.layers.Layer]:
    """``make(args, path, defaults)``: the block ``cls`` from recipe arguments, or a RecipeError at ``path``."""

    def make(args: dict[str, Any], path: str, defaults: dict[str, Any]) -> keras.layers.Layer:
        params = block_params(cls)
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
            if key in params and not any(key.endswith(s) for s in NESTED):
                problem = check_value(key, value, params[key].default)
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
            raise recipe_error(join_path(path, e.arg), e.message, e) from e
        except (ValueError, TypeError) as e:
            raise recipe_error(path, f"Block {kind} was refused: {keras_reason(e)}", e) from e

    make.__name__ = f"make_{kind}"
    make.__doc__ = f"The ``{kind}`` block ({cls.__name__}) from recipe arguments."
    return make


# name -> make(args, path, defaults) -> the block
BLOCKS: dict[str, Callable[[dict[str, Any], str, dict[str, Any]], Any]] = {
    kind: _factory(kind, cls) for kind, cls in BLOCK_CLASSES.items()}
