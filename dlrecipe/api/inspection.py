"""``lr``, ``augment-preview`` and ``inspect-init``: a recipe looked into without training."""

from __future__ import annotations

from pathlib import Path

from dlrecipe.api.common import in_recipe, output_file, write_file
from dlrecipe.backend import import_keras_quietly
from dlrecipe.build.safety import allow_artifacts as allow
from dlrecipe.recipe.loader import load_recipe


def lr(recipe: Path, sets: list[str], out: Path, replicas: int = 1):
    """The learning rate of every step of ``recipe``, printed per epoch by the CLI and plotted to ``out``.

    Example:
        >>> rates = lr(Path("recipes/quickstart.yaml"), [], Path("lr.png"))
        >>> rates.per_step[:3]
    """
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.lr import learning_rates, plot_learning_rates
    output_file(out, ".png")
    rates = in_recipe(loaded, learning_rates, loaded, replicas)
    write_file(lambda: plot_learning_rates(rates, loaded.recipe.name, out), out)
    return loaded, rates


def augment_preview(recipe: Path, sets: list[str], out: Path | None, n: int = 8, rows: int = 3,
                    allow_artifacts: bool = False) -> Path:
    """Write a PNG grid of the first ``n`` training images and ``rows`` augmented versions of them; its path."""
    allow(allow_artifacts)
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.preview import augment_preview as run_preview
    from dlrecipe.inspect.preview import default_out
    out = out or default_out(loaded)
    output_file(out, ".png")
    in_recipe(loaded, write_file, lambda: run_preview(loaded, out, n=n, rows=rows), out)
    return out


def inspect_init(recipe: Path, sets: list[str], batch: int = 256, out: Path | None = None,
                 allow_artifacts: bool = False):
    """Per layer statistics of the untrained model on ``batch`` training examples; also as JSON to ``out``."""
    allow(allow_artifacts)
    loaded = load_recipe(recipe, sets)
    import_keras_quietly()
    from dlrecipe.inspect.init import inspect_init as run_inspect
    from dlrecipe.io import write_json
    if out is not None:
        output_file(out, ".json")
    report = in_recipe(loaded, run_inspect, loaded, batch)
    if out is not None:
        write_file(lambda: write_json(out, report.as_json()), out)
    return loaded, report
