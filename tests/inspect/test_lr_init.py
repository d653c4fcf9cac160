"""``dlrecipe lr``, ``dlrecipe inspect-init`` and validate's initialization warnings, through the CLI.

The tiny recipe of conftest has 120 training examples in 3 balanced classes; its validation split of
0.2 keeps 96, so with batch size 16 an epoch has 6 steps.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, lr_rows, tiny_arrays

from dlrecipe.data import source as datamod
from dlrecipe.recipe.schema import DataConfig

DLRECIPE = str(Path(sys.executable).parent / "dlrecipe")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEPS = 6  # steps per epoch of the tiny recipe


# --- counting training examples without loading them ----------------------------------------------------


def _unbalanced_npz(tmp_path: Path, labels: str) -> Path:
    """101 examples without a test split; classes of very different sizes."""
    rng = np.random.default_rng(3)
    y = rng.choice(4, size=101, p=[0.55, 0.25, 0.15, 0.05])
    arrays = {"x_train": rng.normal(size=(101, 3)).astype(np.float32)}
    if labels == "strings":
        arrays["y_train"] = np.array(["ant", "bee", "cat", "dog"])[y]
    elif labels == "onehot":
        arrays["y_train"] = np.eye(4, dtype=np.float32)[y]
    elif labels == "regression":
        arrays["y_train"] = rng.normal(size=101).astype(np.float32)
    else:
        arrays["y_train"] = y
    path = tmp_path / f"unbalanced_{labels}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("labels,split", [
    ("ints", {"test_split": 0.25, "validation_split": 0.1}),
    ("strings", {"subset": 37, "test_split": 0.2, "validation_split": 0.15}),
    ("onehot", {"test_split": 0.3}),
    ("regression", {"test_split": 0.2, "validation_split": 0.1}),
    ("ints", {"subset": 60, "validation_split": 0.0}),
])
def test_count_train_examples_equals_what_load_gives_for_npz(tmp_path, labels, split):
    from dlrecipe.data.source import count_train_examples
    cfg = DataConfig.model_validate({"source": "npz", "path": str(_unbalanced_npz(tmp_path, labels)), **split})
    assert count_train_examples(cfg) == len(datamod.load(cfg, seed=5).x_train)


def test_count_train_examples_equals_what_load_gives_for_npz_with_a_test_split_and_keys(tmp_path):
    from dlrecipe.data.source import count_train_examples
    arrays = tiny_arrays()
    path = tmp_path / "renamed.npz"
    np.savez(path, images=arrays["x_train"], labels=arrays["y_train"], x_test=arrays["x_test"],
             y_test=arrays["y_test"])
    cfg = DataConfig.model_validate({"source": "npz", "path": str(path), "subset": 77, "validation_split": 0.3,
                                     "keys": {"x_train": "images", "y_train": "labels"}})
    assert count_train_examples(cfg) == len(datamod.load(cfg, seed=1).x_train)


@pytest.mark.parametrize("split", [{"validation_split": 0.2}, {"subset": 251, "validation_split": 0.07}])
def test_count_train_examples_equals_what_load_gives_for_fashion_mnist(fashion_idx, split):
    from dlrecipe.data.source import count_train_examples
    cfg = DataConfig.model_validate({"source": "fashion_mnist", "path": str(fashion_idx), **split})
    assert count_train_examples(cfg) == len(datamod.load(cfg, seed=42).x_train)


# --- dlrecipe lr ----------------------------------------------------------------------------------------


def test_lr_prints_a_step_schedule_per_epoch_and_plots_it_to_lr_png(cli, write_recipe, tmp_path, monkeypatch):
    schedule = {"schedule": "step", "initial": 0.1, "factor": 0.5, "every_epochs": 2}
    recipe = write_recipe(train={"epochs": 6, "learning_rate": schedule})
    monkeypatch.chdir(tmp_path)
    result = cli("lr", recipe)
    assert result.exit_code == 0, result.stderr
    rows = lr_rows(result.stdout)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    for epoch, first, low, high in rows:
        assert first == pytest.approx(0.1 * 0.5 ** math.floor((epoch - 1) / 2), rel=1e-5)
        assert low is None and high is None  # constant within each epoch
    assert "96 training examples, batch size 16: 6 steps per epoch, 36 steps in 6 epochs" in result.stdout
    assert (tmp_path / "lr.png").read_bytes()[:8] == PNG_MAGIC


def _cosine_warmup(step: int) -> float:
    """{schedule: cosine, initial: 0.1, final: 0.01, warmup_epochs: 1} over 5 epochs, from the format's table."""
    epoch = step / STEPS
    if epoch < 1:
        return 0.1 * epoch
    e, total = epoch - 1, 5 - 1
    return 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * min(e / total, 1.0))) / 2


