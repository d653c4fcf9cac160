"""Training beyond one device: --workers N on JAX, mirrored over logical CPUs, precision, LR scaling."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import DLRECIPE, history, only_run
from conftest import lr_rows


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits to be reaped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# --- refused before anything starts -------------------------------------------------------------------


def test_workers_on_the_tensorflow_backend_are_refused_with_the_jax_pointer(cli, write_recipe, tmp_path):
    import keras
    assert keras.backend.backend() == "tensorflow"  # the suite's backend
    out = tmp_path / "runs"
    result = cli("train", write_recipe(), "--out", out, "--workers", "2")
    assert result.exit_code == 2
    assert "error: --workers" in result.stderr and "KERAS_BACKEND=jax dlrecipe train ... --workers 2" in result.stderr
    assert "MultiWorkerMirroredStrategy" in result.stderr
    assert not out.exists()


def test_workers_that_cannot_share_the_batch_evenly_are_refused_with_the_fix(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"batch_size": 17}), "--out", out, "--workers", "2")
    assert result.exit_code == 2
    assert "error: train.batch_size" in result.stderr
    assert "batch_size=17 with --workers 2" in result.stderr and "--set train.batch_size=18 (or 16)" in result.stderr
    assert not out.exists()


# --- several processes on loopback ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_recipe_the_workers_refuse_is_reported_once_and_leaves_nothing(write_recipe, tmp_path):
    pytest.importorskip("jax", reason="jax is installed by the test extras: pip install -e '.[test]'")
    out = tmp_path / "runs"
    recipe = write_recipe(runtime={"strategy": "one_device"})  # a tf.distribute strategy, found by the workers
    proc = subprocess.run([DLRECIPE, "train", str(recipe), "--out", str(out), "--workers", "2"], capture_output=True,
                          text=True, timeout=180, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: runtime.strategy ({recipe}:") and "KERAS_BACKEND=tensorflow" in proc.stderr
    assert proc.stderr.count("error: ") == 1 and "error" not in proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()  # not even the workers' logs


@pytest.mark.slow
def test_two_workers_train_one_run_a_killed_worker_is_reported_and_the_run_resumes(write_recipe, tmp_path):
    pytest.importorskip("jax", reason="jax is installed by the test extras: pip install -e '.[test]'")
    out = tmp_path / "runs"
    # Far more epochs than it will live: worker 1 is killed once the first epoch is committed.
    recipe = write_recipe(train={"epochs": 500, "learning_rate": 0.01}, runtime={"scale_learning_rate": "linear"})
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    launcher = subprocess.Popen([DLRECIPE, "train", str(recipe), "--out", str(out), "--workers", "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    pids = {}
    try:
        for line in launcher.stdout:
            found = re.match(r"Started worker (\d) of 2 \(pid (\d+)\)", line)
            if found:
                pids[int(found[1])] = int(found[2])
            if len(pids) == 2:
                break
        state = None
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and launcher.poll() is None:
            state = next(out.glob("tiny/*/checkpoints/state.json"), None)
            try:  # state.json is written at the start (epoch 0): wait for a finished epoch
                if state and json.loads(state.read_text())["epoch"] >= 1:
                    break
            except (OSError, ValueError):
                pass
            state = None
            time.sleep(0.2)
        assert state is not None, launcher.stderr.read() if launcher.poll() is not None else "no epoch in 150 s"
        os.kill(pids[1], signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1
    assert "Worker 1 died (killed by SIGKILL); the other workers were stopped" in stderr
    assert "| worker 1 of 2: 48 of 96 training examples (#1, #3, ...), 8 per step of the global batch 16" in stderr
    assert "--resume" in stderr and "--workers 2" in stderr
    assert not _alive(pids[0]) and not _alive(pids[1])
    run = only_run(out)
    done = json.loads((run / "checkpoints" / "state.json").read_text())["epoch"]
    assert done >= 1 and not (run / "model.keras").exists()
    assert "Epoch 1/500" in stdout  # worker 0's progress, echoed by the launcher

    total = done + 2
    resumed = subprocess.run([DLRECIPE, "train", "--resume", str(run), "--workers", "2",
                              "--set", f"train.epochs={total}"], capture_output=True, text=True, timeout=240, env=env)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert f"Run folder: {run}" in resumed.stdout and only_run(out) == run
    rows = history(run)
    assert [r["epoch"] for r in rows] == list(range(1, total + 1))
    assert all(r["learning_rate"] == pytest.approx(0.02) for r in rows)  # 0.01 x 2 replicas (linear scaling)
    assert rows[-1]["val_accuracy"] >= 0.9 and rows[-1]["loss"] < rows[0]["loss"]  # the pair learned the task
    environment = json.loads((run / "environment.json").read_text())
    assert environment["workers"] == 2 and environment["replicas"] == 2 and environment["backend"] == "jax"
    assert "2 processes" in environment["strategy"]
    assert environment["learning_rate_scale"] == {"rule": "linear", "replicas": 2, "factor": 2.0}
    assert environment["command"][1:] == ["train", str(recipe), "--out", str(out), "--workers", "2"]
    assert (run / "model.keras").is_file()
    for i in (0, 1):  # both workers took part in both runs, each on its own half
        log = (run / "workers" / f"{i}.log").read_text()
        assert log.count(f"worker {i} of 2: 48 of 96 training examples (#{i}, #{i + 2}, ...)") == 2
        assert f"Epoch {total}/{total}" in log  # and trained to the end
    # Only worker 0 wrote: the run holds no file from the other worker.
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "environment.json", "history.csv", "model.keras",
                                                     "preprocessing.json", "recipe.yaml", "workers"]


# --- one process, several replicas; precision and compilation -----------------------------------------


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_trains_two_replicas_in_mixed_float16(write_recipe, tmp_path):
    out = tmp_path / "runs"
    recipe = write_recipe(runtime={"strategy": "mirrored", "mixed_precision": "mixed_float16",
                                   "scale_learning_rate": "linear"})
    proc = subprocess.run([DLRECIPE, "train", str(recipe), "--out", str(out)], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "DLRECIPE_LOGICAL_CPUS": "2"})
    assert proc.returncode == 0, proc.stderr
    run = only_run(out)
    environment = json.loads((run / "environment.json").read_text())
    assert environment["strategy"] == "MirroredStrategy over 2 device(s)" and environment["replicas"] == 2
    assert [d for d in environment["devices"] if "CPU" in d] == ["/device:CPU:0", "/device:CPU:1"]
    assert environment["mixed_precision"] == "mixed_float16" and environment["dtype_policy"] == "mixed_float16"
    rows = history(run)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["loss"] < rows[0]["loss"]
    assert all(r["learning_rate"] == pytest.approx(0.02) for r in rows)  # 0.01 x 2 replicas


def test_mirrored_trains_a_validation_split_smaller_than_a_batch_that_two_replicas_cannot_halve(write_recipe,
                                                                                                tmp_path):
    # 120 examples, 21 for validation: one batch of 21 split 11/10 made TensorFlow fail (AddN of unequal shapes)
    out = tmp_path / "runs"
    recipe = write_recipe(runtime={"strategy": "mirrored"}, train={"epochs": 1, "batch_size": 32},
                          data={"source": "npz", "path": str(tmp_path / "tiny.npz"), "validation_split": 0.175,
                                "normalize": "rescale"})
    proc = subprocess.run([DLRECIPE, "train", str(recipe), "--out", str(out)], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "DLRECIPE_LOGICAL_CPUS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "val_accuracy" in history(only_run(out))[0]


def test_mirrored_refuses_a_batch_size_the_replicas_cannot_share(write_recipe, tmp_path):
    out = tmp_path / "runs"
    recipe = write_recipe(runtime={"strategy": "mirrored"}, train={"batch_size": 15})
    proc = subprocess.run([DLRECIPE, "train", str(recipe), "--out", str(out)], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "DLRECIPE_LOGICAL_CPUS": "2"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: train.batch_size" in proc.stderr and "--set train.batch_size=16" in proc.stderr
    assert not out.exists()


def test_jit_compile_is_passed_to_compile_and_recorded(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(runtime={"jit_compile": True}), "--out", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    environment = json.loads((run / "environment.json").read_text())
    assert environment["jit_compile"] is True and environment["dtype_policy"] == "float32"
    assert environment["learning_rate_scale"] is None and environment["workers"] == 1
    assert sys.modules["keras"].saving.load_model(run / "model.keras").jit_compile is True


def test_jit_compile_with_mirrored_over_logical_cpus_is_refused(cli, write_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("DLRECIPE_LOGICAL_CPUS", "2")
    out = tmp_path / "runs"
    result = cli("train", write_recipe(runtime={"strategy": "mirrored", "jit_compile": True}), "--out", out)
    assert result.exit_code == 2
    assert "error: runtime.jit_compile" in result.stderr and "jit_compile: auto" in result.stderr
    assert not out.exists()


# --- linear learning-rate scaling -----------------------------------------------------------------------


def test_lr_shows_every_rate_of_a_schedule_scaled_by_the_replicas(cli, write_recipe, tmp_path):
    schedule = {"schedule": "step", "initial": 0.1, "factor": 0.5, "every_epochs": 1}
    recipe = write_recipe(train={"epochs": 3, "learning_rate": schedule}, runtime={"scale_learning_rate": "linear"})
    base = lr_rows(cli("lr", recipe, "--out", tmp_path / "a.png").stdout)
    scaled = cli("lr", recipe, "--replicas", "4", "--out", tmp_path / "b.png")
    assert scaled.exit_code == 0, scaled.stderr
    assert [r[1] for r in base] == pytest.approx([0.1, 0.05, 0.025])
    assert [r[1] for r in lr_rows(scaled.stdout)] == pytest.approx([0.4, 0.2, 0.1])
    assert "times 4 replica(s)" in scaled.stdout
    off = cli("lr", write_recipe(train={"epochs": 1, "learning_rate": 0.1}), "--replicas", "4",
              "--out", tmp_path / "c.png")
    assert [r[1] for r in lr_rows(off.stdout)] == pytest.approx([0.1])  # scaling is opt-in


def test_linear_scaling_multiplies_numbers_schedule_rates_and_the_optimizer_default():
    from dlrecipe.build.scaling import scaled
    from dlrecipe.recipe.schema import Recipe

    def recipe(**train):
        return Recipe.model_validate({"name": "r", "data": {"source": "npz", "path": "x.npz"},
                                      "model": {"layers": [{"type": "Dense", "units": 1}]},
                                      "train": train, "runtime": {"scale_learning_rate": "linear"}})

    assert scaled(recipe(learning_rate=0.1), 3).train.learning_rate == pytest.approx(0.3)
    one_cycle = scaled(recipe(learning_rate={"schedule": "one_cycle", "initial": 0.01, "max": 0.1, "final": 0.001}),
                       2).train.learning_rate
    assert (one_cycle.initial, one_cycle.max, one_cycle.final) == pytest.approx((0.02, 0.2, 0.002))
    piecewise = scaled(recipe(learning_rate={"schedule": "piecewise", "boundaries_epochs": [1],
                                             "values": [0.1, 0.01]}), 2).train.learning_rate
    assert piecewise.values == pytest.approx([0.2, 0.02])
    keras_schedule = scaled(recipe(learning_rate={"type": "CosineDecay", "initial_learning_rate": 0.1,
                                                  "decay_steps": 10, "alpha": 0.1}), 4).train.learning_rate
    assert keras_schedule["initial_learning_rate"] == pytest.approx(0.4) and keras_schedule["alpha"] == 0.1
    assert scaled(recipe(optimizer="sgd"), 2).train.learning_rate == pytest.approx(0.02)  # SGD's default 0.01
    inside = scaled(recipe(optimizer={"type": "SGD", "learning_rate": 0.05}), 2).train
    assert inside.optimizer["learning_rate"] == pytest.approx(0.1) and inside.learning_rate is None
    assert scaled(recipe(learning_rate=0.1), 1).train.learning_rate == 0.1
