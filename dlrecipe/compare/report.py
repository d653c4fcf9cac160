"""``report``: one self-contained HTML page about runs and seed groups (see docs/commands.md).

For several rows (or a seed group) the comparison table and the overlaid curves come first; then, per run,
its resolved recipe, environment, curves and learning rate, diagnosis, test metrics, per-class table,
confusion matrix, top-loss gallery and export verification, each read from what the run folder holds
(``evaluate``, ``inspect`` and ``export`` write them) or a note saying which command makes it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrecipe import runs
from dlrecipe.compare import html as h
from dlrecipe.compare.collect import Comparison, Row, aggregate
from dlrecipe.compare.curves import metric_names, plot_metric, png_bytes
from dlrecipe.errors import RecipeError

SECTIONS = {"recipe": "Resolved recipe", "environment": "Environment", "curves": "Curves and learning rate",
            "diagnosis": "Diagnosis", "test-metrics": "Test metrics", "per-class": "Per-class metrics",
            "confusion-matrix": "Confusion matrix", "top-losses": "Top losses", "export": "Export verification"}
TOP_LOSSES = Path("inspect") / "top_losses.png"
VERIFICATION = Path(runs.EXPORT) / "verification.json"


def render(comparison: Comparison) -> str:
    """The report page for ``comparison``'s rows (every run of every row gets its sections)."""
    all_runs = [(row, run) for row in comparison.rows for run in row.runs]
    several = len(comparison.rows) > 1 or any(row.group is not None for row in comparison.rows)
    nav = ([('comparison', "Comparison")] if several else []) + [
        (f"run-{i}", _run_title(row, run)) for i, (row, run) in enumerate(all_runs, 1)]
    body = ["<h1>dlrecipe report</h1>",
            f'<p class="meta">{len(all_runs)} run(s) · written {datetime.now():%Y-%m-%d %H:%M} · '
            f'sorted by {h.esc(comparison.sort_key)} ({h.esc(comparison.direction)})</p>']
    if len(nav) > 1:
        body.append("<nav>" + "".join(f'<a href="#{a}">{h.esc(t)}</a>' for a, t in nav) + "</nav>")
    if several:
        body.append(_comparison(comparison))
    for i, (row, run) in enumerate(all_runs, 1):
        body.append(_run_sections(f"run-{i}", _run_title(row, run), run, open_recipe=i == 1))
    title = "dlrecipe report: " + ", ".join(r.label for r in comparison.rows[:3]) + ("…" if len(comparison.rows) > 3 else "")
    return h.page(title, "\n".join(body))


def _run_title(row: Row, run) -> str:
    return f"{row.label} · seed {run.seed}" if row.group is not None else row.label


# --------------------------------------------------------------------------- comparison


def _comparison(comparison: Comparison) -> str:
    rows = list(comparison.rows)
    if len(rows) == 1 and rows[0].group is not None:  # one seed group: each seed, then their mean
        group = dataclasses.replace(rows[0], differs={"seed": "mean ± std"})
        rows = [aggregate(Row(f"seed {run.seed}", [run], differs={"seed": run.seed})) for run in group.runs] + [group]
    paths = list(dict.fromkeys(p for r in rows for p in r.differs))
    headers = ["run", "n", *paths, *comparison.columns]
    cells = [[h.breakable(r.label), str(len(r.runs)), *[h.recipe_value(r.differs.get(p)) for p in paths],
              *[_mean_std(r.metrics.get(c), c == "epochs") for c in comparison.columns]] for r in rows]
    classes = ["summary" if r.group is not None else "" for r in rows]
    col_classes = ["", "", *["differs"] * len(paths), *[""] * len(comparison.columns)]
    parts = [h.table(headers, cells, classes, col_classes)]
    if not paths:
        parts.append(h.note("The resolved recipes are the same (apart from their names)."))
    else:
        parts.append(h.note("Coloured columns: the recipe values that differ between the rows (dotted paths)."))
    parts.append(h.note("A seed group shows the mean ± sample standard deviation over its seeds; its curves are the "
                        "mean with a ± one std band, its seeds faint."))
    parts += [h.note(f"{h.esc(r.label)}: seed {h.esc(', '.join(map(str, r.diverged)))} diverged (NaN loss), "
                     "not in the mean.") for r in comparison.rows if r.diverged]
    parts += [h.image(png_bytes(plot_metric(comparison.rows, name)), f"curves_{name}", narrow=name == "learning_rate")
              for name in metric_names(comparison.rows)]
    return h.section("comparison", "comparison", "Comparison", "\n".join(parts), level=2)