def test_lr_cosine_with_warmup_matches_the_formula_with_min_and_max_within_each_epoch(cli, write_recipe, tmp_path):
    schedule = {"schedule": "cosine", "initial": 0.1, "final": 0.01, "warmup_epochs": 1}
    out = tmp_path / "plots" / "rate.png"
    result = cli("lr", write_recipe(train={"epochs": 5, "learning_rate": schedule}), "--out", out)
    assert result.exit_code == 0, result.stderr
    rows = lr_rows(result.stdout)
    assert len(rows) == 5
    for epoch, first, low, high in rows:
        values = [_cosine_warmup(s) for s in range((epoch - 1) * STEPS, epoch * STEPS)]
        assert first == pytest.approx(values[0], rel=1e-5, abs=1e-9)
        assert low == pytest.approx(min(values), rel=1e-5, abs=1e-9)
        assert high == pytest.approx(max(values), rel=1e-5, abs=1e-9)
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f"Wrote {out}" in result.stdout


def test_lr_evaluates_a_keras_schedule_per_optimizer_step(cli, write_recipe, tmp_path):
    # ExponentialDecay: initial * rate^(step / decay_steps); with one epoch per decay_steps it halves per epoch.
    schedule = {"type": "ExponentialDecay", "initial_learning_rate": 0.2, "decay_steps": STEPS, "decay_rate": 0.5}
    result = cli("lr", write_recipe(train={"epochs": 3, "learning_rate": schedule}), "--out", tmp_path / "k.png")
    assert result.exit_code == 0, result.stderr
    rows = lr_rows(result.stdout)
    for epoch, first, low, high in rows:
        assert first == pytest.approx(0.2 * 0.5 ** (epoch - 1), rel=1e-5)
        assert high == pytest.approx(first, rel=1e-5)
        assert low == pytest.approx(0.2 * 0.5 ** (epoch - 1 + (STEPS - 1) / STEPS), rel=1e-5)
    assert "ExponentialDecay" in result.stdout


def test_schedules_that_branch_on_the_step_are_evaluated_like_the_optimizer_does():
    import keras

    from dlrecipe.inspect.lr import _evaluate_schedule
    # CosineDecay with warm-up branches with ops.cond, which does not take a vector of steps.
    s = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=20, warmup_target=0.1, warmup_steps=5)
    got = _evaluate_schedule(s, 30)
    assert got == pytest.approx([float(s(i)) for i in range(30)], rel=1e-5, abs=1e-9)  # float32


def test_lr_of_a_constant_rate_notes_that_reduce_lr_on_plateau_may_lower_it(cli, write_recipe, tmp_path):
    train = {"epochs": 2, "learning_rate": None, "optimizer": {"type": "SGD", "learning_rate": 0.05},
             "callbacks": [{"type": "ReduceLROnPlateau", "factor": 0.2, "patience": 2}]}
    result = cli("lr", write_recipe(train=train), "--out", tmp_path / "c.png")
    assert result.exit_code == 0, result.stderr
    assert [r[1] for r in lr_rows(result.stdout)] == pytest.approx([0.05, 0.05])
    assert "train.callbacks[0]: ReduceLROnPlateau may lower the rate further" in result.stdout.replace("\n", " ")


@pytest.mark.parametrize("train,args,expected", [
    ({"learning_rate": {"schedule": "cosin", "initial": 0.1}}, [], ["train.learning_rate.schedule",
                                                                     "Did you mean 'cosine'?"]),
    ({"learning_rate": {"schedule": "step", "initial": 0.1, "factor": 0.5}}, [], ["train.learning_rate",
                                                                                   "needs every_epochs"]),
    ({"learning_rate": {"schedule": "cosine", "initial": 0.1}, "callbacks": [{"type": "ReduceLROnPlateau"}]}, [],
     ["train.callbacks[0]", "would both own the learning rate"]),
    ({}, ["--out", "rate.txt"], ["--out", "ending in .png"]),
])
def test_lr_of_a_bad_recipe_exits_2_with_the_path_and_writes_nothing(cli, write_recipe, tmp_path, monkeypatch,
                                                                      train, args, expected):
    recipe = write_recipe(train=train)
    monkeypatch.chdir(tmp_path)
    result = cli("lr", recipe, *args)
    assert result.exit_code == 2
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.txt"))


