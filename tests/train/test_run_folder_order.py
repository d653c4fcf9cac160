"""train makes its run folder only once everything that can be checked has been: a late failure leaves none."""

from __future__ import annotations

import keras
import pytest

from dlrecipe.errors import RecipeError


def run_folders(out):
    return sorted(p.parent for p in out.glob("*/*/recipe.yaml")) if out.exists() else []


def test_a_model_whose_output_does_not_fit_the_task_is_refused_before_the_run_folder(cli, write_recipe, tmp_path):
    recipe = write_recipe(model={"layers": [{"type": "Conv2D", "filters": 3, "kernel_size": 3,
                                             "activation": "softmax"}]})  # (None, 6, 6, 3) for 3 classes
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 2 and "model.layers" in result.stderr, result.stderr
    assert run_folders(out) == [] and not out.exists()


def test_the_training_inputs_are_checked_before_the_run_folder(cli, write_recipe, tmp_path, monkeypatch):
    from dlrecipe.data import pipeline

    def refuse(*args, **kwargs):
        raise RecipeError.one("data.augment[0]", "Received: a layer the input pipeline refuses.")

    monkeypatch.setattr(pipeline, "fit_inputs", refuse)
    out = tmp_path / "runs"
    result = cli("train", write_recipe(), "--out", out)
    assert result.exit_code == 2 and "data.augment[0]" in result.stderr, result.stderr
    assert not out.exists()


def test_a_failure_in_the_first_step_leaves_no_run_folder(cli, write_recipe, tmp_path, monkeypatch):
    def fail(self, batch, logs=None):
        raise ValueError("a shape the first step cannot take")

    monkeypatch.setattr(keras.callbacks.TerminateOnNaN, "on_train_batch_end", fail)
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="first step"):
        cli("train", write_recipe(), "--out", out)
    assert run_folders(out) == [] and list(out.glob("*/*")) == []
