"""Several models in one run: ensembles (``train.ensemble``) and k-fold cross-validation (``train.cross_validation``).

Each model is fitted by ``train.fit_unit``, exactly as a single run is (checkpoints after every epoch,
Ctrl-C and NaN handling, ``--resume``), in a sub-folder of the run.

An ensemble run (``runs/<name>/<timestamp>/``)::

    recipe.yaml, environment.json, preprocessing.json   as for one model: one data split, one normalization
    members/<i>/        i = 1..N, seed = seed + i - 1: history.csv, checkpoints/, tensorboard/, model.keras,
                        member.json (seed, finished)
    model.keras         the ensemble: raw inputs in, the normalization once, then the N members' outputs
                        averaged (probabilities for classification, values for regression)
    metrics.json        written by evaluate: the ensemble's metrics at top level, each member's under "members"

Members differ in their seed (initial weights, shuffling, dropout, augmentation); they share the data
split, so they share the validation data and the fitted normalization.

A cross-validation run::

    recipe.yaml, environment.json, preprocessing.json   (normalization: null, it is fitted per fold)
    folds/<i>/          i = 1..k: history.csv, checkpoints/, tensorboard/, model.keras, fold.json (the fold's
                        validation indices, its normalization, its validation metrics)
    cv.json, cv.csv     every validation metric per fold, and its mean and standard deviation over the folds

The k folds partition the training split (what remains after ``subset`` and ``test_split``; the
``validation_split`` is not used): seeded by the recipe's seed and stratified per class for
classification (each class is dealt round-robin over the folds, so fold sizes and class counts differ
by at most one). Fold i trains on the other k - 1 folds, with normalization fitted on them, and
validates on fold i, at every epoch and once more at the end with the final weights (the numbers in
``cv.json``). The standard deviation is the population one (``numpy.std``, ddof=0). A cross-validation
run estimates how well the recipe generalizes; it has no ``model.keras`` (``evaluate`` and ``export``
say so): train the recipe with ``--set train.cross_validation=0`` for the model itself.

``--resume`` skips finished members (folds), continues the interrupted one from its last epoch, and
starts the remaining ones.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecipe import runs
from dlrecipe.build import resolve
from dlrecipe.build.compile import finalize
from dlrecipe.build.preprocessing import keras_layers
from dlrecipe.data import pipeline, preprocess
from dlrecipe.errors import RecipeError
from dlrecipe.io import dump_yaml, write_json, write_text
from dlrecipe.recipe.loader import LoadedRecipe
from dlrecipe.train.fit import Result, Unit, check_writable, fit_unit, save_model, write_start
from dlrecipe.train.runtime import make_runtime, seed_everything, set_precision

MEMBERS = "members"
FOLDS = "folds"
MEMBER_JSON = "member.json"
FOLD_JSON = "fold.json"
CV_JSON = "cv.json"
CV_CSV = "cv.csv"
PREPROCESSING_PREFIX = "preprocessing_"  # the name of the normalization layers (see build.preprocessing.keras_layers)


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


@contextlib.contextmanager
def _quiet_retracing():
    """Hide TensorFlow's "N out of the last M calls triggered tf.function retracing" warning.

    Each member (fold) is a new model with its own compiled functions, which is what the warning
    counts; it is expected here and says nothing about the user's recipe.
    """
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def is_group(recipe) -> bool:
    return recipe.train.ensemble > 1 or recipe.train.cross_validation > 1


# --------------------------------------------------------------------------- folds


def make_folds(y: np.ndarray, k: int, seed: int, stratify: bool) -> list[np.ndarray]:
    """Split ``range(len(y))`` into ``k`` disjoint folds that cover it, each sorted.

    Examples are shuffled with ``np.random.default_rng(seed)``; with ``stratify`` the shuffled
    examples of each class are dealt round-robin in turn, so every fold gets its share of each class.

    Example:
        >>> [f.tolist() for f in make_folds(np.array([0, 0, 1, 1]), 2, seed=0, stratify=True)]
        [[0, 2], [1, 3]]
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    if stratify:
        labels = np.asarray(y).reshape(n)
        order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)])
    else:
        order = rng.permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % k
    return [np.flatnonzero(fold_of == i) for i in range(k)]


