"""``evaluate`` and ``export``: what is done with a finished run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrecipe.backend import import_keras_quietly
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.loader import load_recipe



def evaluate(run: Path, model: Any = None, dataset: Any = None, *, tta: bool = False, mc_dropout: int | None = None):
    """Evaluate the run on its test split: ``(run_dir, metrics, written files, note)``.

    ``model`` and ``dataset``, when given (``train --evaluate``), are the ones training just used.
    ``tta`` / ``mc_dropout`` add test-time averaging (``evaluate.tta``): ``metrics["tta"]``, ...
    ``note`` says which run was taken when ``run`` is ``runs/<name>`` and newer runs there are unfinished, else None.

    Example:
        >>> run_dir, metrics, written, note = evaluate(Path("runs/quickstart"))
        >>> metrics["accuracy"]
    """
    import_keras_quietly()
    run_dir, metrics, written = evaluate_run(run, model=model, dataset=dataset, tta=tta, mc_dropout=mc_dropout)
    return run_dir, metrics, written, chosen_note(Path(run), run_dir)


def chosen_note(given: Path, run_dir: Path) -> str | None:
    """Why ``run_dir`` was taken for ``runs/<name>`` when newer runs there have no model (unfinished), or None."""
    from dlrecipe import runs
    if given.resolve() == Path(run_dir).resolve() or not given.is_dir():
        return None
    newer = sorted(p for p in given.iterdir() if p.name > Path(run_dir).name and (p / runs.RECIPE).is_file()
                   and not (p / runs.MODEL).exists())
    if not newer:
        return None
    one = len(newer) == 1
    names = ", ".join(p.name for p in newer)
    return (f"Took {run_dir}, the newest run in {given} with a {runs.MODEL}: the newer run{'' if one else 's'} "
            f"{names} {'has' if one else 'have'} none yet "
            f"(unfinished: still training, stopped or failed; `dlrecipe train --resume {newer[-1]}` finishes it).")


def export(run: Path, formats: list[str]):
    """Export the run in ``formats`` (default: its recipe's), each reloaded and verified: ``(run_dir, paths, diffs)``."""
    import_keras_quietly()
    return export_run(run, formats)


def load_test_split(recipe, run_dir: Path, meta: dict | None = None):
    """The run's data loaded again with its seed (csv: its stored encoding); a RecipeError without a test split."""
    from dlrecipe.data import pipeline
    from dlrecipe.train.runtime import seed_everything
    seed_everything(recipe.seed, False)
    ds = pipeline.load(recipe.data, recipe.seed, tabular=(meta or {}).get("tabular"))  # csv: the stored encoding
    if not pipeline.has_test(ds):
        raise _no_test_split(run_dir)
    return ds


def _no_test_split(run_dir: Path) -> RecipeError:
    return RecipeError.one("data.test_split", f"The run {run_dir} has no test split: its data source has none and "
                           "the recipe sets neither data.test_split nor data.test_path. Add one and train again.")


def evaluate_run(run: Path, model=None, dataset=None, tta: bool = False, mc_dropout: int | None = None):
    """Evaluate a run on its test split; writes metrics.json and plots. Returns (run_dir, metrics, paths).

    ``model`` and ``dataset``, when given (``train --evaluate``), are the ones training just used,
    so nothing is read again from disk.
    """
    from dlrecipe import runs
    from dlrecipe.data import pipeline
    from dlrecipe.evaluate.metrics import evaluate, write_report
    if model is None or dataset is None:
        run_dir, recipe, meta, model = runs.open_run(run)
        runs.check_run_writable(run_dir, runs.PLOTS)
        ds = load_test_split(recipe, run_dir, meta)
    else:
        run_dir = Path(run)
        recipe = load_recipe(run_dir / runs.RECIPE).recipe
        meta = runs.read_preprocessing(run_dir)
        ds = dataset
        if not pipeline.has_test(ds):
            raise _no_test_split(run_dir)
    averaging = None
    if tta or mc_dropout is not None:  # checked before any work, so bad flags write nothing
        from dlrecipe.evaluate import tta as averaged
        averaging = averaged.plan(recipe, meta, model, tta=tta, mc_dropout=mc_dropout, run_dir=run_dir)
    x_test, y_test = pipeline.test_inputs(ds, recipe, len(meta.get("class_names") or []) or None)
    try:
        metrics = evaluate(model, x_test, y_test, task=meta["task"], class_names=meta.get("class_names"),
                           batch_size=recipe.train.batch_size)
    except Exception as e:
        raise pipeline.data_error(ds, e) or e
    if averaging is not None:
        metrics.update(averaged.average(model, x_test, y_test, averaging, class_names=meta.get("class_names"),
                                        batch_size=recipe.train.batch_size))
    if recipe.train.ensemble > 1:
        from dlrecipe.train.ensemble import member_metrics, member_plots
        metrics["members"] = member_metrics(run_dir, recipe, meta, x_test, y_test)
    written = write_report(run_dir, metrics)
    if meta["task"] == "segmentation":
        from dlrecipe.evaluate.segmentation import write_examples
        written.append(write_examples(run_dir, model, ds.x_test, ds.y_test, list(metrics["per_class"])))
    if recipe.train.ensemble > 1:
        written += member_plots(run_dir, recipe)
    return run_dir, metrics, written


def export_run(run: Path, formats: list[str]):
    """Export a run in ``formats`` (default: the recipe's), verified against the trained model."""
    from dlrecipe import runs
    from dlrecipe.data import pipeline
    from dlrecipe.export.exporter import export
    from dlrecipe.export.verify import max_abs_diffs
    run_dir, recipe, meta, model = runs.open_run(run)
    runs.check_run_writable(run_dir, runs.EXPORT)
    allowed = ("saved_model", "keras", "tflite", "onnx")
    for f in formats:
        if f not in allowed:
            from dlrecipe.errors import suggest
            raise RecipeError.one("--format", f"Received: {f!r}. Expected one of {', '.join(allowed)}.{suggest(f, allowed)}")
    ds = load_test_split(recipe, run_dir, meta)
    class_names = recipe.export.class_names or meta.get("class_names")
    if recipe.export.class_names and meta.get("class_names") and len(recipe.export.class_names) != len(meta["class_names"]):
        raise RecipeError.one("export.class_names", f"Received {len(recipe.export.class_names)} names, but the model "
                              f"has {len(meta['class_names'])} classes.")
    result = export(run_dir, model, formats=list(formats or recipe.export.formats),
                    include_preprocessing=recipe.export.include_preprocessing, class_names=class_names,
                    input_shape=tuple(meta["input_shape"]), input_dtype=meta["input_dtype"],
                    x_check=pipeline.first_examples(ds, 256), tabular=meta.get("tabular"),
                    raw_check=getattr(ds, "raw_test", None), resize_images=recipe.data.image_size is not None)
    diffs = max_abs_diffs(run_dir / runs.EXPORT)  # {format: max abs difference}, as verification.json holds it
    return run_dir, result, diffs
