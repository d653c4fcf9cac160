"""``dlrecipe predict`` end to end: images, .npz and .csv in, the served model's classes out, bad input exit 2."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import recipe_dict, tiny_arrays, write_yaml

NAMES = ["left", "middle", "right"]


def invoke(*args):
    from dlrecipe.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """A tiny trained and exported run, its test images as PNGs (in class folders) and as an .npz."""
    folder = tmp_path_factory.mktemp("predict")
    arrays = tiny_arrays()
    np.savez(folder / "tiny.npz", **arrays)
    result = invoke("train", write_yaml(folder / "tiny.yaml", recipe_dict(folder / "tiny.npz", train={"epochs": 1})),
                    "--out", folder / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = next((folder / "runs" / "tiny").iterdir())
    x = arrays["x_test"]
    pngs = []
    for i, (image, label) in enumerate(zip(x, arrays["y_test"])):
        (folder / "pngs" / NAMES[label]).mkdir(parents=True, exist_ok=True)
        pngs.append(folder / "pngs" / NAMES[label] / f"{i:03d}.png")
        Image.fromarray(image[:, :, 0]).save(pngs[-1])
    np.savez(folder / "new.npz", x=x)
    unexported = folder / "unexported"
    shutil.copytree(run_dir, unexported)
    assert invoke("export", run_dir).exit_code == 0
    import tensorflow as tf
    serve = tf.saved_model.load(str(run_dir / "export" / "saved_model" / "1")).signatures["serving_default"]
    served = serve(inputs=tf.constant(x))
    return {"dir": run_dir, "folder": folder, "x": x, "pngs": pngs, "unexported": unexported,
            "probabilities": served["probabilities"].numpy(),
            "classes": [n.decode() for n in served["class_name"].numpy()]}


def test_predict_images_and_npz_match_the_saved_model_in_plain_tensorflow(run, tmp_path):
    out = tmp_path / "preds.csv"
    result = invoke("predict", run["dir"].parent, run["folder"] / "pngs", run["folder"] / "new.npz",
                    "--out", out, "--top-k", "2", "--batch", "7")
    assert result.exit_code == 0, result.stderr
    assert "saved_model/1" in result.stdout and f"Wrote {2 * len(run['x'])} prediction(s)" in result.stdout
    rows = read_csv(out)
    assert list(rows[0]) == ["input", "class", "probability", "class_2", "probability_2"]
    images, arrays = rows[:len(run["x"])], rows[len(run["x"]):]
    index = [int(Path(r["input"]).stem) for r in images]  # folders are read in sorted order
    assert [r["input"] for r in images] == sorted(str(p) for p in run["pngs"])
    assert [r["class"] for r in images] == [run["classes"][i] for i in index]
    assert [r["input"] for r in arrays] == [f"{run['folder'] / 'new.npz'}[{i}]" for i in range(len(run["x"]))]
    assert [r["class"] for r in arrays] == run["classes"]
    p = run["probabilities"]
    np.testing.assert_allclose([float(r["probability"]) for r in arrays], p.max(axis=1), rtol=1e-5)
    second = np.sort(p, axis=1)[:, -2]
    np.testing.assert_allclose([float(r["probability_2"]) for r in arrays], second, rtol=1e-5)
    assert all(r["class_2"] in NAMES and r["class_2"] != r["class"] for r in rows)


def test_predict_on_a_run_without_export_uses_the_same_serving_function(run, tmp_path):
    out = tmp_path / "p.csv"
    result = invoke("predict", run["unexported"], run["folder"] / "new.npz", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "model.keras" in result.stdout and not (run["unexported"] / "export").exists()
    rows = read_csv(out)
    assert list(rows[0]) == ["input", "class", "probability"]
    assert [r["class"] for r in rows] == run["classes"]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], run["probabilities"].max(axis=1), rtol=1e-5)


def test_predict_on_an_export_folder(run, tmp_path):
    out = tmp_path / "p.csv"
    result = invoke("predict", run["dir"] / "export", run["pngs"][0], "--out", out)
    assert result.exit_code == 0, result.stderr
    assert [r["input"] for r in read_csv(out)] == [str(run["pngs"][0])]


@pytest.mark.parametrize("case", ["size", "shape", "garbage", "missing", "csv", "keys", "scaled", "top_k",
                                  "not_npz"])
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(run, tmp_path, case):
    bad = {"size": tmp_path / "big.png", "shape": tmp_path / "shape.npz", "garbage": tmp_path / "broken.png",
           "missing": tmp_path / "nope.png", "csv": tmp_path / "rows.csv", "keys": tmp_path / "keys.npz",
           "scaled": tmp_path / "scaled.npz", "top_k": run["folder"] / "new.npz",
           "not_npz": tmp_path / "broken.npz"}[case]
    expected = {"size": "Expected 8x8", "shape": "Expected (n, 8, 8, 1)", "garbage": "cannot be read as an image",
                "missing": "does not exist", "csv": "takes arrays of shape (batch, 8, 8, 1) uint8",
                "keys": "Expected an array named x or x_test", "scaled": "not whole numbers in [0, 255]",
                "top_k": "at most 3", "not_npz": "is not an .npz (zip) archive"}[case]
    if case == "size":
        Image.fromarray(np.zeros((9, 8), np.uint8)).save(bad)
    elif case == "shape":
        np.savez(bad, x=np.zeros((2, 8, 9, 1), np.uint8))
    elif case == "garbage":
        bad.write_bytes(b"\x89PNG not really")
    elif case == "csv":
        bad.write_text("a,b\n1,2\n")
    elif case == "keys":
        np.savez(bad, images=np.zeros((2, 8, 8, 1), np.uint8))
    elif case == "not_npz":
        bad.write_bytes(b"PK\x03\x04 not really")
    elif case == "scaled":
        np.savez(bad, x=np.full((2, 8, 8, 1), 0.5, np.float32))
    out = tmp_path / "out" / "preds.csv"
    result = invoke("predict", run["dir"], run["pngs"][0], bad, "--out", out, *(["--top-k", "4"] if case == "top_k"
                                                                               else []))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert expected in result.stderr and (case == "top_k" or str(bad) in result.stderr), result.stderr
    assert not out.exists() and not out.parent.exists()


def test_predict_csv_rows_with_blanks_through_the_raw_column_signature(tmp_path):
    header = ["size", "colour", "weight", "kind"]
    colours, kinds = ["red", "green", "blue"], ["ant", "bee", "cat"]
    rng = np.random.default_rng(0)
    body = [[f"{(i % 3) * 2.0 + rng.normal(0, 0.3):.3f}", colours[i % 3], f"{10 + rng.normal():.2f}", kinds[i % 3]]
            for i in range(60)]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    recipe = {"name": "tab", "seed": 3, "data": {"source": "csv", "path": str(tmp_path / "train.csv"),
                                                 "label": "kind", "validation_split": 0.2, "test_split": 0.2},
              "model": {"layers": [{"type": "Dense", "units": 3, "activation": "softmax"}]},
              "train": {"epochs": 1, "batch_size": 16}}
    result = invoke("train", write_yaml(tmp_path / "tab.yaml", recipe), "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    new = tmp_path / "new.csv"
    new.write_text("colour,size,weight,note\nred,0.1,10,x\n,4.0,,y\nviolet,,9.5,z\n")  # blanks, an unseen colour
    out = tmp_path / "p.csv"
    result = invoke("predict", tmp_path / "runs" / "tab", new, "--out", out, "--top-k", "3")
    assert result.exit_code == 0, result.stderr
    rows = read_csv(out)
    assert [r["input"] for r in rows] == [f"{new}#2", f"{new}#3", f"{new}#4"]  # file line; the header is line 1
    assert all({r["class"], r["class_2"], r["class_3"]} == set(kinds) for r in rows)
    assert all(abs(sum(float(r[k]) for k in ("probability", "probability_2", "probability_3")) - 1) < 1e-4
               for r in rows)
    missing = tmp_path / "missing.csv"
    missing.write_text("colour,weight\nred,10\n")
    result = invoke("predict", tmp_path / "runs" / "tab", missing, "--out", tmp_path / "q.csv")
    assert result.exit_code == 2 and "missing: ['size']" in result.stderr and str(missing) in result.stderr
    assert not (tmp_path / "q.csv").exists()
