"""Several models in one run folder: the members of an ensemble or the folds of a cross-validation.

Each is fitted by ``unit.fit_unit`` exactly as a single run is (checkpoints after every epoch, Ctrl-C
and NaN handling, ``--resume``) in its sub-folder, ``members/<i>/`` or ``folds/<i>/``. ``--resume``
skips finished members (folds), continues the interrupted one from its last epoch, and starts the
remaining ones. See ``train.ensemble``, ``train.crossval`` and docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.io import write_json
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.train import crossval
from dlrecipe.train.ensemble import MEMBER_JSON, MEMBERS, build_ensemble, compile_like, fmt_value, quiet_retracing
from dlrecipe.train.setup import prepare, write_recipe, write_start
from dlrecipe.train.unit import Result, Unit, fit_unit


@dataclass
class GroupResult(Result):
    """What ``train_group`` returns: ``Result`` plus one summary row per member or fold.

    Attributes:
        kind: ``"ensemble"`` or ``"cross_validation"``.
        rows: per member (``member``, ``seed``, ``epochs`` and the last epoch's logs) or per fold
            (``fold``, ``n_train``, ``n_val``, ``epochs`` and the ``val_`` metrics).
        mean, std: over the folds, for each ``val_`` metric (cross-validation only).
    """

    kind: str = "ensemble"
    rows: list[dict[str, Any]] = field(default_factory=list)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)


def train_group(loaded: LoadedRecipe, out: Path, argv: list[str], *, resume: Path | None = None,
                verbose: int | str = "auto", callbacks: tuple = ()) -> GroupResult:
    """Train every member of an ensemble, or every fold of a cross-validation, into one run folder.

    Raises:
        RecipeError: bad input, before anything is written; or a run that has nothing left to train.
        TrainingStopped: a member (fold) was interrupted or diverged; ``--resume`` continues it.
    """
    with quiet_retracing():
        return _train_group(loaded, out, argv, resume, verbose, callbacks)


def _train_group(loaded: LoadedRecipe, out: Path, argv: list[str], resume: Path | None, verbose,
                 callbacks: tuple = ()) -> GroupResult:
    recipe = loaded.recipe
    cv = recipe.train.cross_validation > 1
    data_cfg = recipe.data.model_copy(update={"validation_split": 0.0}) if cv else recipe.data
    ready = prepare(recipe, data=data_cfg, out=out if resume is None else None, stats=not cv,
                    check=crossval.check if cv else None)
    recipe, dataset, info, stats = ready.recipe, ready.dataset, ready.info, ready.stats
    folds = (crossval.make_folds(dataset.y_train, recipe.train.cross_validation, recipe.seed,
                                 stratify=info.task == "classification") if cv else [])
    run_dir = Path(resume) if resume is not None else runs.new_run_dir(out, recipe.name)
    count = len(folds) if cv else recipe.train.ensemble
    unit_dirs = [run_dir / (crossval.FOLDS if cv else MEMBERS) / str(i) for i in range(1, count + 1)]
    final = run_dir / (crossval.CV_JSON if cv else runs.MODEL)
    epochs = recipe.train.epochs
    if resume is not None and final.is_file() and all(_finished(d, cv, epochs) for d in unit_dirs):
        raise RecipeError.one(str(run_dir), f"This run already finished its {epochs} epochs. To train longer, resume "
                              "with --set train.epochs=N (N larger)" + ("." if cv else ", or with --set "
                              "train.ensemble=N for more members."))
    started = resume is not None
    wrote_recipe = False

    def start_run(model: keras.Model | None = None) -> None:
        nonlocal started, wrote_recipe
        if not started:
            write_start(run_dir, ready, argv, xla=model.jit_compile if model is not None else None)
            started = wrote_recipe = True
        elif not wrote_recipe:  # a resume: record the overrides, as a single run does
            write_recipe(run_dir, recipe)
            wrote_recipe = True

    rows: list[dict[str, Any]] = []
    last_history: list[dict[str, Any]] = []
    for i, work_dir in enumerate(unit_dirs, 1):
        label = f"{'fold' if cv else 'member'} {i} of {count}"
        if cv:
            unit, about = crossval.fold_unit(recipe, dataset, folds[i - 1], i, work_dir, label)
        else:
            unit = Unit(work_dir, recipe.seed + i - 1, dataset, stats, label)
            about = {"member": i, "seed": recipe.seed + i - 1}
        info_path = work_dir / (crossval.FOLD_JSON if cv else MEMBER_JSON)
        if _finished(work_dir, cv, epochs):
            done = runs.read_json(info_path)
            rows.append(_row(done))
            continue

        def start_unit(model: keras.Model, info_path=info_path, about=about) -> None:
            start_run(model)
            # a resumed run trains a member (fold) again: the ensemble (cv.json) of the old members is no longer
            # the run's, and is rebuilt when every member is done
            final.unlink(missing_ok=True)
            write_json(info_path, {**about, "finished": False})

        resumable = (work_dir / runs.STATE).is_file() and (work_dir / runs.LAST_CHECKPOINT).is_file()
        # a member done (all epochs, or early-stopped) that the run stopped before marking finished is done;
        # one marked finished that a larger train.epochs reopens is refused as a single run is
        marked = runs.read_json(info_path) if resumable and info_path.is_file() else {}
        model, history = fit_unit(recipe, ready.runtime, info, unit, run_dir=run_dir, resume=resumable,
                                  on_start=start_unit, verbose=verbose, resume_rate=loaded.resume_rate,
                                  done_ok=marked.get("finished") is False, extra_callbacks=callbacks)
        done = {**about, "finished": True, "epochs": epochs, "trained_epochs": history[-1]["epoch"] if history else 0}
        if cv:
            done["metrics"] = crossval.validation_metrics(model, unit, recipe, info)
        else:
            done["last_epoch"] = history[-1] if history else {}
        write_json(info_path, done)
        rows.append(_row(done))
        last_history = history
    if cv:
        mean, std = crossval.summarize(rows)
        crossval.write_cv(run_dir, recipe, rows, mean, std)
        return GroupResult(run_dir, last_history, None, dataset, kind="cross_validation", rows=rows, mean=mean,
                           std=std)
    members = [runs.load_model(d / runs.MODEL) for d in unit_dirs]
    ensemble = build_ensemble(members, stats, recipe.name)
    compile_like(ensemble, recipe)
    start_run()  # every member was already finished (the ensemble is all that was missing)
    runs.save_model(ensemble, run_dir / runs.MODEL)
    return GroupResult(run_dir, last_history, ensemble, dataset, kind="ensemble", rows=rows)


def _finished(work_dir: Path, cv: bool, epochs: int) -> bool:
    """A member (fold) is finished when it recorded so for at least ``epochs`` and its model is saved."""
    path = work_dir / (crossval.FOLD_JSON if cv else MEMBER_JSON)
    if not path.is_file() or not (work_dir / runs.MODEL).is_file():
        return False
    about = runs.read_json(path)
    return bool(about.get("finished")) and int(about.get("epochs", 0)) >= epochs


def _row(done: dict[str, Any]) -> dict[str, Any]:
    if "fold" in done:
        return {"fold": done["fold"], "n_train": done["n_train"], "n_val": done["n_val"],
                "epochs": done["trained_epochs"], **done.get("metrics", {})}
    last = {k: v for k, v in done.get("last_epoch", {}).items() if k not in ("epoch", "learning_rate")}
    return {"member": done["member"], "seed": done["seed"], "epochs": done["trained_epochs"], **last}


def print_group(result: GroupResult, console) -> None:
    """The members' last epochs, or the folds' validation metrics with their mean and std."""
    from rich.table import Table
    rows = result.rows
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if result.kind == "cross_validation":
        title = f"Cross-validation: {len(rows)} folds (validation metrics with the final weights)"
    else:
        title = f"Ensemble of {len(rows)} members (last epoch of each)"
    table = Table(title=title)
    for key in keys:
        table.add_column(key, justify="left" if key in ("fold", "member") else "right")
    for r in rows:
        table.add_row(*[fmt_value(r.get(k)) if k in r else "" for k in keys])
    if result.kind == "cross_validation":
        for label, values in (("mean", result.mean), ("std", result.std)):
            table.add_row(label, *[fmt_value(values[k]) if k in values else "" for k in keys[1:]], style="bold")
    console.print(table)
