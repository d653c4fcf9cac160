"""``dlrecipe diagnose RUN``: the regime of a run folder's curves, per member / fold and overall, and its plot.

Reads history.csv (``runs.read_history``), the resolved recipe and preprocessing.json; no TensorFlow. The
rules live in ``inspect.curves``, the fixes in ``inspect.fixes``. See docs/commands.md#diagnose.

Example:
    >>> d = diagnose_run(Path("runs/quickstart/20261203-101500"))
    >>> d.line()
    'healthy (confidence 0.81): converged: val_loss 0.3201 at epoch 10 ...'
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.inspect.curves import VERDICTS, Diagnosis, diagnose_history
from dlrecipe.recipe.loader import load_recipe

__all__ = ["PLOT", "Diagnosis", "diagnose_history", "diagnose_run", "plot_diagnosis"]

PLOT = "plots/diagnosis.png"
GROUPS = (("members", "member"), ("folds", "fold"))


def units_of(run: Path) -> list[tuple[str | None, Path]]:
    """The folders holding a history: ``[(None, run)]``, or ``[("member 1", run/members/1), ...]`` (folds too)."""
    for folder, word in GROUPS:
        if (run / folder).is_dir():
            subs = sorted((p for p in (run / folder).iterdir() if p.name.isdigit() and (p / runs.HISTORY).is_file()),
                          key=lambda p: int(p.name))
            if not subs:
                raise RecipeError.one(str(run / folder), f"No {word} has a {runs.HISTORY} yet: no epoch has finished. "
                                      f"Train the run: `dlrecipe train --resume {run}`.")
            return [(f"{word} {p.name}", p) for p in subs]
    return [(None, run)]


def read_rows(unit: Path) -> list[dict[str, float]]:
    """history.csv's rows, refusing a missing or empty file and one without a ``loss`` column."""
    path = unit / runs.HISTORY
    if not path.is_file():
        raise RecipeError.one(str(path), "Missing: the run has not finished an epoch (or its loss became NaN in the "
                              "first epoch). Train it first; after a NaN, with a lower rate: `dlrecipe train --resume "
                              f"{unit} --set train.learning_rate=...`.")
    rows = runs.read_history(path)
    if not rows:
        raise RecipeError.one(str(path), "It holds no finished epoch (a header only). Train the run further: "
                              f"`dlrecipe train --resume {unit}`.")
    if not any("loss" in r for r in rows):
        raise RecipeError.one(str(path), f"Received the columns {sorted(rows[0])}. Expected a 'loss' column "
                              "(written by `dlrecipe train`); train the run again.")
    return rows


def _context(run: Path, unit: Path, recipe, rows: list[dict], image: bool) -> dict:
    compiled = {}
    for path in (unit / runs.MODEL, unit / runs.LAST_CHECKPOINT):
        compiled = runs.saved_compile_config(path)
        if compiled:
            break
    optimizer = compiled.get("optimizer") if isinstance(compiled.get("optimizer"), dict) else {}
    rate = (optimizer.get("config") or {}).get("learning_rate")
    epochs, last = recipe.train.epochs, int(rows[-1]["epoch"])
    has_es = any(c.get("type") == "EarlyStopping" for c in recipe.train.callbacks)
    return {"run": str(run), "image": image, "optimizer_class": optimizer.get("class_name"),
            "optimizer_learning_rate": rate if isinstance(rate, (int, float)) else None,
            "stopped_early": last < epochs and has_es and (unit / runs.MODEL).is_file(),
            "unfinished": last < epochs and not (unit / runs.MODEL).is_file()}