def _mean_std(stat: dict | None, count: bool = False) -> str:
    if not stat or stat.get("mean") is None:
        return ""
    fmt = (lambda v: f"{v:.1f}") if count else h.number
    return fmt(stat["mean"]) if stat.get("std") is None else f"{fmt(stat['mean'])}<small>± {fmt(stat['std'])}</small>"


# --------------------------------------------------------------------------- one run


def _run_sections(anchor: str, title: str, run, open_recipe: bool) -> str:
    metrics = _metrics(run.path)
    parts = [f'<p class="meta">{h.esc(run.path)}</p>',
             _section(anchor, "recipe", _recipe(run.path, open_recipe)),
             _section(anchor, "environment", _environment(run.path)),
             _section(anchor, "curves", _curves(run)),
             _section(anchor, "diagnosis", _diagnosis(run.path)),
             _section(anchor, "test-metrics", _test_metrics(run.path, metrics)),
             _section(anchor, "per-class", _per_class(run.path, metrics)),
             _section(anchor, "confusion-matrix", _confusion(run.path, metrics)),
             _section(anchor, "top-losses", _top_losses(run.path)),
             _section(anchor, "export", _export(run.path))]
    return h.section("run", anchor, title, "\n".join(parts), level=2)


def _section(anchor: str, kind: str, content: str) -> str:
    return h.section(kind, f"{anchor}-{kind}", SECTIONS[kind], content)


def _metrics(path: Path) -> dict | None:
    return runs.read_json(path / runs.METRICS) if (path / runs.METRICS).is_file() else None


def _not_evaluated(path: Path) -> str:
    return h.note(f"Not evaluated yet: run {h.code(f'dlrecipe evaluate {path}')} (it writes metrics.json and plots/).")


def _recipe(path: Path, open_: bool) -> str:
    text = (path / runs.RECIPE).read_text(encoding="utf-8")
    return (f"<details{' open' if open_ else ''}><summary>recipe.yaml (train it again to reproduce the run)"
            f"</summary><pre>{h.esc(text)}</pre></details>")


def _environment(path: Path) -> str:
    if (path / runs.ENVIRONMENT).is_file():
        env = runs.read_json(path / runs.ENVIRONMENT)
        versions = env.get("versions", {}) if isinstance(env, dict) else {}
        rest = {k: (" ".join(v) if k == "command" and isinstance(v, list) else v)
                for k, v in (env.items() if isinstance(env, dict) else []) if k != "versions"}
        return (h.note("As the run recorded it (environment.json).") + '<div class="grid">'
                + h.table(["package", "version"], [[h.esc(k), h.esc(v)] for k, v in versions.items()])
                + h.key_values(rest) + "</div>")
    now = {"python": platform.python_version()}
    for name in ("dlrecipe", "keras", "tensorflow", "numpy"):
        try:
            now[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return (h.note("The run stored no environment.json: these are the versions <b>at report time</b>, not "
                   "necessarily the run's.") + h.table(["package", "version"], [[k, h.esc(v)] for k, v in now.items()]))


def _curves(run) -> str:
    from dlrecipe.evaluate.plots import plot_curves
    note = ("Per epoch, training and validation; the learning rate at each epoch's first step."
            if "learning_rate" in run.history else "Per epoch, training and validation (no learning rate recorded).")
    return h.note(note) + h.image(png_bytes(plot_curves(run.history)), "training curves")


def _diagnosis(path: Path) -> str:
    try:
        from dlrecipe.inspect.diagnose import diagnose_run
    except ImportError:
        return h.note("Diagnosis unavailable: this dlrecipe has no <code>dlrecipe diagnose</code>.")
    try:
        found = diagnose_run(path).as_json()
    except RecipeError as e:
        return h.note("Diagnosis unavailable: " + h.esc("; ".join(p.message for p in e.problems)))
    except Exception as e:  # a report shows what it can; the diagnosis is one section of it
        return h.note(f"Diagnosis failed ({h.esc(type(e).__name__)}: {h.esc(e)}).")
    head = (f'<p class="verdict">{h.esc(found.get("verdict"))}</p>'
            f'<p class="meta">confidence {h.number(found.get("confidence"))}'
            + (f' · from epoch {h.esc(found["onset_epoch"])}' if found.get("onset_epoch") is not None else "") + "</p>")
    return (head + "<h4>Evidence</h4>" + _items(found.get("evidence")) + "<h4>Suggestions</h4>"
            + _items(found.get("suggestions")))


def _items(items: Any) -> str:
    if not items:
        return h.note("none")
    if not isinstance(items, list):
        items = [items]
    lis = []
    for item in items:
        if isinstance(item, dict):
            text = "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in item.items())
        else:
            text = str(item)
        lis.append(f"<li>{h.esc(text)}</li>")
    return "<ul>" + "".join(lis) + "</ul>"


def _scalars(metrics: dict) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("task", "n_test") and (v is None or (
        isinstance(v, (int, float)) and not isinstance(v, bool)))}


