"""``dlrecipe tune`` beyond one search in one go: budgets, progress, the plot, extending, retraining,
kill -9 and resume, and worker processes (real subprocesses where processes are the point)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

DLRECIPE = str(Path(sys.executable).parent / "dlrecipe")
LAYERS = [{"type": "Conv2D", "filters": {"choice": [2, 4], "default": 4}, "kernel_size": 3, "activation": "relu"},
          {"type": "Flatten"}, {"type": "Dropout", "rate": {"float": [0.0, 0.5], "step": 0.1}},
          {"type": "Dense", "units": 3, "activation": "softmax"}]


def tune_recipe(write_recipe, max_trials: int = 2, epochs: int = 1, **tune):
    return write_recipe(model={"layers": LAYERS}, train={"epochs": epochs, "metrics": ["accuracy"]},
                        tune={"tuner": "random", "objective": "val_accuracy", "max_trials": max_trials, **tune})


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv") as f:
        return list(csv.DictReader(f))


def trial_files(folder: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(folder.glob("keras_tuner/trial_*/trial.json"))}


def progress_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Trial ")]


@pytest.mark.slow
def test_max_time_progress_plot_extend_and_retrain_best(cli, write_recipe, tmp_path):
    from PIL import Image
    recipe, out = tune_recipe(write_recipe, max_trials=2), tmp_path / "runs"
    folder = out / "tiny" / "tune"
    # The budget starts with the first trial: it runs, and no other starts after it.
    result = cli("tune", recipe, "--out", out, "--max-time", "0.01s")
    assert result.exit_code == 0, result.stderr
    assert "the --max-time budget ended the search" in result.stdout
    assert [r["trial"] for r in rows(folder)] == ["0"] and rows(folder)[0]["status"] == "COMPLETED"
    lines = progress_lines(result.stdout)
    assert len(lines) == 1 and lines[0].startswith("Trial 0 (1/2 ended) model.layers[0].filters=")
    assert "val_accuracy" in lines[0] and "1 epoch(s)" in lines[0] and "elapsed" in lines[0]
    first = trial_files(folder)["trial_0"]
    stamp = first.stat().st_mtime_ns
    # Without a budget, the same command resumes up to max_trials; a larger --max-trials extends a finished search.
    result = cli("tune", recipe, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert [line.split(" model")[0] for line in progress_lines(result.stdout)] == ["Trial 1 (2/2 ended)"]
    result = cli("tune", recipe, "--out", out, "--max-trials", "3", "--retrain-best")
    assert result.exit_code == 0, result.stderr
    assert [line.split(" model")[0] for line in progress_lines(result.stdout)] == ["Trial 2 (3/3 ended)"]
    table = rows(folder)
    assert [r["trial"] for r in table] == ["0", "1", "2"] and {r["status"] for r in table} == {"COMPLETED"}
    assert first.stat().st_mtime_ns == stamp  # the first trial was not run again
    # The plot: a valid PNG whose plotted series (stored in it, read back from the plot's lines) are the table's.
    with Image.open(folder / "objective.png") as image:
        image.verify()
    with Image.open(folder / "objective.png") as image:
        assert image.size[0] > 100 and image.size[1] > 100
        plotted = json.loads(image.text["dlrecipe"])
    objectives = [float(r["objective"]) for r in table]
    assert plotted["trial"] == ["0", "1", "2"] and plotted["objective"] == pytest.approx(objectives)
    assert plotted["best_so_far"] == pytest.approx([max(objectives[:i + 1]) for i in range(3)])
    # --retrain-best: a normal run of best.yaml on training + validation data.
    best = yaml.safe_load((folder / "best.yaml").read_text())
    run = Path(result.stdout.split("Run folder: ")[1].split()[0])
    assert run.parent == out / "tiny" and (run / "model.keras").is_file()
    trained = yaml.safe_load((run / "recipe.yaml").read_text())
    assert trained["data"]["validation_split"] == 0
    assert trained["model"]["layers"][0]["filters"] == best["model"]["layers"][0]["filters"]
    assert trained["model"]["layers"][2]["rate"] == best["model"]["layers"][2]["rate"]
    assert trained["train"]["epochs"] == 1


def test_bad_max_time_and_workers_inside_a_distributed_role_fail_cleanly(cli, write_recipe, tmp_path, monkeypatch):
    recipe, out = tune_recipe(write_recipe), tmp_path / "runs"
    result = cli("tune", recipe, "--out", out, "--max-time", "10 minutes")
    assert result.exit_code == 2 and "--max-time" in result.stderr and "'10 minutes'" in result.stderr
    assert "1h30m" in result.stderr
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "1")
    result = cli("tune", recipe, "--out", out, "--workers", "2")
    assert result.exit_code == 2 and "--workers" in result.stderr and "KERASTUNER_TUNER_ID" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_every_trial_keeps_the_strategy_precision_and_scaled_rate_of_runtime(write_recipe, tmp_path):
    # KerasTuner clears the Keras session before each trial (which resets the dtype policy and would unbalance
    # a strategy scope entered around the search): each trial must still train as `runtime:` says.
    layers = [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    recipe = write_recipe(model={"layers": layers}, train={"epochs": 1, "learning_rate": {"choice": [0.01, 0.03]}},
                          runtime={"strategy": "mirrored", "scale_learning_rate": "linear",
                                   "mixed_precision": "mixed_float16"},
                          tune={"tuner": "grid", "objective": "val_loss", "max_trials": 2})
    out = tmp_path / "runs"
    proc = subprocess.run([DLRECIPE, "tune", str(recipe), "--out", str(out)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "DLRECIPE_LOGICAL_CPUS": "2"})
    assert proc.returncode == 0, proc.stderr
    folder = out / "tiny" / "tune"
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("keras_tuner/trial_*/dlrecipe.json"))]
    assert len(records) == 2
    for record, trial in zip(records, sorted(folder.glob("keras_tuner/trial_*/trial.json"))):
        base = json.loads(trial.read_text())["hyperparameters"]["values"]["train.learning_rate"]
        assert record["learning_rate_scale"] == {"rule": "linear", "replicas": 2, "factor": 2.0}
        assert record["learning_rate"] == pytest.approx(2 * base)
        assert record["dtype_policy"] == "mixed_float16"
    assert sorted(r["learning_rate"] for r in records) == pytest.approx([0.02, 0.06])
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["train"]["learning_rate"] in (0.01, 0.03)  # the base rate: training best.yaml scales it again


def _wait_for(predicate, timeout: float, proc: subprocess.Popen):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the process ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"timed out: {proc.communicate()}")


def _running_record(folder: Path, trial: str | None = None):
    """(trial id, record) of a trial that has begun and not ended, from the records trials write as they begin."""
    for record in folder.glob("keras_tuner/trial_*/dlrecipe.json"):
        try:
            data = json.loads(record.read_text())
            status = json.loads((record.parent / "trial.json").read_text())["status"]
        except (OSError, ValueError, KeyError):
            continue
        if status == "RUNNING" and (trial is None or data["trial"] == trial):
            return data["trial"], data
    return None


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_search_killed_with_sigkill_mid_trial_resumes_without_repeating_a_trial(sig, write_recipe, tmp_path):
    recipe, out = tune_recipe(write_recipe, max_trials=2, epochs=3), tmp_path / "runs"
    folder = out / "tiny" / "tune"
    proc = subprocess.Popen([DLRECIPE, "tune", str(recipe), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _running_record(folder, "1"), 120, proc)  # the second trial has begun
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=60)
    if sig == signal.SIGINT:  # stopped at the next batch end, the trial left unfinished
        assert proc.returncode == 130 and "Interrupted. Finished trials are kept" in stdout
        second = trial_files(folder).get("trial_1")
        assert second is None or json.loads(second.read_text())["status"] != "COMPLETED"
    first = trial_files(folder)["trial_0"]
    assert json.loads(first.read_text())["status"] == "COMPLETED"
    stamp = first.stat().st_mtime_ns
    again = subprocess.run([DLRECIPE, "tune", str(recipe), "--out", str(out)], capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr
    assert "Resuming" in again.stdout
    assert [line.split(" model")[0] for line in progress_lines(again.stdout)] == ["Trial 1 (2/2 ended)"]
    table = rows(folder)
    assert [r["trial"] for r in table] == ["0", "1"] and {r["status"] for r in table} == {"COMPLETED"}
    assert sorted(trial_files(folder)) == ["trial_0", "trial_1"] and first.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_workers_share_the_trials_and_a_killed_worker_is_reported_and_its_trial_rerun(write_recipe, tmp_path):
    recipe, out = tune_recipe(write_recipe, max_trials=2), tmp_path / "runs"
    folder = out / "tiny" / "tune"
    proc = subprocess.Popen([DLRECIPE, "tune", str(recipe), "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trial, record = _wait_for(lambda: _running_record(folder), 150, proc)
    os.kill(record["pid"], signal.SIGKILL)  # a worker, mid-trial
    try:
        stdout, stderr = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the search did not end: {proc.communicate()}")
    assert proc.returncode == 0, stderr
    assert f"Worker {record['worker']} died (killed by signal 9 (SIGKILL)) during trial {trial}" in stdout
    assert f"Restarted {record['worker']}: trial {trial} runs again." in stdout
    assert f"{record['worker']}.log" in stdout  # its log's last lines are shown
    table = rows(folder)
    assert [r["trial"] for r in table] == ["0", "1"] and {r["status"] for r in table} == {"COMPLETED"}
    # The killed worker's trial was run again by it (restarted under its id); the other worker ran the other one.
    assert {r["worker"] for r in table} == {"tuner0", "tuner1"}
    assert len(progress_lines(stdout)) == 2  # one line per trial, the rerun one reported once
    processes = json.loads((folder / "processes.json").read_text())
    assert processes[record["worker"]] != record["pid"]  # restarted under the same id
    for name in ("chief", "tuner0", "tuner1"):
        assert (folder / "logs" / f"{name}.log").is_file()
    for pid in (processes["chief"], processes["tuner0"], processes["tuner1"]):  # nothing left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # The finished search, resumed (here in one process): nothing runs again.
    stamps = {name: p.stat().st_mtime_ns for name, p in trial_files(folder).items()}
    again = subprocess.run([DLRECIPE, "tune", str(recipe), "--out", str(out)], capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr
    assert progress_lines(again.stdout) == [] and "2 trial(s) completed of 2" in again.stdout
    assert {name: p.stat().st_mtime_ns for name, p in trial_files(folder).items()} == stamps