def diagnose_run(run: Path) -> Diagnosis:
    """The diagnosis of a run folder: one run, or each member (fold) of an ensemble (cross-validation) and overall.

    Raises:
        RecipeError: not a run folder, or no readable history with at least one epoch.
    """
    run = Path(run)
    if not (run / runs.RECIPE).is_file():
        raise RecipeError.one(str(run), f"Not a run folder: it has no {runs.RECIPE}. Expected a folder written by "
                              "`dlrecipe train` (runs/<name>/<timestamp>) or runs/<name> for its newest run.")
    recipe = load_recipe(run / runs.RECIPE).recipe
    meta = runs.read_json(run / runs.PREPROCESSING) if (run / runs.PREPROCESSING).is_file() else {}
    meta = meta if isinstance(meta, dict) else {}
    n_classes = len(meta.get("class_names") or []) or None
    if meta.get("task") not in (None, "classification", "segmentation"):
        n_classes = None
    image = len(meta.get("input_shape") or []) == 3 and meta.get("task") != "segmentation"
    found = []
    for label, unit in units_of(run):
        rows = read_rows(unit)
        ctx = _context(run, unit, recipe, rows, image)
        d = diagnose_history(rows, recipe, n_classes=n_classes, context=ctx)
        d.label = label
        if ctx["stopped_early"]:
            d.evidence["stopped_early"] = f"EarlyStopping ended training after epoch {rows[-1]['epoch']}"
        elif ctx["unfinished"]:
            d.evidence["unfinished"] = (f"training stopped after epoch {rows[-1]['epoch']} of {recipe.train.epochs} "
                                        "without saving a model (Ctrl-C, or a NaN loss in the next epoch)")
        found.append(d)
    return found[0] if len(found) == 1 and found[0].label is None else overall(found)


def overall(found: list[Diagnosis]) -> Diagnosis:
    """One verdict over members (folds): diverging if any diverged, else the most common, ties to the worse."""
    counts = Counter(d.verdict for d in found)
    verdict = "diverging" if counts["diverging"] else max(counts, key=lambda v: (counts[v], -VERDICTS.index(v)))
    same = [d for d in found if d.verdict == verdict]
    word = (found[0].label or "member").split()[0]
    share = len(same) / len(found)
    confidence = 0.0 if verdict == "unclear" else sum(d.confidence for d in same) / len(same) * share
    onsets = [d.onset_epoch for d in same if d.onset_epoch is not None]
    tally = ", ".join(f"{v} {counts[v]}" for v in VERDICTS if counts[v])
    why = f"{len(same)} of {len(found)} {word}s ({tally}); {same[0].label}: {same[0].evidence.get('why', '')}"
    suggestions = list(dict.fromkeys(s for d in same for s in d.suggestions))
    return Diagnosis(verdict, confidence, min(onsets) if onsets else None,
                     {"kind": word, word + "s": len(found), "verdicts": dict(counts), "why": why},
                     suggestions, members=found)


def plot_diagnosis(d: Diagnosis):
    """A matplotlib Figure: the loss curves of each run (member, fold), onset and best epoch marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = d.members or [d]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, p in zip(axes, panels):
        epochs = [r["epoch"] for r in p.rows]
        values = []
        for key, label in (("loss", "loss (train)"), ("val_loss", "val_loss")):
            if any(key in r for r in p.rows):
                ys = [r.get(key, math.nan) for r in p.rows]
                values += [y for y in ys if math.isfinite(y) and y > 0]
                ax.plot(epochs, ys, marker="o", markersize=3, label=label)
        if p.best_epoch is not None:
            best = next(r for r in p.rows if r["epoch"] == p.best_epoch)
            ax.plot([p.best_epoch], [best.get("val_loss", best.get("loss"))], marker="*", markersize=14,
                    color="tab:green", linestyle="none", label=f"best epoch {p.best_epoch}")
        chance = p.evidence.get("chance_loss")
        if chance is not None and p.verdict in ("diverging", "underfitting"):
            ax.axhline(chance, color="grey", linestyle=":", label=f"chance (ln classes) {chance:.3g}")
        if p.onset_epoch is not None:
            ax.axvline(p.onset_epoch, color="tab:red", linestyle="--", label=f"{p.verdict} from epoch {p.onset_epoch}")
        if values and max(values) > 10 * sorted(values)[len(values) // 2]:  # a spike: show the rest too
            ax.set_yscale("log")
        ax.set_title(f"{p.label + ': ' if p.label else ''}{p.verdict.replace('_', ' ')}"
                     + (f" ({p.confidence:.2f})" if p.verdict != "unclear" else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if d.members:
        fig.suptitle(f"overall: {d.verdict.replace('_', ' ')}")
    return fig


def write_plot(d: Diagnosis, path: Path) -> None:
    """Write ``plot_diagnosis(d)`` as PNG atomically."""
    from dlrecipe.evaluate.plots import save_figure
    save_figure(plot_diagnosis(d), path)
