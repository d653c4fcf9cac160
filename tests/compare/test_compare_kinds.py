"""``compare`` of an ensemble run, a cross-validation run and a tune folder (each one row, or a clear refusal)."""

from __future__ import annotations

import json

LAYERS = [{"type": "Conv2D", "filters": {"choice": [2, 4], "default": 4}, "kernel_size": 3, "activation": "relu"},
          {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]


def test_ensemble_and_cross_validation_runs_are_one_row_each(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    ens = cli("train", write_recipe("ens.yaml", name="ens", train={"epochs": 2, "ensemble": 2}), "--out", out,
              "--evaluate")
    assert ens.exit_code == 0, ens.stderr
    cv = cli("train", write_recipe("cv.yaml", name="cv", train={"epochs": 1, "cross_validation": 2}), "--out", out)
    assert cv.exit_code == 0, cv.stderr
    (ens_run,) = (out / "ens").iterdir()
    (cv_run,) = (out / "cv").iterdir()
    metrics = json.loads((ens_run / "metrics.json").read_text())

    compared = cli("compare", out / "ens", out / "cv", "--json", "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.stderr
    rows = {r["label"]: r for r in json.loads(compared.stdout)["rows"]}
    ens_row = rows[f"ens/{ens_run.name} (ensemble of 2)"]
    cv_row = rows[f"cv/{cv_run.name} (2 folds)"]
    assert ens_row["kind"] == "ensemble" and ens_row["members"] == [str(ens_run / "members" / i) for i in "12"]
    assert ens_row["metrics"]["test_accuracy"] == {"mean": metrics["accuracy"], "std": None, "n": 1}
    assert ens_row["metrics"]["val_loss"]["n"] == 2 and ens_row["metrics"]["val_loss"]["std"] is not None
    assert ens_row["metrics"]["epochs"]["mean"] == 2.0
    assert cv_row["kind"] == "cross_validation" and cv_row["metrics"]["val_accuracy"]["n"] == 2
    assert not any(k.startswith("test_") for k in cv_row["metrics"])
    assert rows.keys() == {ens_row["label"], cv_row["label"]}
    assert ens_row["differs"]["train.ensemble"] == 2 and cv_row["differs"]["train.cross_validation"] == 2
    assert (tmp_path / "cmp" / "curves_loss.png").is_file()
    page = tmp_path / "r.html"
    assert cli("report", ens_run, cv_run, "--out", page).exit_code == 0
    assert "ensemble of 2" in page.read_text()


def test_a_tune_folder_is_refused_until_retrain_best_then_read_as_the_retrained_run(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    recipe = write_recipe(model={"layers": LAYERS}, train={"epochs": 1, "metrics": ["accuracy"]},
                          tune={"tuner": "random", "objective": "val_accuracy", "max_trials": 1})
    assert cli("tune", recipe, "--out", out).exit_code == 0
    folder = out / "tiny" / "tune"
    refused = cli("compare", folder, "--out", tmp_path / "cmp")
    assert refused.exit_code == 2
    assert str(folder) in refused.stderr and "best.yaml" in refused.stderr and "--retrain-best" in refused.stderr
    assert not (tmp_path / "cmp").exists()

    retrained = cli("tune", recipe, "--out", out, "--retrain-best")
    assert retrained.exit_code == 0, retrained.stderr
    run = json.loads((folder / "retrained.json").read_text())["run"]
    compared = cli("compare", folder, "--json", "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.stderr
    (row,) = json.loads(compared.stdout)["rows"]
    assert row["runs"] == [run] and "retrained" in row["label"] and "tiny/tune" in row["label"]
