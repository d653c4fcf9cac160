"""The files and lines of a search: its folder's layout, trials.csv, objective.png, best.yaml, the trial lines.

A search lives in ``<out>/<name>/tune/``: KerasTuner's project in ``keras_tuner/`` (one ``trial_<id>/``
per trial, where dlrecipe adds its own record beside ``trial.json``), the recipe the worker processes run,
the mark of an ended ``--max-time`` budget, and the results written from the oracle (see docs/tuning.md).
No Keras is imported here: the CLI reads the layout and parses ``--max-time`` before loading anything.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dlrecipe.errors import RecipeError, Stopped
from dlrecipe.io import dump_yaml, write_bytes, write_text
from dlrecipe.recipe.loader import LoadedRecipe

PROJECT = "keras_tuner"
TRIAL_RECORD = "dlrecipe.json"  # per trial, beside KerasTuner's trial.json: worker, epochs, seconds
SEARCH_RECIPE = "search.yaml"   # the recipe the search runs (merged, overrides applied, spaces in)
BUDGET_MARK = "budget_ended"    # written by the oracle when --max-time refused a new trial
ENDED = ("COMPLETED", "FAILED", "INVALID")


class SearchFailed(Stopped):
    """The search could not go on (a process failed beyond repair, no trial completed); it stays resumable."""

    prefix = "error: "


@dataclass
class TuneResult:
    """What ``tune`` found and wrote: the best values and recipe, one row per trial, the files written."""

    folder: Path
    best_path: Path
    best_values: dict[str, Any]
    rows: list[dict[str, Any]]
    best_epochs: int | None = None
    budget_ended: bool = False
    written: list[Path] = field(default_factory=list)


def objective_name(recipe) -> str:
    """The name of the value the search optimizes (``tune.objective``), e.g. ``val_loss``."""
    obj = recipe.tune.objective
    return obj if isinstance(obj, str) else obj.name


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``30m``, ``1.5h``, ``1h30m``.

    Raises:
        RecipeError: anything else, or a duration of 0.
    """
    s = text.strip().lower()
    seconds = None
    if re.fullmatch(r"\d+(\.\d+)?", s):
        seconds = float(s)
    else:
        m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", s)
        if m and s:
            h, mi, se = (float(g) if g else 0.0 for g in m.groups())
            seconds = h * 3600 + mi * 60 + se
    if seconds is None or seconds <= 0:
        raise RecipeError.one("--max-time", f"Received: {text!r}. Expected a positive duration: a number of seconds "
                              "or with units h, m, s, e.g. --max-time 90s, 30m, 2h or 1h30m.")
    return seconds


def duration(seconds: float) -> str:
    """A number of seconds as people read it: ``42s``, ``3m05s``, ``1h02m03s``."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def read_record(project: Path, trial_id: str) -> dict[str, Any]:
    """dlrecipe's record of a trial (worker, pid, epochs, seconds), or {} when it has none yet."""
    try:
        return json.loads((project / f"trial_{trial_id}" / TRIAL_RECORD).read_text())
    except (OSError, ValueError):
        return {}


