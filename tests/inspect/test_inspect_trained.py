"""``dlrecipe inspect RUN`` through the CLI, on runs trained from the tiny data of conftest."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run, recipe_dict, tiny_arrays, write_yaml
from typer.testing import CliRunner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _invoke(*args):
    from dlrecipe.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _train(folder: Path, recipe: dict) -> Path:
    path = write_yaml(folder / "recipe.yaml", recipe)
    result = _invoke("train", path, "--out", folder / "runs")
    assert result.exit_code == 0, result.output
    return only_run(folder / "runs")


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory) -> Path:
    """A small CNN trained for one epoch at a low rate, so that the test split keeps some confusions."""
    folder = tmp_path_factory.mktemp("inspect-conv")
    npz = folder / "tiny.npz"
    np.savez(npz, **tiny_arrays(n_train=120, n_test=60))
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
              {"type": "Conv2D", "filters": 6, "kernel_size": 3, "activation": "relu"},
              {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return _train(folder, recipe_dict(npz, model={"layers": layers}, train={"epochs": 1, "learning_rate": 0.003}))


def _png(path: Path) -> np.ndarray:
    import matplotlib.image
    assert path.read_bytes().startswith(PNG_MAGIC)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


def test_inspect_writes_the_pictures_and_the_json(conv_run):
    result = _invoke("inspect", conv_run, "--json", "--n", "9")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    folder = conv_run / "inspect"
    for name in ("filters.png", "occlusion.png", "max_activating.png", "top_losses.png"):
        _png(folder / name)
        assert name in found["files"]
    assert json.loads((folder / "inspect.json").read_text())["most_confused"] == found["most_confused"]
    assert [d["layer"] for d in found["dead_units"]] and all(0.0 <= d["dead"] <= 1.0 for d in found["dead_units"])
    assert all(d["units"] in (4, 6) for d in found["dead_units"])
    assert len(found["top_losses"]) == 9
    losses = [e["loss"] for e in found["top_losses"]]
    assert losses == sorted(losses, reverse=True)
    assert sum(found["noise"]["counts"].values()) == found["noise"]["n"]
    assert len(found["occlusion"]) == 3  # one image per class (3 classes)


def test_most_confused_equals_the_confusion_matrix_of_evaluate(conv_run):
    assert _invoke("evaluate", conv_run).exit_code == 0
    metrics = json.loads((conv_run / "metrics.json").read_text())
    result = _invoke("inspect", conv_run, "--json")
    found = json.loads(result.stdout)
    names = metrics["confusion_matrix"]["labels"]
    matrix = metrics["confusion_matrix"]["matrix"]
    expected = {(names[i], names[j]): matrix[i][j] for i in range(len(names)) for j in range(len(names))
                if i != j and matrix[i][j] > 0}
    assert expected, "the fixture's run should confuse some test examples"
    assert {(p["true"], p["predicted"]): p["count"] for p in found["most_confused"]} == expected
    counts = [p["count"] for p in found["most_confused"]]
    assert counts == sorted(counts, reverse=True)
    assert found["accuracy"] == pytest.approx(metrics["accuracy"])


def test_the_summary_table_is_printed(conv_run):
    result = _invoke("inspect", conv_run)
    assert result.exit_code == 0, result.output
    assert "dead units" in result.stdout and "random noise in" in result.stdout
    assert f"Wrote {conv_run / 'inspect' / 'top_losses.png'}" in result.stdout


def test_an_mlp_on_images_skips_the_convolution_pictures(tmp_path, tiny_npz):
    layers = [{"type": "Flatten"}, {"type": "Dense", "units": 8, "activation": "relu"},
              {"type": "Dense", "units": 3, "activation": "softmax"}]
    run = _train(tmp_path, recipe_dict(tiny_npz, model={"layers": layers}, train={"epochs": 1}))
    found = json.loads(_invoke("inspect", run, "--json").stdout)
    assert "filters.png" not in found["files"] and not (run / "inspect" / "filters.png").exists()
    assert any("No convolution" in note for note in found["notes"])
    assert found["max_activating"] is None
    _png(run / "inspect" / "top_losses.png")
    assert [d["units"] for d in found["dead_units"]] == [8]


def test_a_table_gets_permutation_importance_per_column(tmp_path):
    rng = np.random.default_rng(0)
    header = ["size", "colour", "weight", "kind"]
    with open(tmp_path / "t.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(150):
            k = i % 3
            w.writerow([f"{k * 2 + rng.normal(0, 0.3):.3f}", ["red", "green", "blue"][k],
                        f"{10 + rng.normal():.2f}", ["ant", "bee", "cat"][k]])
    recipe = {"name": "tab", "seed": 3,
              "data": {"source": "csv", "path": str(tmp_path / "t.csv"), "label": "kind", "test_split": 0.3,
                       "validation_split": 0.2, "normalize": "standardize"},
              "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                                   {"type": "Dense", "units": 3, "activation": "softmax"}]},
              "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.01}}
    run = _train(tmp_path, recipe)
    result = _invoke("inspect", run, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert sorted(e["column"] for e in found["permutation_importance"]) == ["colour", "size", "weight"]
    assert found["permutation_metric"] == "accuracy"
    assert all(e["std"] >= 0 for e in found["permutation_importance"])
    assert not (run / "inspect" / "top_losses.png").exists()  # no pictures for a table
    assert found["top_losses"] and found["most_confused"] is not None


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_not_a_run_folder_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _invoke("inspect", tmp_path / "empty")
    assert result.exit_code == 2
    assert str(tmp_path / "empty") in result.stderr and "Not a run folder" in result.stderr
    assert _files(tmp_path) == ["empty"]


def test_a_run_without_a_model_exits_2_and_writes_nothing(conv_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(conv_run, run, ignore=shutil.ignore_patterns("inspect", "model.keras"))
    before = _files(run)
    result = _invoke("inspect", run)
    assert result.exit_code == 2
    assert str(run) in result.stderr and "dlrecipe train --resume" in result.stderr
    assert _files(run) == before
