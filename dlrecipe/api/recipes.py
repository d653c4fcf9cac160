"""``validate`` and ``show``: a recipe checked and resolved, without data or training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrecipe.api.common import Report, in_recipe
from dlrecipe.backend import import_keras_quietly
from dlrecipe.build.safety import allow_artifacts as allow
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe



@dataclass
class Validation:
    """What ``validate`` found: the problem count, and for a valid recipe its model, data facts and warnings."""

    problems: int
    model: Any = None
    info: Any = None
    warnings: list[str] = field(default_factory=list)


def validate(recipe: Path, sets: list[str], report: Report, allow_artifacts: bool = False) -> Validation:
    """Check every key, name and argument of ``recipe`` and build its model, without loading data or training.

    Three passes, each handing its problems to ``report`` as soon as it is done: the structure (before
    TensorFlow is imported, so these print at once), the Keras names and arguments, then the model built
    from the data's shape (read from file headers only).

    Example:
        >>> found = validate(Path("recipes/quickstart.yaml"), [], report=lambda problems, lines: None)
        >>> found.problems, found.model.count_params() > 0
    """
    from dlrecipe.recipe.loader import inspect_recipe
    allow(allow_artifacts)
    found = inspect_recipe(recipe, sets)
    if found.problems:
        report(found.problems, found.lines)
    if found.fixed is None:
        return Validation(len(found.problems))
    import_keras_quietly()
    from dlrecipe.build.checks import keras_problems
    problems = keras_problems(found.fixed, found.problems)
    report(problems, found.lines)
    total = len(found.problems) + len(problems)
    if total or found.loaded is None:
        return Validation(total)
    import keras
    keras.backend.clear_session()  # the checks above built layers: restart Keras's name counters
    try:
        from dlrecipe.inspect.validation import build_for_validation
        model, info, warnings = in_recipe(found.loaded, build_for_validation, found.loaded)
    except RecipeError as e:
        report(e.problems, found.lines)
        return Validation(len(e.problems))
    return Validation(0, model, info, warnings)


def show(recipe: Path, sets: list[str]) -> LoadedRecipe:
    """The loaded recipe (``loaded.resolved()`` is what ``dlrecipe show`` prints)."""
    return load_recipe(recipe, sets)
