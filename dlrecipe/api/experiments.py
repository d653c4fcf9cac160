"""``compare`` and ``report`` (several runs and seed groups at once, no TensorFlow), and the evaluation of
every seed of ``train --seeds N --evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrecipe.errors import RecipeError

COMPARE_JSON = "compare.json"
DEFAULT_COMPARE_OUT = Path("runs") / "compare"
DEFAULT_REPORT = Path("report.html")


def compare(paths: list[Path], out: Path | None = None):
    """Compare runs and seed groups: the rows, and ``curves_<metric>.png`` and compare.json written in ``out``.

    ``out`` defaults to ``runs/compare/<timestamp>/``. Everything is read and checked before anything is
    written.

    Raises:
        RecipeError: a path that is not a run or a seed group, runs of different tasks, an unreadable or
            empty history.csv, or an ``out`` that cannot be written; nothing is written.

    Example:
        >>> result = compare([Path("runs/dropout_none"), Path("runs/dropout_0.5")])
        >>> result.as_json()["rows"][0]["differs"]
        {'model.layers[2].rate': 0.5}
    """
    from dlrecipe import runs
    from dlrecipe.compare.collect import compare as run_compare
    from dlrecipe.compare.curves import write_curves
    from dlrecipe.io import write_json
    result = run_compare([Path(p) for p in paths])
    if out is None:
        out = DEFAULT_COMPARE_OUT / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RecipeError.one("--out", f"{out} is a file. Expected a folder for compare.json and the curves; "
                              "choose another --out.")
    runs.check_writable(out)
    written = write_curves(result.rows, out)
    write_json(out / COMPARE_JSON, result.as_json())
    result.written = [out / COMPARE_JSON, *written]
    return result


@dataclass
class Report:
    """What ``report`` wrote: the page, its size in bytes, and the runs it shows."""

    path: Path
    size: int
    runs: list[Path]


def report(paths: list[Path], out: Path | None = None) -> Report:
    """Write one self-contained HTML page (``out``, default report.html) about runs and seed groups.

    Raises:
        RecipeError: bad input as for ``compare``, or an ``out`` that is not an .html file that can be
            written; nothing is written.

    Example:
        >>> report([Path("runs/quickstart")], Path("quickstart.html")).size
        183204
    """
    from dlrecipe.compare.collect import compare as run_compare
    from dlrecipe.compare.report import render
    from dlrecipe.io import write_text
    out = Path(out or DEFAULT_REPORT)
    _check_html_out(out)
    comparison = run_compare([Path(p) for p in paths])
    page = render(comparison)
    write_text(out, page)
    return Report(out, out.stat().st_size, [run.path for row in comparison.rows for run in row.runs])


def _check_html_out(out: Path) -> None:
    if out.suffix.lower() not in (".html", ".htm"):
        raise RecipeError.one("--out", f"Received: {out}. Expected a file name ending in .html.")
    if out.is_dir():
        raise RecipeError.one("--out", f"{out} is a folder. Expected a file name ending in .html.")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise RecipeError.one("--out", f"The folder {parent} does not exist. Create it or choose another --out.")


def evaluate_seeds(trained: Any) -> list[tuple[int, Path, dict]]:
    """Evaluate every seed of a ``train --seeds N`` group on its test split: ``[(seed, run, metrics)]``.

    The seeds just trained are evaluated with their model and data in memory; the others from disk. A seed
    that diverged has no model: its entry is ``(seed, run, {"diverged": epoch})``, nothing evaluated.
    """
    from dlrecipe import runs
    from dlrecipe.api.run_folders import evaluate_run
    from dlrecipe.backend import import_keras_quietly
    import_keras_quietly()
    group = trained.group
    done = []
    for row in group.rows:
        seed = row["seed"]
        if "diverged" in row:
            done.append((seed, runs.seed_dir(group.run_dir, seed), {"diverged": row["diverged"]}))
            continue
        result = group.trained.get(seed)
        run_dir, metrics, _ = evaluate_run(runs.seed_dir(group.run_dir, seed),
                                           model=result.model if result else None,
                                           dataset=result.dataset if result else None)
        done.append((seed, run_dir, metrics))
    return done