class Progress:
    """One line per ended trial: its number, values, objective, the best so far, epochs, time, elapsed."""

    def __init__(self, loaded: LoadedRecipe, project: Path, total: int | None, direction: str, emit: Callable,
                 show_worker: bool = False):
        self.loaded, self.project, self.total, self.direction, self.emit = loaded, project, total, direction, emit
        self.show_worker = show_worker
        self.started = time.time()
        self.best: float | None = None
        self.done = 0

    def count_existing(self, trials) -> None:
        """Trials ended before this run (a resumed search) count in the numbering and the best."""
        for t in trials:
            if str(t.status) in ENDED:
                self.done += 1
                self._update_best(t.score if str(t.status) == "COMPLETED" else None)

    def _update_best(self, score) -> None:
        if score is None or not math.isfinite(score):
            return
        if self.best is None or (score > self.best if self.direction == "max" else score < self.best):
            self.best = score

    def trial_ended(self, trial_id: str, status: str, values: dict, score, message: str | None = None) -> None:
        self.done += 1
        self._update_best(score if status == "COMPLETED" else None)
        record = read_record(self.project, trial_id)
        shown = ", ".join(f"{p}={_fmt(self.loaded.spaces[p].tidy(values.get(p)))}" for p in self.loaded.spaces)
        # The trial's id (as in trials.csv, best.yaml and its trial_<id> folder), then how many trials ended.
        head = f"Trial {trial_id} ({self.done}/{self.total} ended)" if self.total else \
            f"Trial {trial_id} ({self.done} ended)"
        name = objective_name(self.loaded.recipe)
        if status == "COMPLETED" and score is not None:
            result = f"{name} {_fmt(score)} (best {_fmt(self.best)})"
        else:
            last = ((message or "").strip().splitlines()[-1:] or ["no message"])[0]
            last = re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", last)  # dlrecipe.errors.RecipeError: -> RecipeError:
            result = f"{status.lower()}: {last} (traceback in trial_{trial_id}/trial.json)"
        cost = []
        if record.get("epochs") is not None and record.get("seconds") is not None:
            cost.append(f"{record['epochs']} epoch(s) in {record['seconds']:.1f}s")
        if self.show_worker:
            cost.append(f"on {record.get('worker', '?')}")
        cost.append(f"elapsed {duration(time.time() - self.started)}")
        self.emit(f"{head} {shown} | {result} | {', '.join(cost)}")


def plain(console, line: str) -> None:
    """One unwrapped, unstyled line (paths and recipe paths contain brackets rich would read as markup)."""
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def finish(loaded: LoadedRecipe, tuner, folder: Path, console, *, budget_ended: bool, seconds: float,
           show_worker: bool = False) -> TuneResult:
    """The results from the oracle: trials.csv, objective.png, best.yaml, the table and the summary."""
    recipe = loaded.recipe
    oracle = tuner.oracle
    rows = trial_rows(oracle.trials, loaded, folder / PROJECT)
    write_text(folder / "trials.csv", _csv(rows))
    written = [folder / "trials.csv"]
    png = folder / "objective.png"
    if plot_objective(rows, objective_name(recipe), oracle.objective.direction, png):
        written.append(png)
    best = best_trial(oracle.trials, oracle.objective.direction)
    if console is not None:
        print_trials(rows, console, show_worker)
    done = sum(1 for r in rows if r["status"] == "COMPLETED")
    if best is None:
        raise SearchFailed(f"No trial completed (tracebacks in {folder / PROJECT}/trial_*/trial.json). Fix the "
                           "cause (see the trial lines above); the same command with --overwrite starts afresh.")
    values = {p: loaded.spaces[p].tidy(best.hyperparameters.get(p)) for p in loaded.spaces}
    fixed = loaded.with_values(values)
    best_path = folder / "best.yaml"
    write_text(best_path, f"# Best of {done} trial(s): trial {best.trial_id}, {objective_name(recipe)} = "
               f"{best.score}; train it with: dlrecipe train {best_path}\n" + dump_yaml(fixed.fixed_raw()))
    written.append(best_path)
    best_epochs = int(best.hyperparameters.values.get("tuner/initial_epoch", 0)) + int(best.best_step or 0) + 1
    if console is not None:
        total = oracle.max_trials
        why = ("the --max-time budget ended the search" if budget_ended else
               "the search is complete" if total is None or done >= total else
               "the search space is exhausted or trials failed")
        plain(console, f"{done} trial(s) completed{f' of {total}' if total else ''} in {duration(seconds)}: {why}. "
              f"Best: trial {best.trial_id}, {objective_name(recipe)} {_fmt(best.score)}.")
        plain(console, f"Wrote {', '.join(p.name for p in written)} in {folder}")
    return TuneResult(folder, best_path, values, rows, best_epochs, budget_ended, written)


def _order(trial_id: str) -> tuple:
    """The order of trial ids: by number (``"02"`` before ``"10"``), then by name."""
    return (int(trial_id) if trial_id.isdigit() else math.inf, trial_id)


