"""``compare``'s numbers: read runs and seed groups, diff their resolved recipes, aggregate their metrics.

A row is one run, or one seed group (``train --seeds N``) whose metrics are the mean ± sample std over its
seeds. ``differs`` holds the recipe values that are not the same in every row, as dotted paths
(``model.layers[3].rate``), found by diffing the resolved recipes (recipe.yaml), so an ablation labels
itself. Rows are sorted by the objective. Reads files only: no TensorFlow. See docs/commands.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrecipe import runs
from dlrecipe.errors import RecipeError, join_path
from dlrecipe.recipe.yamlio import load_yaml

IGNORED = ("name",)  # the label shows it
# a metric whose name holds one of these is better when lower (Keras's losses and errors)
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "msle", "hinge", "crossentropy", "divergence", "poisson",
                   "cosh")
MISSING = None  # a recipe path a row does not have (recipe.yaml holds no null: it is written without them)


@dataclass
class Run:
    """One run folder as compare reads it.

    Attributes:
        path: the run folder.
        recipe: recipe.yaml, as plain data.
        task: preprocessing.json's task.
        history: history.csv by column (``runs.history_columns``).
        test: metrics.json's scalars (written by ``evaluate``), empty when not evaluated.
        metrics: the run's numbers: ``val_<m>`` (last epoch), ``best_val_<m>``, ``test_<m>``, ``epochs``.
    """

    path: Path
    recipe: dict[str, Any]
    task: str
    history: dict[str, list[float]]
    test: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> Any:
        return self.recipe.get("seed")


@dataclass
class Row:
    """A run, or a seed group: its label, runs, differing recipe values and ``{"mean", "std", "n"}`` per metric."""

    label: str
    runs: list[Run]
    group: Path | None = None
    differs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def recipe(self) -> dict[str, Any]:
        """The row's recipe; a group's seed is the tuple of its seeds (one value, not one per seed)."""
        recipe = dict(self.runs[0].recipe)
        if self.group is not None:
            recipe["seed"] = tuple(r.seed for r in self.runs)
        return recipe


@dataclass
class Comparison:
    """``compare``'s result: the rows (sorted), the objective they are sorted by, and the metric columns."""

    rows: list[Row]
    objective: str
    direction: str
    sort_key: str
    columns: list[str]
    written: list[Path] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """compare.json: ``{"objective", "rows": [{"label", "runs", "differs", "metrics"}]}``."""
        return {"objective": {"name": self.objective, "direction": self.direction, "sorted_by": self.sort_key},
                "rows": [{"label": r.label, "runs": [str(run.path) for run in r.runs],
                          **({"group": str(r.group)} if r.group is not None else {}),
                          "differs": r.differs, "metrics": r.metrics} for r in self.rows]}


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of the metric ``name`` (``val_loss``, ``test_mae``, ``best_val_accuracy``) is better."""
    return any(word in name.lower() for word in LOWER_IS_BETTER)


def read_run(path: Path) -> Run:
    """A run folder's recipe, task, history and test metrics.

    Raises:
        RecipeError: not a run, or a history.csv that is missing, unreadable or has no finished epoch.
    """
    path = Path(path)
    recipe, _ = load_yaml(path / runs.RECIPE)
    if not isinstance(recipe, dict):
        raise RecipeError.one(str(path / runs.RECIPE), "Expected a recipe (a mapping); the run folder is damaged.")
    if not (path / runs.MODEL).is_file() and (path / "folds").is_dir():
        raise RecipeError.one(str(path), "This is a cross-validation run: its folds' metrics are in cv.json. "
                              "Compare its folds (folds/<i>) or train the recipe without cross_validation.")
    meta = runs.read_json(path / runs.PREPROCESSING)
    history = runs.history_columns(path / runs.HISTORY)
    if history is None or not history.get("epoch"):
        what = "has no history.csv" if history is None else "has an empty history.csv (no finished epoch)"
        raise RecipeError.one(str(path / runs.HISTORY), f"This run {what}. Train it for at least one epoch "
                              f"(`dlrecipe train --resume {path}`), or leave it out of the comparison.")
    test: dict[str, float] = {}
    if (path / runs.METRICS).is_file():
        stored = runs.read_json(path / runs.METRICS)
        test = {k: float(v) for k, v in stored.items() if k not in ("task", "n_test") and _number(v)}
    run = Run(path, recipe, str(meta.get("task") if isinstance(meta, dict) else None), history, test)
    run.metrics = _run_metrics(run)
    return run


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _run_metrics(run: Run) -> dict[str, float]:
    found: dict[str, float] = {}
    for name, values in run.history.items():
        if not name.startswith("val_"):
            continue
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            found[f"best_{name}"] = min(finite) if lower_is_better(name) else max(finite)
            found[name] = finite[-1]
    found.update({f"test_{k}": v for k, v in run.test.items()})
    found["epochs"] = float(len(run.history["epoch"]))
    return found


def collect(paths: list[Path]) -> list[Row]:
    """One row per path: a run, a seed group, or the newest of either in ``runs/<name>``.

    Raises:
        RecipeError: a path that is neither, a run that cannot be read, or runs of different tasks.
    """
    if not paths:
        raise RecipeError.one("RUN_OR_GROUP", "Give at least one run folder, seed group or runs/<name>.")
    rows = []
    for given in paths:
        kind, path = runs.find_run_or_group(Path(given))
        if kind == "group":
            members = [read_run(p) for p in runs.group_runs(path)]
            if not members:
                raise RecipeError.one(str(path), "No seed of this group has finished an epoch. Resume it with "
                                      f"`dlrecipe train --resume {path}`.")
            rows.append(Row(_label(path), members, group=path))
        else:
            rows.append(Row(_label(path), [read_run(path)]))
    first = rows[0].runs[0]
    for row in rows:
        for run in row.runs:
            if run.task != first.task:
                raise RecipeError.one(str(run.path), f"This run's task is {run.task}, but {first.path} is a "
                                      f"{first.task} run: their metrics cannot be compared. Compare runs of one "
                                      "task at a time.")
    _unique_labels(rows)
    return rows


def _label(path: Path) -> str:
    """``<name>/<timestamp>`` (``.../seed-<s>`` for a seed of a group): short, and unique in most compares."""
    parts = path.resolve().parts
    keep = 3 if path.name.startswith(runs.SEED_PREFIX) else 2
    return "/".join(parts[-keep:])


def _unique_labels(rows: list[Row]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.label] = seen.get(row.label, 0) + 1
    for row in rows:
        if seen[row.label] > 1:
            row.label = str((row.group or row.runs[0].path).resolve())


def flatten(data: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a recipe by dotted path: ``{"model.layers[3].rate": 0.5, ...}`` (empty lists and maps kept)."""
    if isinstance(data, dict) and data:
        return {p: v for k, value in data.items() for p, v in flatten(value, join_path(path, k)).items()}
    if isinstance(data, list) and data:
        return {p: v for i, value in enumerate(data) for p, v in flatten(value, join_path(path, i)).items()}
    return {path: data}


