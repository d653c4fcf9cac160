"""End-to-end tests through the CLI: Typer's runner in-process, and real subprocesses where it matters."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, diverging_recipe, only_run, recipe_dict

DLRECIPE = str(Path(sys.executable).parent / "dlrecipe")


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/*/recipe.yaml")) if out.exists() else []


def history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# --- validate and show -------------------------------------------------------------------------------


def test_validate_builds_the_model_and_prints_its_parameter_count(cli, write_recipe):
    result = cli("validate", write_recipe())
    assert result.exit_code == 0, result.stderr
    # Conv2D 3x3, 1 -> 4 channels: 3*3*1*4 + 4 = 40; 8x8 -> 6x6x4 = 144 features; Dense 144 -> 3: 435.
    assert "475" in result.stdout
    assert "valid" in result.stdout and "(8, 8, 1) uint8" in result.stdout and "3 classes" in result.stdout


def test_validate_lists_structural_and_keras_errors_in_one_run(cli, tiny_npz, tmp_path):
    text = f"""\
name: broken
dataa: 1
data: {{source: npz, path: {tiny_npz}}}
model:
  layers:
    - {{type: Conv2D, filterz: 4, kernel_size: 3}}
    - {{type: Dnse, units: 3}}
train:
  epochs: -1
  optimizer: adamm
