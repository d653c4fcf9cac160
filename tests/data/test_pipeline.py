"""The tf.data input pipeline, the streamed image_dir and tfds sources, and MixUp/CutMix, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import only_run, recipe_dict, tiny_arrays, write_yaml
from PIL import Image


def write_image_dir(root: Path, x: np.ndarray, y: np.ndarray, names) -> Path:
    """One PNG per example in root/<class name>/, in example order."""
    for i, (img, label) in enumerate(zip(x, y)):
        folder = root / str(names[label])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0], mode="L").save(folder / f"{i:04d}.png")
    return root


def read_image_dir(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images of a folder in the listing order image_dir uses (classes sorted, files sorted), with PIL."""
    xs, ys = [], []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for f in sorted(folder.glob("*.png")):
            xs.append(np.asarray(Image.open(f))[..., None])
            ys.append(label)
    return np.stack(xs), np.asarray(ys)


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory) -> tuple[Path, Path]:
    a = tiny_arrays(60, 30)
    root = tmp_path_factory.mktemp("images")
    train = write_image_dir(root / "train", a["x_train"], a["y_train"], a["class_names"])
    test = write_image_dir(root / "test", a["x_test"], a["y_test"], a["class_names"])
    return train, test


def image_recipe(tmp_path: Path, path: Path, name: str = "imgs.yaml", **data) -> Path:
    recipe = recipe_dict(Path("unused.npz"), name="imgs",
                         data={"source": "image_dir", "path": str(path), "validation_split": 0.0,
                               "normalize": "standardize", **data},
                         train={"epochs": 1, "batch_size": 16, "optimizer": "adam", "learning_rate": 0.01})
    out = tmp_path / name
    return write_yaml(out, recipe)


# --------------------------------------------------------------------------- image_dir end to end


def test_inspect_init_streams_an_image_dir_and_its_model_sees_inputs_standardized_by_streamed_statistics(
        cli, image_folders, tmp_path):
    train_dir, _ = image_folders
    recipe = image_recipe(tmp_path, train_dir, test_split=0.5)  # 30 training images, 30 test
    out = tmp_path / "init.json"
    result = cli("inspect-init", recipe, "--batch", "256", "--out", out)
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["batch"] == 30 and report["gradients"] is True  # the whole training split, not the test half
    assert "The training split has only 30 examples" in result.stdout
    rows = {row["name"]: row for row in report["layers"]}
    # standardize, fitted on the 30 training images while streaming them: over exactly those images, every
    # pixel has mean 0 and standard deviation 1 at the model's normalization layer.
    normalized = next(row for name, row in rows.items() if name.startswith("preprocessing"))
    assert normalized["mean"] == pytest.approx(0.0, abs=1e-4)
    assert normalized["std"] == pytest.approx(1.0, abs=1e-3)
    assert report["layers"][-1]["grad_norm"] > 0




def test_image_dir_trains_evaluates_and_exports_with_statistics_fitted_by_streaming(cli, image_folders, tmp_path):
    train_dir, test_dir = image_folders
    recipe = image_recipe(tmp_path, train_dir, test_path=str(test_dir))
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    meta = json.loads((run / "preprocessing.json").read_text())
    assert meta["input_shape"] == [8, 8, 1] and meta["input_dtype"] == "uint8"
    assert meta["class_names"] == ["left", "middle", "right"]
    # The statistics streamed batch by batch over the files equal those of the same images in memory.
    from dlrecipe.data import preprocess
    x_train, _ = read_image_dir(train_dir)
    in_memory = preprocess.fit("standardize", x_train)
    np.testing.assert_allclose(meta["normalization"]["mean"], in_memory["mean"], rtol=1e-12)
    np.testing.assert_allclose(meta["normalization"]["std"], in_memory["std"], rtol=1e-10)

    result = cli("evaluate", run)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    import keras

    from dlrecipe import runs
    model = runs.load_model(run / "model.keras")
    x_test, y_test = read_image_dir(test_dir)
    predicted = np.argmax(model.predict(x_test.astype(np.float32), verbose=0), axis=1)
    assert metrics["n_test"] == 30
    assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted == y_test)))
    assert not any(isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix)) for layer in model.layers)

    result = cli("export", run)
    assert result.exit_code == 0, result.stderr
    import tensorflow as tf
    served = tf.saved_model.load(str(run / "export" / "saved_model" / "1")).signatures["serving_default"]
    out_probs = served(inputs=tf.constant(x_test))["probabilities"].numpy()
    np.testing.assert_allclose(out_probs, model.predict(x_test.astype(np.float32), verbose=0), atol=1e-5)


