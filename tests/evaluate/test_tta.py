"""evaluate --tta and --mc-dropout N, end to end through the CLI on tiny synthetic images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run, recipe_dict, tiny_arrays, write_yaml

keras = pytest.importorskip("keras")

from dlrecipe import runs  # noqa: E402
from dlrecipe.evaluate import tta  # noqa: E402

AUGMENT = [{"type": "RandomFlip", "mode": "horizontal"},
           {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.5}]  # 8x8: ±1 rows, ±2 columns
VIEWS = ["identity", "flip_horizontal", "shift_down_1", "shift_up_1", "shift_right_2", "shift_left_2"]
MODEL = [{"type": "conv_bn_act", "filters": 4},  # a dlrecipe block (conv, batch norm, activation)
         {"type": "BatchNormalization"}, {"type": "Flatten"}, {"type": "Dropout", "rate": 0.5},
         {"type": "Dense", "units": 3, "activation": "softmax"}]


def _train(cli, folder: Path, npz: Path, **sections) -> Path:
    recipe = write_yaml(folder / "recipe.yaml", recipe_dict(npz, **sections))
    result = cli("train", recipe, "--out", folder / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    return only_run(folder / "runs")


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, **tiny_arrays())
    return path


@pytest.fixture(scope="module")
def augmented(tmp_path_factory, npz):
    from typer.testing import CliRunner

    from dlrecipe.cli.main import app
    runner = CliRunner()
    return _train(lambda *a: runner.invoke(app, [str(x) for x in a], catch_exceptions=False),
                  tmp_path_factory.mktemp("augmented"), npz, data={"augment": AUGMENT}, model={"layers": MODEL})


def _json(cli, *args) -> dict:
    result = cli("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift images by hand, filled as RandomTranslation's default fill_mode 'reflect' (numpy's 'symmetric')."""
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0)), mode="symmetric")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top:top + h, left:left + w]


def test_tta_averages_the_recipes_flips_and_shifts(cli, augmented, npz):
    metrics = _json(cli, augmented, "--tta")
    entry = metrics["tta"]
    assert entry["views"] == VIEWS and entry["n_views"] == 6
    # By hand: the loaded model on flipped and shifted copies of the raw test images, probabilities averaged.
    data = np.load(npz)
    x, y = data["x_test"].astype("float32"), data["y_test"]
    model = runs.load_model(augmented / runs.MODEL)
    copies = [x, x[:, :, ::-1], _shift(x, 1, 0), _shift(x, -1, 0), _shift(x, 0, 2), _shift(x, 0, -2)]
    probs = [np.asarray(model.predict(c, verbose=0)) for c in copies]
    mean = np.mean(probs, axis=0)
    by_hand = -np.mean(np.log(np.clip(mean[np.arange(len(y)), y], 1e-7, 1)))
    assert entry["metrics"]["log_loss"] == pytest.approx(by_hand, abs=1e-5)
    assert entry["metrics"]["accuracy"] == pytest.approx(np.mean(mean.argmax(1) == y))
    plain = -np.mean(np.log(np.clip(probs[0][np.arange(len(y)), y], 1e-7, 1)))
    assert entry["plain"]["log_loss"] == pytest.approx(plain, abs=1e-5)
    assert abs(entry["gain"]["log_loss"]) > 1e-4  # the views did change the probabilities
    # The plain metrics stay at the top level, as compare/report/diagnose read them.
    assert metrics["accuracy"] == pytest.approx(entry["plain"]["accuracy"])
    assert "loss" in metrics and "per_class" in metrics
    assert json.loads((augmented / runs.METRICS).read_text())["tta"] == entry


def test_mc_dropout_is_seeded_and_stochastic(cli, augmented):
    first = _json(cli, augmented, "--mc-dropout", "4")["mc_dropout"]
    second = _json(cli, augmented, "--mc-dropout", "4")["mc_dropout"]
    assert first == second and first["samples"] == 4
    assert first["metrics"]["log_loss"] != pytest.approx(first["plain"]["log_loss"], abs=1e-4)


