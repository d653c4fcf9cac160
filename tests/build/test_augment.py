"""Augmentation by name, augment-preview, and the zca / pca preprocessing, end to end through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run, recipe_dict, tiny_arrays, write_yaml

DLRECIPE = str(Path(sys.executable).parent / "dlrecipe")
FLAT_MODEL = [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]


def rgb_npz(tmp_path: Path) -> Path:
    """The tiny 8x8 images in colour: each class bright in its own third and tinted per example."""
    arrays = tiny_arrays(n_train=60, n_test=12)
    rng = np.random.default_rng(5)
    for key in ("x_train", "x_test"):
        grey = arrays[key].astype(np.float64)
        tint = rng.uniform(0.5, 1.0, size=(len(grey), 1, 1, 3))
        arrays[key] = np.clip(grey * tint, 0, 255).astype(np.uint8)
    path = tmp_path / "rgb.npz"
    np.savez(path, **arrays)
    return path


def write(tmp_path: Path, recipe: dict, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    return write_yaml(path, recipe)


def load_model(run: Path):
    from dlrecipe import runs
    return runs.load_model(run / "model.keras")


# --- every dlrecipe name ---------------------------------------------------------------------------


ALIASES = {
    "random_erasing": ({"probability": 1.0}, "RandomErasing"),
    "elastic": ({"probability": 1.0, "scale": 1.0}, "RandomElasticTransform"),
    "color_jitter": ({"brightness_factor": 0.5}, "RandomColorJitter"),
    "gaussian_noise": ({"stddev": 0.05}, "ScaledGaussianNoise"),
    "fancy_pca": ({"stddev": 0.5}, "FancyPCA"),
    "mixup": ({"alpha": 0.2}, "MixUp"),
    "cutmix": ({"factor": 1.0}, "CutMix"),
}


@pytest.mark.parametrize("alias", list(ALIASES))
def test_each_dlrecipe_alias_validates_and_trains(alias, cli, tmp_path):
    from dlrecipe.build import augment
    from dlrecipe.data import source as datamod
    from dlrecipe.recipe import loader as recipemod

    args, keras_class = ALIASES[alias]
    recipe = write(tmp_path, recipe_dict(rgb_npz(tmp_path), data={"augment": [{"type": alias, **args}]},
                                         model={"layers": FLAT_MODEL}, train={"epochs": 1, "batch_size": 16}))
    result = cli("validate", recipe)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    model = load_model(run)
    if alias in ("mixup", "cutmix"):  # they blend labels: the tf.data pipeline applies them, not the model
        assert not any(type(lyr).__name__ == keras_class for lyr in model.layers)
        assert "loss: categorical_crossentropy" in (run / "recipe.yaml").read_text()  # one-hot (mixed) labels
        return
    layer = next(lyr for lyr in model.layers if type(lyr).__name__ == keras_class)
    import keras

    from dlrecipe.layers import registry
    own = registry.ALL_OBJECTS_DICT
    assert type(layer) is (own[keras_class] if keras_class in own else getattr(keras.layers, keras_class))
    assert layer.seed == augment.derived_seed(1, 0)  # derived from the recipe's seed
    x = np.load(tmp_path / "rgb.npz")["x_test"].astype(np.float32)
    assert np.array_equal(np.asarray(layer(x, training=False)), x)  # the identity at inference
    assert not np.allclose(np.asarray(layer(x, training=True)), x)  # active in training
    if alias == "fancy_pca":  # the RGB eigen-decomposition of the training split's pixels, stored in the run
        cfg = recipemod.load_recipe(recipe).recipe.data
        pixels = datamod.load(cfg, 1).x_train.reshape(-1, 3).astype(np.float64)
        values = np.linalg.eigvalsh(np.cov(pixels.T, bias=True))[::-1]
        stored = json.loads((run / "preprocessing.json").read_text())["augmentation"]["fancy_pca"]
        np.testing.assert_allclose(stored["eigenvalues"], values, rtol=1e-8)
        np.testing.assert_allclose(layer.eigenvalues, values, rtol=1e-8)


def test_fancy_pca_is_refused_on_grayscale_images(cli, write_recipe, tmp_path):
    recipe = write_recipe(data={"augment": [{"type": "RandomFlip"}, {"type": "fancy_pca"}]})
    result = cli("validate", recipe)
    assert result.exit_code == 2
    assert "data.augment[1]" in result.stderr and "RGB" in result.stderr and "grayscale images [8, 8, 1]" in result.stderr
    result = cli("train", recipe, "--out", tmp_path / "runs")
    assert result.exit_code == 2 and "RGB" in result.stderr and not (tmp_path / "runs").exists()


def test_validate_reports_bad_augmentation_names_and_arguments_together(cli, write_recipe):
    augment = [{"type": "random_erasng"}, {"type": "random_erasing", "probabilty": 0.5},
               {"type": "elastic", "probability": 1.5}, {"type": "RandomFlipp"}]
    result = cli("validate", write_recipe(data={"augment": augment}))
    assert result.exit_code == 2
    err = result.stderr
    assert "data.augment[0].type" in err and "Did you mean 'random_erasing'?" in err
    assert "data.augment[1].probabilty" in err and "Did you mean 'probability'?" in err
    assert "data.augment[2].probability" in err and "between 0 and 1" in err
    assert "data.augment[3].type" in err and "Did you mean 'RandomFlip'?" in err
    assert "4 problem(s)" in err and "Traceback" not in err


def test_image_augmentation_on_flat_features_is_a_validate_error(cli, tmp_path):
    arrays = tiny_arrays()
    arrays["x_train"] = arrays["x_train"].reshape(len(arrays["x_train"]), -1)
    arrays["x_test"] = arrays["x_test"].reshape(len(arrays["x_test"]), -1)
    np.savez(tmp_path / "flat.npz", **arrays)
    recipe = write(tmp_path, recipe_dict(tmp_path / "flat.npz", model={"layers": FLAT_MODEL[1:]},
                                         data={"augment": [{"type": "gaussian_noise", "stddev": 0.1},
                                                           {"type": "RandomFlip", "mode": "horizontal"}]}))
    result = cli("validate", recipe)
    assert result.exit_code == 2
    assert "data.augment[1]" in result.stderr and "RandomFlip works on images" in result.stderr
    assert "[64]" in result.stderr and "data.augment[0]" not in result.stderr  # noise works on any features


# --- seeds -------------------------------------------------------------------------------------------


def test_two_trainings_with_one_seed_see_the_same_augmented_batches(cli, write_recipe, tmp_path):
    augment = [{"type": "RandomFlip", "mode": "horizontal"}, {"type": "random_erasing", "probability": 0.5},
               {"type": "gaussian_noise", "stddev": 0.05}]
    recipe = write_recipe(data={"augment": augment}, train={"epochs": 1}, runtime={"deterministic": True})
    runs = []
    for name in ("a", "b"):
        assert cli("train", recipe, "--out", tmp_path / name).exit_code == 0
        runs.append(load_model(only_run(tmp_path / name)))
    x = np.load(tmp_path / "tiny.npz")["x_test"].astype(np.float32)
    for i in range(3):
        first, second = runs[0].layers[1 + i], runs[1].layers[1 + i]
        assert first.seed == second.seed and first.seed != runs[0].layers[1 + (i + 1) % 3].seed
        # the seed generators are at the same state after the same batches, so they draw alike next
        np.testing.assert_array_equal(np.asarray(first(x, training=True)), np.asarray(second(x, training=True)))
    for w1, w2 in zip(runs[0].get_weights(), runs[1].get_weights()):
        np.testing.assert_array_equal(w1, w2)


# --- augment-preview ---------------------------------------------------------------------------------


def test_augment_preview_writes_a_seeded_grid(cli, write_recipe, tmp_path):
    import matplotlib.image

    from dlrecipe.inspect import preview

    augment = [{"type": "RandomTranslation", "height_factor": 0.2, "width_factor": 0.2},
               {"type": "random_erasing", "probability": 0.5}]
    recipe = write_recipe(data={"augment": augment})
    pictures = []
    for name, seed in (("a.png", 1), ("b.png", 1), ("c.png", 2)):
        out = tmp_path / "out" / name
        result = cli("augment-preview", recipe, "--out", out, "--n", 5, "--rows", 2, "--set", f"seed={seed}")
        assert result.exit_code == 0, result.stderr
        assert str(out) in result.stdout
        pictures.append(out.read_bytes())
    grid = matplotlib.image.imread(tmp_path / "out" / "a.png")
    scale = preview.TILE_MIN // 8  # 8x8 images are enlarged 8 times
    assert grid.shape[:2] == (3 * 8 * scale + 2 * preview.GAP, 5 * 8 * scale + 4 * preview.GAP)
    assert pictures[0] == pictures[1] and pictures[0] != pictures[2]
    # the first row holds the originals, the rows below differ from them
    pixels = (grid[..., 0] * 255).round()
    x = np.load(tmp_path / "tiny.npz")["x_train"]
    from dlrecipe.data import source as datamod
    from dlrecipe.recipe import loader as recipemod
    first = datamod.load(recipemod.load_recipe(recipe).recipe.data, 1).x_train[0, :, :, 0]
    np.testing.assert_array_equal(pixels[:8 * scale:scale, :8 * scale:scale], first)
    assert not np.array_equal(pixels[8 * scale + 2::scale][:8, :8 * scale:scale], first)
    assert x.shape[0] > 5


def test_augment_preview_errors(cli, write_recipe, tmp_path):
    result = cli("augment-preview", write_recipe(), "--out", tmp_path / "p.png")
    assert result.exit_code == 2 and "data.augment" in result.stderr and "no augmentation list" in result.stderr
    arrays = tiny_arrays()
    np.savez(tmp_path / "flat.npz", **{k: (v.reshape(len(v), -1) if k.startswith("x") else v)
                                      for k, v in arrays.items()})
    recipe = write(tmp_path, recipe_dict(tmp_path / "flat.npz", data={"augment": [{"type": "gaussian_noise"}]},
                                         model={"layers": FLAT_MODEL[1:]}))
    result = cli("augment-preview", recipe, "--out", tmp_path / "p.png")
    assert result.exit_code == 2 and "not images" in result.stderr
    assert not (tmp_path / "p.png").exists()


# --- zca and pca -------------------------------------------------------------------------------------


def test_zca_whitens_the_training_split_with_statistics_of_that_split_only(cli, tmp_path):
    from dlrecipe.data import preprocess
    from dlrecipe.data import source as datamod
    from dlrecipe.export.served import split_preprocessing
    from dlrecipe.recipe import loader as recipemod

    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    mix = q * np.sqrt(np.linspace(1.0, 4.0, 16))  # covariance with eigenvalues in [1, 4]: well above epsilon
    x_train = (rng.normal(size=(400, 16)) @ mix.T + 50).reshape(400, 4, 4, 1).astype(np.float32)
    x_test = np.full((40, 4, 4, 1), 1000.0, np.float32)  # distinctive: would shift every statistic
    np.savez(tmp_path / "g.npz", x_train=x_train, y_train=np.arange(400) % 3, x_test=x_test,
             y_test=np.arange(40) % 3)
    recipe = write(tmp_path, recipe_dict(tmp_path / "g.npz", data={"normalize": "zca", "validation_split": 0.25},
                                         model={"layers": FLAT_MODEL}, train={"epochs": 1}))
    assert cli("train", recipe, "--out", tmp_path / "runs").exit_code == 0
    run = only_run(tmp_path / "runs")
    stored = preprocess.load_stored(run)
    assert stored["kind"] == "zca" and (run / "preprocessing.npz").is_file()
    split = datamod.load(recipemod.load_recipe(recipe).recipe.data, 1)
    assert len(split.x_train) == 300 and len(split.x_val) == 100
    train_only = split.x_train.reshape(300, -1).astype(np.float64)
    np.testing.assert_allclose(stored["mean"], train_only.mean(axis=0), rtol=1e-10)  # not the val or test examples
    assert not np.allclose(stored["mean"], x_train.reshape(400, -1).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stored["matrix"], preprocess.fit("zca", split.x_train)["matrix"], rtol=1e-6)
    pre, _ = split_preprocessing(load_model(run))  # the model's own preprocessing layers
    white = np.asarray(pre.predict(split.x_train, verbose=0)).reshape(300, -1).astype(np.float64)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(white.T, bias=True), np.eye(16), atol=0.03)


def test_pca_model_serves_raw_inputs_like_the_trained_model(cli, write_recipe, tmp_path):
    import tensorflow as tf

    from dlrecipe.data import preprocess

    layers = [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    recipe = write_recipe(data={"normalize": "standardize", "pca": 10}, model={"layers": layers},
                          train={"epochs": 1})
    result = cli("validate", recipe)
    assert result.exit_code == 0, result.stderr
    assert "preprocessing_pca (Dense)" in result.stdout and "(None, 10)" in result.stdout
    assert cli("train", recipe, "--out", tmp_path / "runs").exit_code == 0
    run = only_run(tmp_path / "runs")
    stored = preprocess.load_stored(run)
    assert stored["pca"]["components"].shape == (64, 10)
    meta = json.loads((run / "preprocessing.json").read_text())
    assert meta["pca"]["components"] == {"file": "preprocessing.npz", "key": "pca.components", "shape": [64, 10]}
    result = cli("export", run)
    assert result.exit_code == 0, result.stderr
    x = np.load(tmp_path / "tiny.npz")["x_test"]  # raw uint8 images
    want = load_model(run).predict(x.astype(np.float32), verbose=0)
    serve = tf.saved_model.load(str(run / "export" / "saved_model" / "1")).signatures["serving_default"]
    assert serve.structured_input_signature[1]["inputs"].shape.as_list() == [None, 8, 8, 1]
    got = serve(inputs=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got, _numpy_forward(stored, load_model(run), x), atol=1e-5)


def _numpy_forward(stats, model, x):
    """The reference transform (NumPy) followed by the model's two Dense layers."""
    from dlrecipe.data import preprocess

    h = preprocess.apply_numpy(stats, x)
    dense = [lyr for lyr in model.layers if lyr.name.startswith("dense")]
    for layer, act in zip(dense, (lambda v: np.maximum(v, 0), None)):
        w, b = layer.get_weights()
        h = h @ w + b
        h = act(h) if act else np.exp(h - h.max(axis=1, keepdims=True)) / np.exp(h - h.max(axis=1, keepdims=True)).sum(
            axis=1, keepdims=True)
    return h