def test_image_dir_reads_pixels_from_disk_every_epoch_and_decodes_none_when_loading(image_folders, tmp_path,
                                                                                      monkeypatch):
    """Streaming, shown without timing: load decodes no pixel, and a second epoch sees files changed on disk."""
    import shutil

    from dlrecipe.data import pipeline
    from dlrecipe.recipe.schema import DataConfig
    folder = tmp_path / "copy"
    shutil.copytree(image_folders[0], folder)
    decoded = []
    original = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or original(self))
    ds = pipeline.load(DataConfig(source="image_dir", path=str(folder), validation_split=0.0), seed=0)
    assert decoded == []  # headers only: 60 files listed and checked, no image loaded into memory
    assert ds.train.n == 60 and pipeline.is_streamed(ds)
    batches = pipeline.streamed_batches(ds.train, 16, seed=0)
    first = np.concatenate([x for x, _ in batches.as_numpy_iterator()])
    assert first.shape == (60, 8, 8, 1) and first.max() > 200
    for f in folder.glob("*/*.png"):
        Image.fromarray(np.full((8, 8), 7, np.uint8), mode="L").save(f)
    second = np.concatenate([x for x, _ in batches.as_numpy_iterator()])
    assert np.all(second == 7)  # the same pipeline read the new files: nothing was cached in memory


