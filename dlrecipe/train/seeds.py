"""``train --seeds N``: one recipe trained with the seeds seed, seed+1, ..., seed+N-1 into one group folder.

``<group>/seed-<s>/`` is a complete run, trained by ``fit.train`` exactly as ``dlrecipe train RECIPE --set
seed=<s>`` would train it (the seed draws the weights, the shuffling and the validation split), so each
can be evaluated, exported, compared and reproduced on its own. ``seeds.json`` (``runs.SEEDS``) lists the
seeds and marks each finished one; ``--resume GROUP`` skips those, continues an interrupted seed from its
checkpoint and starts the rest. A seed whose loss becomes NaN is a result, not an error: seeds.json marks it
under ``diverged`` (its folder keeps its last good epoch, as a NaN run does), the other seeds are trained,
and the mean ± std is over the finished seeds; only a group whose every seed diverged stops (exit 1).
See docs/training.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrecipe import runs
from dlrecipe.errors import RecipeError
from dlrecipe.io import write_json
from dlrecipe.recipe.loader import LoadedRecipe, load_recipe
from dlrecipe.train.ensemble import quiet_retracing
from dlrecipe.train.fit import train
from dlrecipe.train.resume import load_for_resume
from dlrecipe.train.unit import Result, TrainingStopped

MAX_SEEDS = 1000


@dataclass
class SeedsResult:
    """What ``train_seeds`` returns.

    Attributes:
        run_dir: the group folder.
        rows: per seed, in seed order: ``seed``, ``epochs`` and its last epoch's metrics (history.csv);
            a diverged seed has ``diverged``: the epoch whose loss became NaN.
        summary: per metric of ``rows``: ``{"mean", "std", "n"}`` over the seeds that did not diverge.
        trained: the seeds trained by this call, with their model and data (``--evaluate`` uses them).
    """

    run_dir: Path
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    trained: dict[int, Result] = field(default_factory=dict)
    kind: str = "seeds"


def check_request(recipe, n: int | None, workers: int | None) -> None:
    """``--seeds N`` trains N single models one after another in this process.

    Raises:
        RecipeError: N out of range, or combined with ``--workers``, an ensemble or a cross-validation.
    """
    if n is None:
        return
    if not 1 <= n <= MAX_SEEDS:
        raise RecipeError.one("--seeds", f"Received: --seeds {n}. Expected 1 to {MAX_SEEDS} seeds.")
    if workers is not None:
        raise RecipeError.one("--seeds", "--seeds trains its runs one after another in one process; --workers "
                              "trains one run in several. Fix: leave out --workers (or --seeds).")
    train_cfg = recipe.train
    if train_cfg.ensemble > 1 or train_cfg.cross_validation > 1:
        key = "train.ensemble" if train_cfg.ensemble > 1 else "train.cross_validation"
        raise RecipeError.one(key, f"--seeds repeats a single model over seeds; an ensemble already trains its "
                              "members with seeds seed..seed+N-1 and a cross-validation reports its folds' mean and "
                              f"std. Fix: leave out --seeds, or set {key}: "
                              f"{1 if key == 'train.ensemble' else 0}.")


def load_group(group: Path, overrides: list[str]) -> LoadedRecipe:
    """The recipe of a seed group to resume (its first started seed's, with ``--set`` overrides).

    Raises:
        RecipeError: not a seed group, or one none of whose seeds started.
    """
    started = runs.group_runs(group)
    if not started:
        raise RecipeError.one(str(group), "No seed of this group has started (no seed-<s>/recipe.yaml). Train the "
                              "recipe again with --seeds N.")
    return load_recipe(started[0] / runs.RECIPE, overrides)


def train_seeds(loaded: LoadedRecipe, out: Path, argv: list[str], *, n: int | None = None,
                resume: Path | None = None, sets: list[str] = (), verbose: int | str = "auto") -> SeedsResult:
    """Train ``loaded`` with ``n`` seeds into a new group folder under ``out``, or resume the group ``resume``.

    Raises:
        RecipeError: bad input, before anything is written; or a group with nothing left to train.
        TrainingStopped: a seed was interrupted, or every seed diverged; ``--resume GROUP`` continues them.

    Example:
        >>> done = train_seeds(load_recipe(Path("recipes/quickstart.yaml")), Path("runs"), sys.argv, n=3)
        >>> [r["seed"] for r in done.rows], done.summary["val_accuracy"]
        ([42, 43, 44], {'mean': 0.87, 'std': 0.004, 'n': 3})
    """
    if resume is None:
        group = runs.new_run_dir(out, loaded.recipe.name)
        about: dict[str, Any] = {"seeds": list(range(loaded.recipe.seed, loaded.recipe.seed + n)), "finished": {}}
    else:
        group = Path(resume)
        runs.group_runs(group)  # checks seeds.json
        about = runs.read_json(group / runs.SEEDS)
        about.setdefault("finished", {})
    about.setdefault("diverged", {})
    seeds = about["seeds"]
    plan = [_plan(group, s, loaded, sets, about) for s in seeds]
    if resume is not None and all(p is None for p in plan):
        raise RecipeError.one(str(group), f"Every seed of this group already finished its {loaded.recipe.train.epochs} "
                              "epochs. To train longer, resume with --set train.epochs=N (N larger).")
    trained: dict[int, Result] = {}
    with quiet_retracing():
        for i, (seed, step) in enumerate(zip(seeds, plan), 1):
            if step is None:
                continue
            seed_loaded, seed_resume = step
            work_dir = runs.seed_dir(group, seed)
            print(f"seed {seed} ({i} of {len(seeds)}){' resumed' if seed_resume else ''}", flush=True)

            def new_run(about=about) -> None:
                group.mkdir(parents=True, exist_ok=True)
                write_json(group / runs.SEEDS, about)

            try:
                result = train(seed_loaded, out, argv, resume=seed_resume, verbose=verbose, run_dir=work_dir,
                               on_new_run=new_run)
            except TrainingStopped as e:
                if e.nan_epoch is None:  # Ctrl-C: stop the group, --resume GROUP goes on
                    raise
                about["diverged"][str(seed)] = {"epoch": e.nan_epoch}
                write_json(group / runs.SEEDS, about)
                print(f"seed {seed} diverged: its loss became NaN in epoch {e.nan_epoch}; its folder keeps its last "
                      "good epoch. Going on with the other seeds.", flush=True)
                continue
            about["diverged"].pop(str(seed), None)
            trained[seed] = result
            about["finished"][str(seed)] = {"epochs": seed_loaded.recipe.train.epochs,
                                            "trained_epochs": result.history[-1]["epoch"] if result.history else 0}
            write_json(group / runs.SEEDS, about)
    rows = [_row(group, s, about["diverged"].get(str(s))) for s in seeds]
    if all("diverged" in r for r in rows):
        where = ", ".join(f"seed {r['seed']} in epoch {r['diverged']}" for r in rows)
        raise TrainingStopped(f"Every seed diverged (the loss became NaN: {where}); no seed finished. Lower the "
                              f"learning rate (or add clipnorm to the optimizer) and resume with `dlrecipe train "
                              f"--resume {group} --set train.learning_rate=...`.", group, 1)
    done = [r for r in rows if "diverged" not in r]
    metrics = list(dict.fromkeys(k for r in done for k in r if k not in ("seed", "epochs")))
    summary = {k: runs.summarize([r[k] for r in done if k in r]) for k in metrics}
    return SeedsResult(group, rows, summary, trained)


def _plan(group: Path, seed: int, loaded: LoadedRecipe, sets: list[str], about: dict):
    """None for a finished seed; else ``(its recipe, the folder to resume or None to start it)``."""
    work_dir = runs.seed_dir(group, seed)
    resumable = (work_dir / runs.STATE).is_file() and (work_dir / runs.LAST_CHECKPOINT).is_file()
    if not resumable:
        if work_dir.exists():  # started, but stopped before its first epoch: nothing to keep
            runs.remove_run(work_dir)
        return _with_seed(loaded, seed), None
    seed_loaded = load_for_resume(work_dir, list(sets))
    mark = about["finished"].get(str(seed))
    if mark is None and (work_dir / runs.MODEL).is_file():
        # fitted and saved, but stopped before seeds.json recorded it: done for the epochs it was trained with
        mark = {"epochs": load_recipe(work_dir / runs.RECIPE).recipe.train.epochs}
        about["finished"][str(seed)] = mark
    if mark is not None and (work_dir / runs.MODEL).is_file() and mark["epochs"] >= seed_loaded.recipe.train.epochs:
        return None
    return seed_loaded, work_dir


def _with_seed(loaded: LoadedRecipe, seed: int) -> LoadedRecipe:
    return dataclasses.replace(loaded, recipe=loaded.recipe.model_copy(update={"seed": seed}))


def _row(group: Path, seed: int, diverged: dict | None = None) -> dict[str, Any]:
    history = runs.read_history(runs.seed_dir(group, seed) / runs.HISTORY)
    last = history[-1] if history else {}
    if diverged is not None:
        return {"seed": seed, "epochs": last.get("epoch", 0), "diverged": diverged["epoch"]}
    return {"seed": seed, "epochs": last.get("epoch", 0),
            **{k: v for k, v in last.items() if k not in ("epoch", "learning_rate")}}
