"""Ensembles (train.ensemble) and k-fold cross-validation (train.cross_validation), end to end through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import history, only_run


def _predict(path: Path, x: np.ndarray) -> np.ndarray:
    from dlrecipe.runs import load_model
    return np.asarray(load_model(path).predict(x.astype("float32"), verbose=0))


def test_ensemble_members_have_their_seeds_and_evaluate_and_export_serve_the_average(cli, write_recipe, tiny_npz,
                                                                                     tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 1, "ensemble": 2}), "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "Ensemble of 2 members" in result.stdout
    run = only_run(out)
    members = [run / "members" / str(i) for i in (1, 2)]
    assert [json.loads((m / "member.json").read_text())["seed"] for m in members] == [1, 2]  # seed, seed + 1
    for m in members:
        assert len(history(m)) == 1 and (m / "checkpoints/state.json").is_file()

    from dlrecipe.runs import load_model
    first, second = (load_model(m / "model.keras") for m in members)
    kernels = [np.asarray(model.get_layer(index=-1).kernel) for model in (first, second)]
    assert not np.allclose(kernels[0], kernels[1])  # other seeds, other weights

    data = np.load(tiny_npz)
    x, y = data["x_test"], data["y_test"]
    p1, p2 = (_predict(m / "model.keras", x) for m in members)
    mean = (p1 + p2) / 2
    np.testing.assert_allclose(_predict(run / "model.keras", x), mean, atol=1e-6)

    result = cli("evaluate", run)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(float((mean.argmax(axis=1) == y).mean()), abs=1e-9)
    assert [m["member"] for m in metrics["members"]] == [1, 2]
    for m, p in zip(metrics["members"], (p1, p2)):
        assert m["accuracy"] == pytest.approx(float((p.argmax(axis=1) == y).mean()), abs=1e-9)
        assert {"loss", "macro_f1"} <= set(m)
    assert "Ensemble and members" in result.stdout and "member 2" in result.stdout
    assert (run / "plots" / "curves_member_2.png").is_file()

    result = cli("export", run, "--format", "saved_model", "--format", "keras")
    assert result.exit_code == 0, result.stderr
    import tensorflow as tf
    serve = tf.saved_model.load(str(run / "export" / "saved_model" / "1")).signatures["serving_default"]
    served = serve(inputs=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(served, mean, atol=1e-5)
    np.testing.assert_allclose(_predict(run / "export" / "model.keras", x), mean, atol=1e-6)


def interrupt_member(monkeypatch, member: str, after_epoch: int) -> None:
    """Ctrl-C in ``members/<member>`` once its epoch ``after_epoch`` (1-based) is committed, until
    ``monkeypatch.undo()``."""
    from dlrecipe.train import unit
    original = unit._Watcher.on_epoch_end

    def stop(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.run_dir.name == member and epoch == after_epoch - 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(unit._Watcher, "on_epoch_end", stop)


def test_an_interrupted_ensemble_resumes_its_unfinished_member_and_skips_the_finished_one(cli, write_recipe,
                                                                                           tmp_path, monkeypatch):
    from dlrecipe.train import group
    interrupt_member(monkeypatch, "2", after_epoch=1)
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 2, "ensemble": 2}), "--out", out)
    assert result.exit_code == 130
    assert "Interrupted after 1 finished epoch(s) (member 2 of 2)" in result.stderr
    run = only_run(out)
    assert f"--resume {run}" in result.stderr
    assert not (run / "model.keras").exists()
    finished = (run / "members/1/model.keras").read_bytes()
    assert [r["epoch"] for r in history(run / "members/1")] == [1, 2]
    assert [r["epoch"] for r in history(run / "members/2")] == [1]

    monkeypatch.undo()
    fitted = []
    fit_unit = group.fit_unit

    def record(recipe, rt, info, unit, **kwargs):
        fitted.append((unit.label, kwargs["resume"]))
        return fit_unit(recipe, rt, info, unit, **kwargs)

    monkeypatch.setattr(group, "fit_unit", record)
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.stderr
    assert fitted == [("member 2 of 2", True)]  # member 1 is not trained again
    assert (run / "members/1/model.keras").read_bytes() == finished
    assert [r["epoch"] for r in history(run / "members/2")] == [1, 2]
    assert (run / "model.keras").is_file()
    again = cli("train", "--resume", run)
    assert again.exit_code == 2 and "already finished its 2 epochs" in again.stderr


def test_resume_counts_an_early_stopped_member_done_when_it_was_not_yet_marked_finished(cli, write_recipe, tmp_path):
    # min_delta 100: no epoch after the first improves, so patience 2 stops each member after epoch 3 of 10
    callbacks = [{"type": "EarlyStopping", "monitor": "loss", "min_delta": 100, "patience": 2}]
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 10, "ensemble": 2, "callbacks": callbacks}),
               "--out", out).exit_code == 0
    run = only_run(out)
    members = [run / "members" / str(i) for i in (1, 2)]
    rows = [history(m) for m in members]
    assert [[r["epoch"] for r in h] for h in rows] == [[1, 2, 3], [1, 2, 3]]
    saved = (members[0] / "model.keras").read_bytes()

    def unmark(member: Path) -> None:  # as if the run stopped before the member was marked finished
        info = json.loads((member / "member.json").read_text())
        (member / "member.json").write_text(json.dumps({**info, "finished": False}))

    unmark(members[0])  # member 1 saved its model.keras; member 2 did not either
    unmark(members[1])
    (members[1] / "model.keras").unlink()
    (run / "model.keras").unlink()
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.stderr
    assert [history(m) for m in members] == rows  # no epoch trained
    assert (members[0] / "model.keras").read_bytes() == saved  # its saved model is used as it is
    assert (members[1] / "model.keras").is_file() and (run / "model.keras").is_file()
    for m in members:
        info = json.loads((m / "member.json").read_text())
        assert info["finished"] is True and info["trained_epochs"] == 3
    # recorded finished, a member EarlyStopping ended is refused when more epochs are asked for, as a single run is
    longer = cli("train", "--resume", run, "--set", "train.epochs=20")
    assert longer.exit_code == 2
    assert "stopped this run (member 1 of 2) after epoch 3" in " ".join(longer.stderr.split())
    assert [history(m) for m in members] == rows


def test_an_ensemble_resumed_to_more_epochs_drops_its_old_average_until_every_member_is_done(cli, write_recipe,
                                                                                            tmp_path, monkeypatch):
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1, "ensemble": 2}), "--out", out).exit_code == 0
    run = only_run(out)
    assert (run / "model.keras").is_file()
    assert json.loads((run / "environment.json").read_text())["xla"] is False  # TensorFlow on CPUs: auto is off
    interrupt_member(monkeypatch, "1", after_epoch=2)
    result = cli("train", "--resume", run, "--set", "train.epochs=2")
    assert result.exit_code == 130
    assert [r["epoch"] for r in history(run / "members/1")] == [1, 2]
    assert [r["epoch"] for r in history(run / "members/2")] == [1]
    # the average of the two 1-epoch members is not passed off as the 2-epoch ensemble
    assert not (run / "model.keras").exists()
    evaluated = cli("evaluate", run)
    assert evaluated.exit_code == 2 and "--resume" in evaluated.stderr
    monkeypatch.undo()
    result = cli("train", "--resume", run)
    assert result.exit_code == 0, result.stderr
    assert [r["epoch"] for r in history(run / "members/2")] == [1, 2]
    assert (run / "model.keras").is_file() and cli("evaluate", run).exit_code == 0


def test_cross_validation_folds_partition_the_training_split_and_report_mean_and_std(cli, write_recipe, tiny_npz,
                                                                                       tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 1, "cross_validation": 3}), "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "Cross-validation: 3 folds" in result.stdout and "mean" in result.stdout and "std" in result.stdout
    run = only_run(out)
    assert not (run / "model.keras").exists()
    y = np.load(tiny_npz)["y_train"]  # 120 examples; the recipe's validation_split is not used
    folds = [json.loads((run / "folds" / str(i) / "fold.json").read_text()) for i in (1, 2, 3)]
    indices = [np.array(f["validation_indices"]) for f in folds]
    joined = np.concatenate(indices)
    assert len(joined) == len(set(joined.tolist())) == len(y)  # disjoint ...
    assert set(joined.tolist()) == set(range(len(y)))  # ... and covering the training split
    for f, idx in zip(folds, indices):
        assert (f["n_train"], f["n_val"]) == (len(y) - len(idx), len(idx)) and len(idx) == 40
    per_class = np.array([np.bincount(y[idx], minlength=3) for idx in indices])
    assert (per_class.max(axis=0) - per_class.min(axis=0) <= 1).all()  # stratified: each class spread evenly

    cv = json.loads((run / "cv.json").read_text())
    assert cv["k"] == 3 and [f["fold"] for f in cv["folds"]] == [1, 2, 3]
    for name in ("val_loss", "val_accuracy"):
        values = np.array([f[name] for f in cv["folds"]])
        assert cv["mean"][name] == pytest.approx(values.mean(), abs=1e-12)
        assert cv["std"][name] == pytest.approx(values.std(), abs=1e-12)
    with open(run / "cv.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["fold"] for r in rows] == ["1", "2", "3", "mean", "std"]
    assert float(rows[3]["val_loss"]) == pytest.approx(cv["mean"]["val_loss"])
    # the reported accuracy is fold 1's model on fold 1's examples
    x = np.load(tiny_npz)["x_train"]
    p = _predict(run / "folds/1/model.keras", x[indices[0]])
    assert cv["folds"][0]["val_accuracy"] == pytest.approx(float((p.argmax(axis=1) == y[indices[0]]).mean()))

    for command in ("evaluate", "export"):
        result = cli(command, run)
        assert result.exit_code == 2
        assert str(run) in result.stderr and "cross-validation run" in result.stderr
        assert "train.cross_validation=0" in result.stderr
    assert not (run / "metrics.json").exists() and not (run / "export").exists()


@pytest.mark.parametrize("train,path,expected", [
    ({"ensemble": 0}, "train.ensemble", "greater than 0"),
    ({"cross_validation": 1}, "train.cross_validation", "k >= 2"),
    ({"cross_validation": -2}, "train.cross_validation", "greater than or equal to 0"),
    ({"ensemble": 2, "cross_validation": 3}, "train.cross_validation", "not both"),
])
def test_validate_refuses_bad_ensemble_and_cross_validation_values(cli, write_recipe, tmp_path, train, path, expected):
    recipe = write_recipe(train=train)
    result = cli("validate", recipe)
    assert result.exit_code == 2
    assert path in result.stderr and expected in result.stderr, result.stderr
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 2 and path in result.stderr and "nothing was written" in result.stderr
    assert not out.exists()


def test_more_folds_than_examples_and_evaluate_after_cross_validation_fail_before_training(cli, write_recipe,
                                                                                          tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"cross_validation": 500}), "--out", out)
    assert result.exit_code == 2
    assert "train.cross_validation" in result.stderr and "at most 120 folds" in result.stderr
    result = cli("train", write_recipe(train={"cross_validation": 3}), "--out", out, "--evaluate")
    assert result.exit_code == 2 and "--evaluate" in result.stderr and "no model" in result.stderr
    assert not out.exists()