def test_tta_with_mc_dropout_prints_every_gain(cli, augmented):
    result = cli("evaluate", augmented, "--tta", "--mc-dropout", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "with TTA (6 views): " in out and "with MC dropout (2 samples): " in out
    assert "with TTA x MC dropout (6 views x 2 samples): " in out
    assert out.strip().splitlines()[-1].startswith("Test accuracy: ")
    metrics = json.loads((augmented / runs.METRICS).read_text())
    assert set(metrics) >= {"tta", "mc_dropout", "tta_mc_dropout"}
    assert metrics["tta_mc_dropout"]["n_views"] == 6 and metrics["tta_mc_dropout"]["samples"] == 2


def test_views_follow_the_augment_layers():
    both = tta.views_of([{"type": "RandomFlip"}], (8, 8))  # Keras's default mode: horizontal_and_vertical
    assert [v.name for v in both] == ["flip_horizontal", "flip_vertical"]
    one_way = tta.views_of([{"type": "RandomTranslation", "height_factor": 0.0, "width_factor": [0.0, 0.5],
                             "fill_mode": "constant"}], (8, 8))
    assert [(v.name, v.shift, v.fill_mode) for v in one_way] == [("shift_right_2", (0, 2), "constant")]
    small = tta.views_of([{"type": "RandomTranslation", "height_factor": 0.01, "width_factor": 0.0},
                          {"type": "RandomTranslation", "height_factor": 0.02, "width_factor": 0.0}], (8, 8))
    assert [v.shift for v in small] == [(1, 0), (-1, 0)]  # at least one pixel, each view once
    assert tta.views_of([{"type": "RandomRotation", "factor": 0.1}], (8, 8)) == []


class _Wrapped(keras.layers.Layer):
    """A layer holding its own Dropout, as a block would."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.drop = keras.layers.Dropout(rate)

    def call(self, x, training=None):
        return self.drop(x)


def _bn_model(rate: float) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.BatchNormalization()(inputs)
    x = _Wrapped(rate)(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    bn = model.layers[1]
    bn.moving_mean.assign(np.full(4, 3.0, "float32"))  # far from any batch's statistics
    bn.moving_variance.assign(np.full(4, 9.0, "float32"))
    return model


def test_mc_dropout_keeps_batch_norm_in_inference():
    x = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    plain = np.asarray(_bn_model(0.0).predict(x, verbose=0))
    model = _bn_model(0.0)
    found = tta.dropout_layers(model)
    assert len(found) == 1  # the nested one
    averaging = tta.Averaging(views=[tta.IDENTITY], samples=3, seed=1, tta=False, dropout_layers=found)
    out = tta.probabilities(model, x, averaging, batch_size=8)
    np.testing.assert_allclose(out["mc"][:, 0], np.broadcast_to(plain, (3, *plain.shape)), atol=1e-6)
    assert not np.allclose(np.asarray(model(x, training=True)), plain, atol=1e-3)  # training mode would differ
    dropping = _bn_model(0.5)
    sampled = tta.probabilities(dropping, x, tta.Averaging([tta.IDENTITY], 2, 1, False,
                                                           tta.dropout_layers(dropping)), batch_size=8)
    assert not np.allclose(sampled["mc"][0], sampled["mc"][1])  # the nested dropout is active
    np.testing.assert_allclose(np.asarray(dropping.predict(x, verbose=0)), sampled["plain"][0], atol=1e-6)


def test_bad_flags_exit_2_and_write_nothing(cli, tmp_path, npz):
    run = _train(cli, tmp_path, npz)  # no augmentation, no dropout
    for args, where, fix in [(["--tta"], "data.augment", "Fix: train with"),
                             (["--mc-dropout", "3"], "model.layers", "Fix: add"),
                             (["--mc-dropout", "1"], "--mc-dropout", "Expected N >= 2")]:
        result = cli("evaluate", run, *args)
        assert result.exit_code == 2, result.output
        assert f"error: {where}:" in result.output and fix in result.output, result.output
        assert not (run / runs.METRICS).exists()
    regression = tmp_path / "regression-run"
    shutil.copytree(run, regression)
    meta = json.loads((regression / runs.PREPROCESSING).read_text())
    (regression / runs.PREPROCESSING).write_text(json.dumps({**meta, "task": "regression"}))
    result = cli("evaluate", regression, "--tta")
    assert result.exit_code == 2 and "classification runs only" in result.output, result.output
    assert not (regression / runs.METRICS).exists()


def test_tta_refuses_flat_inputs(cli, tmp_path):
    rng = np.random.default_rng(0)
    flat = tmp_path / "flat.npz"
    np.savez(flat, x_train=rng.normal(size=(60, 6)).astype("float32"), y_train=np.arange(60) % 3,
             x_test=rng.normal(size=(12, 6)).astype("float32"), y_test=np.arange(12) % 3)
    run = _train(cli, tmp_path, flat, data={"normalize": "standardize"},
                 model={"layers": [{"type": "Dense", "units": 3, "activation": "softmax"}]}, train={"epochs": 1})
    result = cli("evaluate", run, "--tta")
    assert result.exit_code == 2 and "not images" in result.output and "--tta" in result.output, result.output
    assert not (run / runs.METRICS).exists()


def test_tta_streams_an_image_dir_test_split(cli, tmp_path):
    from PIL import Image
    a = tiny_arrays(45, 24)
    for split in ("train", "test"):
        for i, (img, label) in enumerate(zip(a[f"x_{split}"], a[f"y_{split}"])):
            folder = tmp_path / split / str(a["class_names"][label])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0], mode="L").save(folder / f"{i:04d}.png")
    run = _train(cli, tmp_path, Path("unused.npz"), data={"source": "image_dir", "path": str(tmp_path / "train"),
                                                         "test_path": str(tmp_path / "test"), "validation_split": 0.0,
                                                         "augment": AUGMENT},
                 model={"layers": MODEL}, train={"epochs": 1, "batch_size": 16})
    metrics = _json(cli, run, "--tta", "--mc-dropout", "2")
    assert metrics["n_test"] == 24 and metrics["tta"]["n_views"] == 6
    assert metrics["tta"]["plain"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert metrics["mc_dropout"]["samples"] == 2