@pytest.mark.parametrize("case", ["empty_class", "unreadable", "sizes", "no_subfolders", "a_file", "corrupt_data"])
def test_bad_image_folders_name_the_file_and_the_fix(cli, image_folders, tmp_path, case):
    import shutil
    folder = tmp_path / "data"
    shutil.copytree(image_folders[0], folder)
    extra: dict = {}
    if case == "empty_class":
        (folder / "zebra").mkdir()
        bad, expected = folder / "zebra", "holds no images"
    elif case == "unreadable":
        bad = folder / "left" / "0000.png"
        bad.write_bytes(b"this is not an image")
        expected = "cannot be read as an image"
    elif case == "sizes":
        bad = folder / "middle" / "0001.png"
        Image.fromarray(np.zeros((10, 12), np.uint8), mode="L").save(bad)
        expected = "data.image_size: [8, 8]"
    elif case == "no_subfolders":
        for f in list(folder.glob("*/*.png")):
            f.rename(folder / f"{f.parent.name}_{f.name}")
        for d in [p for p in folder.iterdir() if p.is_dir()]:
            d.rmdir()
        bad, expected = folder, "has no sub-folders"
    elif case == "a_file":
        bad = folder / "left" / "0000.png"
        folder = bad
        expected = "which is a file, not a folder"
    else:  # a valid header with truncated data: found while training
        bad = folder / "right" / "0002.png"
        bad.write_bytes(bad.read_bytes()[:60])
        expected = "cannot be decoded as an image"
        extra = {"normalize": "rescale"}  # nothing to fit: the file is first decoded inside fit
    recipe = image_recipe(tmp_path, folder, **extra)
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert expected in result.stderr and str(bad) in result.stderr and "Fix:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(out.glob("*/*")) if out.exists() else True  # no run folder left behind


# --------------------------------------------------------------------------- tfds


def tfds_recipe(tmp_path: Path, **data) -> Path:
    layers = [{"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": 3}, {"type": "Flatten"},
              {"type": "Dense", "units": 10, "activation": "softmax"}]
    recipe = recipe_dict(Path("unused.npz"), name="mock-mnist",
                         data={"source": "tfds", "name": "mnist", "data_dir": str(tmp_path / "tfds"),
                               "validation_split": 0.25, "normalize": "per_channel", **data},
                         model={"layers": layers}, train={"epochs": 1, "batch_size": 16})
    del recipe["data"]["path"]
    out = tmp_path / "tfds.yaml"
    return write_yaml(out, recipe)


def test_tfds_mock_data_trains_and_evaluates(cli, tmp_path, monkeypatch):
    import tensorflow_datasets as tfds
    # tfds's mock reads no files, so it reports the data set unprepared; it stands for a prepared one here.
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    out = tmp_path / "runs"
    with tfds.testing.mock_data(num_examples=40):
        result = cli("train", tfds_recipe(tmp_path, split={"train": "train", "test": "test"}), "--out", out,
                     "--evaluate")
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    meta = json.loads((run / "preprocessing.json").read_text())
    assert meta["input_shape"] == [28, 28, 1] and meta["class_names"] == [str(i) for i in range(10)]
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 2 and "val_loss" in rows[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 40 and len(metrics["confusion_matrix"]["matrix"]) == 10


@pytest.mark.parametrize("name, expected", [
    ("mnist", "is not prepared in"),
    ("mnistt", "Did you mean 'mnist'"),
])
def test_tfds_offline_errors_say_how_to_fix(cli, tmp_path, name, expected):
    out = tmp_path / "runs"
    result = cli("train", tfds_recipe(tmp_path, name=name), "--out", out)
    assert result.exit_code == 2, result.stderr
    assert expected in result.stderr and "data.name" in result.stderr
    if name == "mnist":
        assert f"tfds build mnist --data_dir {tmp_path / 'tfds'}" in result.stderr
    assert not out.exists() and not (tmp_path / "tfds").exists()  # nothing written, nothing downloaded


# --------------------------------------------------------------------------- MixUp / CutMix


def test_batch_level_augmentation_runs_in_the_pipeline_with_one_hot_labels(cli, write_recipe, tmp_path):
    layer = "MixUp"
    augment = [{"type": layer}, {"type": "RandomFlip", "mode": "horizontal"}]
    out = tmp_path / "runs"
    recipe = write_recipe(data={"augment": augment}, train={"epochs": 1, "batch_size": 16})
    result = cli("train", recipe, "--out", out, "--evaluate")
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["train"]["loss"] == "categorical_crossentropy"  # switched for the mixed one-hot labels
    from dlrecipe import runs
    model = runs.load_model(run / "model.keras")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert layer not in kinds and "RandomFlip" in kinds  # the mixer is not a model layer; the flip is
    assert json.loads((run / "metrics.json").read_text())["n_test"] == 30


def test_a_categorical_loss_with_label_smoothing_gets_one_hot_labels_in_training_and_evaluation(
        cli, write_recipe, tiny_npz, tmp_path):
    out = tmp_path / "runs"
    loss = {"type": "CategoricalCrossentropy", "label_smoothing": 0.2}
    recipe = write_recipe(train={"epochs": 1, "loss": loss, "metrics": ["sparse_categorical_accuracy"]})
    result = cli("train", recipe, "--out", out, "--evaluate")
    assert result.exit_code == 0, result.stderr  # integer labels, one-hot fed: no rank mismatch
    run = only_run(out)
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["train"]["loss"] == loss and resolved["train"]["metrics"] == ["categorical_accuracy"]
    from dlrecipe import runs
    model = runs.load_model(run / "model.keras")
    data = np.load(tiny_npz)
    probs = model.predict(data["x_test"], verbose=0)
    one_hot = np.eye(3, dtype=np.float32)[data["y_test"]]
    smoothed = float(keras_loss(0.2)(one_hot, probs))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["loss"] == pytest.approx(smoothed, rel=1e-4)  # the test split was scored one-hot, smoothed
    assert abs(metrics["loss"] - float(keras_loss(0.0)(one_hot, probs))) > 1e-3
    assert metrics["categorical_accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == data["y_test"])))


def test_a_misspelt_argument_of_the_categorical_loss_stops_train_with_its_recipe_path(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    recipe = write_recipe(train={"epochs": 1, "loss": {"type": "CategoricalCrossentropy", "label_smothing": 0.1}})
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 2, result.stderr
    assert "train.loss.label_smothing" in result.stderr and "Did you mean 'label_smoothing'?" in result.stderr
    assert "tiny.yaml" in result.stderr and not out.exists()  # the file named, nothing written


def keras_loss(label_smoothing: float):
    import keras
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)


@pytest.mark.parametrize("layer", [{"type": "MixUp", "alpha": 0.4}, {"type": "CutMix"}])
def test_mixing_batches_are_seeded_and_mix_labels(layer):
    from dlrecipe.data import pipeline
    a = tiny_arrays(40, 1)

    def first_batch(seed):
        mixers = pipeline.batch_level_layers([layer], seed)
        ds = pipeline.array_batches(a["x_train"], a["y_train"], 16, seed=seed, one_hot=3, mixers=mixers)
        return next(ds.as_numpy_iterator())

    x1, y1 = first_batch(3)
    x2, y2 = first_batch(3)
    x3, _ = first_batch(4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert y1.shape == (16, 3) and np.allclose(y1.sum(axis=1), 1.0)
    assert np.any((y1 > 0.01) & (y1 < 0.99))  # soft labels: examples were mixed


def test_array_pipeline_covers_every_example_once_per_epoch_reshuffled():
    from dlrecipe.data import pipeline
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    ds = pipeline.array_batches(x, np.arange(50), 8, seed=1)
    epochs = [np.concatenate([b for b, _ in ds.as_numpy_iterator()]).ravel() for _ in range(2)]
    for e in epochs:
        assert sorted(e.tolist()) == list(range(50))
    assert not np.array_equal(epochs[0], epochs[1])
    again = np.concatenate([b for b, _ in pipeline.array_batches(x, np.arange(50), 8, seed=1)
                            .as_numpy_iterator()]).ravel()
    np.testing.assert_array_equal(again, epochs[0])  # seeded


@pytest.mark.parametrize("kind", ["minmax", "standardize", "per_channel"])
def test_statistics_over_batches_equal_those_over_the_array(kind):
    from dlrecipe.data import preprocess
    x = np.random.default_rng(0).integers(0, 255, size=(70, 5, 4, 3)).astype(np.uint8)
    whole = preprocess.fit(kind, x)
    streamed = preprocess.fit(kind, iter([x[i:i + 16] for i in range(0, 70, 16)]))
    for key in whole:
        if key != "kind":
            np.testing.assert_allclose(streamed[key], whole[key], rtol=1e-10)


def test_image_size_resizes_files_of_any_size_and_color_mode_converts(tmp_path):
    from dlrecipe.data import pipeline
    from dlrecipe.data import source as data
    from dlrecipe.recipe.schema import DataConfig
    for i, (h, w) in enumerate([(8, 8), (10, 12), (5, 7)]):
        folder = tmp_path / ("a" if i % 2 == 0 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(np.full((h, w), 40 * (i + 1), np.uint8), mode="L").save(folder / f"{i}.png")
    cfg = DataConfig(source="image_dir", path=str(tmp_path), validation_split=0.0, image_size=[6, 4],
                     color_mode="rgb")
    info = data.peek(cfg)
    assert info.input_shape == (6, 4, 3) and info.class_names == ["a", "b"]
    ds = pipeline.load(cfg, seed=0)
    x, y = next(pipeline.streamed_batches(ds.train, 8).as_numpy_iterator())
    assert x.shape == (3, 6, 4, 3) and x.dtype == np.uint8
    # files are listed per class, sorted: a/0.png, a/2.png, b/1.png; a constant image stays constant when resized
    np.testing.assert_array_equal(x.reshape(3, -1).max(axis=1), [40, 120, 80])
    np.testing.assert_array_equal(x.reshape(3, -1).min(axis=1), [40, 120, 80])
    np.testing.assert_array_equal(y, [0, 0, 1])


def test_validate_peeks_an_image_dir_without_reading_every_file(cli, image_folders, tmp_path):
    import shutil
    folder = tmp_path / "data"
    shutil.copytree(image_folders[0], folder)
    (folder / "right" / "0059.png").write_bytes(b"broken, but validate reads only the first image")
    result = cli("validate", image_recipe(tmp_path, folder))
    assert result.exit_code == 0, result.stderr
    assert "Input (8, 8, 1) uint8, task classification, 3 classes" in result.stdout
