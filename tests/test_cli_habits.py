"""CLI habits: --version, --quiet, one plain line per epoch in a pipe, tables readable at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import only_run, recipe_dict, tiny_arrays, write_yaml
import numpy as np

DLRECIPE = str(Path(sys.executable).parent / "dlrecipe")


def run(*args, columns: int | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([DLRECIPE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("habits")
    np.savez(folder / "tiny.npz", **tiny_arrays())
    return folder


def test_version_prints_the_installed_version_without_tensorflow():
    from importlib.metadata import version
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlrecipe", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"dlrecipe {version('dlrecipe')}"
    assert "tensorflow" not in done.stderr  # -X importtime lists every module imported


def test_a_piped_train_writes_one_plain_line_per_epoch(tiny, tmp_path):
    recipe = write_yaml(tmp_path / "tiny.yaml", recipe_dict(tiny / "tiny.npz", train={"epochs": 3}))
    done = run("train", recipe, "--out", tmp_path / "runs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    assert max(len(line) for line in lines) <= 300
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("val_loss" in line for line in epochs)


def test_quiet_prints_only_the_final_line(cli, tiny, tmp_path):
    recipe = write_yaml(tmp_path / "tiny.yaml", recipe_dict(tiny / "tiny.npz", train={"epochs": 1}))
    out = tmp_path / "runs"
    done = cli("train", recipe, "--out", out, "--quiet")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.splitlines() == [f"Run folder: {only_run(out)}"]
    evaluated = cli("evaluate", only_run(out), "-q")
    assert evaluated.exit_code == 0 and evaluated.stdout.splitlines() == [evaluated.stdout.strip()]
    assert evaluated.stdout.startswith("Test accuracy: ")
    bad = cli("train", tmp_path / "missing.yaml", "--quiet")
    assert bad.exit_code == 2 and bad.stdout == "" and "missing.yaml" in bad.stderr


@pytest.mark.slow
def test_tune_and_evaluate_tables_fit_80_columns(tiny, tmp_path):
    data = recipe_dict(tiny / "tiny.npz", name="a_rather_long_recipe_name", tune={"max_trials": 2},
                       train={"epochs": 1, "learning_rate": {"float": [1.0e-4, 1.0e-1], "sampling": "log"},
                              "batch_size": {"choice": [16, 32]}})
    data["model"]["layers"][0]["filters"] = {"choice": [2, 4]}
    data["model"]["layers"][0]["kernel_size"] = {"choice": [2, 3]}
    data["model"]["layers"][2]["use_bias"] = {"boolean": True}
    out = tmp_path / "runs"
    tuned = run("tune", write_yaml(tmp_path / "t.yaml", data), "--out", out, "--retrain-best", columns=80)
    assert tuned.returncode == 0, tuned.stderr
    table = tuned.stdout.split("Trials", 1)[1].split("trial(s) completed", 1)[0]
    assert "…" not in table
    assert all(len(line) <= 80 for line in table.splitlines())
    csv_rows = (out / "a_rather_long_recipe_name" / "tune" / "trials.csv").read_text().splitlines()[1:]
    for row in csv_rows:  # every value of trials.csv shows whole in the table
        for value in row.split(",")[:7]:
            if value and value.replace(".", "").isdigit():
                assert value in table or f"{float(value):.4g}" in table, (value, table)
    evaluated = run("evaluate", only_run(out), columns=80)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "…" not in evaluated.stdout
    assert all(len(line) <= 80 for line in evaluated.stdout.splitlines() if "│" in line or "┃" in line)
