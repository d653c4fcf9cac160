"""``lr-find`` (a recipe's learning-rate range test) and ``inspect`` (a trained run looked into)."""

from __future__ import annotations

import math
from pathlib import Path

from dlrecipe.api.common import in_recipe, output_file, write_file
from dlrecipe.backend import import_keras_quietly
from dlrecipe.build.safety import allow_artifacts as allow
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.loader import load_recipe


def lr_find(recipe: Path, sets: list[str], out: Path, *, start: float = 1e-7, end: float = 10.0,
            steps: int | None = None, allow_artifacts: bool = False):
    """The learning-rate range test of ``recipe``, plotted to ``out``; writes nothing else: ``(loaded, found)``.

    Example:
        >>> loaded, found = lr_find(Path("recipes/quickstart.yaml"), [], Path("lr-find.png"))
        >>> found.suggestion, found.set_line
    """
    allow(allow_artifacts)
    _check_range(start, end, steps)
    loaded = load_recipe(recipe, sets)
    output_file(out, ".png")
    import_keras_quietly()
    from dlrecipe.inspect.lrfind import lr_find as run_test
    from dlrecipe.inspect.lrfind import plot_range_test
    found = in_recipe(loaded, run_test, loaded, start, end, steps)
    write_file(lambda: plot_range_test(found, loaded.recipe.name, out), out)
    return loaded, found


def _check_range(start: float, end: float, steps: int | None) -> None:
    if not (math.isfinite(start) and start > 0):
        raise RecipeError.one("--start", f"Received: --start {start}. Expected a rate > 0, e.g. 1e-7.")
    if not (math.isfinite(end) and end > start):
        raise RecipeError.one("--end", f"Received: --start {start} --end {end}. Expected --end greater than "
                              "--start, e.g. --start 1e-7 --end 10.")
    if steps is not None and steps < 2:
        raise RecipeError.one("--steps", f"Received: --steps {steps}. Expected at least 2 steps.")


def inspect(run: Path, n: int = 16):
    """Look into the trained model of ``run`` on its test split; every file goes to ``RUN/inspect/``.

    Returns the report (``inspect.trained.Inspection``: ``as_json()`` is what ``--json`` prints).

    Example:
        >>> report = inspect(Path("runs/quickstart"))
        >>> report.as_json()["most_confused"][:3]
    """
    from dlrecipe import runs
    if n < 1:
        raise RecipeError.one("--n", f"Received: --n {n}. Expected at least 1 example.")
    run_dir = runs.find_run(run)
    folder = run_dir / "inspect"
    if folder.exists() and not folder.is_dir():
        raise RecipeError.one(str(folder), "Exists and is not a folder. Remove it, then run inspect again.")
    runs.check_writable(folder)
    import_keras_quietly()
    from dlrecipe.api.run_folders import load_test_split
    from dlrecipe.inspect.trained import inspect_run
    run_dir, recipe, meta, model = runs.open_run(run_dir)
    dataset = load_test_split(recipe, run_dir, meta)
    loaded = load_recipe(run_dir / runs.RECIPE)
    return in_recipe(loaded, inspect_run, run_dir, recipe, meta, model, dataset, folder, n=n)
