"""``train --mlflow`` and ``tune --mlflow``, read back from a real local MLflow store with ``MlflowClient``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import recipe_dict, write_yaml

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from dlrecipe.train.tracking import MAX_PARAM, flatten  # noqa: E402


def store(out: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{(out / 'mlflow.db').resolve()}")


def runs_of(client: MlflowClient):
    exp = client.get_experiment_by_name("dlrecipe")
    return exp, client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for a in client.list_artifacts(run_id, path):
        found += [a.path, *(artifacts(client, run_id, a.path) if a.is_dir else [])]
    return found


def test_flatten_gives_dotted_keys_and_cuts_long_values():
    flat = flatten({"train": {"epochs": 2}, "model": {"layers": [{"type": "Dense"}]}, "x": "a" * 9000})
    assert flat["train.epochs"] == "2" and flat["model.layers.0.type"] == "Dense"
    assert len(flat["x"]) == MAX_PARAM


def test_train_mlflow_logs_params_epochs_and_the_run_folder(cli, tiny_npz, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "runs"
    recipe = write_yaml(tmp_path / "tiny.yaml", recipe_dict(tiny_npz, train={"epochs": 3}))
    result = cli("train", recipe, "--out", out, "--mlflow", "--evaluate")
    assert result.exit_code == 0, result.stderr
    client = store(out)
    exp, found = runs_of(client)
    assert exp.artifact_location == (out / "mlartifacts").resolve().as_uri()  # beside the store, not ./mlruns
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.epochs"] == "3" and params["model.layers.0.type"] == "Conv2D"
    assert params["data.source"] == "npz" and len(params) > 30
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert "test_accuracy" in run.data.metrics
    logged = artifacts(client, run.info.run_id)
    for name in ("model.keras", "recipe.yaml", "history.csv", "metrics.json", "plots/curves.png"):
        assert name in logged, logged


def test_bad_input_with_mlflow_writes_no_store(cli, tiny_npz, tmp_path):
    out = tmp_path / "runs"
    recipe = write_yaml(tmp_path / "bad.yaml", recipe_dict(tiny_npz, data={"path": str(tmp_path / "none.npz")}))
    result = cli("train", recipe, "--out", out, "--mlflow")
    assert result.exit_code == 2
    assert not (out / "mlflow.db").exists()


@pytest.mark.slow
def test_tune_mlflow_nests_a_run_per_trial(cli, tiny_npz, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "runs"
    data = recipe_dict(tiny_npz, tune={"max_trials": 2}, train={"epochs": 1})
    data["model"]["layers"][0]["filters"] = {"choice": [2, 4]}
    result = cli("tune", write_yaml(tmp_path / "t.yaml", data), "--out", out, "--mlflow")
    assert result.exit_code == 0, result.stderr
    client = store(out)
    _, found = runs_of(client)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(trials) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert {r.data.params["model.layers.0.filters"] for r in trials} <= {"2", "4"}
    assert all(len(client.get_metric_history(r.info.run_id, "loss")) == 1 for r in trials)
    assert {"trials.csv", "best.yaml"} <= set(artifacts(client, parents[0].info.run_id))


def test_without_mlflow_the_flag_exits_2_naming_the_install(tiny_npz, tmp_path):
    recipe = write_yaml(tmp_path / "tiny.yaml", recipe_dict(tiny_npz))
    code = ("import sys; sys.modules['mlflow'] = None; sys.modules['mlflow.keras'] = None\n"
            "from dlrecipe.cli.main import main\n"
            f"sys.argv = ['dlrecipe', 'train', {str(recipe)!r}, '--out', {str(tmp_path / 'runs')!r}, '--mlflow']\n"
            "main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[mlflow]'" in done.stderr
    assert not (tmp_path / "runs").exists()
