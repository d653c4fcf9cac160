"""``schema``: the recipe's JSON Schema, for editors (docs/recipe.md#editor-support)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlrecipe.api.common import output_file, write_file
from dlrecipe.backend import import_keras_quietly
from dlrecipe.errors import RecipeError


def schema() -> dict[str, Any]:
    """The JSON Schema of a recipe: the pydantic skeleton with the enums of every name ``validate`` accepts.

    Example:
        >>> "model" in schema()["properties"]
        True
    """
    import_keras_quietly()
    from dlrecipe.build.schema_export import recipe_schema
    return recipe_schema()


def schema_text() -> str:
    """The schema as ``dlrecipe schema`` prints it and as ``recipe.schema.json`` holds it."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(out: Path) -> Path:
    """Write the schema to ``out`` (a ``.json`` file in an existing folder), atomically."""
    output_file(out, ".json")
    if not out.parent.is_dir():
        raise RecipeError.one("--out", f"Received: {out}, but the folder {out.parent} does not exist. Create it, "
                              "or choose another --out.")
    text = schema_text()
    from dlrecipe.io import write_text
    write_file(lambda: write_text(out, text), out)
    return out
