"""``dlrecipe tune`` tells the truth: a stepped float space keeps its end point in a grid, ties name the
earliest trial, the trial lines name the trial as trials.csv does, trials.csv keeps its columns, and a search
that fails before its first trial leaves no folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import recipe_dict, tiny_arrays, write_yaml

LAYERS = [{"type": "Flatten"}, {"type": "Dropout", "rate": {"float": [0.0, 0.5], "step": 0.1}},
          {"type": "Dense", "units": 3, "activation": "softmax"}]
RATE = "model.layers[1].rate"


def _invoke(*args):
    from dlrecipe.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A finished grid search over {float: [0.0, 0.5], step: 0.1}: (recipe, out, folder, its first output)."""
    import numpy as np
    root = tmp_path_factory.mktemp("grid")
    np.savez(root / "tiny.npz", **tiny_arrays(n_train=60, n_test=10))
    recipe = write_yaml(root / "grid.yaml", recipe_dict(
        root / "tiny.npz", model={"layers": LAYERS}, train={"epochs": 1, "metrics": ["accuracy"]},
        tune={"tuner": "grid", "objective": "val_accuracy", "max_trials": 10}))
    out = root / "runs"
    result = _invoke("tune", recipe, "--out", out)
    assert result.exit_code == 0, result.stdout + result.stderr
    return recipe, out, out / "tiny" / "tune", result.stdout


def test_a_grid_over_a_stepped_float_space_tries_its_end_point(grid):
    _, _, folder, stdout = grid
    # KerasTuner's own Float(0.0, 0.5, step=0.1) stops at 0.4: (0.5 - 0.0) // 0.1 is 4.0 in floats.
    assert [float(r[RATE]) for r in _rows(folder)] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert "6 trial(s) completed" in stdout


def test_trial_lines_name_the_trial_as_trials_csv_does_and_the_worker_column_is_always_there(grid):
    _, _, folder, stdout = grid
    lines = [line for line in stdout.splitlines() if line.startswith("Trial ")]
    table = _rows(folder)
    assert [line.split(" model")[0] for line in lines] == \
        [f"Trial {r['trial']} ({i}/10 ended)" for i, r in enumerate(table, 1)]
    assert lines[0].startswith("Trial 00 (1/10 ended) model.layers[1].rate=0 |")
    # trials.csv has the same columns with or without --workers: one process is worker tuner0.
    assert list(table[0]) == ["trial", "status", RATE, "objective", "epochs", "seconds", "worker"]
    assert {r["worker"] for r in table} == {"tuner0"}


def test_a_tie_names_the_earliest_trial_whatever_order_the_trials_reload_in(grid, monkeypatch):
    recipe, out, folder, _ = grid
    for path in folder.glob("keras_tuner/trial_*/trial.json"):  # every trial scores the same
        trial = json.loads(path.read_text())
        trial["score"] = 0.75
        path.write_text(json.dumps(trial))
    from keras_tuner.src.backend import io as kt_io
    real_glob = kt_io.glob
    for order in (False, True):  # KerasTuner reloads the trials in the file system's order
        monkeypatch.setattr(kt_io, "glob", lambda pattern, order=order: sorted(real_glob(pattern), reverse=order))
        result = _invoke("tune", recipe, "--out", out)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "Best: trial 00, val_accuracy 0.75." in result.stdout
        best = (folder / "best.yaml").read_text()
        assert best.startswith("# Best of 6 trial(s): trial 00,")
        assert yaml.safe_load(best)["model"]["layers"][1]["rate"] == 0.0


def test_a_search_that_fails_before_its_first_trial_leaves_no_folder(write_recipe, tmp_path):
    # A metric given as an object hides the objective's direction from dlrecipe's check; KerasTuner refuses it.
    recipe = write_recipe(model={"layers": LAYERS},
                          train={"epochs": 1, "metrics": [{"type": "MeanSquaredError", "name": "foo"}]},
                          tune={"tuner": "random", "objective": "val_foo", "max_trials": 2})
    out = tmp_path / "runs"
    result = _invoke("tune", recipe, "--out", out)
    assert result.exit_code == 2
    assert "tune.objective" in result.stderr and "nothing was written" in result.stderr
    assert not out.exists()
