"""A run stopped at any epoch and resumed gives the history.csv of the run that was never stopped."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import diverging_recipe, only_run, recipe_dict, tiny_arrays, write_yaml

from dlrecipe import runs

# dropout and two augmentation layers (RNG), a plateau that fires (min_delta 100: no epoch after the first
# improves, so patience 1 halves the rate after every epoch from the second on), a few epochs
EPOCHS = 5
DLRECIPE = str(Path(sys.executable).parent / "dlrecipe")
MODEL = [{"type": "Flatten"}, {"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dropout", "rate": 0.3},
         {"type": "Dense", "units": 3, "activation": "softmax"}]


@pytest.fixture
def exact_recipe(tmp_path):
    np.savez(tmp_path / "small.npz", **tiny_arrays(60, 10))
    return write_yaml(tmp_path / "exact.yaml", recipe_dict(
        tmp_path / "small.npz", runtime={"deterministic": True},
        data={"augment": [{"type": "RandomFlip", "mode": "horizontal"}, {"type": "gaussian_noise", "stddev": 0.05}]},
        model={"layers": MODEL},
        train={"epochs": EPOCHS, "batch_size": 16, "learning_rate": 0.05, "callbacks": [
            {"type": "ReduceLROnPlateau", "monitor": "loss", "patience": 1, "factor": 0.5, "min_delta": 100}]}))


def stop_in_epoch(monkeypatch, epoch: int) -> None:
    """Ctrl-C (as the SIGINT handler flags it) at the first batch of the 1-based ``epoch``: it is not committed."""
    from dlrecipe.train import unit
    begin, batch_end = unit._Watcher.on_epoch_begin, unit._Watcher.on_train_batch_end

    def on_epoch_begin(self, e, logs=None):
        self._epoch_now = e + 1
        begin(self, e, logs)

    def on_train_batch_end(self, batch, logs=None):
        if getattr(self, "_epoch_now", None) == epoch:
            self.interrupted = True
        batch_end(self, batch, logs)

    monkeypatch.setattr(unit._Watcher, "on_epoch_begin", on_epoch_begin)
    monkeypatch.setattr(unit._Watcher, "on_train_batch_end", on_train_batch_end)


def max_abs_diff(a: list[dict], b: list[dict]) -> float:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    assert all(set(x) == set(y) for x, y in zip(a, b))
    return max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in x)


def test_a_run_stopped_at_any_epoch_resumes_to_the_uninterrupted_history(cli, exact_recipe, tmp_path, monkeypatch):
    assert cli("train", exact_recipe, "--out", tmp_path / "whole").exit_code == 0
    whole = runs.read_history(only_run(tmp_path / "whole") / runs.HISTORY)
    rates = [r["learning_rate"] for r in whole]
    assert rates == pytest.approx([0.05, 0.05, 0.025, 0.0125, 0.00625])  # the plateau fired
    later = random.Random().randint(3, EPOCHS)  # a random epoch, and the first
    for stop in (1, later):
        out = tmp_path / f"stopped-in-{stop}"
        with monkeypatch.context() as m:
            stop_in_epoch(m, stop)
            stopped = cli("train", exact_recipe, "--out", out)
        assert stopped.exit_code == 130, stopped.stderr
        run = only_run(out)
        assert f"Interrupted after {stop - 1} finished epoch(s)" in stopped.stderr
        assert f"dlrecipe train --resume {run}" in stopped.stderr
        assert json.loads((run / runs.STATE).read_text())["epoch"] == stop - 1
        resumed = cli("train", "--resume", run)  # the advice works, also before the first epoch ended
        assert resumed.exit_code == 0, resumed.stderr
        diff = max_abs_diff(whole, runs.read_history(run / runs.HISTORY))
        assert diff == 0.0, (stop, diff)


def test_a_nan_in_the_first_epoch_leaves_a_run_that_resumes_at_a_lower_rate(cli, write_recipe, tmp_path):
    recipe = diverging_recipe(write_recipe, tmp_path, epochs=2)
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 1 and "NaN in epoch 1" in result.stderr, result.stderr
    assert "keeps its starting state" in " ".join(result.stderr.split())
    run = only_run(out)
    resumed = cli("train", "--resume", run, "--set", "train.learning_rate=1.0e-12")
    assert resumed.exit_code == 0, resumed.stderr
    assert [r["epoch"] for r in runs.read_history(run / runs.HISTORY)] == [1, 2]


@pytest.mark.parametrize("cut", ["empty", "header", "short"])
def test_resume_refuses_a_history_with_fewer_rows_than_the_checkpoint(cli, write_recipe, tmp_path, cut):
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 2}), "--out", out).exit_code == 0
    run = only_run(out)
    path = run / runs.HISTORY
    lines = path.read_text().splitlines(keepends=True)
    path.write_text({"empty": "", "header": lines[0], "short": "".join(lines[:2])}[cut])
    kept = path.read_text()
    result = cli("train", "--resume", run, "--set", "train.epochs=3")
    assert result.exit_code == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert str(path) in message.replace(" ", "") or "history.csv" in message, message
    if cut != "empty":  # an empty file has no header: the reader says so, naming the file
        assert "2 finished epoch(s)" in message and "put back the history.csv" in message, message
    assert path.read_text() == kept and json.loads((run / runs.STATE).read_text())["epoch"] == 2


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_history(exact_recipe, tmp_path):
    """A real process, killed (-9) once a random epoch is committed: whatever it was writing, the resumed run's
    history is the uninterrupted run's."""
    import yaml
    recipe = yaml.safe_load(exact_recipe.read_text())
    np.savez(tmp_path / "more.npz", **tiny_arrays(1500, 10))  # epochs long enough to kill in
    recipe["data"]["path"] = str(tmp_path / "more.npz")
    recipe["train"]["epochs"] = 6
    path = write_yaml(tmp_path / "slow.yaml", recipe)
    whole = subprocess.run([DLRECIPE, "train", str(path), "--out", str(tmp_path / "whole")], capture_output=True,
                           text=True, timeout=300, check=False)
    assert whole.returncode == 0, whole.stderr
    kill_after = random.Random().randint(1, 4)
    out = tmp_path / "killed"
    proc = subprocess.Popen([DLRECIPE, "train", str(path), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        states = list(out.glob("*/*/checkpoints/state.json"))
        try:
            if states and json.loads(states[0].read_text())["epoch"] >= kill_after:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    run = only_run(out)
    committed = json.loads((run / runs.STATE).read_text())["epoch"]
    assert kill_after <= committed < 6, (kill_after, committed)
    resumed = subprocess.run([DLRECIPE, "train", "--resume", str(run)], capture_output=True, text=True,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    diff = max_abs_diff(runs.read_history(only_run(tmp_path / "whole") / runs.HISTORY),
                        runs.read_history(run / runs.HISTORY))
    assert diff == 0.0, (committed, diff)