# --- validate: weights that start all equal -------------------------------------------------------------


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_validate_warns_for_constant_kernels_explicit_from_defaults_and_inside_blocks(cli, write_recipe):
    layers = [
        {"type": "conv_bn_act", "filters": 4},                                               # zeros from defaults
        {"type": "conv_bn_act", "filters": 4, "kernel_initializer": "he_normal"},            # fine
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "kernel_initializer": {"type": "Zeros"}},
        {"type": "Conv2D", "filters": 4, "kernel_size": 3},                                   # zeros from defaults
        {"type": "Flatten"},
        {"type": "repeat", "times": 2, "layers": [{"type": "Dense", "units": 4}]},            # one warning
        {"type": "Dense", "units": 3, "activation": "softmax",
         "kernel_initializer": {"type": "Constant", "value": 0.5}},
    ]
    result = cli("validate", write_recipe(model={"defaults": {"kernel_initializer": "zeros"}, "layers": layers}))
    assert result.exit_code == 0, result.stderr
    found = warnings_of(result.stderr)
    assert len(found) == 5, found
    by_path = {w.split(" ")[1]: w for w in found}
    assert set(by_path) == {"model.layers[0]", "model.layers[2].kernel_initializer", "model.layers[3]",
                            "model.layers[5].layers[0]", "model.layers[6].kernel_initializer"}
    assert "Zeros (from model.defaults)" in by_path["model.layers[0]"]
    assert "Constant gives no symmetry breaking" in by_path["model.layers[6].kernel_initializer"]
    assert ("every unit of model.layers[2] starts with the same weights and receives the same gradient; use "
            "he_normal or glorot_uniform") in by_path["model.layers[2].kernel_initializer"]
    assert "tiny.yaml:" in by_path["model.layers[2].kernel_initializer"]  # the YAML line
    assert "valid" in result.stdout


def test_validate_does_not_warn_for_he_normal(cli, write_recipe):
    layers = [{"type": "conv_bn_act", "filters": 4}, {"type": "Flatten"},
              {"type": "Dense", "units": 3, "activation": "softmax", "kernel_initializer": "glorot_uniform"}]
    result = cli("validate", write_recipe(model={"defaults": {"kernel_initializer": "he_normal"}, "layers": layers}))
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr


# --- dlrecipe inspect-init ------------------------------------------------------------------------------

PROBE_LAYERS = [
    {"type": "Flatten", "name": "flat"},
    # ReLU after a bias of -100 on inputs in [0, 1]: no unit ever fires.
    {"type": "Dense", "units": 4, "activation": "relu", "bias_initializer": {"type": "Constant", "value": -100.0},
     "name": "dead"},
    # All-ones kernel: both units are tanh(sum of the pixels), far in tanh's flat tail.
    {"type": "Dense", "units": 2, "activation": "tanh", "kernel_initializer": "ones", "inputs": ["flat"],
     "name": "ones"},
    {"type": "Concatenate", "inputs": ["dead", "ones"], "name": "both"},
    {"type": "Dense", "units": 3, "activation": "softmax", "name": "out"},
]


def _first_batch(recipe_path: Path, n: int) -> np.ndarray:
    """The first ``n`` training examples after the recipe's splits, rescaled as the model does."""
    from dlrecipe.recipe.loader import load_recipe
    recipe = load_recipe(recipe_path).recipe
    x = datamod.load(recipe.data, recipe.seed).x_train[:n]
    return x.astype(np.float32) * np.float32(1 / 255)


