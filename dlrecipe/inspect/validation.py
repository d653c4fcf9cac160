"""What ``validate`` builds: a recipe's model from the data's shape (file headers only), and its warnings."""

from __future__ import annotations

import math

from dlrecipe.errors import RecipeError
from dlrecipe.recipe.loader import LoadedRecipe


def build_for_validation(loaded: LoadedRecipe):
    """The model of ``loaded`` with placeholder statistics, the data's facts, and warnings.

    Warnings (the CLI prints them and still exits 0): layers whose kernels start all equal, and a
    ``runtime.jit_compile: true`` that Keras would ignore.

    Reads only file headers of the data, so it is as fast on a large data set as on a small one.
    """
    from dlrecipe.build.checks import build_all
    from dlrecipe.data import preprocess
    from dlrecipe.data import source as datamod
    from dlrecipe.inspect.init import symmetry_warnings
    recipe = loaded.recipe
    datamod.check_streamable(recipe.data, recipe.train.cross_validation)  # what train would refuse
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
    return built.model, info, symmetry_warnings(built.model, paths, loaded) + jit_warnings(built.model, paths, recipe)


def jit_warnings(model, paths: dict[str, str], recipe) -> list[str]:
    """Why ``runtime.jit_compile: true`` would have no effect: Keras then trains without XLA, saying only
    "Model doesn't support jit_compile=True". Names each recipe item that prevents it, by its path."""
    import keras

    from dlrecipe.build import augment
    from dlrecipe.build.model import clean_path
    from dlrecipe.layers.jit import JAX_JIT_OK
    cfg = recipe.runtime
    if cfg.jit_compile is not True:
        return []
    backend = keras.backend.backend()
    if backend == "tensorflow" and cfg.deterministic:
        return ["runtime.jit_compile: true has no effect with runtime.deterministic: true: Keras compiles without "
                "XLA while TensorFlow's op determinism is on. Set one of the two to false."]
    specs = list(enumerate(recipe.data.augment or []))
    out: dict[str, str] = {}  # recipe path -> warning (the copies of a repeat are one item)
    for layer in model.layers:
        if all(inner.supports_jit for inner in layer._flatten_layers()):
            continue
        where = paths.get(layer.name)
        if where is None:  # an augmentation layer: the first data.augment item that builds its class
            i = next((i for i, spec in specs if (cls := augment.layer_class(spec)) and isinstance(layer, cls)), None)
            specs = [(j, spec) for j, spec in specs if j != i]
            where = f"data.augment[{i}]" if i is not None else layer.name
        where = clean_path(where)
        hint = " (it compiles under KERAS_BACKEND=jax)" if type(layer).__name__ in JAX_JIT_OK else ""
        out[where] = (f"runtime.jit_compile: true has no effect: {where} ({type(layer).__name__}) cannot be "
                      f"compiled by XLA on the {backend} backend{hint}, so Keras trains the whole model without XLA. "
                      "Remove it, or set runtime.jit_compile: auto.")
    return list(out.values())