def best_trial(trials: dict, direction: str):
    """The completed trial with the best finite score; among tied scores the earliest trial.

    KerasTuner's ``get_best_trials`` keeps ties in the order its trials were reloaded (the file system's
    order), so re-running a finished search could name another of the tied trials in best.yaml.
    """
    done = [t for t in trials.values() if str(t.status) == "COMPLETED" and t.score is not None
            and math.isfinite(t.score)]
    if not done:
        return None
    sign = -1 if direction == "max" else 1
    return min(done, key=lambda t: (sign * t.score, _order(str(t.trial_id))))


def trial_rows(trials: dict, loaded: LoadedRecipe, project: Path) -> list[dict[str, Any]]:
    """One row per trial, in the order of their ids: status, values, objective, epochs, seconds, worker.

    The columns are the same whether or not the search ran with ``--workers`` (``worker`` is the KerasTuner
    tuner id that ran the trial: ``tuner0`` in one process), so trials.csv keeps its columns across re-runs.
    """
    rows = []
    for trial_id in sorted(trials, key=_order):
        trial = trials[trial_id]
        status = str(trial.status)
        row = {"trial": trial_id, "status": status if status in ENDED else "UNFINISHED"}
        for path, space in loaded.spaces.items():
            row[path] = space.tidy(trial.hyperparameters.values.get(path))
        row["objective"] = trial.score if status == "COMPLETED" else None
        record = read_record(project, trial_id)
        row["epochs"] = record.get("epochs")
        seconds = record.get("seconds")
        row["seconds"] = round(seconds, 2) if seconds is not None else None
        row["worker"] = record.get("worker")
        rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def plot_objective(rows: list[dict[str, Any]], name: str, direction: str, path: Path) -> bool:
    """``objective.png``: the objective of each completed trial and the best so far, written atomically.

    The plotted series are also stored in the PNG's ``dlrecipe`` text chunk (JSON), read back from the
    plot's own lines, so what the image shows can be checked against trials.csv. False if nothing to plot.
    """
    points = [(r["trial"], r["objective"]) for r in rows if r["objective"] is not None]
    if not points:
        return False
    from matplotlib.figure import Figure
    xs = list(range(1, len(points) + 1))
    ys = [float(v) for _, v in points]
    best = []
    for y in ys:
        best.append(y if not best else (max if direction == "max" else min)(best[-1], y))
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    trials_line, = ax.plot(xs, ys, "o", label="trial")
    best_line, = ax.step(xs, best, where="post", color="tab:orange", label=f"best so far ({direction})")
    ax.set_xticks(xs, [t for t, _ in points], rotation=90 if len(xs) > 20 else 0)
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per trial")
    ax.grid(alpha=0.3)
    ax.legend()
    meta = {"trial": [t for t, _ in points], "objective": [float(v) for v in trials_line.get_ydata()],
            "best_so_far": [float(v) for v in best_line.get_ydata()]}
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"dlrecipe": json.dumps(meta)})
    write_bytes(path, buf.getvalue())
    return True


def short_header(key: str) -> str:
    """A column title for a space's path that wraps at its parts: ``model.layers[0].filters`` -> ``[0] filters``."""
    for prefix in ("model.layers", "model.", "train.", "data."):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    return key.replace(".", " ").strip()


def print_trials(rows: list[dict[str, Any]], console, show_worker: bool = False) -> None:
    """The rows of ``trial_rows`` as a table on ``console``, readable at 80 columns.

    The ``worker`` column is shown when asked or when more than one worker ran trials.

    Values never wrap nor get cut (each column is at least as wide as its widest value); titles wrap at the
    parts of a space's path, and trials.csv keeps the full paths.
    """
    from rich import box
    from rich.table import Table
    if not rows:
        return
    if not show_worker and len({r.get("worker") for r in rows} - {None}) <= 1:
        rows = [{k: v for k, v in r.items() if k != "worker"} for r in rows]
    cells = [["" if v is None else _fmt(v) for v in row.values()] for row in rows]
    table = Table(title="Trials", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for i, key in enumerate(rows[0]):
        width = max(len(c[i]) for c in cells)
        table.add_column(short_header(str(key)), min_width=width, overflow="fold",
                         justify="left" if key in ("trial", "status", "worker") else "right")
    for row in cells:
        table.add_row(*row)
    console.print(table)