def _test_metrics(path: Path, metrics: dict | None) -> str:
    if metrics is None:
        return _not_evaluated(path)
    parts = [h.note(f"{h.esc(metrics.get('task'))} on {h.esc(metrics.get('n_test'))} test examples (metrics.json)."),
             h.table(["metric", "value"], [[h.esc(k), h.number(v)] for k, v in _scalars(metrics).items()])]
    members = metrics.get("members")
    if members:
        keys = list(dict.fromkeys(k for m in members for k in m))
        parts.append("<h4>Ensemble members</h4>" + h.table(keys, [[h.number(m.get(k)) for k in keys] for m in members]))
    return "\n".join(parts)


def _per_class(path: Path, metrics: dict | None) -> str:
    if metrics is None:
        return _not_evaluated(path)
    per_class = metrics.get("per_class")
    if not per_class:
        return h.note(f"None for a {h.esc(metrics.get('task'))} run.")
    keys = list(dict.fromkeys(k for v in per_class.values() for k in v))
    return h.table(["class", *keys], [[h.esc(name), *[h.number(v.get(k)) for k in keys]]
                                      for name, v in per_class.items()])


def _confusion(path: Path, metrics: dict | None) -> str:
    stored = path / runs.PLOTS / "confusion_matrix.png"
    if stored.is_file():
        return h.note("Rows: true class; columns: predicted (plots/confusion_matrix.png).") + h.image(
            stored.read_bytes(), "confusion matrix", narrow=True)
    if metrics is None:
        return _not_evaluated(path)
    if not metrics.get("confusion_matrix"):
        return h.note(f"None for a {h.esc(metrics.get('task'))} run.")
    from dlrecipe.evaluate.plots import plot_confusion_matrix
    return h.image(png_bytes(plot_confusion_matrix(metrics["confusion_matrix"])), "confusion matrix", narrow=True)


def _top_losses(path: Path) -> str:
    stored = path / TOP_LOSSES
    if stored.is_file():
        return h.note("The test examples with the highest loss (inspect/top_losses.png).") + h.image(
            stored.read_bytes(), "top losses")
    return h.note(f"No gallery yet: run {h.code(f'dlrecipe inspect {path}')} (it writes inspect/top_losses.png).")


def _export(path: Path) -> str:
    stored = path / VERIFICATION
    if not stored.is_file():
        return h.note(f"Not exported yet: run {h.code(f'dlrecipe export {path}')} (it reloads every format and "
                      "checks it against the trained model).")
    found = runs.read_json(stored)
    diffs = found.get("max_abs_diff", {}) if isinstance(found, dict) else {}
    tolerance = found.get("tolerance") if isinstance(found, dict) else None
    rows = [[h.esc(fmt), h.number(d), "yes" if tolerance is None or d <= tolerance else "NO"] for fmt, d in diffs.items()]
    rest = {k: v for k, v in found.items() if k not in ("max_abs_diff", "signature")}
    return (h.note("Each format reloaded and run on the check examples (export/verification.json).")
            + h.table(["format", "max abs difference", "within tolerance"], rows) + h.key_values(rest)
            + f"<details><summary>serving signature</summary><pre>{h.esc(json.dumps(found.get('signature'), indent=2))}"
              "</pre></details>")