def test_inspect_init_reports_dead_relus_saturated_tanh_and_numpy_equal_statistics(cli, write_recipe, tmp_path):
    recipe = write_recipe(model={"layers": PROBE_LAYERS})
    out = tmp_path / "init.json"
    result = cli("inspect-init", recipe, "--batch", "20", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "model.layers[2].kernel_initializer" in result.stderr and "no symmetry breaking" in result.stderr
    report = json.loads(out.read_text())
    layers = {row["name"]: row for row in report["layers"]}
    assert report["batch"] == 20 and report["gradients"] is True
    assert report["loss"] == pytest.approx(math.log(3), rel=0.5)

    x = _first_batch(recipe, 20).reshape(20, -1).astype(np.float64)
    assert layers["flat"]["mean"] == pytest.approx(x.mean(), rel=1e-5)
    assert layers["flat"]["std"] == pytest.approx(x.std(), rel=1e-5)
    assert layers["flat"]["path"] == "model.layers[0]" and layers["flat"]["dead"] is None

    assert layers["dead"]["activation"] == "relu" and layers["dead"]["dead"] == 1.0
    assert layers["dead"]["mean"] == 0.0 and layers["dead"]["grad_norm"] == 0.0

    tanh = np.tanh(x.sum(axis=1))
    assert layers["ones"]["mean"] == pytest.approx(tanh.mean(), rel=1e-5)
    assert layers["ones"]["std"] == pytest.approx(tanh.std(), abs=1e-6)
    assert layers["ones"]["saturated"] == pytest.approx(np.mean(np.abs(tanh) > 0.99))
    assert layers["ones"]["saturated"] == 1.0

    assert layers["out"]["grad_norm"] > 0 and layers["both"]["grad_norm"] is None
    assert layers["preprocessing_rescale"]["path"] is None
    assert "100.0%" in result.stdout  # the table shows the dead ReLU units


def _last_tanh(report: dict) -> dict:
    return [row for row in report["layers"] if row["activation"] == "tanh"][-1]


def test_init_small_collapses_the_signal_and_init_glorot_keeps_it_spread(cli, tmp_path):
    reports = {}
    for name in ("init_small", "init_glorot"):
        out = tmp_path / f"{name}.json"
        result = cli("inspect-init", ROOT / "recipes" / f"{name}.yaml", "--out", out)
        assert result.exit_code == 0, result.stderr
        reports[name] = json.loads(out.read_text())
    small, glorot = reports["init_small"], reports["init_glorot"]
    assert len([r for r in small["layers"] if r["activation"] == "tanh"]) == 10
    # Measured: std 3e-7 (small) and 0.23 (glorot) after the tenth tanh layer.
    assert _last_tanh(small)["std"] < 1e-3
    assert _last_tanh(glorot)["std"] > 0.1
    # The gradient of the first layer vanishes with it: measured 4e-7 against 0.48.
    first = [r for r in small["layers"] if r["activation"] == "tanh"][0]["grad_norm"]
    assert first < 1e-4 < [r for r in glorot["layers"] if r["activation"] == "tanh"][0]["grad_norm"]


@pytest.mark.slow
def test_inspect_init_under_jax_gives_the_same_activations_and_gradients(write_recipe, tmp_path):
    pytest.importorskip("jax", reason="jax is installed by the test extras: pip install -e '.[test]'")
    recipe = write_recipe(model={"layers": PROBE_LAYERS})
    out = tmp_path / "jax.json"
    proc = subprocess.run([DLRECIPE, "inspect-init", str(recipe), "--batch", "20", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    layers = {row["name"]: row for row in report["layers"]}
    assert report["backend"] == "jax" and report["gradients"] is True
    x = _first_batch(recipe, 20).reshape(20, -1).astype(np.float64)
    assert layers["flat"]["std"] == pytest.approx(x.std(), rel=1e-5)
    assert layers["dead"]["dead"] == 1.0 and layers["dead"]["grad_norm"] == 0.0
    assert layers["out"]["grad_norm"] > 0


def test_lr_shows_the_rates_that_training_records_in_history_csv(cli, write_recipe, tmp_path):
    import csv
    schedule = {"schedule": "one_cycle", "initial": 0.001, "max": 0.02, "warmup_epochs": 1}
    recipe = write_recipe(train={"epochs": 3, "learning_rate": schedule})
    result = cli("lr", recipe, "--out", tmp_path / "lr.png")
    assert result.exit_code == 0, result.stderr
    assert cli("train", recipe, "--out", tmp_path / "runs").exit_code == 0
    with open(next((tmp_path / "runs").glob("*/*/history.csv"))) as f:
        recorded = [float(row["learning_rate"]) for row in csv.DictReader(f)]
    assert [r[1] for r in lr_rows(result.stdout)] == pytest.approx(recorded, rel=1e-5, abs=1e-9)


def test_lr_reports_a_missing_data_file_and_a_bad_schedule_together(cli, write_recipe, tmp_path):
    recipe = write_recipe(data={"path": str(tmp_path / "missing.npz")},
                          train={"learning_rate": {"schedule": "cosin", "initial": 0.1}})
    result = cli("lr", recipe)
    assert result.exit_code == 2
    assert "data.path" in result.stderr and "missing.npz" in result.stderr
    assert "train.learning_rate.schedule" in result.stderr and "2 problem(s)" in result.stderr