# --------------------------------------------------------------------------- the ensemble model


def build_ensemble(members: list[keras.Model], stats: dict, name: str) -> keras.Model:
    """One functional model that averages ``members`` (raw float32 inputs in, like each member).

    The normalization is applied once, by fresh ``preprocessing_*`` layers built from ``stats`` (the
    members were all trained with these statistics); each member follows without its own
    normalization (and without its augmentation, which is off at inference anyway) as a nested model
    ``member_<i>``; ``keras.layers.Average`` averages their outputs. So ``export`` with
    ``include_preprocessing: false`` can cut the normalization off as for a single model.
    """
    shape = tuple(members[0].inputs[0].shape[1:])
    inputs = keras.Input(shape=shape, name="raw_inputs", dtype="float32")
    x = inputs
    for layer in keras_layers(stats):
        x = layer(x)
    outputs = [_without_preprocessing(m, f"member_{i}")(x) for i, m in enumerate(members, 1)]
    averaged = keras.layers.Average(name="ensemble_average", dtype="float32")(outputs)
    model = keras.Model(inputs, averaged, name=f"{name.replace('.', '_')}_ensemble")
    model.trainable = False  # trained member by member; this model only averages them
    return model


def _without_preprocessing(model: keras.Model, name: str) -> keras.Model:
    pre = [layer for layer in model.layers if layer.name.startswith(PREPROCESSING_PREFIX)]
    start = pre[-1].output if pre else model.inputs[0]
    return keras.Model(start, model.output, name=name)


def compile_like(model: keras.Model, recipe) -> None:
    """Compile ``model`` with the (finalized) recipe's loss and metrics, so ``evaluate`` reports them."""
    loss = resolve.loss(recipe.train.loss)
    metrics = [resolve.metric(m, f"train.metrics[{i}]") for i, m in enumerate(recipe.train.metrics)]
    model.compile(loss=loss, metrics=metrics)


# --------------------------------------------------------------------------- training


def check_resume(run_dir: Path, stored: LoadedRecipe, loaded: LoadedRecipe) -> None:
    """``--resume`` of a run keeps its kind: one model, an ensemble, or the same k folds.

    ``stored`` is the run's recipe as saved, ``loaded`` the same with the ``--set`` overrides.

    Raises:
        RecipeError: an override that turns the run into another kind, or changes k.
    """
    stored, now = stored.recipe.train, loaded.recipe.train
    if stored.cross_validation != now.cross_validation and max(stored.cross_validation, now.cross_validation) > 1:
        raise RecipeError.one("train.cross_validation", f"Received: cross_validation={now.cross_validation}, but the "
                              f"run {run_dir} was started with {stored.cross_validation}. Resume keeps the folds; "
                              "train the recipe again for another k.")
    if (stored.ensemble > 1) != (now.ensemble > 1):
        raise RecipeError.one("train.ensemble", f"Received: ensemble={now.ensemble}, but the run {run_dir} was "
                              f"started with {stored.ensemble}. A run stays a single model or an ensemble; train "
                              "the recipe again instead.")


def train_group(loaded: LoadedRecipe, out: Path, argv: list[str], *, resume: Path | None = None,
                verbose: int | str = "auto") -> GroupResult:
    """Train every member of an ensemble, or every fold of a cross-validation, into one run folder.

    Raises:
        RecipeError: bad input, before anything is written; or a run that has nothing left to train.
        TrainingStopped: a member (fold) was interrupted or diverged; ``--resume`` continues it.
    """
    with _quiet_retracing():
        return _train_group(loaded, out, argv, resume, verbose)


