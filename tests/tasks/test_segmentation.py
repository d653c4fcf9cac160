"""Segmentation end to end: masks in an .npz, a small encoder-decoder with a skip connection,
per-pixel evaluation (IoU) and export (class_id per pixel)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import recipe_dict, write_yaml

CLASSES = ["background", "bar", "block"]


def seg_arrays(n_train: int = 64, n_test: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """8x8 grey images: a bright vertical bar (class 1) and a bright 2x2 block (class 2) on noise."""
    rng = np.random.default_rng(seed)

    def make(n):
        x = rng.integers(0, 60, size=(n, 8, 8, 1))
        y = np.zeros((n, 8, 8), dtype=np.uint8)
        for i in range(n):
            col = rng.integers(0, 3)
            y[i, :, col] = 1
            r, c = rng.integers(0, 7), rng.integers(4, 7)
            y[i, r:r + 2, c:c + 2] = 2
        x[..., 0] += np.where(y > 0, 170, 0)
        return x.astype(np.uint8), y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "class_names": np.array(CLASSES)}


# conv (named enc) -> pool -> conv -> upsample back -> concatenate with enc -> per-pixel softmax
SEG_MODEL = [
    {"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu", "name": "enc"},
    {"type": "MaxPooling2D", "pool_size": 2},
    {"type": "Conv2D", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "upsample", "mode": "transpose", "factor": 2, "filters": 6, "name": "up"},
    {"type": "Concatenate", "inputs": ["up", "enc"]},
    {"type": "Conv2D", "filters": 3, "kernel_size": 1, "activation": "softmax"},
]


def write_seg(tmp_path: Path, arrays: dict | None = None, name: str = "seg", **sections) -> Path:
    npz = tmp_path / f"{name}.npz"
    np.savez(npz, **(arrays if arrays is not None else seg_arrays()))
    recipe = recipe_dict(npz, name=name, model={"layers": SEG_MODEL}, **sections)
    path = tmp_path / f"{name}.yaml"
    return write_yaml(path, recipe)


def test_segmentation_trains_evaluates_iou_and_exports_class_ids_per_pixel(cli, tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_seg(tmp_path, train={"epochs": 2, "learning_rate": 0.02}), "--out", out)
    assert result.exit_code == 0, result.stderr
    run = next(out.glob("seg/*"))
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())["train"]
    assert resolved["loss"] == "sparse_categorical_crossentropy"
    assert resolved["metrics"] == ["accuracy", {"type": "MeanIoU", "num_classes": 3, "sparse_y_pred": False,
                                                "name": "mean_iou"}]
    assert json.loads((run / "preprocessing.json").read_text())["task"] == "segmentation"

    result = cli("evaluate", run)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    from dlrecipe.runs import load_model
    model = load_model(run / "model.keras")
    data = seg_arrays()
    probabilities = model.predict(data["x_test"].astype("float32"), verbose=0)
    assert probabilities.shape == (16, 8, 8, 3)
    predicted, truth = probabilities.argmax(axis=-1), data["y_test"]
    assert metrics["task"] == "segmentation" and metrics["n_test"] == 16
    assert metrics["accuracy"] == pytest.approx(float((predicted == truth).mean()), abs=1e-6)
    ious = []
    for c, name in enumerate(CLASSES):
        tp = np.sum((predicted == c) & (truth == c))
        union = np.sum((predicted == c) | (truth == c))
        iou = tp / union if union else 0.0
        assert metrics["per_class"][name]["iou"] == pytest.approx(iou, abs=1e-6)
        assert metrics["per_class"][name]["support"] == int(np.sum(truth == c))
        if union:
            ious.append(iou)
    assert metrics["mean_iou"] == pytest.approx(float(np.mean(ious)), abs=1e-6)
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == 16 * 8 * 8 and np.trace(matrix) == int((predicted == truth).sum())
    assert "IoU" in result.stdout and f"Test accuracy: {metrics['accuracy']:.4f}" in result.stdout
    assert (run / "plots" / "segmentation_examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    result = cli("export", run)
    assert result.exit_code == 0, result.stderr
    assert "verified" in result.stdout
    import tensorflow as tf
    serve = tf.saved_model.load(str(run / "export" / "saved_model" / "1")).signatures["serving_default"]
    served = serve(inputs=tf.constant(data["x_test"]))  # raw uint8 in
    assert served["class_id"].shape == (16, 8, 8)
    np.testing.assert_array_equal(served["class_id"].numpy(), predicted)
    np.testing.assert_allclose(served["probabilities"].numpy(), probabilities, atol=1e-5)
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert verification["class_names"] == CLASSES
    assert verification["signature"]["outputs"] == ["probabilities", "class_id"]


def test_segmentation_is_inferred_from_masks_and_explicit_task_takes_float_masks(cli, tmp_path):
    result = cli("validate", write_seg(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "task segmentation, 3 classes" in result.stdout

    arrays = seg_arrays()
    for key in ("y_train", "y_test"):  # (N, H, W, 1) floats holding whole numbers
        arrays[key] = arrays[key][..., None].astype(np.float32)
    del arrays["class_names"]
    path = write_seg(tmp_path, arrays, name="floats", data={"task": "segmentation"})
    result = cli("validate", path)
    assert result.exit_code == 0, result.stderr
    assert "task segmentation, 3 classes" in result.stdout


@pytest.mark.parametrize("key, shape", [("y_train", (64, 4, 4)), ("y_test", (16, 8, 7, 1))])
def test_masks_of_another_size_than_the_images_fail_before_anything_is_written(cli, tmp_path, key, shape):
    arrays = seg_arrays()
    arrays[key] = np.zeros(shape, dtype=np.uint8)
    path = write_seg(tmp_path, arrays)
    out = tmp_path / "runs"
    result = cli("train", path, "--out", out)
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "data.path" in err and str(tmp_path / "seg.npz") in err
    assert f"masks '{key}'" in err and f"of shape {shape}" in err
    x_key = key.replace("y", "x")
    assert f"Expected one class index per pixel: masks of shape ({shape[0]}, 8, 8)" in err
    assert "Fix: save masks of the images' size" in err and x_key in err
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_model_without_per_pixel_outputs_is_refused_at_its_last_layer(cli, tmp_path):
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
              {"type": "MaxPooling2D", "pool_size": 2},
              {"type": "Conv2D", "filters": 3, "kernel_size": 1, "activation": "softmax"}]
    npz = tmp_path / "seg.npz"
    np.savez(npz, **seg_arrays())
    path = tmp_path / "half.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(npz, model={"layers": layers})))
    result = cli("validate", path)
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "model.layers[2]" in err and "height and width (4, 4), but the images are (8, 8)" in err
    assert "Upsample" in err


def test_segmentation_splits_are_seeded_random_and_keep_images_with_their_masks(tmp_path):
    from dlrecipe.data.source import load
    from dlrecipe.recipe.schema import DataConfig

    arrays = seg_arrays()
    del arrays["x_test"], arrays["y_test"]
    npz = tmp_path / "notest.npz"
    np.savez(npz, **arrays)
    cfg = DataConfig(source="npz", path=str(npz), subset=50, test_split=0.2, validation_split=0.25)
    ds = load(cfg, seed=3)
    assert ds.info.task == "segmentation" and ds.info.class_names == CLASSES
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (30, 10, 10)
    assert ds.y_train.shape == (30, 8, 8) and ds.y_train.dtype == np.int32
    # every split row is an original (image, mask) pair of the first 50 examples, each used once
    index = {arrays["x_train"][i].tobytes(): i for i in range(64)}
    used = []
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        rows = [index[row.tobytes()] for row in x]
        np.testing.assert_array_equal(y, arrays["y_train"][rows])
        used += rows
    assert sorted(used) == list(range(50))
    again = load(cfg, seed=3)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    other = load(cfg, seed=4)
    assert not np.array_equal(other.x_test, ds.x_test)


# --------------------------------------------------------------------------- augmentation (issue 4)


def coded_arrays(n: int = 24, seed: int = 3) -> dict[str, np.ndarray]:
    """8x8 images whose pixel value encodes the class (class * 80), so mask == image / 80 must hold after any
    geometric augmentation that moves image and mask together. Shapes sit off-centre, so flips move them."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 8, 8), dtype=np.uint8)
    for i in range(n):
        y[i, :, rng.integers(0, 3)] = 1
        r = rng.integers(0, 6)
        y[i, r:r + 2, 5:7] = 2
    x = (y[..., None] * 80).astype(np.uint8)
    return {"x_train": x, "y_train": y, "x_test": x[:8], "y_test": y[:8], "class_names": np.array(CLASSES)}


