"""A recipe runs no outside code and reads no outside files (dlrecipe.build.safety, docs/security.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_yaml

from dlrecipe.build.safety import ALLOW_ENV, ARTIFACTS, CODE, FILE_ARGS


@pytest.fixture(autouse=True)
def no_allowance(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)


@pytest.fixture(scope="module")
def writer_savedmodel(tmp_path_factory) -> tuple[Path, Path]:
    """A SavedModel whose function writes a marker file whenever it runs: what an attacker would ship."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("attack")
    marker = folder / "marker.txt"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "written by the SavedModel")
            return x

    module = Writer()
    tf.saved_model.save(module, str(folder / "model"), signatures={"serving_default": module.serve})
    assert not marker.exists()
    return folder / "model", marker


def _layer(savedmodel: Path) -> dict:
    return {"type": "TFSMLayer", "filepath": str(savedmodel), "call_endpoint": "serve"}


def _recipes(tmp_path: Path, tiny_npz: Path, savedmodel: Path) -> dict[str, Path]:
    from conftest import recipe_dict
    model = recipe_dict(tiny_npz)
    model["model"]["layers"].insert(0, _layer(savedmodel))
    augment = recipe_dict(tiny_npz, data={"augment": [_layer(savedmodel)]})
    return {"model.layers[0]": write_yaml(tmp_path / "model.yaml", model),
            "data.augment[0]": write_yaml(tmp_path / "augment.yaml", augment)}


@pytest.mark.parametrize("command", ["validate", "train", "inspect-init", "augment-preview"])
def test_a_savedmodel_named_in_a_recipe_never_runs(command, cli, tmp_path, tiny_npz, writer_savedmodel):
    savedmodel, marker = writer_savedmodel
    recipes = _recipes(tmp_path, tiny_npz, savedmodel)
    out = tmp_path / "runs"
    for where, recipe in recipes.items():
        if command == "augment-preview" and where == "model.layers[0]":
            continue  # augment-preview runs the augmentation layers only
        extra = ["--out", str(out)] if command == "train" else \
            ["--out", str(tmp_path / "grid.png")] if command == "augment-preview" else []
        result = cli(command, recipe, *extra)
        assert result.exit_code == 2, result.output
        assert f"error: {where}.type" in result.stderr
        assert "TFSMLayer is refused in a recipe" in result.stderr and "--allow-artifacts" in result.stderr
    assert not marker.exists()
    assert not out.exists() and not (tmp_path / "grid.png").exists()


def test_allow_artifacts_lets_the_user_load_a_savedmodel_they_trust(tmp_path, tiny_npz, writer_savedmodel):
    # The refusal above is what kept the graph from running: with the flag, training runs it.
    savedmodel, marker = writer_savedmodel
    recipe = _recipes(tmp_path, tiny_npz, savedmodel)["model.layers[0]"]
    env = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}
    proc = subprocess.run([sys.executable, "-m", "dlrecipe", "train", str(recipe), "--set", "train.epochs=1",
                           "--out", str(tmp_path / "runs"), "--allow-artifacts"], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_validate_refuses_code_valued_arguments_and_file_vocabularies(cli, write_recipe):
    from conftest import TINY_MODEL
    recipe = write_recipe(model={"layers": [{"type": "StringLookup", "vocabulary": "/etc/hostname"},
                                            {"type": "Lambda", "function": "os.system"}, *TINY_MODEL]},
                          train={"epochs": 1, "metrics": [{"type": "MeanMetricWrapper", "fn": "os.system"}],
                                 "callbacks": [{"type": "LearningRateScheduler", "schedule": "os.system"}]})
    result = cli("validate", recipe)
    assert result.exit_code == 2
    err = result.stderr
    assert "error: model.layers[0].vocabulary" in err and "a file path: StringLookup would read that file" in err
    assert "error: model.layers[1].type" in err and "Lambda is refused in a recipe" in err
    assert "error: train.metrics[0].type" in err and "MeanMetricWrapper is refused" in err
    assert "error: train.callbacks[0].type" in err and "LearningRateScheduler is refused" in err


def test_a_vocabulary_given_as_values_is_fine():
    import keras

    from dlrecipe.build.resolve import construct
    layer = construct(keras.layers.StringLookup, {"vocabulary": ["a", "b"]}, "model.layers[0]")
    assert layer.vocabulary_size() == 3  # two words and the out-of-vocabulary token


def test_every_refused_name_is_a_keras_class():
    # A Keras upgrade that renames one of them would silently let it through: the list must name real classes.
    import keras
    spaces = (keras.layers, keras.callbacks, keras.metrics, keras.losses)
    for name in [*CODE, *ARTIFACTS, *FILE_ARGS]:
        assert any(isinstance(getattr(m, name, None), type) for m in spaces), name
