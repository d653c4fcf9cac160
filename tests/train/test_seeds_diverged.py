"""``train --seeds N`` with a seed whose loss becomes NaN: recorded, the others trained, compare/report cope."""

from __future__ import annotations

import dataclasses
import json

import pytest

HUGE_LR = 1e30  # plain SGD at this rate overflows the weights: the loss is NaN in the first epoch


@pytest.fixture
def diverge_seed(monkeypatch):
    """Make the seeds in ``which`` train with HUGE_LR (the others with the recipe's rate)."""
    from dlrecipe.train import seeds
    original = seeds._with_seed
    which: set[int] = set()

    def with_seed(loaded, seed):
        done = original(loaded, seed)
        if seed not in which:
            return done
        recipe = done.recipe
        train = recipe.train.model_copy(update={"learning_rate": HUGE_LR})
        return dataclasses.replace(done, recipe=recipe.model_copy(update={"train": train}))

    monkeypatch.setattr(seeds, "_with_seed", with_seed)
    return which


def test_a_diverged_seed_is_recorded_and_the_others_are_trained_compared_and_reported(
        cli, write_recipe, tmp_path, diverge_seed):
    diverge_seed.add(2)
    out = tmp_path / "runs"
    recipe = write_recipe(train={"epochs": 1, "optimizer": "sgd"})
    result = cli("train", recipe, "--out", out, "--seeds", "3", "--evaluate")
    assert result.exit_code == 0, result.stderr + result.stdout
    (group,) = (out / "tiny").iterdir()
    about = json.loads((group / "seeds.json").read_text())
    assert about["diverged"] == {"2": {"epoch": 1}} and about["finished"].keys() == {"1", "3"}
    assert not (group / "seed-2" / "model.keras").exists() and (group / "seed-3" / "model.keras").is_file()
    assert (group / "seed-3" / "metrics.json").is_file() and not (group / "seed-2" / "metrics.json").exists()
    assert result.stdout.count("diverged (NaN loss in epoch 1)") == 2  # training table and test table
    assert "mean ± std (n=2)" in result.stdout and "1 diverged" in result.stdout

    compared = cli("compare", group, "--json", "--out", tmp_path / "cmp")
    assert compared.exit_code == 0, compared.stderr
    (row,) = json.loads(compared.stdout)["rows"]
    assert row["runs"] == [str(group / "seed-1"), str(group / "seed-3")]
    assert row["diverged"] == [2]
    assert row["metrics"]["test_accuracy"]["n"] == 2 and row["metrics"]["val_loss"]["n"] == 2
    table = cli("compare", group, "--out", tmp_path / "cmp2")
    assert table.exit_code == 0 and "diverged" in table.stdout
    page = tmp_path / "r.html"
    reported = cli("report", group, "--out", page)
    assert reported.exit_code == 0, reported.stderr
    assert "seed 2 diverged" in page.read_text()


def test_every_seed_diverged_exits_1_and_says_so(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    recipe = write_recipe(train={"epochs": 1, "optimizer": "sgd", "learning_rate": HUGE_LR})
    result = cli("train", recipe, "--out", out, "--seeds", "2")
    assert result.exit_code == 1
    assert "Every seed diverged" in result.stderr and "seed 1 in epoch 1, seed 2 in epoch 1" in result.stderr
    (group,) = (out / "tiny").iterdir()
    assert json.loads((group / "seeds.json").read_text())["diverged"].keys() == {"1", "2"}
    compared = cli("compare", group, "--out", tmp_path / "cmp")
    assert compared.exit_code == 2 and "diverged" in compared.stderr
    assert not (tmp_path / "cmp").exists()