def train_batches(path: Path, **overrides):
    """The (image, mask) training batches that ``model.fit`` would get for the recipe at ``path``."""
    from dlrecipe.build.compile import finalize
    from dlrecipe.data import pipeline
    from dlrecipe.recipe.loader import load_recipe
    recipe = load_recipe(path, []).recipe
    ds = pipeline.load(recipe.data, recipe.seed)
    recipe = finalize(recipe, ds.info.task, ds.info.n_classes)
    inputs = pipeline.fit_inputs(ds, recipe, ds.info.n_classes)
    return list(inputs["x"].as_numpy_iterator())


def test_segmentation_geometric_augmentation_moves_masks_with_images_reproducibly(tmp_path):
    geometric = [{"type": "RandomFlip", "mode": "horizontal"},
                 {"type": "RandomTranslation", "height_factor": 0.3, "width_factor": 0.3, "interpolation": "nearest",
                  "fill_mode": "constant"},
                 {"type": "RandomRotation", "factor": 0.25, "interpolation": "nearest"}]
    path = write_seg(tmp_path, coded_arrays(), data={"augment": geometric, "validation_split": 0.0,
                                                     "normalize": "none"})
    batches = train_batches(path)
    plain = train_batches(write_seg(tmp_path, coded_arrays(), name="plain",
                                    data={"validation_split": 0.0, "normalize": "none"}))
    moved = 0
    for (x, mask), (x0, mask0) in zip(batches, plain, strict=True):
        assert mask.dtype == np.int32 and mask.shape == mask0.shape == x.shape[:3]
        np.testing.assert_array_equal(mask, np.rint(x[..., 0] / 80).astype(np.int32))  # mask == f(image)
        moved += int(np.sum(np.any(mask != mask0, axis=(1, 2))))
    assert moved >= 12  # most masks were moved, not only kept
    again = train_batches(path)  # the derived seeds make the batches repeat
    for (x, mask), (x2, mask2) in zip(batches, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(mask, mask2)


def test_segmentation_photometric_augmentation_leaves_masks_and_model_holds_no_augmentation(cli, tmp_path):
    photometric = [{"type": "RandomBrightness", "factor": 0.5}, {"type": "gaussian_noise", "stddev": 0.1}]
    data = {"validation_split": 0.0, "normalize": "none"}
    path = write_seg(tmp_path, data={**data, "augment": photometric}, train={"epochs": 1})
    plain = train_batches(write_seg(tmp_path, name="plain", data=data))
    for (x, mask), (x0, mask0) in zip(train_batches(path), plain, strict=True):
        np.testing.assert_array_equal(mask, mask0)
        assert not np.allclose(x, x0)

    out = tmp_path / "runs"
    augment = photometric + [{"type": "RandomFlip", "mode": "horizontal"}]
    result = cli("train", write_seg(tmp_path, name="both", data={"augment": augment}, train={"epochs": 1}),
                 "--out", out)
    assert result.exit_code == 0, result.stderr
    from dlrecipe.runs import load_model
    model = load_model(next(out.glob("both/*")) / "model.keras")
    kinds = {type(layer).__name__ for layer in model._flatten_layers()}
    assert not kinds & {"RandomBrightness", "ScaledGaussianNoise", "RandomFlip"}, kinds
    assert "Conv2D" in kinds


def test_validate_refuses_augmentations_that_cannot_follow_masks(cli, tmp_path):
    augment = [{"type": "RandomFlip"}, {"type": "elastic", "probability": 0.5}, {"type": "mixup"},
               {"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1, "fill_mode": "constant",
                "fill_value": 255.0}, {"type": "RandomCrop", "height": 6, "width": 6}]
    path = write_seg(tmp_path, data={"augment": augment})
    for args in (("validate", path), ("train", path, "--out", tmp_path / "runs")):
        result = cli(*args)
        assert result.exit_code == 2, result.stdout
        text = result.stdout + result.stderr
        assert "data.augment[0]" not in text
        assert "data.augment[1]" in text and "RandomElasticTransform" in text and "no longer match" in text
        assert "data.augment[2]" in text and "mixup (MixUp)" in text
        assert "data.augment[3].fill_value" in text and "fill_value: 0" in text
        assert "data.augment[4]" in text and "changes the image size" in text
    assert not (tmp_path / "runs").exists()


def test_augment_preview_of_segmentation_shows_masks_under_images(cli, tmp_path):
    path = write_seg(tmp_path, coded_arrays(), data={"augment": [{"type": "RandomFlip", "mode": "horizontal"}]})
    out = tmp_path / "preview.png"
    result = cli("augment-preview", path, "--out", out, "--n", 4, "--rows", 2)
    assert result.exit_code == 0, result.stderr
    import matplotlib.image
    grid = (matplotlib.image.imread(out)[..., :3] * 255).round().astype(np.int64)
    tile, gap = 64, 2  # 8x8 images enlarged 8 times
    assert grid.shape[:2] == (6 * tile + 5 * gap, 4 * tile + 3 * gap)  # (1 + 2 passes) x (image row, mask row)
    from matplotlib import colormaps
    palette = (np.asarray(colormaps["tab10"].colors) * 255).round().astype(np.int64)
    for r in range(3):
        images = grid[2 * r * (tile + gap):][:tile]
        masks = grid[(2 * r + 1) * (tile + gap):][:tile]
        for i in range(4):
            image = images[:, i * (tile + gap):][:, :tile, 0]
            mask = masks[:, i * (tile + gap):][:, :tile]
            # each mask pixel has its class colour, the class the image pixel encodes (value = class * 80)
            np.testing.assert_array_equal(mask, palette[np.rint(image / 80).astype(np.int64)])