"""
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    result = cli("validate", path)
    assert result.exit_code == 2
    err = result.stderr
    assert "dataa (broken.yaml:2): Unknown key 'dataa'. Did you mean 'data'?" in err.replace(str(tmp_path) + "/", "")
    assert "train.epochs" in err and "epochs=-1" in err
    assert "model.layers[0].filterz" in err and "Did you mean 'filters'?" in err
    assert "model.layers[1].type" in err and "Did you mean 'Dense'?" in err
    assert "train.optimizer" in err and "Did you mean 'adam'?" in err
    assert "5 problem(s)" in err
    assert "Traceback" not in err


def test_validate_reports_a_shape_error_at_the_layer_that_cannot_fit(cli, write_recipe):
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 20}, {"type": "Flatten"},
              {"type": "Dense", "units": 3, "activation": "softmax"}]
    result = cli("validate", write_recipe(model={"layers": layers}))
    assert result.exit_code == 2
    assert "model.layers[0]" in result.stderr and "(None, 8, 8, 1)" in result.stderr


def test_validate_refuses_an_output_that_does_not_match_the_classes(cli, write_recipe):
    layers = [{"type": "Flatten"}, {"type": "Dense", "units": 5, "activation": "softmax"}]
    result = cli("validate", write_recipe(model={"layers": layers}))
    assert result.exit_code == 2
    assert "model.layers[1]" in result.stderr and "3 classes" in result.stderr and "units" in result.stderr


def test_show_prints_the_resolved_recipe_with_overrides_and_space_defaults(cli, write_recipe):
    path = write_recipe(model={"layers": [{"type": "Flatten"},
                                          {"type": "Dense", "units": 3, "activation": {"choice": ["softmax", "sigmoid"]}}]})
    result = cli("show", path, "--set", "train.epochs=7", "--set", "model.layers[1].units=3")
    assert result.exit_code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["epochs"] == 7
    assert shown["train"]["batch_size"] == 16 and shown["seed"] == 1
    assert shown["model"]["layers"][1]["activation"] == "softmax"  # first choice is the default
    assert shown["runtime"]["strategy"] == "auto"  # defaults filled in
    assert "model.layers[1].activation" in result.stdout  # the space is named


# --- bad input: exit 2, a precise message, no traceback, nothing written --------------------------------

BAD_CASES = {
    "misspelt section": ({"trian": {"epochs": 1}}, "trian", "Did you mean 'train'?"),
    "misspelt key": ({"train": {"epochs": 1, "batch_sise": 4}}, "train.batch_sise", "Did you mean 'batch_size'?"),
    "misspelt layer type": ({"model": {"layers": [{"type": "Flaten"}, {"type": "Dense", "units": 3}]}},
                            "model.layers[0].type", "Did you mean 'Flatten'?"),
    "misspelt layer argument": ({"model": {"layers": [{"type": "Flatten"}, {"type": "Dense", "unit": 3}]}},
                                "model.layers[1].unit", "Did you mean 'units'?"),
    "wrong type": ({"train": {"batch_size": "sixteen"}}, "train.batch_size", "valid integer"),
    "negative epochs": ({"train": {"epochs": -3}}, "train.epochs", "epochs=-3"),
    "export class names": ({"export": {"class_names": ["a", "b"]}}, "export.class_names", "3 classes"),
    "missing data file": ({"data": {"source": "npz", "path": "/nonexistent/x.npz"}}, "data.path", "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_recipe_values_fail_cleanly_before_anything_is_written(cli, tiny_npz, tmp_path, case):
    sections, path, expected = BAD_CASES[case]
    recipe = recipe_dict(tiny_npz)
    for key, value in sections.items():
        recipe[key] = {**recipe[key], **value} if key in ("train",) else value
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "runs"
    result = cli("train", file, "--out", out)
    assert result.exit_code == 2, result.stdout
    assert path in result.stderr and expected in result.stderr, result.stderr
    assert "bad.yaml:" in result.stderr  # the YAML line
    assert "Traceback" not in result.stderr and "nothing was written" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("text,expected", [
    ("", "The recipe is empty"),
    ("data: [1, 2\n", "Broken YAML"),
    ("data: !!python/object/apply:os.system ['echo pwned']\n", "safe loading only"),
    ("a: 1\na: 2\n", "Duplicate key 'a'"),
])
def test_unreadable_recipes_fail_cleanly(cli, tmp_path, capfd, text, expected):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    out = tmp_path / "runs"
    result = cli("train", file, "--out", out)
    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "pwned" not in capfd.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize("setting,expected", [
    ("train.epochs", "Expected --set PATH=VALUE"),
    ("model.layers[7].units=3", "model.layers[7] does not exist"),
    ("train.epochs=[1", "not valid YAML"),
    ("train..epochs=3", "not a dotted recipe path"),
    ("train.epochz=3", "Did you mean 'epochs'?"),
])
def test_bad_set_fails_cleanly(cli, write_recipe, tmp_path, setting, expected):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(), "--set", setting, "--out", out)
    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_unwritable_out_fails_before_training(cli, write_recipe, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli("train", write_recipe(), "--out", blocker / "runs")
    assert result.exit_code == 2
    assert "--out" in result.stderr and "not a folder" in result.stderr
    assert blocker.read_text() == "not a folder"


# --- train, resume, interrupt, NaN ----------------------------------------------------------------------


def test_train_writes_a_complete_run_folder(cli, write_recipe, tmp_path):
    recipe = write_recipe(train={"epochs": 3, "learning_rate": {"schedule": "step", "initial": 0.02, "factor": 0.5,
                                                                "every_epochs": 1}})
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    assert run.parent.name == "tiny"
    for name in ("recipe.yaml", "environment.json", "history.csv", "checkpoints/last.keras", "model.keras",
                 "preprocessing.json"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))
    rows = history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(rows[0])
    # the rate at each epoch's first step: 0.02 * 0.5^floor(e)
    assert [round(r["learning_rate"], 6) for r in rows] == [0.02, 0.01, 0.005]
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["train"]["loss"] == "sparse_categorical_crossentropy"  # the task's default, written down
    assert resolved["train"]["metrics"] == ["accuracy"]
    env = json.loads((run / "environment.json").read_text())
    assert env["seed"] == 1 and env["backend"] == "tensorflow" and "keras" in env["versions"]
    pre = json.loads((run / "preprocessing.json").read_text())
    assert pre["input_dtype"] == "uint8" and pre["class_names"] == ["left", "middle", "right"]
    assert json.loads((run / "checkpoints/state.json").read_text()) == {"epoch": 3, "callbacks": [], "seed_generators": []}


def test_the_resolved_recipe_reproduces_the_run(cli, write_recipe, tmp_path):
    recipe = write_recipe(runtime={"deterministic": True})
    assert cli("train", recipe, "--out", tmp_path / "a").exit_code == 0
    first = only_run(tmp_path / "a")
    result = cli("train", first / "recipe.yaml", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.stderr
    second = only_run(tmp_path / "b")
    for a, b in zip(history(first), history(second), strict=True):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert math.isclose(a[key], b[key], rel_tol=1e-5), (key, a, b)


def test_interrupted_training_keeps_finished_epochs_and_resumes(cli, write_recipe, tmp_path, monkeypatch):
    from dlrecipe.train import unit
    original = unit._Watcher.on_epoch_end

    def stop_after_second(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(unit._Watcher, "on_epoch_end", stop_after_second)
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 4}), "--out", out)
    assert result.exit_code == 130
    assert "Interrupted after 2 finished epoch(s)" in result.stderr and "--resume" in result.stderr
    run = only_run(out)
    assert not (run / "model.keras").exists()
    assert json.loads((run / "checkpoints/state.json").read_text()) == {"epoch": 2, "callbacks": [], "seed_generators": []}
    monkeypatch.setattr(unit._Watcher, "on_epoch_end", original)
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.stderr
    assert [r["epoch"] for r in history(run)] == [1, 2, 3, 4]
    assert (run / "model.keras").is_file()
    assert run_dirs(out) == [run]  # resumed in place


def test_a_finished_run_can_be_extended_with_more_epochs(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1}), "--out", out).exit_code == 0
    run = only_run(out)
    again = cli("train", "--resume", run)
    assert again.exit_code == 2 and "already finished its 1 epochs" in again.stderr
    result = cli("train", "--resume", run, "--set", "train.epochs=2")
    assert result.exit_code == 0, result.stderr
    assert [r["epoch"] for r in history(run)] == [1, 2]
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["epochs"] == 2


def test_resume_carries_plateau_and_early_stopping_counters_and_best_weights(cli, write_recipe, tmp_path):
    import keras
    # min_delta 100: no epoch after the first improves on it, so the counters grow by one per epoch
    never_better = {"monitor": "loss", "min_delta": 100}
    callbacks = [{"type": "ReduceLROnPlateau", "factor": 0.1, "patience": 2, **never_better},
                 {"type": "EarlyStopping", "patience": 3, "restore_best_weights": True, **never_better}]
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1, "callbacks": callbacks}), "--out", out).exit_code == 0
    run = only_run(out)
    epoch_1 = keras.saving.load_model(run / "checkpoints/last.keras").get_weights()
    assert cli("train", "--resume", run, "--set", "train.epochs=2").exit_code == 0
    result = cli("train", "--resume", run, "--set", "train.epochs=10")
    assert result.exit_code == 0, result.stderr
    # counters kept: the plateau (waits 1 after epoch 2) lowers the rate after epoch 3 and early stopping
    # (waits 1) stops after epoch 4. Started afresh at epoch 3, they would do so after epochs 5 and 6.
    rows = history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.01, 0.01, 0.01, 0.001])
    final = keras.saving.load_model(run / "model.keras").get_weights()
    for got, want in zip(final, epoch_1, strict=True):  # the best epoch's weights, saved before the resumes
        np.testing.assert_array_equal(got, want)


def test_a_run_stopped_by_early_stopping_says_so_and_resumes_only_with_a_larger_patience(cli, write_recipe,
                                                                                          tmp_path):
    # min_delta 100: no epoch after the first improves, so patience 2 stops the run after epoch 3
    callbacks = [{"type": "EarlyStopping", "monitor": "loss", "min_delta": 100, "patience": 2}]
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 10, "callbacks": callbacks}), "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "EarlyStopping stopped training after epoch 3 of 10." in result.stdout
    run = only_run(out)
    rows, stored = history(run), (run / "recipe.yaml").read_text()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    (run / "model.keras").unlink()  # as if stopped before saving it: a plain resume only saves it
    finished = cli("train", "--resume", run)
    assert finished.exit_code == 0, finished.stderr
    assert history(run) == rows and (run / "model.keras").is_file()
    refused = cli("train", "--resume", run)
    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert "train.callbacks[0]" in message and "stopped this run after epoch 3" in message, message
    assert "--set train.callbacks[0].patience=4" in message
    assert history(run) == rows and (run / "recipe.yaml").read_text() == stored  # nothing written
    resumed = cli("train", "--resume", run, "--set", "train.callbacks[0].patience=4")
    assert resumed.exit_code == 0, resumed.stderr
    # the kept counter (2 epochs waited) goes on: patience 4 stops it after epoch 5, not after epoch 7
    assert [r["epoch"] for r in history(run)] == [1, 2, 3, 4, 5]
    assert "EarlyStopping stopped training after epoch 5 of 10." in resumed.stdout


def test_resume_of_a_run_stopped_before_saving_its_model_saves_it_with_the_best_weights(cli, write_recipe, tmp_path):
    import keras
    # min_delta 100: epoch 1 stays the best, so restore_best_weights must give epoch 1's weights
    callbacks = [{"type": "EarlyStopping", "monitor": "loss", "min_delta": 100, "patience": 5,
                  "restore_best_weights": True}]
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1, "callbacks": callbacks}), "--out", out).exit_code == 0
    run = only_run(out)
    epoch_1 = keras.saving.load_model(run / "checkpoints/last.keras").get_weights()
    assert cli("train", "--resume", run, "--set", "train.epochs=2").exit_code == 0
    epoch_2 = keras.saving.load_model(run / "checkpoints/last.keras").get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(epoch_1, epoch_2))
    (run / "model.keras").unlink()  # as if stopped after committing epoch 2, before saving the model
    rows = history(run)
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.stderr
    assert history(run) == rows  # no epoch trained
    for got, want in zip(keras.saving.load_model(run / "model.keras").get_weights(), epoch_1, strict=True):
        np.testing.assert_array_equal(got, want)
    again = cli("train", "--resume", run)  # now finished: says so
    assert again.exit_code == 2 and "already finished its 2 epochs" in " ".join(again.stderr.split())


def test_a_model_saved_before_resuming_to_more_epochs_is_not_kept_as_the_longer_runs_model(cli, write_recipe,
                                                                                            tmp_path, monkeypatch):
    import keras

    from dlrecipe import runs
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1}), "--out", out).exit_code == 0
    run = only_run(out)
    epoch_1 = keras.saving.load_model(run / "model.keras").get_weights()
    save = runs.save_model

    def stop_before_the_model(model, path, *args, **kwargs):  # Ctrl-C after epoch 2 is committed
        if Path(path).name == "model.keras":
            raise KeyboardInterrupt
        return save(model, path, *args, **kwargs)

    monkeypatch.setattr(runs, "save_model", stop_before_the_model)
    assert cli("train", "--resume", run, "--set", "train.epochs=2").exit_code == 130
    assert [r["epoch"] for r in history(run)] == [1, 2]
    assert not (run / "model.keras").exists()  # epoch 1's model is not the 2-epoch run's
    monkeypatch.setattr(runs, "save_model", save)
    result = cli("train", "--resume", run)  # saves the model of epoch 2 from the checkpoint
    assert result.exit_code == 0, result.stderr
    assert [r["epoch"] for r in history(run)] == [1, 2]
    epoch_2 = keras.saving.load_model(run / "checkpoints/last.keras").get_weights()
    got = keras.saving.load_model(run / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(got, epoch_2, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(got, epoch_1, strict=True))


def test_resume_of_a_damaged_state_json_names_the_bad_entry_and_writes_nothing(cli, write_recipe, tmp_path):
    callbacks = [{"type": "ReduceLROnPlateau", "monitor": "loss", "patience": 2}]
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1, "callbacks": callbacks}), "--out", out).exit_code == 0
    run = only_run(out)
    state_path = run / "checkpoints/state.json"
    good = json.loads(state_path.read_text())
    assert good["callbacks"][0]["wait"] == 0 and good["epoch"] == 1
    damaged = [({**good, "epoch": "one"}, "'epoch'"), ({"callbacks": good["callbacks"]}, "'epoch'"),
               ({**good, "callbacks": {"wait": 1}}, "'callbacks' to be a list"),
               ({**good, "callbacks": [{**good["callbacks"][0], "wait": -1}]}, "callbacks[0].wait"),
               ({**good, "callbacks": [{**good["callbacks"][0], "best": "low"}]}, "callbacks[0].best"),
               ({**good, "callbacks": [{"type": "Lambda", "monitor": "loss"}]}, "callbacks[0]:"),
               ({**good, "callbacks": [{**good["callbacks"][0], "type": ["EarlyStopping"]}]}, "callbacks[0]:")]
    rows = history(run)
    for state, where in damaged:
        state_path.write_text(json.dumps(state))
        result = cli("train", "--resume", run, "--set", "train.epochs=2")
        assert result.exit_code == 2, (state, result.stderr)
        message = " ".join(result.stderr.split())
        assert "state.json" in message and where in message and "damaged" in message, message
        assert history(run) == rows and json.loads(state_path.read_text()) == state  # nothing written
    state_path.write_text(json.dumps({**good, "callbacks": None}))  # counters not kept: they start afresh
    resumed = cli("train", "--resume", run, "--set", "train.epochs=2")
    assert resumed.exit_code == 0, resumed.stderr
    assert [r["epoch"] for r in history(run)] == [1, 2]


def test_resume_goes_on_at_a_new_rate_given_with_set_and_refuses_what_the_checkpoint_fixes(cli, write_recipe,
                                                                                              tmp_path):
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1, "learning_rate": 0.01}), "--out", out).exit_code == 0
    run = only_run(out)
    stored, rows = (run / "recipe.yaml").read_text(), history(run)
    for override, path in [("model.layers[0].units=7", "model.layers"), ("data.normalize=none", "data.normalize"),
                           ("train.optimizer=sgd", "train.optimizer")]:
        refused = cli("train", "--resume", run, "--set", "train.epochs=2", "--set", override)
        assert refused.exit_code == 2, refused.stderr
        assert path in refused.stderr and "train the recipe anew" in refused.stderr
        assert (run / "recipe.yaml").read_text() == stored and history(run) == rows  # nothing written
    result = cli("train", "--resume", run, "--set", "train.epochs=2", "--set", "train.learning_rate=0.001")
    assert result.exit_code == 0, result.stderr
    assert [r["learning_rate"] for r in history(run)] == pytest.approx([0.01, 0.001])
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["learning_rate"] == 0.001
    again = cli("train", "--resume", run, "--set", "train.epochs=3")  # no --set: the checkpoint's rate goes on
    assert again.exit_code == 0, again.stderr
    assert history(run)[-1]["learning_rate"] == pytest.approx(0.001)


def test_resume_refuses_a_new_rate_for_a_scheduled_run(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    schedule = {"schedule": "cosine", "initial": 0.01}
    assert cli("train", write_recipe(train={"epochs": 1, "learning_rate": schedule}), "--out", out).exit_code == 0
    result = cli("train", "--resume", only_run(out), "--set", "train.epochs=2", "--set", "train.learning_rate=0.1")
    assert result.exit_code == 2
    assert "train.learning_rate" in result.stderr and "schedule is saved with the optimizer" in result.stderr


def test_nan_loss_stops_training_and_says_so(cli, write_recipe, tmp_path):
    recipe = diverging_recipe(write_recipe, tmp_path, epochs=3)
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 1
    assert "NaN" in result.stderr and "--resume" in result.stderr
    run = only_run(out)
    assert not (run / "model.keras").exists()
    assert all(math.isfinite(v) for row in history(run) for v in row.values()) if (run / "history.csv").exists() else True


@pytest.mark.slow
def test_ctrl_c_in_a_real_process_leaves_a_resumable_run(write_recipe, tmp_path):
    recipe = write_recipe(train={"epochs": 500, "batch_size": 8})
    out = tmp_path / "runs"
    proc = subprocess.Popen([DLRECIPE, "train", str(recipe), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*/*/checkpoints/state.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume with `dlrecipe train --resume" in err
    run = only_run(out)
    done = json.loads((run / "checkpoints/state.json").read_text())["epoch"]
    # state.json commits an epoch after its history row is written: the history holds every committed epoch
    # (and at most the one being committed when the signal came, which resume drops)
    epochs = [r["epoch"] for r in history(run)] if (run / "history.csv").exists() else []
    # (state.json is written when training starts: the signal may land in the first epoch, which resumes too)
    assert done >= 0 and epochs[:done] == list(range(1, done + 1)) and len(epochs) in (done, done + 1)
    result = subprocess.run([DLRECIPE, "train", "--resume", str(run), "--set", f"train.epochs={done + 1}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in history(run)] == list(range(1, done + 2))


# --- evaluate and export --------------------------------------------------------------------------------


@pytest.fixture
def trained_run(cli, write_recipe, tmp_path) -> Path:
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 3}), "--out", out)
    assert result.exit_code == 0, result.stderr
    return only_run(out)


def test_evaluate_writes_metrics_that_match_the_model(cli, trained_run, tiny_npz):
    result = cli("evaluate", trained_run.parent)  # runs/<name>: the newest run
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((trained_run / "metrics.json").read_text())
    from dlrecipe.runs import load_model
    model = load_model(trained_run / "model.keras")
    data = np.load(tiny_npz)
    predicted = model.predict(data["x_test"].astype("float32"), verbose=0).argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(float((predicted == data["y_test"]).mean()), abs=1e-6)
    assert f"Test accuracy: {metrics['accuracy']:.4f}" in result.stdout
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == 30 and np.trace(matrix) == (predicted == data["y_test"]).sum()
    assert set(metrics["per_class"]) == {"left", "middle", "right"}
    assert "loss" in metrics
    for png in ("plots/curves.png", "plots/confusion_matrix.png"):
        assert (trained_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_of_a_folder_that_is_not_a_run_fails_cleanly(cli, tmp_path):
    result = cli("evaluate", tmp_path)
    assert result.exit_code == 2 and "Not a run folder" in result.stderr


def test_export_serves_raw_uint8_in_plain_tensorflow_without_dlrecipe(cli, trained_run, tiny_npz, tmp_path):
    result = cli("export", trained_run)
    assert result.exit_code == 0, result.stderr
    saved = trained_run / "export" / "saved_model" / "1"  # TF Serving layout: the first version
    assert "verified" in result.stdout and saved.is_dir()
    from dlrecipe.runs import load_model
    expected = load_model(trained_run / "model.keras").predict(np.load(tiny_npz)["x_test"].astype("float32"), verbose=0)
    np.save(tmp_path / "x.npy", np.load(tiny_npz)["x_test"])
    script = f"""
