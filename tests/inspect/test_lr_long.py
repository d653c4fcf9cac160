"""``dlrecipe lr`` of a very long run evaluates a bounded sample of its steps: the same curve, at once."""

from __future__ import annotations

import numpy as np

from dlrecipe.inspect import lr as lrmod
from dlrecipe.recipe.loader import load_recipe


def schedule_recipe(write_recipe, epochs: int, batch_size: int = 1):
    return write_recipe(train={"epochs": epochs, "batch_size": batch_size,
                               "learning_rate": {"schedule": "cosine", "initial": 0.01, "warmup_epochs": 5}})


def test_lr_of_the_longest_run_samples_its_steps_and_shows_a_bounded_table(cli, write_recipe, tmp_path):
    from PIL import Image
    recipe = schedule_recipe(write_recipe, 100_000)  # 96 examples, batch 1: 9.6 million steps
    result = cli("lr", recipe, "--out", tmp_path / "lr.png")
    assert result.exit_code == 0, result.stderr
    assert "96 steps per epoch, 9600000 steps in 100000 epochs" in " ".join(result.stdout.split())
    assert f"The table shows {lrmod.TABLE_ROWS} of the 100000 epochs" in " ".join(result.stdout.split())
    assert Image.open(tmp_path / "lr.png").size[0] > 100
    rates = lrmod.learning_rates(load_recipe(recipe))
    assert len(rates.per_step) <= lrmod.PLOT_POINTS + 2 * lrmod.TABLE_ROWS
    assert rates.steps[0] == 0 and rates.steps[-1] == 9_600_000 - 1 and np.all(np.diff(rates.steps) > 0)
    assert rates.per_step[0] == 0.0 and rates.per_step[-1] < 1e-6  # warm-up from 0, the cosine down to 0
    assert max(rates.per_step) <= 0.01 + 1e-9


def test_a_sampled_run_has_the_rates_of_the_full_evaluation_at_its_steps(write_recipe, monkeypatch):
    loaded = load_recipe(schedule_recipe(write_recipe, 300, batch_size=8))  # 12 steps per epoch, 3600 steps
    full = lrmod.learning_rates(loaded)
    assert full.steps is None and len(full.per_step) == 3600
    monkeypatch.setattr(lrmod, "MAX_STEPS", 1000)
    monkeypatch.setattr(lrmod, "PLOT_POINTS", 500)
    monkeypatch.setattr(lrmod, "TABLE_ROWS", 100)
    sampled = lrmod.learning_rates(loaded)
    assert sampled.steps is not None and len(sampled.per_step) < 1000
    np.testing.assert_allclose(sampled.per_step, full.per_step[sampled.steps], rtol=1e-6, atol=1e-12)
    # no gap wider than the spacing of the plot's points: the same picture
    assert np.diff(sampled.steps).max() <= 3600 / 499 + 1
    # the table's epochs keep their first-step rate
    for epoch in lrmod.table_epochs(300):
        assert sampled.epoch(int(epoch))[0] == full.epoch(int(epoch))[0]
