"""Commands around the recipe format: schema (docs/commands.md#schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dlrecipe import console
from dlrecipe.api import tools
from dlrecipe.cli.app import app, handles_errors


@app.command()
@handles_errors
def schema(out: Optional[Path] = typer.Option(None, "--out", help="Write the schema to this .json file instead of "
                                              "printing it, e.g. recipe.schema.json.")) -> None:
    """Print the recipe's JSON Schema (for VS Code's YAML extension and other editors), or write it to --out.

    Start a recipe with `# yaml-language-server: $schema=recipe.schema.json` to get completion and checks.
    """
    if out is None:
        console.echo(tools.schema_text(), nl=False)
        return
    console.echo(f"Wrote {tools.write_schema(out)}")
