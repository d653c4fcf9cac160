"""What every run does before its first model is built: ``prepare`` (precision, seeds, data, statistics, the
finalized recipe, the runtime) and ``write_start`` (the run folder's first files).

``train``, its ensembles and cross-validations, and ``inspect-init`` all start through ``prepare``, so the
weights and data a diagnosis sees are those training starts from. See docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dlrecipe import runs
from dlrecipe.build import scaling
from dlrecipe.build.checks import finalize
from dlrecipe.data import pipeline, preprocess
from dlrecipe.errors import RecipeError
from dlrecipe.io import dump_yaml, write_json, write_text
from dlrecipe.recipe.schema import Recipe
from dlrecipe.train.runtime import Runtime, environment, make_runtime, seed_everything, set_precision


@dataclass
class Prepared:
    """A run ready to build its model.

    Attributes:
        recipe: finalized (the task's loss and metrics written in; ``build.checks.finalize``), once.
        dataset: what ``pipeline.load`` returned: a ``data.Dataset`` of arrays, or streamed.
        info: ``dataset.info`` (task, input shape and dtype, classes).
        stats: the normalization fitted on the training split; None when not fitted (``stats=False``).
        runtime: the strategy to build and fit under; None with ``runtime=False``.
    """

    recipe: Recipe
    dataset: Any
    info: Any
    stats: dict | None
    runtime: Runtime | None


def begin(recipe: Recipe) -> None:
    """The process-wide settings of ``recipe``: its dtype policy (``runtime.mixed_precision``) and seeds."""
    set_precision(recipe.runtime.mixed_precision)
    seed_everything(recipe.seed, recipe.runtime.deterministic)


def fit_stats(data, dataset: Any) -> dict:
    """The statistics of the ``data:`` section fitted on ``dataset``'s training split (``pipeline.fit_stats``).

    Raises:
        RecipeError: a statistic that the data cannot give, or a streamed file that cannot be decoded.
    """
    try:
        return pipeline.fit_stats(data, dataset)
    except Exception as e:
        raise pipeline.data_error(dataset, e) or e


def prepare(recipe: Recipe, *, data=None, out: Path | None = None, stats: bool = True,
            check: Callable[[Recipe, Any], None] | None = None, runtime: bool = True) -> Prepared:
    """Set precision and seeds, load the data, fit its statistics, finalize the recipe, make the runtime.

    Args:
        recipe: the recipe as loaded (not finalized).
        data: the ``data:`` section to load instead of ``recipe.data`` (a cross-validation loads it
            without a validation split).
        out: when given, checked to be writable (``runs.check_writable``) once the data has loaded.
        stats: fit the normalization; False where each model fits its own (cross-validation folds).
        check: ``check(recipe, dataset)``, the caller's checks of the loaded data, run after
            ``finalize`` and before the runtime is made.
        runtime: make the runtime (``runtime.make_runtime``); False where nothing is trained.

    Raises:
        RecipeError: bad data, an unwritable ``out``, or what ``check`` or the runtime refuse;
            nothing is written.

    Example:
        >>> ready = prepare(loaded.recipe, out=Path("runs"))
        >>> ready.recipe.train.loss, ready.info.task
        ('sparse_categorical_crossentropy', 'classification')
    """
    begin(recipe)
    data = data if data is not None else recipe.data
    dataset = pipeline.load(data, recipe.seed)
    if out is not None:
        runs.check_writable(out)
    fitted = fit_stats(data, dataset) if stats else None
    info = dataset.info
    recipe = finalize(recipe, info.task, info.n_classes)
    if check is not None:
        check(recipe, dataset)
    rt = make_runtime(recipe.runtime) if runtime else None
    if rt is not None and rt.replicas > 1:
        dataset = even_for_replicas(dataset, recipe.train.batch_size, rt.replicas)
    return Prepared(recipe, dataset, info, fitted, rt)


def even_for_replicas(dataset, batch_size: int, replicas: int):
    """The dataset as ``replicas`` model copies can share it: TensorFlow's MirroredStrategy fails (AddN of
    unequal shapes) when the first batch of a split does not divide evenly among the replicas.

    The global batch must be a multiple of ``replicas``; a split smaller than one batch loses its last
    ``n % replicas`` examples (at most ``replicas - 1``; docs/distributed.md).

    Raises:
        RecipeError: at ``train.batch_size`` when it is not a multiple of ``replicas``.
    """
    if batch_size % replicas:
        fixed = -(-batch_size // replicas) * replicas
        raise RecipeError.one("train.batch_size", f"Received: batch_size={batch_size}, which {replicas} replicas "
                              f"cannot share evenly (each step splits the global batch among them). Fix: --set "
                              f"train.batch_size={fixed}.")
    if pipeline.is_streamed(dataset):
        return dataset
    import dataclasses
    trimmed = {}
    for split in ("train", "val"):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if x is not None and len(x) < batch_size and len(x) % replicas:
            keep = len(x) - len(x) % replicas
            if keep == 0:
                raise RecipeError.one("data", f"The {split} split has {len(x)} example(s), fewer than the "
                                      f"{replicas} replicas. Fix: use more data or runtime.strategy: default.")
            trimmed.update({f"x_{split}": x[:keep], f"y_{split}": y[:keep]})
    return dataclasses.replace(dataset, **trimmed) if trimmed else dataset


def write_start(run_dir: Path, ready: Prepared, argv: list[str], process=None, xla: bool | None = None) -> None:
    """Create the run folder and write recipe.yaml, environment.json and preprocessing.json.

    ``process``: this worker of a multi-process run (see ``train.workers``), or None. ``xla``: whether
    Keras compiled the model with XLA (``runtime.jit_compile`` as Keras resolved it).

    Raises:
        RecipeError: the folder cannot be created.
    """
    recipe, info, rt = ready.recipe, ready.info, ready.runtime
    try:
        # A launcher of --workers made the folder (it holds the workers' logs); a single process did not.
        run_dir.mkdir(parents=True, exist_ok=process is not None)
    except OSError as e:
        raise RecipeError.one("--out", f"Cannot create the run folder {run_dir}: {e.strerror}. Choose another "
                              "--out.") from None
    write_recipe(run_dir, recipe)
    env = environment(recipe.seed, rt, recipe.runtime, argv)
    env["workers"] = process.count if process else 1
    env["learning_rate_scale"] = scaling.describe(recipe.runtime, rt.replicas)
    env["xla"] = None if xla is None else bool(xla)
    write_json(run_dir / runs.ENVIRONMENT, env)
    # cross-validation fits per fold (stored in each fold.json): nothing run-wide to store
    stats = ready.stats
    sections, arrays = preprocess.stored(stats) if stats is not None else ({"normalization": None}, {})
    if arrays:  # ZCA / PCA matrices; written first, so preprocessing.json never names a missing file
        preprocess.write_arrays(run_dir / preprocess.ARRAYS_FILE, arrays)
    tabular = getattr(ready.dataset, "tabular", None)
    write_json(run_dir / runs.PREPROCESSING, {
        "input_shape": list(info.input_shape), "input_dtype": info.input_dtype, "task": info.task,
        "class_names": info.class_names, **sections,
        **({"tabular": tabular} if tabular is not None else {})})  # csv: imputation and categories


def write_recipe(run_dir: Path, recipe: Recipe) -> None:
    """recipe.yaml: the finalized recipe, fully resolved (a resumed run records its ``--set`` overrides)."""
    write_text(run_dir / runs.RECIPE, dump_yaml(recipe.model_dump(mode="json", exclude_none=True)))
