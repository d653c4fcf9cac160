"""Build everything a recipe would train with, without loading its data."""

from __future__ import annotations

import math

from . import data as datamod
from . import preprocess
from .check import build_all
from .diagnose import symmetry_warnings
from .errors import RecipeError
from .recipe import LoadedRecipe


def build_for_validation(loaded: LoadedRecipe):
    """The model of ``loaded`` with placeholder statistics, the data's facts, and warnings.

    Warnings (the CLI prints them and still exits 0): layers whose kernels start all equal.

    Reads only file headers of the data, so it is as fast on a large data set as on a small one.
    """
    recipe = loaded.recipe
    info = datamod.peek(recipe.data, recipe.seed)
    shape = tuple(recipe.model.input_shape or info.input_shape)
    if recipe.model.input_shape and tuple(recipe.model.input_shape) != tuple(info.input_shape):
        raise RecipeError.one("model.input_shape", f"Received: input_shape={list(recipe.model.input_shape)}, but the "
                              f"data's examples have shape {list(info.input_shape)}. Remove input_shape (it is "
                              "inferred) or fix it.")
    # Placeholder statistics of the right shape: the model's structure does not depend on their values.
    stats = preprocess.placeholder(recipe.data, shape, info.input_dtype)
    steps = max(1, math.ceil(1000 / recipe.train.batch_size))
    paths: dict[str, str] = {}
    built = build_all(recipe, shape, stats, task=info.task, n_classes=info.n_classes, steps_per_epoch=steps,
                      paths=paths)
    return built.model, info, symmetry_warnings(built.model, paths, loaded)