def _train_group(loaded: LoadedRecipe, out: Path, argv: list[str], resume: Path | None, verbose) -> GroupResult:
    recipe = loaded.recipe
    cv = recipe.train.cross_validation > 1
    cfg = recipe.runtime
    set_precision(cfg.mixed_precision)
    seed_everything(recipe.seed, cfg.deterministic)
    data_cfg = recipe.data.model_copy(update={"validation_split": 0.0}) if cv else recipe.data
    dataset = pipeline.load(data_cfg, recipe.seed)
    info = dataset.info
    if resume is None:
        check_writable(out)
    if cv and pipeline.is_streamed(dataset):
        raise RecipeError.one("train.cross_validation", f"Received: cross_validation={recipe.train.cross_validation} "
                              f"with source: {recipe.data.source}, which is streamed from disk; k-fold needs the "
                              "examples in memory. Fix: convert the data to an .npz (source: npz), or remove "
                              "cross_validation.")
    if cv:
        k = recipe.train.cross_validation
        n = len(dataset.x_train)
        if k > n:
            raise RecipeError.one("train.cross_validation", f"Received: cross_validation={k}, but the training split "
                                  f"has {n} examples. Expected at most {n} folds; lower k or use more data.")
        folds = make_folds(dataset.y_train, k, recipe.seed, stratify=info.task == "classification")
        stats = None
    else:
        folds = []
        try:
            stats = pipeline.fit_stats(recipe.data, dataset)
        except Exception as e:
            raise pipeline.data_error(dataset, e) or e
    recipe = finalize(recipe, info.task, info.n_classes)
    rt = make_runtime(cfg)
    run_dir = Path(resume) if resume is not None else runs.new_run_dir(out, recipe.name)
    count = len(folds) if cv else recipe.train.ensemble
    unit_dirs = [run_dir / (FOLDS if cv else MEMBERS) / str(i) for i in range(1, count + 1)]
    final = run_dir / (CV_JSON if cv else runs.MODEL)
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
            write_start(run_dir, loaded, recipe, info, stats, rt, argv, getattr(dataset, "tabular", None),
                        xla=model.jit_compile if model is not None else None)
            started = wrote_recipe = True
        elif not wrote_recipe:  # a resume: record the overrides, as a single run does
            write_text(run_dir / runs.RECIPE, dump_yaml(recipe.model_dump(mode="json", exclude_none=True)))
            wrote_recipe = True

    rows: list[dict[str, Any]] = []
    last_history: list[dict[str, Any]] = []
    for i, work_dir in enumerate(unit_dirs, 1):
        label = f"{'fold' if cv else 'member'} {i} of {count}"
        if cv:
            val_idx = folds[i - 1]
            train_idx = np.setdiff1d(np.arange(len(dataset.x_train)), val_idx, assume_unique=True)
            x_tr, y_tr = dataset.x_train[train_idx], dataset.y_train[train_idx]
            unit_stats = preprocess.fit_data(recipe.data, x_tr)
            fold = dataclasses.replace(dataset, x_train=x_tr, y_train=y_tr, x_val=dataset.x_train[val_idx],
                                       y_val=dataset.y_train[val_idx])
            unit = Unit(work_dir, recipe.seed, fold, unit_stats, label)
            about = {"fold": i, "seed": recipe.seed, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
                     "validation_indices": val_idx.tolist(), "normalization": unit_stats}
        else:
            unit = Unit(work_dir, recipe.seed + i - 1, dataset, stats, label)
            about = {"member": i, "seed": recipe.seed + i - 1}
        info_path = work_dir / (FOLD_JSON if cv else MEMBER_JSON)
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
        model, history = fit_unit(recipe, rt, info, unit, run_dir=run_dir, resume=resumable, on_start=start_unit,
                                  verbose=verbose, resume_rate=loaded.resume_rate,
                                  done_ok=marked.get("finished") is False)
        done = {**about, "finished": True, "epochs": epochs, "trained_epochs": history[-1]["epoch"] if history else 0}
        if cv:
            val = pipeline.fit_inputs(unit.data, recipe, info.n_classes)["validation_data"]  # labels as in fit
            scores = (model.evaluate(*val, batch_size=recipe.train.batch_size, verbose=0, return_dict=True)
                      if isinstance(val, tuple) else model.evaluate(val, verbose=0, return_dict=True))
            done["metrics"] = {f"val_{name}": float(value) for name, value in scores.items() if np.ndim(value) == 0}
        else:
            done["last_epoch"] = history[-1] if history else {}
        write_json(info_path, done)
        rows.append(_row(done))
        last_history = history
    if cv:
        mean, std = summarize(rows)
        write_cv(run_dir, recipe, rows, mean, std)
        return GroupResult(run_dir, last_history, None, dataset, kind="cross_validation", rows=rows, mean=mean,
                           std=std)
    members = [runs.load_model(d / runs.MODEL) for d in unit_dirs]
    ensemble = build_ensemble(members, stats, recipe.name)
    compile_like(ensemble, recipe)
    start_run()  # every member was already finished (the ensemble is all that was missing)
    save_model(ensemble, run_dir / runs.MODEL)
    return GroupResult(run_dir, last_history, ensemble, dataset, kind="ensemble", rows=rows)


