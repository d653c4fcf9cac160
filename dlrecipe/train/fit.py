"""``train``: train a recipe into a run folder, or resume a run.

Everything that can fail on bad input (data, model, output folder) is checked before the run folder is
created. One model is fitted by ``unit.fit_unit``; an ensemble or a cross-validation by
``group.train_group``; one worker of a multi-process run trains its shard. See docs/training.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import keras

from dlrecipe import runs
from dlrecipe.data import pipeline
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.train.group import train_group
from dlrecipe.train.setup import prepare, write_recipe, write_start
from dlrecipe.train.unit import Result, Unit, fit_unit
from dlrecipe.train.workers import Process, shard


def train(loaded: LoadedRecipe, out: Path, argv: list[str], *, resume: Path | None = None,
          verbose: int | str = "auto", process: "Process | None" = None, run_dir: Path | None = None,
          on_new_run: "Callable[[], None] | None" = None, callbacks: tuple = ()) -> Result:
    """Train ``loaded`` into a new run folder under ``out`` (or continue the run ``resume``).

    A recipe with ``train.ensemble`` > 1 or ``train.cross_validation`` > 1 trains several models in one
    run folder (see ``dlrecipe.train.group``), each with ``unit.fit_unit``.

    ``process``, when given, makes this one worker of a multi-process run (see ``workers``): it trains
    on its shard with ``batch_size / N`` examples per step, and only worker 0 writes the run folder
    (``run_dir`` when the launcher chose it). ``on_new_run()``, when given, is called just before a new run
    folder is created (a seed group writes its seeds.json there; see ``train.seeds``). ``callbacks`` are
    added to every model's fit (``train.tracking``); ``verbose`` is Keras's or ``"line"`` (one line per
    epoch, see ``unit.fit_unit``).

    Raises:
        RecipeError: bad input, before anything is written.
        TrainingStopped: interrupted or NaN; the run folder keeps its last good epoch.

    Example:
        >>> result = train(load_recipe(Path("recipes/quickstart.yaml")), Path("runs"), sys.argv)
        >>> result.run_dir
        PosixPath('runs/quickstart/20240101-120000')
    """
    recipe = loaded.recipe
    if recipe.train.ensemble > 1 or recipe.train.cross_validation > 1:
        if process is not None:
            raise RecipeError.one("train.ensemble" if recipe.train.ensemble > 1 else "train.cross_validation",
                                  "An ensemble or a cross-validation trains its models one after another in one "
                                  "process; --workers trains one model. Fix: leave out --workers, or set "
                                  "train.ensemble: 1 and train.cross_validation: 0.")
        return train_group(loaded, out, argv, resume=resume, verbose=verbose, callbacks=callbacks)
    chief = process is None or process.chief

    def check_workers(recipe, dataset) -> None:
        if process is not None and pipeline.is_streamed(dataset):
            raise RecipeError.one("data.source", f"Received: source={recipe.data.source!r} with --workers "
                                  f"{process.count}. Multi-process training shards in-memory arrays. Fix: convert the "
                                  "data to an .npz (source: npz), or train in one process.")

    ready = prepare(recipe, out=out if resume is None and chief else None, check=check_workers)
    recipe, dataset = ready.recipe, ready.dataset
    batch = recipe.train.batch_size // (process.count if process else 1)
    if process is not None:
        dataset = _shard(dataset, process, batch, recipe.train.batch_size)
    run_dir = Path(resume or run_dir or runs.new_run_dir(out, recipe.name))

    def start(model: keras.Model) -> None:
        if resume is None and chief:
            if on_new_run is not None:
                on_new_run()
            write_start(run_dir, ready, argv, process, xla=model.jit_compile)
        elif chief:
            write_recipe(run_dir, recipe)

    unit = Unit(run_dir, recipe.seed, dataset, ready.stats, batch_size=batch, chief=chief)
    model, rows = fit_unit(recipe, ready.runtime, ready.info, unit, run_dir=run_dir, resume=resume is not None,
                           on_start=start, verbose=verbose, resume_rate=loaded.resume_rate,
                           extra_callbacks=callbacks)
    return Result(run_dir, rows, model, dataset)


def _shard(dataset, process: Process, batch: int, global_batch: int):
    """This worker's share of the training and validation arrays (every N-th example), announced."""
    n_all = len(dataset.x_train)
    x_train, y_train = shard(dataset.x_train, dataset.y_train, process)
    x_val, y_val = shard(dataset.x_val, dataset.y_val, process)
    print(f"worker {process.index} of {process.count}: {len(x_train)} of {n_all} training "
          f"examples (#{process.index}, #{process.index + process.count}, ...), {batch} per step of the global "
          f"batch {global_batch}", flush=True)
    return dataclasses.replace(dataset, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
