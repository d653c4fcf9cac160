"""Run folders and seed groups written by hand (no training), laid out as `dlrecipe train` and `evaluate` write them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import recipe_dict, write_yaml

from dlrecipe import runs
from dlrecipe.evaluate.reports import classification_report
from dlrecipe.io import dump_yaml
from dlrecipe.recipe.loader import load_recipe


def resolved_recipe(tmp: Path, npz: Path, seed: int = 1, **sections) -> str:
    """recipe.yaml's text: the tiny recipe resolved as train stores it."""
    path = write_yaml(tmp / f"recipe-{seed}-{abs(hash(repr(sections)))}.yaml", recipe_dict(npz, seed=seed, **sections))
    return dump_yaml(load_recipe(path).resolved())


def fake_run(folder: Path, npz: Path, *, seed: int = 1, epochs: int = 3, offset: float = 0.0, task: str = "classification",
             evaluated: bool = True, **sections) -> Path:
    """A finished run folder: recipe.yaml, environment.json, preprocessing.json, history.csv (and metrics.json)."""
    folder.mkdir(parents=True)
    (folder / runs.RECIPE).write_text(resolved_recipe(folder.parent, npz, seed, **sections))
    (folder / runs.ENVIRONMENT).write_text(json.dumps({"versions": {"python": "3.11", "keras": "3.15"}, "seed": seed}))
    (folder / runs.PREPROCESSING).write_text(json.dumps({"task": task, "class_names": ["left", "middle", "right"]}))
    rng = np.random.default_rng(seed)
    rows = [{"epoch": e, "loss": 1.0 / e + offset, "accuracy": 0.5 + 0.1 * e,
             "val_loss": 1.2 / e + offset + 0.05 * rng.random(), "val_accuracy": 0.45 + 0.1 * e - offset,
             "learning_rate": 0.01 * 0.5 ** (e - 1)} for e in range(1, epochs + 1)]
    runs.write_history(folder / runs.HISTORY, rows)
    (folder / runs.MODEL).write_bytes(b"not a model: compare never loads it")
    if evaluated:
        y = np.arange(30) % 3
        pred = np.where(rng.random(30) < 0.8, y, (y + 1) % 3)
        metrics = {"task": task, "n_test": 30, "loss": 0.4 + offset, **classification_report(y, pred, ["left", "middle",
                                                                                                       "right"])}
        (folder / runs.METRICS).write_text(json.dumps(metrics))
    return folder


def fake_group(folder: Path, npz: Path, seeds=(1, 2), **kwargs) -> Path:
    """A seed group (train --seeds N): seeds.json and one finished run per seed."""
    folder.mkdir(parents=True)
    for s in seeds:
        fake_run(runs.seed_dir(folder, s), npz, seed=s, **kwargs)
    (folder / runs.SEEDS).write_text(json.dumps({"seeds": list(seeds), "finished": {
        str(s): {"epochs": 3, "trained_epochs": 3} for s in seeds}}))
    return folder
