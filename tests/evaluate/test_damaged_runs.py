"""evaluate and train --resume on run folders that are unfinished or damaged: say which run was taken, exit 2
naming the damaged file, and write nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run, recipe_dict, tiny_arrays, write_yaml
from typer.testing import CliRunner


def _invoke(*args):
    from dlrecipe.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished run (1 epoch) of the tiny recipe; tests copy it."""
    root = tmp_path_factory.mktemp("trained")
    np.savez(root / "tiny.npz", **tiny_arrays(n_train=60, n_test=15))
    recipe = write_yaml(root / "tiny.yaml", recipe_dict(root / "tiny.npz", train={"epochs": 1}))
    result = _invoke("train", recipe, "--out", root / "runs")
    assert result.exit_code == 0, result.stdout + result.stderr
    return only_run(root / "runs")


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_evaluate_of_runs_name_says_it_skipped_an_unfinished_newer_run(trained, tmp_path):
    name = tmp_path / "runs" / "tiny"
    done = _copy(trained, name / "20260101-000000")
    unfinished = _copy(trained, name / "20260102-000000")
    (unfinished / "model.keras").unlink()
    result = _invoke("evaluate", name)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"Took {done}, the newest run in {name} with a model.keras: the newer run "
                            f"20260102-000000 has none yet")
    assert f"dlrecipe train --resume {unfinished}" in first
    # Given the run itself, nothing to explain.
    assert not _invoke("evaluate", done).stdout.startswith("Took ")


def test_evaluate_without_a_task_in_preprocessing_json_exits_2_naming_the_file(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    meta = json.loads((run / "preprocessing.json").read_text())
    del meta["task"]
    (run / "preprocessing.json").write_text(json.dumps(meta))
    result = _invoke("evaluate", run)
    assert result.exit_code == 2
    assert f"{run / 'preprocessing.json'}: Received no task." in result.stderr
    assert not (run / "metrics.json").exists()


def test_evaluate_with_an_empty_history_writes_nothing(trained, tmp_path):
    run = _copy(trained, tmp_path / "run")
    (run / "history.csv").write_text("")
    result = _invoke("evaluate", run)
    assert result.exit_code == 2
    assert str(run / "history.csv") in result.stderr and "nothing was written" in result.stderr
    assert not (run / "metrics.json").exists() and not (run / "plots").exists()


@pytest.mark.parametrize("garbage", [b"epoch,loss\n1,0.5\n\x00\x01\x02 binary \x00\n",
                                     b"epoch,loss\n1,\"" + b"x" * 200_000 + b"\"\n",
                                     b"\x89PNG\r\n\x1a\n\xff\xfe\x00"], ids=["nul", "huge-field", "undecodable"])
def test_resume_on_a_history_of_binary_garbage_exits_2(trained, tmp_path, garbage):
    run = _copy(trained, tmp_path / "run")
    (run / "history.csv").write_bytes(garbage)
    before = sorted(p.name for p in run.iterdir())
    result = _invoke("train", "--resume", run, "--set", "train.epochs=2")
    assert result.exit_code == 2
    assert f"{run / 'history.csv'}: Unreadable (" in result.stderr and "damaged" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == before
