"""``dlrecipe predict`` on regression and segmentation runs, end to end through the CLI.

The CSV's values (regression) and the mask PNGs (segmentation) are checked against the model computed by
hand: the run's ``model.keras`` loaded with Keras, and the exported SavedModel called from plain TensorFlow.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import recipe_dict, tiny_arrays, write_yaml

SHAPES = Path(__file__).resolve().parents[2] / "data" / "shapes_32x32.npz"


def invoke(*args):
    from dlrecipe.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def train(folder: Path, name: str, arrays: dict, layers: list[dict]) -> Path:
    np.savez(folder / f"{name}.npz", **arrays)
    recipe = recipe_dict(folder / f"{name}.npz", name=name, train={"epochs": 1}, model={"layers": layers})
    result = invoke("train", write_yaml(folder / f"{name}.yaml", recipe), "--out", folder / "runs")
    assert result.exit_code == 0, result.stderr
    return next((folder / "runs" / name).iterdir())


def by_hand(run_dir: Path, x: np.ndarray) -> np.ndarray:
    """The trained model on raw pixels, as the served graph feeds it (uint8 cast to float32)."""
    from dlrecipe import runs
    return np.asarray(runs.load_model(run_dir / runs.MODEL).predict(x.astype(np.float32), verbose=0))


def saved_model(run_dir: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf
    serve = tf.saved_model.load(str(run_dir / "export" / "saved_model" / "1")).signatures["serving_default"]
    return {k: v.numpy() for k, v in serve(inputs=tf.constant(x)).items()}


@pytest.fixture(scope="module")
def regression(tmp_path_factory) -> dict:
    """Two tiny regression runs on 8x8 images: one target (mean brightness) and two (mean, spread)."""
    folder = tmp_path_factory.mktemp("regression")
    a = tiny_arrays()

    def targets(x, width):
        stats = [x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3))][:width]
        return np.stack(stats, axis=1).astype(np.float32).reshape(len(x), -1).squeeze() / 255
    made = {}
    for width in (1, 2):
        arrays = {"x_train": a["x_train"], "y_train": targets(a["x_train"], width),
                  "x_test": a["x_test"], "y_test": targets(a["x_test"], width)}
        made[width] = train(folder, f"reg{width}", arrays, [{"type": "Flatten"}, {"type": "Dense", "units": width}])
    np.savez(folder / "new.npz", x=a["x_test"])
    return {"folder": folder, "runs": made, "x": a["x_test"]}


@pytest.mark.parametrize("width", [1, 2])
def test_regression_predict_writes_the_models_values_as_columns(regression, tmp_path, width):
    run_dir, x = regression["runs"][width], regression["x"]
    expected = by_hand(run_dir, x).reshape(len(x), -1)
    columns = ["prediction"] if width == 1 else ["prediction_1", "prediction_2"]

    out = tmp_path / "from_run.csv"  # the run without an export: model.keras through the serving function
    result = invoke("predict", run_dir, regression["folder"] / "new.npz", "--out", out, "--batch", "7")
    assert result.exit_code == 0, result.stderr
    rows = read_csv(out)
    assert list(rows[0]) == ["input", *columns]
    assert [r["input"] for r in rows] == [f"{regression['folder'] / 'new.npz'}[{i}]" for i in range(len(x))]
    got = np.array([[float(r[c]) for c in columns] for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(got, axis=0).min() > 0  # the rows differ: not one value repeated

    assert invoke("export", run_dir).exit_code == 0
    out = tmp_path / "from_export.csv"
    result = invoke("predict", run_dir, regression["folder"] / "new.npz", "--out", out)
    assert result.exit_code == 0 and "saved_model/1" in result.stdout, result.stderr
    served = saved_model(run_dir, x)["predictions"].reshape(len(x), -1)
    got = np.array([[float(r[c]) for c in columns] for r in read_csv(out)])
    np.testing.assert_allclose(got, served, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_regression_predict_refuses_top_k(regression, tmp_path):
    out = tmp_path / "p.csv"
    result = invoke("predict", regression["runs"][1], regression["folder"] / "new.npz", "--out", out, "--top-k", "2")
    assert result.exit_code == 2 and "for a regression model" in result.stderr, result.stderr
    assert not out.exists()


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory) -> dict:
    """A tiny segmentation run (two convolutions) on 48 images of data/shapes_32x32.npz, exported."""
    folder = tmp_path_factory.mktemp("segmentation")
    d = np.load(SHAPES)
    arrays = {"x_train": d["x_train"][:48], "y_train": d["y_train"][:48], "x_test": d["x_test"][:6],
              "y_test": d["y_test"][:6], "class_names": d["class_names"]}
    run_dir = train(folder, "seg", arrays, [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "Conv2D", "filters": 4, "kernel_size": 1, "activation": "softmax"}])
    x = arrays["x_test"]
    (folder / "pngs").mkdir()
    pngs = []
    for i, image in enumerate(x):
        pngs.append(folder / "pngs" / f"shape{i}.png")
        Image.fromarray(image[:, :, 0]).save(pngs[-1])
    np.savez(folder / "new.npz", x=x)
    return {"folder": folder, "dir": run_dir, "x": x, "pngs": pngs}


def read_masks(out: Path) -> tuple[list[dict], np.ndarray]:
    rows = read_csv(out)
    masks = []
    for r in rows:
        with Image.open(out.parent / r["mask"]) as image:
            masks.append(np.asarray(image))
    return rows, np.stack(masks)


def test_segmentation_predict_writes_a_mask_png_per_image(segmentation, tmp_path):
    seg, x = segmentation, segmentation["x"]
    probabilities = by_hand(seg["dir"], x)
    expected = probabilities.argmax(axis=-1)
    assert probabilities.shape == (len(x), 32, 32, 4) and len(np.unique(expected)) > 1

    out = tmp_path / "preds" / "seg.csv"
    result = invoke("predict", seg["dir"], seg["folder"] / "pngs", seg["folder"] / "new.npz", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert f"Masks: {tmp_path / 'preds' / 'seg_masks'}/" in result.stdout
    rows, masks = read_masks(out)
    assert list(rows[0]) == ["input", "mask"]
    assert [r["input"] for r in rows] == [str(p) for p in seg["pngs"]] + \
        [f"{seg['folder'] / 'new.npz'}[{i}]" for i in range(len(x))]
    assert [r["mask"] for r in rows[:2]] == ["seg_masks/000001_shape0.png", "seg_masks/000002_shape1.png"]
    assert masks.shape == (2 * len(x), 32, 32) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks[:len(x)], expected)  # PNG decoding in the graph = the raw pixels
    np.testing.assert_array_equal(masks[len(x):], expected)
    assert sorted(p.name for p in out.parent.iterdir()) == ["seg.csv", "seg_masks"]  # no temp files left

    assert invoke("export", seg["dir"]).exit_code == 0
    np.testing.assert_array_equal(saved_model(seg["dir"], x)["class_id"], expected)
    again = invoke("predict", seg["dir"], seg["pngs"][3], "--out", out)  # the export now; masks replaced
    assert again.exit_code == 0 and "saved_model/1" in again.stdout, again.stderr
    rows, masks = read_masks(out)
    assert [r["mask"] for r in rows] == ["seg_masks/000001_shape3.png"]
    assert sorted(p.name for p in (out.parent / "seg_masks").iterdir()) == ["000001_shape3.png"]
    np.testing.assert_array_equal(masks[0], expected[3])


def test_segmentation_predict_with_a_bad_image_writes_no_csv_and_no_masks(segmentation, tmp_path):
    import io
    buf = io.BytesIO()
    Image.fromarray(segmentation["x"][0, :, :, 0]).save(buf, format="PNG")
    truncated = tmp_path / "truncated.png"  # a valid header: the error comes while streaming
    truncated.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    out = tmp_path / "out" / "seg.csv"
    result = invoke("predict", segmentation["dir"], *segmentation["pngs"], truncated, "--out", out)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert str(truncated) in result.stderr and "cannot be decoded as an image" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
