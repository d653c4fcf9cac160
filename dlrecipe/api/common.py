"""What every api function shares: problems get the YAML line of their recipe path; output files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from dlrecipe.errors import Problem, Problems, RecipeError
from dlrecipe.recipe.loader import LoadedRecipe

Report = Callable[[list[Problem], dict[str, str]], None]


def with_lines(error: RecipeError, lines: dict[str, str]) -> RecipeError:
    """``error`` with the YAML line of each problem's recipe path filled in."""
    found = Problems(lines=lines)
    found.extend(error)
    return RecipeError(found.items)


def in_recipe(loaded: LoadedRecipe, fn: Callable, *args, **kwargs):
    """Call ``fn``; problems it raises (data, model, training) get the YAML line of their recipe path."""
    try:
        return fn(*args, **kwargs)
    except RecipeError as e:
        raise with_lines(e, loaded.lines) from None


def output_file(out: Path, suffix: str) -> None:
    from dlrecipe.inspect.outfile import check_out_file
    check_out_file(out, suffix)


def write_file(write: Callable[[], Any], out: Path) -> None:
    from dlrecipe.inspect.outfile import write_out
    write_out(write, out)