def _finished(work_dir: Path, cv: bool, epochs: int) -> bool:
    """A member (fold) is finished when it recorded so for at least ``epochs`` and its model is saved."""
    path = work_dir / (FOLD_JSON if cv else MEMBER_JSON)
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


def summarize(rows: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and population standard deviation over the folds of every ``val_`` metric."""
    names = [k for k in rows[0] if k.startswith("val_")]
    values = {name: np.array([r[name] for r in rows], dtype=np.float64) for name in names}
    return ({name: float(v.mean()) for name, v in values.items()},
            {name: float(v.std()) for name, v in values.items()})


def write_cv(run_dir: Path, recipe, rows: list[dict[str, Any]], mean: dict, std: dict) -> None:
    """``cv.json`` (folds, mean, std) and ``cv.csv`` (one row per fold, then a mean and a std row)."""
    write_json(run_dir / CV_JSON, {"k": len(rows), "seed": recipe.seed, "folds": rows, "mean": mean, "std": std,
                                   "std_ddof": 0})
    keys = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for label, values in (("mean", mean), ("std", std)):
        writer.writerow({keys[0]: label, **values})
    write_text(run_dir / CV_CSV, buf.getvalue())


# --------------------------------------------------------------------------- evaluate and print


def member_metrics(run_dir: Path, recipe, meta: dict, x_test, y_test) -> list[dict[str, Any]]:
    """Each member's test loss and metrics (the scalars of ``evaluate``), with its seed."""
    with _quiet_retracing():
        return [_member_metrics(run_dir, recipe, meta, i, x_test, y_test) for i in range(1, recipe.train.ensemble + 1)]


def member_plots(run_dir: Path, recipe) -> list[Path]:
    """``plots/curves_member_<i>.png``: each member's training curves (from its history.csv)."""
    from dlrecipe.evaluate.plots import plot_curves, read_history, save_figure
    written = []
    for i in range(1, recipe.train.ensemble + 1):
        history = read_history(run_dir / MEMBERS / str(i) / runs.HISTORY)
        if history and history.get("epoch"):
            path = run_dir / runs.PLOTS / f"curves_member_{i}.png"
            save_figure(plot_curves(history), path)
            written.append(path)
    return written


def _member_metrics(run_dir: Path, recipe, meta: dict, i: int, x_test, y_test) -> dict[str, Any]:
    from dlrecipe.evaluate.metrics import evaluate
    model = runs.load_model(run_dir / MEMBERS / str(i) / runs.MODEL)
    metrics = evaluate(model, x_test, y_test, task=meta["task"], class_names=meta.get("class_names"),
                       batch_size=recipe.train.batch_size)
    scalars = {k: v for k, v in metrics.items() if k not in ("task", "n_test") and _is_scalar(v)}
    return {"member": i, "seed": recipe.seed + i - 1, **scalars}


def _is_scalar(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{float(value):.4f}"


def print_members(metrics: dict, console) -> None:
    """A table of the test metrics of the ensemble and of each member (``metrics.json`` with ``members``)."""
    from rich.table import Table
    members = metrics["members"]
    names = [k for k in members[0] if k not in ("member", "seed")]
    table = Table(title="Ensemble and members (test split)")
    table.add_column("model")
    table.add_column("seed", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row("ensemble", "", *[_fmt(metrics.get(n)) for n in names], style="bold")
    for m in members:
        table.add_row(f"member {m['member']}", str(m["seed"]), *[_fmt(m.get(n)) for n in names])
    console.print(table)


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
        table.add_row(*[_fmt(r.get(k)) if k in r else "" for k in keys])
    if result.kind == "cross_validation":
        for label, values in (("mean", result.mean), ("std", result.std)):
            table.add_row(label, *[_fmt(values[k]) if k in values else "" for k in keys[1:]], style="bold")
    console.print(table)
