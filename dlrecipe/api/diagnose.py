"""``diagnose``: the regime of a trained run's curves, without TensorFlow (``inspect.diagnose``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlrecipe.errors import RecipeError


def diagnose(run: Path, plot: bool = True, show: Callable[[Any], None] | None = None):
    """The diagnosis of ``run`` (a run folder or runs/<name>), and the plot written (RUN/plots/diagnosis.png).

    ``show(diagnosis)`` is called before the plot is drawn (matplotlib takes most of the time), so that
    the verdict shows at once.

    Raises:
        RecipeError: not a run folder, no history, or the plot cannot be written (nothing is written then).

    Example:
        >>> diagnosis, png = diagnose(Path("runs/quickstart"))
        >>> diagnosis.as_json()["verdict"]
        'healthy'
    """
    from dlrecipe import runs
    from dlrecipe.inspect.diagnose import PLOT, diagnose_run, write_plot
    run_dir = runs.find_run(Path(run), need=runs.RECIPE)
    found = diagnose_run(run_dir)
    out = run_dir / PLOT
    if show is not None:
        show(found)
    if plot:
        try:
            write_plot(found, out)
        except OSError as e:
            raise RecipeError.one(str(out), f"Cannot write it ({e.strerror or e}). Make {run_dir} writable, or "
                                  "use `dlrecipe diagnose --json` output alone.") from None
    return found, out if plot else None


def after_training(run_dir: Path | None):
    """The diagnosis ``train`` prints after training, or None (no run folder, or nothing to diagnose)."""
    if run_dir is None:
        return None
    from dlrecipe.inspect.diagnose import diagnose_run
    try:
        return diagnose_run(Path(run_dir))
    except RecipeError:
        return None
