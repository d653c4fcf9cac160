"""``compare``'s numbers: read runs and seed groups, diff their resolved recipes, aggregate their metrics.

A row is one run, or one seed group (``train --seeds N``) whose metrics are the mean ± sample std over its
seeds that did not diverge (a diverged seed is counted in ``Row.diverged``). An ensemble (``members/<i>/``)
or cross-validation run (``folds/<i>/``) is one row: its val metrics are the mean ± std over its members
(folds), its test metrics the ensemble's own (metrics.json), its curves the members' mean. A tune folder
is read as the run ``--retrain-best`` trained (tune/retrained.json), else refused with what to pass.
``differs`` holds the recipe values that are not the same in every row, as dotted paths
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
SUBRUNS = {"members": "ensemble", "folds": "cross_validation"}  # train.ensemble's and cross_validation's folders
TUNE_FILES = ("trials.csv", "search.yaml")  # what marks a `dlrecipe tune` folder


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
    members: list["Run"] = field(default_factory=list)  # an ensemble's members, a cross-validation's folds
    kind: str = "run"  # or "ensemble", "cross_validation"

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
    diverged: list[int] = field(default_factory=list)  # a seed group's seeds whose loss became NaN

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
                          **({"group": str(r.group), "diverged": r.diverged} if r.group is not None else {}),
                          **({"kind": r.runs[0].kind, "members": [str(m.path) for m in r.runs[0].members]}
                             if r.runs[0].members else {}),
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
    meta = runs.read_json(path / runs.PREPROCESSING)
    task = str(meta.get("task") if isinstance(meta, dict) else None)
    sub = next((d for d in SUBRUNS if (path / d).is_dir()), None)
    if sub is not None and not (path / runs.HISTORY).is_file():
        return _read_members(path, recipe, task, sub)
    history = runs.history_columns(path / runs.HISTORY)
    if history is None or not history.get("epoch"):
        what = "has no history.csv" if history is None else "has an empty history.csv (no finished epoch)"
        raise RecipeError.one(str(path / runs.HISTORY), f"This run {what}. Train it for at least one epoch "
                              f"(`dlrecipe train --resume {path}`), or leave it out of the comparison.")
    run = Run(path, recipe, task, history, _test(path))
    run.metrics = _run_metrics(run)
    return run


def _test(path: Path) -> dict[str, float]:
    if not (path / runs.METRICS).is_file():
        return {}
    stored = runs.read_json(path / runs.METRICS)
    return {k: float(v) for k, v in stored.items() if k not in ("task", "n_test") and _number(v)}


def _read_members(path: Path, recipe: dict, task: str, sub: str) -> Run:
    """An ensemble or cross-validation run: its members' (folds') histories, their mean curve, its metrics.json."""
    found = []
    for d in sorted((d for d in (path / sub).iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name)):
        history = runs.history_columns(d / runs.HISTORY)
        if history and history.get("epoch"):
            member = Run(d, recipe, task, history, {})
            member.metrics = _run_metrics(member)
            found.append(member)
    if not found:
        raise RecipeError.one(str(path / sub), f"No {sub[:-1]} of this run has finished an epoch. Resume it with "
                              f"`dlrecipe train --resume {path}`, or leave it out of the comparison.")
    by_epoch: dict[str, dict[float, list[float]]] = {}
    for member in found:
        for col, values in member.history.items():
            for e, v in zip(member.history["epoch"], values):
                if col != "epoch" and math.isfinite(v):
                    by_epoch.setdefault(col, {}).setdefault(e, []).append(v)
    epochs = sorted({e for m in found for e in m.history["epoch"]})
    history = {"epoch": epochs, **{col: [sum(vals[e]) / len(vals[e]) if e in vals else math.nan for e in epochs]
                                   for col, vals in by_epoch.items()}}
    run = Run(path, recipe, task, history, _test(path), members=found, kind=SUBRUNS[sub])
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
        if any((Path(given) / f).is_file() for f in TUNE_FILES):
            rows.append(_tune_row(Path(given)))
            continue
        kind, path = runs.find_run_or_group(Path(given))
        if kind == "group":
            rows.append(_group_row(path))
        else:
            run = read_run(path)
            rows.append(Row(_label(path) + _kind_label(run), [run]))
    first = rows[0].runs[0]
    for row in rows:
        for run in row.runs:
            if run.task != first.task:
                raise RecipeError.one(str(run.path), f"This run's task is {run.task}, but {first.path} is a "
                                      f"{first.task} run: their metrics cannot be compared. Compare runs of one "
                                      "task at a time.")
    _unique_labels(rows)
    return rows


def _group_row(path: Path) -> Row:
    """A seed group: its seeds that did not diverge (seeds.json's ``diverged``) as runs, the others counted."""
    about = runs.read_json(path / runs.SEEDS)
    marks = about.get("diverged") if isinstance(about, dict) else None
    diverged = sorted(int(s) for s in marks) if isinstance(marks, dict) else []
    started = [p for p in runs.group_runs(path) if int(p.name[len(runs.SEED_PREFIX):]) not in diverged]
    members = [read_run(p) for p in started]
    if not members and diverged:
        raise RecipeError.one(str(path), f"Every seed of this group diverged (NaN loss: seed "
                              f"{', '.join(map(str, diverged))}): there is nothing to compare. Lower the learning "
                              f"rate and `dlrecipe train --resume {path} --set train.learning_rate=...`.")
    if not members:
        raise RecipeError.one(str(path), "No seed of this group has finished an epoch. Resume it with "
                              f"`dlrecipe train --resume {path}`.")
    return Row(_label(path), members, group=path, diverged=diverged)


def _kind_label(run: Run) -> str:
    if run.kind == "ensemble":
        return f" (ensemble of {len(run.members)})"
    return f" ({len(run.members)} folds)" if run.kind == "cross_validation" else ""


def _tune_row(path: Path) -> Row:
    """A tune folder: the run its ``--retrain-best`` trained (retrained.json), else a refusal saying what to pass."""
    marked = runs.read_json(path / runs.RETRAINED) if (path / runs.RETRAINED).is_file() else None
    run_dir = Path(marked["run"]) if isinstance(marked, dict) and isinstance(marked.get("run"), str) else None
    if run_dir is None or not (run_dir / runs.RECIPE).is_file():
        raise RecipeError.one(str(path), "This is a tune folder (`dlrecipe tune`): its trials are in trials.csv, "
                              "not run folders, and no retrained best run is recorded. compare reads run folders: "
                              f"train the best recipe (`dlrecipe train {path / 'best.yaml'}`, or `dlrecipe tune "
                              "RECIPE --retrain-best`) and pass that run folder (runs/<name>/<timestamp>), or pass "
                              "this tune folder again after --retrain-best.")
    run = read_run(run_dir)
    return Row(f"{_label(run_dir)} (best of {_label(path)}, retrained)", [run])


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
    if len(row.runs) == 1 and row.runs[0].members:  # val over the members (folds), test the ensemble's own
        run = row.runs[0]
        names = list(dict.fromkeys(k for m in run.members for k in m.metrics))
        row.metrics = {k: runs.summarize([m.metrics[k] for m in run.members if k in m.metrics]) for k in names}
        row.metrics.update({f"test_{k}": runs.summarize([v]) for k, v in run.test.items()})
        return row
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
