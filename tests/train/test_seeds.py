"""``train --seeds N``: one complete run per seed in a group folder, mean ± std, resume per seed, refusals."""

from __future__ import annotations

import json

import pytest
from test_cli import history


def test_seeds_train_complete_runs_print_mean_and_std_and_compare_as_one_row(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 1}), "--out", out, "--seeds", "2", "--evaluate")
    assert result.exit_code == 0, result.stderr
    (group,) = (out / "tiny").iterdir()
    assert sorted(p.name for p in group.iterdir()) == ["seed-1", "seed-2", "seeds.json"]  # the recipe's seed is 1
    for seed in (1, 2):
        run = group / f"seed-{seed}"
        for name in ("recipe.yaml", "environment.json", "preprocessing.json", "history.csv", "model.keras",
                     "checkpoints/state.json", "metrics.json"):
            assert (run / name).is_file(), (run, name)
        assert f"\nseed: {seed}\n" in (run / "recipe.yaml").read_text()
        assert json.loads((run / "environment.json").read_text())["seed"] == seed
        assert len(history(run)) == 1
    assert json.loads((group / "seeds.json").read_text())["finished"].keys() == {"1", "2"}
    assert "2 seeds" in result.stdout and "Test metrics per seed" in result.stdout
    assert result.stdout.count("mean ± std") == 2 and "±" in result.stdout.split("mean ± std")[1]
    assert f"Group folder: {group}" in result.stdout

    compared = cli("compare", out / "tiny", "--json", "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.stderr
    (row,) = json.loads(compared.stdout)["rows"]
    assert row["runs"] == [str(group / "seed-1"), str(group / "seed-2")]
    assert row["metrics"]["test_accuracy"]["n"] == 2 and row["metrics"]["val_loss"]["std"] is not None
    evaluated = cli("evaluate", group)
    assert evaluated.exit_code == 2 and "seed group" in evaluated.stderr and "seed-1" in evaluated.stderr


def test_resume_of_a_group_skips_finished_seeds_and_continues_the_interrupted_one(cli, write_recipe, tmp_path,
                                                                                   monkeypatch):
    from dlrecipe.train import fit, unit
    original = unit._Watcher.on_epoch_end

    def stop(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.run_dir.name == "seed-2" and epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(unit._Watcher, "on_epoch_end", stop)
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 2}), "--out", out, "--seeds", "2")
    assert result.exit_code == 130
    (group,) = (out / "tiny").iterdir()
    assert "--resume" in result.stderr
    finished = (group / "seed-1" / "model.keras").read_bytes()
    assert len(history(group / "seed-2")) == 1 and not (group / "seed-2" / "model.keras").exists()

    monkeypatch.undo()
    trained = []
    real_train = fit.train

    def record(loaded, out_, argv, **kwargs):
        trained.append((loaded.recipe.seed, kwargs.get("resume")))
        return real_train(loaded, out_, argv, **kwargs)

    from dlrecipe.train import seeds
    monkeypatch.setattr(seeds, "train", record)
    result = cli("train", "--resume", group)
    assert result.exit_code == 0, result.stderr
    assert trained == [(2, group / "seed-2")]  # seed 1 is not trained again
    assert (group / "seed-1" / "model.keras").read_bytes() == finished
    assert [r["epoch"] for r in history(group / "seed-2")] == [1, 2]
    again = cli("train", "--resume", group)
    assert again.exit_code == 2 and "already finished" in again.stderr


@pytest.mark.parametrize("extra, sections, expected", [
    (["--workers", "2"], {}, "leave out --workers"),
    ([], {"train": {"epochs": 1, "ensemble": 2}}, "train.ensemble"),
    ([], {"train": {"epochs": 1, "cross_validation": 2}}, "train.cross_validation"),
    (["--seeds", "0"], {}, "Expected 1 to"),
])
def test_seeds_are_refused_where_they_cannot_work(cli, write_recipe, tmp_path, extra, sections, expected):
    out = tmp_path / "runs"
    args = ["train", write_recipe(**sections), "--out", out, *extra]
    if "--seeds" not in extra:
        args += ["--seeds", "2"]
    result = cli(*args)
    assert result.exit_code == 2 and expected in result.stderr
    assert not out.exists()
