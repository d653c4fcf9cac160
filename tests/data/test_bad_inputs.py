"""Inputs refused before anything is written: NaN or inf in an npz, a data.path that is not a regular file,
an empty --out, and image files broken past their header or truncated."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from conftest import recipe_dict, tiny_arrays, write_yaml


@pytest.mark.parametrize("key, value, index, kind", [("x_train", np.nan, 7, "NaN"), ("x_test", np.inf, 3,
                                                                                      "an infinite value")])
def test_an_npz_input_holding_nan_or_inf_is_refused_naming_the_array_and_example(cli, tmp_path, key, value, index,
                                                                                 kind):
    arrays = tiny_arrays(n_train=60, n_test=10)
    arrays[key] = arrays[key].astype(np.float32)
    arrays[key][index, 2, 3, 0] = value
    arrays[key][index + 1, 0, 0, 0] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    recipe = write_yaml(tmp_path / "bad.yaml", recipe_dict(tmp_path / "bad.npz", train={"epochs": 1}))
    out = tmp_path / "runs"
    result = cli("train", recipe, "--out", out)
    assert result.exit_code == 2
    assert f"whose array '{key}' holds {kind} at example {index} (2 example(s) hold NaN or inf)" in result.stderr
    assert "data.path" in result.stderr and not out.exists()


def test_a_data_path_that_is_a_device_is_refused(cli, tmp_path):
    recipe = write_yaml(tmp_path / "dev.yaml", recipe_dict(tmp_path / "x.npz", data={"path": "/dev/zero"}))
    result = cli("validate", recipe)
    assert result.exit_code == 2
    assert "data.path" in result.stderr and "/dev/zero, which is not a regular file" in result.stderr


def test_an_empty_out_is_refused_and_nothing_lands_in_the_current_folder(cli, write_recipe, tmp_path, monkeypatch):
    recipe = write_recipe()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = cli("train", recipe, "--out", "")
    assert result.exit_code == 2
    assert "Invalid value for '--out': Received an empty folder" in result.stderr
    assert os.listdir(here) == []


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("damage", ["garbage past the header", "truncated"])
def test_a_broken_image_is_found_before_anything_is_written(cli, tmp_path, damage):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(6):
            (folder / c / f"{i}.png").write_bytes(_png(rng.integers(0, 255, (8, 8), dtype=np.uint8)))
    good = (folder / "b" / "4.png").read_bytes()
    broken = good[:40] + bytes(rng.integers(0, 255, len(good) - 40, dtype=np.uint8)) \
        if damage == "garbage past the header" else good[: len(good) // 2]
    (folder / "b" / "4.png").write_bytes(broken)
    recipe = recipe_dict(tmp_path / "unused.npz", data={"source": "image_dir", "path": str(folder),
                                                        "validation_split": 0.25, "normalize": "rescale"},
                         train={"epochs": 1, "batch_size": 4})
    recipe["model"]["layers"][-1]["units"] = 2
    out = tmp_path / "runs"
    result = cli("train", write_yaml(tmp_path / "images.yaml", recipe), "--out", out)
    assert result.exit_code == 2, result.stdout
    assert f"{folder / 'b' / '4.png'}, which cannot" in result.stderr and "nothing was written" in result.stderr
    assert not out.exists(), (result.stderr, sorted(out.rglob("*")))


def test_missing_fashion_mnist_files_are_blamed_on_data_source_with_the_package_and_folder(cli, tmp_path,
                                                                                            monkeypatch):
    from dlrecipe.data.sources import idx
    monkeypatch.setattr(idx, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "no-system-copy")
    monkeypatch.setattr(idx, "PROJECT_ROOT", tmp_path / "clone")
    recipe = recipe_dict(tmp_path / "unused.npz", data={"source": "fashion_mnist", "validation_split": 0.1})
    del recipe["data"]["path"]
    result = cli("validate", write_yaml(tmp_path / "fm.yaml", recipe))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: data.source (")  # the recipe has no data.path to blame
    assert "dataset-fashion-mnist" in result.stderr and str(tmp_path / "clone" / "data" / "fashion-mnist") \
        in result.stderr and "recipes/quickstart.yaml" in result.stderr
    # With data.path set, the problem is that folder.
    recipe["data"]["path"] = str(tmp_path / "elsewhere")
    result = cli("validate", write_yaml(tmp_path / "fm.yaml", recipe))
    assert result.exit_code == 2 and result.stderr.startswith("error: data.path (")