import sys
sys.modules['dlrecipe'] = None  # prove the SavedModel needs no dlrecipe
import numpy as np, tensorflow as tf
serve = tf.saved_model.load({str(saved)!r}).signatures['serving_default']
out = serve(inputs=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
np.save({str(tmp_path / 'p.npy')!r}, out['probabilities'].numpy())
print(','.join(n.decode() for n in out['class_name'].numpy()[:3]))
"""
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    served = np.load(tmp_path / "p.npy")
    np.testing.assert_allclose(served, expected, atol=1e-5)
    names = ["left", "middle", "right"]
    assert proc.stdout.strip().split(",") == [names[i] for i in expected.argmax(axis=1)[:3]]


# --- tune -----------------------------------------------------------------------------------------------


def test_tune_searches_writes_best_yaml_and_resumes(cli, write_recipe, tmp_path):
    layers = [{"type": "Conv2D", "filters": {"choice": [2, 4], "default": 4}, "kernel_size": 3, "activation": "relu"},
              {"type": "Flatten"}, {"type": "Dropout", "rate": {"float": [0.0, 0.5], "step": 0.1}},
              {"type": "Dense", "units": 3, "activation": "softmax"}]
    recipe = write_recipe(model={"layers": layers}, train={"epochs": 1},
                          tune={"tuner": "random", "objective": "val_accuracy", "max_trials": 2})
    out = tmp_path / "runs"
    result = cli("tune", recipe, "--out", out)
    assert result.exit_code == 0, result.stderr
    folder = out / "tiny" / "tune"
    with open(folder / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"COMPLETED"}
    assert all(r["model.layers[0].filters"] in ("2", "4") for r in rows)
    assert all(float(r["epochs"]) == 1 and r["objective"] for r in rows)
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["model"]["layers"][0]["filters"] in (2, 4)
    assert best["model"]["layers"][2]["rate"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # readable, not 0.30000000000000004
    trial_files = sorted(folder.glob("keras_tuner/trial_*/trial.json"))
    stamps = [p.stat().st_mtime_ns for p in trial_files]
    again = cli("tune", recipe, "--out", out)
    assert again.exit_code == 0, again.stderr
    assert sorted(folder.glob("keras_tuner/trial_*/trial.json")) == trial_files  # no new trial
    assert [p.stat().st_mtime_ns for p in trial_files] == stamps  # none rerun
    trained = cli("train", folder / "best.yaml", "--out", tmp_path / "best-runs")
    assert trained.exit_code == 0, trained.stderr


def test_tune_without_search_spaces_or_with_an_unlogged_objective_fails_cleanly(cli, write_recipe, tmp_path):
    result = cli("tune", write_recipe(), "--out", tmp_path / "runs")
    assert result.exit_code == 2 and "no search space" in result.stderr
    layers = [{"type": "Flatten"}, {"type": "Dense", "units": {"choice": [3]}, "activation": "softmax"}]
    result = cli("tune", write_recipe(model={"layers": layers}, tune={"objective": "val_auc"}), "--out", tmp_path / "r")
    assert result.exit_code == 2 and "tune.objective" in result.stderr and "train.metrics" in result.stderr
    assert not (tmp_path / "r").exists()


# --- processes: start-up without TensorFlow, the JAX backend --------------------------------------------


def test_help_and_structural_validation_do_not_import_tensorflow(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataa: 1\n")
    probe = (
        "import sys\n"
        "from dlrecipe.cli.main import app\n"
        "from dlrecipe.recipe.loader import inspect_recipe\n"
        f"found = inspect_recipe({str(bad)!r})\n"
        "assert found.problems\n"
        "try:\n    app(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED' if {'tensorflow', 'keras'} & set(sys.modules) else 'CLEAN')\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--resume" in proc.stdout and proc.stdout.strip().endswith("CLEAN")


@pytest.mark.slow
def test_the_same_recipe_with_blocks_and_a_schedule_trains_under_the_jax_backend(write_recipe, tmp_path):
    pytest.importorskip("jax", reason="jax is installed by the test extras: pip install -e '.[test]'")
    out = tmp_path / "runs"
    layers = [{"type": "conv_bn_act", "filters": 4}, {"type": "residual", "filters": 8, "strides": 2},
              {"type": "GlobalAveragePooling2D"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    recipe = write_recipe(model={"layers": layers}, train={  # the loss takes one-hot labels: JAX gets NumPy ones
        "epochs": 2, "learning_rate": {"schedule": "one_cycle", "initial": 0.005, "max": 0.05},
        "loss": {"type": "CategoricalCrossentropy", "label_smoothing": 0.1}})
    proc = subprocess.run([DLRECIPE, "train", str(recipe), "--out", str(out), "--evaluate"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr
    run = only_run(out)
    assert json.loads((run / "environment.json").read_text())["backend"] == "jax"
    rows = history(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    # one_cycle over E=2 epochs: rises for 0.6 epochs, then cosine from max to 0; at epoch 1: frac = 0.4 / 1.4
    expected = 0.05 * (1 + math.cos(math.pi * 0.4 / 1.4)) / 2
    assert rows[0]["learning_rate"] == pytest.approx(0.005) and rows[1]["learning_rate"] == pytest.approx(expected)
    assert all(math.isfinite(r["loss"]) for r in rows)
    import zipfile
    config = zipfile.ZipFile(run / "model.keras").read("config.json").decode()
    assert '"ConvBNAct"' in config and '"Residual"' in config  # the blocks themselves were trained and saved
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.array(metrics["confusion_matrix"]["matrix"]).sum() == 30
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["loss"]["label_smoothing"] == 0.1


# --- every recipe shipped in recipes/ ------------------------------------------------------------------

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def _data_override(path: Path, fashion_idx: Path) -> list[str]:
    source = yaml.safe_load(path.read_text()).get("data", {}).get("source")
    return ["--set", f"data.path={fashion_idx}"] if source == "fashion_mnist" else []


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_shipped_recipe_validates_and_trains_a_short_epoch(cli, path, fashion_idx, tmp_path):
    override = _data_override(path, fashion_idx)
    result = cli("validate", path, *override)
    assert result.exit_code == 0, result.stderr
    result = cli("train", path, *override, "--set", "train.epochs=1", "--set", "data.subset=200",
                 "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert len(history(only_run(tmp_path / "runs"))) == 1
