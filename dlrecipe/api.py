"""Every command as a plain Python function: what the CLI, tests and notebooks call."""

from __future__ import annotations

import math
from pathlib import Path

from dlrecipe import runs
from dlrecipe.build import augment
from dlrecipe.build.checks import build_all
from dlrecipe.build.model import clean_path
from dlrecipe.data import pipeline, preprocess
from dlrecipe.data import source as datamod
from dlrecipe.errors import RecipeError
from dlrecipe.inspect.diagnose import symmetry_warnings
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe


def _open_run(run: Path):
    run_dir = runs.find_run(run)
    loaded = load_recipe(run_dir / runs.RECIPE)
    meta = runs.read_json(run_dir / runs.PREPROCESSING)
    model = runs.load_model(run_dir / runs.MODEL)
    return run_dir, loaded.recipe, meta, model


def _test_split(recipe, run_dir: Path, meta: dict | None = None):
    from dlrecipe.train.runtime import seed_everything
    seed_everything(recipe.seed, False)
    ds = pipeline.load(recipe.data, recipe.seed, tabular=(meta or {}).get("tabular"))  # csv: the stored encoding
    if not pipeline.has_test(ds):
        raise _no_test_split(run_dir)
    return ds


def _no_test_split(run_dir: Path) -> RecipeError:
    return RecipeError.one("data.test_split", f"The run {run_dir} has no test split: its data source has none and "
                           "the recipe sets neither data.test_split nor data.test_path. Add one and train again.")


def evaluate_run(run: Path, model=None, dataset=None):
    """Evaluate a run on its test split; writes metrics.json and plots. Returns (run_dir, metrics, paths).

    ``model`` and ``dataset``, when given (``train --evaluate``), are the ones training just used,
    so nothing is read again from disk.
    """
    from dlrecipe.evaluate.metrics import evaluate, write_report
    if model is None or dataset is None:
        run_dir, recipe, meta, model = _open_run(run)
        ds = _test_split(recipe, run_dir, meta)
    else:
        run_dir = Path(run)
        recipe = load_recipe(run_dir / runs.RECIPE).recipe
        meta = runs.read_json(run_dir / runs.PREPROCESSING)
        ds = dataset
        if not pipeline.has_test(ds):
            raise _no_test_split(run_dir)
    x_test, y_test = pipeline.test_inputs(ds, recipe, len(meta.get("class_names") or []) or None)
    try:
        metrics = evaluate(model, x_test, y_test, task=meta["task"], class_names=meta.get("class_names"),
                           batch_size=recipe.train.batch_size)
    except Exception as e:
        raise pipeline.data_error(ds, e) or e
    if recipe.train.ensemble > 1:
        from dlrecipe.train.ensemble import member_metrics, member_plots
        metrics["members"] = member_metrics(run_dir, recipe, meta, x_test, y_test)
    written = write_report(run_dir, metrics)
    if meta["task"] == "segmentation":
        from dlrecipe.tasks.segmentation import write_examples
        written.append(write_examples(run_dir, model, ds.x_test, ds.y_test, list(metrics["per_class"])))
    if recipe.train.ensemble > 1:
        written += member_plots(run_dir, recipe)
    return run_dir, metrics, written


def export_run(run: Path, formats: list[str]):
    """Export a run in ``formats`` (default: the recipe's), verified against the trained model."""
    from dlrecipe.export.exporter import export
    run_dir, recipe, meta, model = _open_run(run)
    allowed = ("saved_model", "keras", "tflite", "onnx")
    for f in formats:
        if f not in allowed:
            from dlrecipe.errors import suggest
            raise RecipeError.one("--format", f"Received: {f!r}. Expected one of {', '.join(allowed)}.{suggest(f, allowed)}")
    ds = _test_split(recipe, run_dir, meta)
    class_names = recipe.export.class_names or meta.get("class_names")
    if recipe.export.class_names and meta.get("class_names") and len(recipe.export.class_names) != len(meta["class_names"]):
        raise RecipeError.one("export.class_names", f"Received {len(recipe.export.class_names)} names, but the model "
                              f"has {len(meta['class_names'])} classes.")
    result = export(run_dir, model, formats=list(formats or recipe.export.formats),
                    include_preprocessing=recipe.export.include_preprocessing, class_names=class_names,
                    input_shape=tuple(meta["input_shape"]), input_dtype=meta["input_dtype"],
                    x_check=pipeline.first_examples(ds, 256), tabular=meta.get("tabular"),
                    raw_check=getattr(ds, "raw_test", None))
    diffs = runs.read_json(run_dir / runs.EXPORT / "verification.json") if (run_dir / runs.EXPORT / "verification.json").is_file() else {}
    return run_dir, result, diffs


def build_for_validation(loaded: LoadedRecipe):
    """The model of ``loaded`` with placeholder statistics, the data's facts, and warnings.

    Warnings (the CLI prints them and still exits 0): layers whose kernels start all equal, and a
    ``runtime.jit_compile: true`` that Keras would ignore.

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
    return built.model, info, symmetry_warnings(built.model, paths, loaded) + jit_warnings(built.model, paths, recipe)


def jit_warnings(model, paths: dict[str, str], recipe) -> list[str]:
    """Why ``runtime.jit_compile: true`` would have no effect: Keras then trains without XLA, saying only
    "Model doesn't support jit_compile=True". Names each recipe item that prevents it, by its path."""
    import keras

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
        hint = " (it compiles under KERAS_BACKEND=jax)" if type(layer).__name__ in augment.JAX_JIT_OK else ""
        out[where] = (f"runtime.jit_compile: true has no effect: {where} ({type(layer).__name__}) cannot be "
                      f"compiled by XLA on the {backend} backend{hint}, so Keras trains the whole model without XLA. "
                      "Remove it, or set runtime.jit_compile: auto.")
    return list(out.values())