def differing(rows: list[Row]) -> None:
    """Set each row's ``differs``: the recipe paths whose value is not the same in every row (None: the row's
    recipe has no such path, e.g. a layer that only the other rows have)."""
    flat = [flatten(r.recipe()) for r in rows]
    paths = list(dict.fromkeys(p for f in flat for p in f))
    for p in paths:
        if p in IGNORED:
            continue
        values = [f.get(p, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            for row, v in zip(rows, values):
                row.differs[p] = v


def aggregate(row: Row) -> Row:
    """Set ``row.metrics``: ``{"mean", "std", "n"}`` over its runs of every metric any of them has."""
    names = list(dict.fromkeys(k for run in row.runs for k in run.metrics))
    row.metrics = {k: runs.summarize([run.metrics[k] for run in row.runs if k in run.metrics]) for k in names}
    return row


def objective(run: Run) -> tuple[str, str]:
    """The metric rows are sorted by, and its direction: a recipe EarlyStopping's monitor, else tune.objective.

    tune.objective defaults to val_loss (min).
    """
    for cb in (run.recipe.get("train") or {}).get("callbacks") or []:
        if isinstance(cb, dict) and cb.get("type") == "EarlyStopping":
            name = str(cb.get("monitor", "val_loss"))
            mode = cb.get("mode", "auto")
            return name, mode if mode in ("min", "max") else ("min" if lower_is_better(name) else "max")
    obj = (run.recipe.get("tune") or {}).get("objective", "val_loss")
    if isinstance(obj, dict):
        return str(obj.get("name", "val_loss")), str(obj.get("direction", "min"))
    return str(obj), "min" if lower_is_better(str(obj)) else "max"


def compare(paths: list[Path]) -> Comparison:
    """Read, diff, aggregate and sort the runs and groups of ``paths`` (nothing is written).

    Raises:
        RecipeError: bad input (see ``collect``).

    Example:
        >>> c = compare([Path("runs/dropout_0.2"), Path("runs/dropout_0.5")])
        >>> c.rows[0].differs, c.rows[0].metrics["val_accuracy"]
        ({'model.layers[3].rate': 0.5}, {'mean': 0.871, 'std': 0.003, 'n': 3})
    """
    rows = collect(paths)
    differing(rows)
    for row in rows:
        aggregate(row)
    name, direction = objective(rows[0].runs[0])
    candidates = [f"best_{name}", name, "best_val_loss"]
    sort_key = next((k for k in candidates if any(k in r.metrics for r in rows)), "epochs")
    if sort_key == "best_val_loss" and name not in ("val_loss", "best_val_loss"):
        name, direction = "val_loss", "min"
    sign = 1.0 if direction == "min" else -1.0

    def key(row: Row) -> tuple[int, float]:
        mean = row.metrics.get(sort_key, {}).get("mean")
        return (1, 0.0) if mean is None else (0, sign * mean)

    rows.sort(key=key)
    names = list(dict.fromkeys(k for r in rows for k in r.metrics))
    columns = sorted(names, key=lambda k: (0 if k.startswith("best_val_") else 1 if k.startswith("val_")
                                           else 2 if k.startswith("test_") else 3, k))
    return Comparison(rows, name, direction, sort_key, columns)