@pytest.mark.parametrize("case", ["pca_too_large", "zca_too_many_features"])
def test_pca_and_zca_limits_are_validate_errors(case, cli, write_recipe, tmp_path):
    if case == "pca_too_large":
        recipe = write_recipe(data={"pca": 65})
        path, words = "data.pca", "only 64 features"
    else:
        x = np.zeros((6, 65, 65, 1), np.uint8)
        np.savez(tmp_path / "big.npz", x_train=x, y_train=np.arange(6) % 3)
        recipe = write(tmp_path, recipe_dict(tmp_path / "big.npz", data={"normalize": "zca", "validation_split": 0.0},
                                             model={"layers": FLAT_MODEL}))
        path, words = "data.normalize", "4225 features"
    result = cli("validate", recipe)
    assert result.exit_code == 2, result.stdout
    assert f"error: {path}" in result.stderr and words in result.stderr and "Fix:" in result.stderr
    result = cli("train", recipe, "--out", tmp_path / "runs")
    assert result.exit_code == 2 and path in result.stderr and not (tmp_path / "runs").exists()


# --- XLA: layers Keras marks wrongly for a backend ----------------------------------------------------

JAX_ENV = {**os.environ, "KERAS_BACKEND": "jax"}
JIT_PROBE = """
import json, sys
import jax, numpy as np
from dlrecipe.build import augment
from dlrecipe.layers.jit import JAX_JIT_OK
x = np.random.default_rng(0).uniform(0, 255, size=(4, 16, 16, 3)).astype("float32")
args = {"RandomTranslation": {"height_factor": 0.3, "width_factor": 0.3}, "RandomRotation": {"factor": 0.3},
        "RandomZoom": {"height_factor": 0.3}, "RandomShear": {"x_factor": 0.3, "y_factor": 0.3},
        "RandomPerspective": {"factor": 1.0}}
out = {}
for i, name in enumerate(JAX_JIT_OK):
    spec = {"type": name, **args[name]}
    eager, jitted = (augment.build_layer(spec, "p", seed=7, index=i, stats=None) for _ in range(2))
    jitted.build(x.shape)
    step = jax.jit(lambda state, xb: jitted.stateless_call([], state, xb, training=True))
    state = [v.value for v in jitted.non_trainable_variables]
    diffs, moved = [], []
    for _ in range(3):  # three calls: the seed state must advance under jit as it does eagerly
        want = np.asarray(eager(x, training=True))
        got, state = step(state, x)
        diffs.append(float(np.abs(np.asarray(got) - want).max()))
        moved.append(float(np.abs(want - x).mean()))
    out[name] = {"supports_jit": jitted.supports_jit, "diff": max(diffs), "moved": min(moved)}
elastic = augment.build_layer({"type": "elastic", "probability": 1.0}, "p", seed=1, index=0, stats=None)
out["elastic"] = {"supports_jit": elastic.supports_jit}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_on_jax_the_geometric_layers_are_jitted_and_give_the_same_images_as_eagerly():
    pytest.importorskip("jax", reason="jax is installed by the test extras: pip install -e '.[test]'")
    from dlrecipe.layers.jit import JAX_JIT_OK
    proc = subprocess.run([sys.executable, "-c", JIT_PROBE], capture_output=True, text=True, timeout=300, env=JAX_ENV)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in JAX_JIT_OK:
        assert found[name]["supports_jit"] is True, name
        assert found[name]["diff"] < 1e-3, (name, found[name])  # the same pixels (0-255) as eagerly
        assert found[name]["moved"] > 1.0, (name, found[name])  # and the images were transformed
    assert found["elastic"]["supports_jit"] is False  # its blur kernel has a data-dependent size: not under XLA


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Model doesn't support")  # Keras's own note, when train falls back
def test_validate_names_each_augmentation_that_turns_jit_compile_off(cli, write_recipe, tmp_path):
    augment_ = [{"type": "RandomFlip"}, {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1},
                {"type": "elastic", "probability": 0.5}]
    recipe = write_recipe(data={"augment": augment_}, runtime={"jit_compile": True})
    result = cli("validate", recipe)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: runtime.jit_compile")]
    assert len(warnings) == 2, result.stderr
    assert "data.augment[1] (RandomTranslation)" in warnings[0] and "KERAS_BACKEND=jax" in warnings[0]
    assert "data.augment[2] (RandomElasticTransform)" in warnings[1] and "KERAS_BACKEND=jax" not in warnings[1]
    # under JAX, RandomTranslation compiles; the elastic transform still does not
    proc = subprocess.run([DLRECIPE, "validate", str(recipe)], capture_output=True, text=True, timeout=300,
                          env=JAX_ENV)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: runtime.jit_compile")]
    assert len(warnings) == 1 and "data.augment[2] (RandomElasticTransform)" in warnings[0], proc.stderr
    # trained anyway, Keras compiles without XLA, and the run folder says so
    result = cli("train", recipe, "--set", "train.epochs=1", "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    env = json.loads((only_run(tmp_path / "runs") / "environment.json").read_text())
    assert env["jit_compile"] is True and env["xla"] is False
    # deterministic ops turn XLA off on TensorFlow, whatever the layers
    recipe = write_recipe(runtime={"jit_compile": True, "deterministic": True})
    result = cli("validate", recipe)
    assert "runtime.deterministic: true" in result.stderr and result.exit_code == 0
    # jit_compile: auto promises nothing: no warning
    recipe = write_recipe(data={"augment": augment_})
    assert "warning: runtime.jit_compile" not in cli("validate", recipe).stderr


@pytest.mark.slow
def test_a_jax_run_with_translations_trains_and_reloads_jitted(write_recipe, tmp_path):
    pytest.importorskip("jax", reason="jax is installed by the test extras: pip install -e '.[test]'")
    out = tmp_path / "runs"
    recipe = write_recipe(data={"augment": [{"type": "RandomTranslation", "height_factor": 0.2, "width_factor": 0.2},
                                            {"type": "RandomRotation", "factor": 0.1}]},
                          runtime={"jit_compile": True}, train={"epochs": 1})
    proc = subprocess.run([DLRECIPE, "train", str(recipe), "--out", str(out)], capture_output=True, text=True,
                          timeout=300, env=JAX_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "doesn't support `jit_compile=True`" not in proc.stderr  # Keras's note when it falls back to eager
    run = only_run(out)
    assert json.loads((run / "environment.json").read_text())["xla"] is True
    probe = ("from pathlib import Path\nfrom dlrecipe import runs\n"
             f"m = runs.load_model(Path({str(run / 'model.keras')!r}))\nprint('JIT', m.jit_compile)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=JAX_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "JIT True"  # compiled while loading, then marked: jitted again
