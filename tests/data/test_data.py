"""Tests of dlrecipe.data (loading, labels, splits) and dlrecipe.preprocess (fitted normalization).

Everything runs on tiny synthetic files written to tmp_path. Keras is imported
only inside the tests of ``keras_layers``.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from dlrecipe.build.preprocessing import keras_layers
from dlrecipe.data import preprocess
from dlrecipe.data import source as data
from dlrecipe.data.sources import check_source, idx
from dlrecipe.data.types import DataInfo
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig

# --------------------------------------------------------------------------- helpers


def make_cfg(**fields) -> DataConfig:
    fields = {"source": "npz", **fields}
    return DataConfig.model_validate({k: str(v) if isinstance(v, pathlib.Path) else v for k, v in fields.items()})


def write_npz(folder: pathlib.Path, name: str = "d.npz", **arrays) -> pathlib.Path:
    path = folder / name
    np.savez(path, **arrays)
    return path


def error_of(fn, *args) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        fn(*args)
    assert len(info.value.problems) == 1
    return info.value


def images(n: int, seed: int = 0, shape=(4, 4, 1)) -> np.ndarray:
    """Random uint8 images, shape (n, *shape)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def tracked(n: int, features: int = 3) -> np.ndarray:
    """float32 rows whose first column is the row index."""
    x = np.zeros((n, features), np.float32)
    x[:, 0] = np.arange(n)
    return x


def write_idx(path: pathlib.Path, arr: np.ndarray, truncate: int | None = None) -> None:
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw if truncate is None else raw[:truncate])


def fake_fashion(folder: pathlib.Path, n_train: int = 40, n_test: int = 20) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for role, name in idx.FASHION_MNIST_FILES.items():
        write_idx(folder / name, arrays[role])
    return arrays


@pytest.fixture
def no_system_fashion(tmp_path, monkeypatch):
    """Make the project and system Fashion-MNIST folders empty places."""
    monkeypatch.setattr(idx, "PROJECT_ROOT", tmp_path / "project")
    monkeypatch.setattr(idx, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")


# --------------------------------------------------------------------------- the module stays light


# Every NumPy-only module of dlrecipe.data (all but pipeline; source imports the image_dir and tfds sources,
# which import TensorFlow only inside their functions).
NUMPY_ONLY = ["dlrecipe.data.source", "dlrecipe.data.types", "dlrecipe.data.labels", "dlrecipe.data.splits",
              "dlrecipe.data.moments", "dlrecipe.data.projection", "dlrecipe.data.preprocess", "dlrecipe.data.tabular",
              "dlrecipe.data.sources", "dlrecipe.data.sources.idx", "dlrecipe.data.sources.npz",
              "dlrecipe.data.sources.csv", "dlrecipe.data.sources.csvfile"]


def test_data_and_preprocess_import_no_tensorflow_or_keras():
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {NUMPY_ONLY!r}]; "
            "bad = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- sources


def test_task_segmentation_needs_masks_of_the_images_size(tmp_path):
    path = write_npz(tmp_path, x_train=np.zeros((4, 5, 6, 1), np.uint8), y_train=np.arange(4))
    err = error_of(data.load, make_cfg(path=path, task="segmentation"), 0)
    msg = " ".join(str(err).split())
    assert err.problems[0].path == "data.path" and str(path) in msg
    assert "masks 'y_train'" in msg and "of shape (4,)" in msg and "masks of shape (4, 5, 6)" in msg
    assert "set data.task to classification or regression" in msg


# --------------------------------------------------------------------------- fashion_mnist


def test_fashion_mnist_reads_idx_from_path(tmp_path):
    arrays = fake_fashion(tmp_path / "fm")
    ds = data.load(make_cfg(source="fashion_mnist", path=tmp_path / "fm", validation_split=0.0), 0)
    assert ds.x_train.shape == (40, 28, 28, 1) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["x_test"])
    assert ds.y_train.dtype == np.int64 and ds.y_train.tolist() == arrays["y_train"].tolist()
    assert ds.y_test.tolist() == arrays["y_test"].tolist()
    assert ds.x_val is None and ds.y_val is None
    assert ds.info.class_names[0] == "T-shirt/top" and ds.info.class_names[9] == "Ankle boot"
    assert ds.info == data.peek(make_cfg(source="fashion_mnist", path=tmp_path / "fm"))
    assert ds.info == DataInfo((28, 28, 1), "uint8", "classification", idx.FASHION_MNIST_CLASSES, 10)


def test_fashion_mnist_validation_split_is_stratified(tmp_path):
    fake_fashion(tmp_path / "fm", n_train=100)
    ds = data.load(make_cfg(source="fashion_mnist", path=tmp_path / "fm", validation_split=0.2), 3)
    assert np.bincount(ds.y_val, minlength=10).tolist() == [2] * 10
    assert len(ds.x_train) == 80 and len(ds.x_test) == 20


def test_fashion_mnist_missing_names_every_folder_and_the_fix(tmp_path, no_system_fashion):
    empty = tmp_path / "empty"
    empty.mkdir()
    # The project and system folders hold the data, but an explicit path is the only folder searched.
    fake_fashion(tmp_path / "project" / "data" / "fashion-mnist", n_train=10, n_test=10)
    err = error_of(data.peek, make_cfg(source="fashion_mnist", path=empty))
    msg = str(err)
    assert err.problems[0].path == "data.path"
    assert str(empty) in msg and str(tmp_path / "project") not in msg
    assert "train-images-idx3-ubyte.gz" in msg


def test_fashion_mnist_missing_everywhere_names_every_folder_and_the_fix(tmp_path, no_system_fashion):
    err = error_of(data.load, make_cfg(source="fashion_mnist"), 0)
    msg = str(err)
    for folder in (tmp_path / "project" / "data" / "fashion-mnist", tmp_path / "system"):
        assert str(folder) in msg
    assert "sudo apt-get install -y dataset-fashion-mnist" in msg and "data.path" in msg


def test_fashion_mnist_falls_back_to_the_project_folder(tmp_path, no_system_fashion):
    fake_fashion(tmp_path / "project" / "data" / "fashion-mnist", n_train=10, n_test=10)
    ds = data.load(make_cfg(source="fashion_mnist", validation_split=0.0), 0)
    assert len(ds.x_train) == 10


@pytest.mark.parametrize("damage", ["truncated", "bad_magic", "not_gzip", "count_mismatch"])
def test_fashion_mnist_corrupt_file_is_named(tmp_path, damage):
    folder = tmp_path / "fm"
    arrays = fake_fashion(folder)
    target = folder / "train-images-idx3-ubyte.gz"
    if damage == "truncated":
        write_idx(target, arrays["x_train"], truncate=5000)
    elif damage == "bad_magic":
        with gzip.open(target, "wb") as f:
            f.write(b"\x01\x02\x03\x04" + bytes(100))
    elif damage == "not_gzip":
        target.write_bytes(b"this is not a gzip file at all")
    else:
        write_idx(target, arrays["x_train"][:30])
    cfg = make_cfg(source="fashion_mnist", path=folder)
    err = error_of(data.load, cfg, 0)
    assert err.problems[0].path == "data.path"
    assert "train-images-idx3-ubyte.gz" in str(err) or "train-labels-idx1-ubyte.gz" in str(err)
    assert "Fix" in str(err)
    if damage == "truncated":
        assert "truncated" in str(err)


@pytest.mark.parametrize("source, key, value, owner", [
    ("npz", "image_size", [8, 8], "image_dir or tfds"),
    ("npz", "label", "y", "csv"),
    ("fashion_mnist", "name", "mnist", "tfds"),
    ("csv", "color_mode", "rgb", "image_dir or tfds"),
    ("image_dir", "keys", {"x_train": "a"}, "npz"),
    ("tfds", "path", "data/x", "fashion_mnist or npz or csv or image_dir"),
])
def test_a_key_of_another_source_is_refused_not_ignored(tmp_path, source, key, value, owner):
    extra = {"name": "mnist"} if source == "tfds" else {"path": tmp_path / "nowhere"}
    if key in extra:
        extra = {"name": "mnist"}
    err = error_of(data.peek, make_cfg(source=source, **extra, **{key: value}))
    assert err.problems[0].path == f"data.{key}"
    assert f"does not apply to source: {source}" in str(err) and f"is for source {owner}" in str(err)
    assert f"Fix: remove {key}" in str(err)


def test_keys_of_the_source_itself_pass_the_source_check(tmp_path):
    check_source(make_cfg(source="image_dir", path="p", test_path="t", image_size=[4, 4], color_mode="rgb"))
    check_source(make_cfg(source="tfds", name="mnist", split="train", data_dir="d", image_size=[4, 4]))
    check_source(make_cfg(source="csv", path="p", label="y", features=["a"], missing="mean"))


def test_fashion_mnist_rejects_test_path_test_split_and_keys(tmp_path):
    fake_fashion(tmp_path / "fm")
    base = {"source": "fashion_mnist", "path": tmp_path / "fm"}
    err = error_of(data.peek, make_cfg(**base, test_path=tmp_path / "t.npz"))
    assert err.problems[0].path == "data.test_path" and "does not apply to source: fashion_mnist" in str(err)
    err = error_of(data.peek, make_cfg(**base, test_split=0.2))
    assert err.problems[0].path == "data.test_split" and "already has a test split" in str(err)
    err = error_of(data.peek, make_cfg(**base, keys={"x_train": "a"}))
    assert err.problems[0].path == "data.keys"
    for task in ("regression", "segmentation"):
        err = error_of(data.peek, make_cfg(**base, task=task))
        assert err.problems[0].path == "data.task" and "Expected task: classification" in str(err)


def test_fashion_mnist_subset_larger_than_the_data(tmp_path):
    fake_fashion(tmp_path / "fm")
    err = error_of(data.load, make_cfg(source="fashion_mnist", path=tmp_path / "fm", subset=41), 0)
    assert err.problems[0].path == "data.subset" and "41" in str(err) and "40" in str(err)


@pytest.mark.skipif(not (idx.SYSTEM_FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_headers():
    info = data.peek(make_cfg(source="fashion_mnist", path=idx.SYSTEM_FASHION_MNIST_DIR))
    assert info.input_shape == (28, 28, 1) and info.n_classes == 10


# --------------------------------------------------------------------------- npz: reading


def test_npz_with_test_split(tmp_path):
    path = write_npz(tmp_path, x_train=images(30), y_train=np.arange(30) % 3, x_test=images(9, 1),
                     y_test=np.arange(9) % 3)
    ds = data.load(make_cfg(path=path, validation_split=0.0), 0)
    assert ds.x_train.shape == (30, 4, 4, 1) and ds.x_test.shape == (9, 4, 4, 1)
    assert ds.info == DataInfo((4, 4, 1), "uint8", "classification", ["0", "1", "2"], 3)
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64


def test_npz_without_test_split_has_none(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(10), y_train=np.arange(10) % 2)
    ds = data.load(make_cfg(path=path), 0)
    assert ds.x_test is None and ds.y_test is None


def test_npz_keys_override(tmp_path):
    path = write_npz(tmp_path, images=tracked(10), labels=np.arange(10) % 2)
    ds = data.load(make_cfg(path=path, keys={"x_train": "images", "y_train": "labels"}, validation_split=0.0), 0)
    assert len(ds.x_train) == 10


def test_npz_class_names_for_integer_labels(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(6), y_train=np.array([0, 1, 0, 1, 0, 1]),
                     class_names=np.array(["cat", "dog", "emu"]))
    info = data.peek(make_cfg(path=path))
    assert info.class_names == ["cat", "dog", "emu"] and info.n_classes == 3


def test_string_labels_become_sorted_class_indices(tmp_path):
    y = np.array(["dog", "cat", "emu", "cat", "dog", "emu"] * 2)
    path = write_npz(tmp_path, x_train=tracked(12), y_train=y, x_test=tracked(3),
                     y_test=np.array(["emu", "cat", "cat"]))
    ds = data.load(make_cfg(path=path, validation_split=0.0), 0)
    assert ds.info.class_names == ["cat", "dog", "emu"] and ds.info.task == "classification"
    assert ds.y_train.tolist() == [1, 0, 2, 0, 1, 2] * 2 and ds.y_train.dtype == np.int64
    assert ds.y_test.tolist() == [2, 0, 0]


def test_string_test_label_unseen_in_training_is_named(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(4), y_train=np.array(["a", "b", "a", "b"]), x_test=tracked(2),
                     y_test=np.array(["a", "zebra"]))
    err = error_of(data.load, make_cfg(path=path, validation_split=0.0), 0)
    assert "zebra" in str(err) and "y_test" in str(err) and "Fix" in str(err)


def test_float_labels_mean_regression(tmp_path):
    y = np.linspace(0, 1, 20)
    path = write_npz(tmp_path, x_train=tracked(20), y_train=y)
    ds = data.load(make_cfg(path=path, validation_split=0.25), 0)
    assert ds.info.task == "regression" and ds.info.class_names is None and ds.info.n_classes is None
    assert ds.y_train.dtype == np.float32 and len(ds.y_val) == 5
    assert ds.info == data.peek(make_cfg(path=path))
    np.testing.assert_allclose(ds.y_train, y[ds.x_train[:, 0].astype(int)].astype(np.float32))


def test_task_overrides_inference(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(6), y_train=np.array([0, 1, 2, 0, 1, 2]))
    ds = data.load(make_cfg(path=path, task="regression", validation_split=0.0), 0)
    assert ds.info.task == "regression" and ds.y_train.dtype == np.float32
    path = write_npz(tmp_path, "f.npz", x_train=tracked(4), y_train=np.array([0.0, 1.0, 1.0, 0.0]))
    ds = data.load(make_cfg(path=path, task="classification", validation_split=0.0), 0)
    assert ds.info.n_classes == 2 and ds.y_train.dtype == np.int64
    path = write_npz(tmp_path, "g.npz", x_train=tracked(2), y_train=np.array([0.5, 1.0]))
    err = error_of(data.load, make_cfg(path=path, task="classification"), 0)
    assert "0.5" in str(err) and "task: regression" in str(err)


def test_one_hot_labels_are_converted(tmp_path):
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1, 0]]
    path = write_npz(tmp_path, x_train=tracked(6), y_train=y)
    ds = data.load(make_cfg(path=path, validation_split=0.0), 0)
    assert ds.info.task == "classification" and ds.info.n_classes == 3
    assert ds.y_train.tolist() == [0, 1, 2, 2, 1, 0]


def test_two_dimensional_float_targets_are_multi_output_regression(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(5), y_train=np.random.default_rng(0).random((5, 2)))
    ds = data.load(make_cfg(path=path, validation_split=0.0), 0)
    assert ds.info.task == "regression" and ds.y_train.shape == (5, 2)


def test_regression_test_targets_must_match_training_targets(tmp_path):
    rng = np.random.default_rng(0)
    path = write_npz(tmp_path, x_train=tracked(5), y_train=rng.random((5, 2)), x_test=tracked(2), y_test=rng.random(2))
    err = error_of(data.load, make_cfg(path=path, validation_split=0.0), 0)
    assert "y_test" in str(err) and "(5, 2)" in str(err)


# --------------------------------------------------------------------------- npz: errors


def test_npz_needs_path():
    err = error_of(data.peek, make_cfg())
    assert err.problems[0].path == "data.path" and "npz needs path" in str(err)


def test_npz_missing_file(tmp_path):
    err = error_of(data.peek, make_cfg(path=tmp_path / "nope.npz"))
    assert err.problems[0].path == "data.path"
    assert "nope.npz" in str(err) and "does not exist" in str(err) and "np.savez" in str(err)


def test_npz_not_a_zip(tmp_path):
    path = tmp_path / "d.npz"
    path.write_text("a,b\n1,2\n")
    err = error_of(data.peek, make_cfg(path=path))
    assert "not an .npz" in str(err) and str(path) in str(err) and "np.savez" in str(err)
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    assert "single .npy" in str(error_of(data.peek, make_cfg(path=npy)))


def test_npz_missing_key_lists_the_keys(tmp_path):
    path = write_npz(tmp_path, features=tracked(4), y_train=np.arange(4))
    err = error_of(data.peek, make_cfg(path=path))
    msg = str(err)
    assert err.problems[0].path == "data.path"
    assert "'x_train'" in msg and "features" in msg and "y_train" in msg and "data.keys" in msg


def test_npz_missing_overridden_key_points_at_keys(tmp_path):
    path = write_npz(tmp_path, features=tracked(4), y_train=np.arange(4))
    err = error_of(data.peek, make_cfg(path=path, keys={"x_train": "feats"}))
    assert err.problems[0].path == "data.keys.x_train"
    assert "'feats'" in str(err) and "features" in str(err)


def test_npz_test_pair_must_be_complete(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(4), y_train=np.arange(4), x_test=tracked(2))
    err = error_of(data.peek, make_cfg(path=path))
    assert "'y_test'" in str(err) and str(path) in str(err)


def test_npz_length_mismatch(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(5), y_train=np.arange(4))
    err = error_of(data.peek, make_cfg(path=path))
    assert "5 examples" in str(err) and "4 labels" in str(err) and str(path) in str(err)


def test_npz_test_shape_differs(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(4, 3), y_train=np.arange(4), x_test=tracked(2, 5),
                     y_test=np.arange(2))
    err = error_of(data.peek, make_cfg(path=path))
    assert "(5,)" in str(err) and "(3,)" in str(err) and "Fix" in str(err)


def test_npz_one_dimensional_x(tmp_path):
    path = write_npz(tmp_path, x_train=np.arange(4.0), y_train=np.arange(4))
    err = error_of(data.peek, make_cfg(path=path))
    assert "reshape" in str(err)


class _Trap:
    """Unpickling this creates a marker file: proof that data was unpickled."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("key", ["x_train", "y_train", "class_names"])
def test_npz_pickled_arrays_are_refused_never_loaded(tmp_path, key):
    marker = tmp_path / "unpickled"
    arrays = {"x_train": tracked(2), "y_train": np.arange(2)}
    arrays[key] = np.array([_Trap(marker), _Trap(marker)], dtype=object)
    path = write_npz(tmp_path, **arrays)
    for call in (lambda: data.peek(make_cfg(path=path)), lambda: data.load(make_cfg(path=path), 0)):
        err = error_of(call)
        assert "dtype=object" in str(err) and key in str(err) and str(path) in str(err)
    assert not marker.exists()


def test_npz_negative_and_out_of_range_labels(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(3), y_train=np.array([0, -1, 1]))
    assert "-1" in str(error_of(data.peek, make_cfg(path=path)))
    path = write_npz(tmp_path, "b.npz", x_train=tracked(3), y_train=np.array([0, 1, 1]), x_test=tracked(1),
                     y_test=np.array([2]))
    err = error_of(data.load, make_cfg(path=path, validation_split=0.0), 0)
    assert "class index 2" in str(err)


def test_two_dimensional_non_one_hot_labels(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(3), y_train=np.array([[0, 2], [1, 1], [2, 0]]))
    err = error_of(data.peek, make_cfg(path=path))
    assert "one-hot" in str(err) and "task: regression" in str(err)


# --------------------------------------------------------------------------- test_path


def test_test_path_supplies_the_test_split(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(10), y_train=np.arange(10) % 2)
    test = write_npz(tmp_path, "test.npz", x_train=tracked(4) + 100, y_train=np.array([1, 0, 1, 0]))
    ds = data.load(make_cfg(path=path, test_path=test, validation_split=0.0), 0)
    assert ds.x_test[:, 0].tolist() == [100, 101, 102, 103] and ds.y_test.tolist() == [1, 0, 1, 0]
    assert data.peek(make_cfg(path=path, test_path=test)) == ds.info


def test_test_path_errors(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(10), y_train=np.arange(10) % 2)
    with_test = write_npz(tmp_path, "both.npz", x_train=tracked(4), y_train=np.arange(4) % 2, x_test=tracked(2),
                          y_test=np.arange(2))
    test = write_npz(tmp_path, "test.npz", x_train=tracked(4), y_train=np.arange(4) % 2)
    err = error_of(data.peek, make_cfg(path=with_test, test_path=test))
    assert err.problems[0].path == "data.test_path" and "own test split" in str(err)
    err = error_of(data.peek, make_cfg(path=path, test_path=test, test_split=0.2))
    assert err.problems[0].path == "data.test_split"
    err = error_of(data.peek, make_cfg(path=path, test_path=tmp_path / "missing.npz"))
    assert err.problems[0].path == "data.test_path" and "missing.npz" in str(err)
    bad = write_npz(tmp_path, "bad.npz", a=tracked(2))
    err = error_of(data.peek, make_cfg(path=path, test_path=bad))
    assert err.problems[0].path == "data.test_path" and "['a']" in str(err)


# --------------------------------------------------------------------------- splits


def _labels(n_per_class: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(n_per_class)), n_per_class)


def test_splits_are_deterministic_per_seed(tmp_path):
    y = np.random.default_rng(0).permutation(_labels([40, 40, 40]))
    path = write_npz(tmp_path, x_train=tracked(120), y_train=y)
    cfg = make_cfg(path=path, validation_split=0.25, test_split=0.2)
    a, b, c = data.load(cfg, 7), data.load(cfg, 7), data.load(cfg, 8)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.x_val[:, 0].tolist() != c.x_val[:, 0].tolist()
    assert a.x_test[:, 0].tolist() != c.x_test[:, 0].tolist()


def test_splits_partition_the_data_and_keep_order(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(100), y_train=_labels([50, 30, 20]))
    ds = data.load(make_cfg(path=path, validation_split=0.1, test_split=0.2), 0)
    ids = [ds.x_train[:, 0], ds.x_val[:, 0], ds.x_test[:, 0]]
    assert sorted(np.concatenate(ids).tolist()) == list(range(100))
    for part, labels in zip(ids, (ds.y_train, ds.y_val, ds.y_test), strict=True):
        assert np.all(np.diff(part) > 0)
        np.testing.assert_array_equal(labels, _labels([50, 30, 20])[part.astype(int)])


def test_stratified_class_proportions(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(163), y_train=_labels([100, 50, 10, 2, 1]))
    ds = data.load(make_cfg(path=path, validation_split=0.2), 0)
    # round(0.2 * n): 20, 10, 2; a class of 2 still gives 1; a class of 1 gives none.
    assert np.bincount(ds.y_val, minlength=5).tolist() == [20, 10, 2, 1, 0]
    assert np.bincount(ds.y_train, minlength=5).tolist() == [80, 40, 8, 1, 1]


def test_test_split_is_carved_first_and_stratified(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(150), y_train=_labels([100, 50]))
    ds = data.load(make_cfg(path=path, test_split=0.2, validation_split=0.25), 0)
    assert np.bincount(ds.y_test).tolist() == [20, 10]
    assert np.bincount(ds.y_val).tolist() == [20, 10]  # 25% of the remaining 80 and 40
    assert np.bincount(ds.y_train).tolist() == [60, 30]


def test_test_split_refused_when_the_source_has_one(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(4), y_train=np.arange(4), x_test=tracked(2), y_test=np.arange(2))
    err = error_of(data.peek, make_cfg(path=path, test_split=0.2))
    assert err.problems[0].path == "data.test_split" and "already has a test split" in str(err)
    assert "Fix: remove test_split" in str(err)


def test_subset_takes_the_first_examples(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(50), y_train=np.arange(50) % 5)
    ds = data.load(make_cfg(path=path, subset=20, validation_split=0.0), 0)
    assert ds.x_train[:, 0].tolist() == list(range(20))
    ds = data.load(make_cfg(path=path, subset=20, validation_split=0.25), 0)
    assert sorted(np.concatenate([ds.x_train[:, 0], ds.x_val[:, 0]]).tolist()) == list(range(20))
    assert np.bincount(ds.y_val).tolist() == [1] * 5


def test_subset_larger_than_the_data_names_both_numbers(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(50), y_train=np.arange(50) % 5)
    for fn in (data.peek, lambda c: data.load(c, 0)):
        err = error_of(fn, make_cfg(path=path, subset=60))
        assert err.problems[0].path == "data.subset" and "60" in str(err) and "50" in str(err)


def test_regression_validation_split_is_random(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(40), y_train=np.linspace(0, 1, 40))
    ds = data.load(make_cfg(path=path, validation_split=0.25), 0)
    assert len(ds.x_val) == 10 and ds.x_val[:, 0].tolist() != list(range(30, 40))


def test_split_that_would_empty_the_training_set(tmp_path):
    path = write_npz(tmp_path, x_train=tracked(2), y_train=np.array([0.5, 1.5]))
    err = error_of(data.load, make_cfg(path=path, test_split=0.5, validation_split=0.5), 0)
    assert err.problems[0].path == "data.validation_split"
    assert "empty" in str(err) and "validation_split: 0" in str(err)
    path = write_npz(tmp_path, "c.npz", x_train=tracked(3), y_train=np.array([0, 1, 2]))
    err = error_of(data.load, make_cfg(path=path, validation_split=0.5), 0)
    assert "each class needs at least 2 examples" in str(err)


@pytest.mark.parametrize("fields", [
    {"validation_split": 0.0}, {"validation_split": 0.3, "subset": 20}, {"test_split": 0.1},
    {"task": "regression"}, {"keys": {"x_train": "xs"}},
])
def test_peek_matches_load(tmp_path, fields):
    path = write_npz(tmp_path, xs=images(30), x_train=images(30), y_train=np.arange(30) % 4)
    cfg = make_cfg(path=path, **fields)
    assert data.peek(cfg) == data.load(cfg, 1).info


def test_sample_file_matches_its_readme():
    sample = ROOT / "data" / "fashion_mnist_sample.npz"
    if not sample.exists():
        pytest.skip("data/fashion_mnist_sample.npz is not built")
    info = data.peek(make_cfg(path=sample))
    assert info == DataInfo((28, 28, 1), "uint8", "classification", idx.FASHION_MNIST_CLASSES, 10)
    ds = data.load(make_cfg(path=sample), 0)
    assert len(ds.x_train) + len(ds.x_val) == 4000 and len(ds.x_test) == 1000


# --------------------------------------------------------------------------- preprocess: fitting


@pytest.fixture
def shifted():
    """Training and test inputs with very different means and scales."""
    rng = np.random.default_rng(0)
    x_train = (rng.normal(10, 2, size=(64, 5, 4, 3))).astype(np.float32)
    x_test = (rng.normal(100, 20, size=(16, 5, 4, 3))).astype(np.float32)
    return x_train, x_test


def test_stats_are_fitted_on_the_training_inputs_only(shifted):
    x_train, x_test = shifted
    x64 = x_train.astype(np.float64)
    st = preprocess.fit("standardize", x_train)
    np.testing.assert_allclose(st["mean"], x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(st["std"], x64.std(axis=0), rtol=1e-10)
    pc = preprocess.fit("per_channel", x_train)
    np.testing.assert_allclose(pc["mean"], x64.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(pc["std"], x64.std(axis=(0, 1, 2)), rtol=1e-10)
    mm = preprocess.fit("minmax", x_train)
    np.testing.assert_array_equal(mm["min"], x64.min(axis=0))
    np.testing.assert_array_equal(mm["max"], x64.max(axis=0))
    # The test inputs are transformed with the training statistics, not their own.
    out = preprocess.apply_numpy(st, x_test)
    assert out.mean() > 30
    assert abs(preprocess.apply_numpy(st, x_train).mean()) < 1e-5


def test_moments_merge_exactly_across_chunks(shifted, monkeypatch):
    x_train, _ = shifted
    whole = preprocess.fit("per_channel", x_train)
    from dlrecipe.data import moments
    monkeypatch.setattr(moments, "CHUNK_VALUES", 70)  # one example per chunk
    chunked = preprocess.fit("per_channel", x_train)
    np.testing.assert_allclose(chunked["mean"], whole["mean"], rtol=1e-12)
    np.testing.assert_allclose(chunked["std"], whole["std"], rtol=1e-10)


def test_stats_are_json(shifted):
    x_train, _ = shifted
    for kind in preprocess.KINDS:
        st = preprocess.fit(kind, x_train)
        assert st["kind"] == kind
        back = json.loads(json.dumps(st, default=lambda a: a.tolist()))  # zca's matrix is an array (-> .npz)
        np.testing.assert_array_equal(preprocess.apply_numpy(back, x_train), preprocess.apply_numpy(st, x_train))


def test_each_kind_transforms_as_documented():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(20, 6, 6, 2), dtype=np.uint8)
    x[:, 0, 0, 0] = 9  # a constant feature
    none = preprocess.apply_numpy(preprocess.fit("none", x), x)
    assert none.dtype == np.float32 and np.array_equal(none, x.astype(np.float32))
    np.testing.assert_allclose(preprocess.apply_numpy(preprocess.fit("rescale", x), x), x / 255.0, atol=1e-6)
    mm = preprocess.apply_numpy(preprocess.fit("minmax", x), x)
    assert mm.min() == 0.0 and mm.max() == 1.0 and np.all(mm[:, 0, 0, 0] == 0)
    st = preprocess.apply_numpy(preprocess.fit("standardize", x), x)
    np.testing.assert_allclose(st[:, 1:].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(st[:, 1:].std(axis=0), 1, atol=1e-4)
    assert np.all(st[:, 0, 0, 0] == 0)  # the constant feature is centred, not blown up
    pc = preprocess.apply_numpy(preprocess.fit("per_channel", x), x)
    np.testing.assert_allclose(pc.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    gcn = preprocess.apply_numpy(preprocess.fit("gcn", x), x)
    np.testing.assert_allclose(gcn.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(gcn.std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert np.all(preprocess.apply_numpy({"kind": "gcn", "epsilon": 1e-7}, np.full((1, 3, 3, 1), 5.0)) == 0)


def test_unknown_kinds():
    x = np.zeros((2, 3), np.float32)
    err = error_of(preprocess.fit, "standardise", x)
    assert "Did you mean 'standardize'" in str(err)


def test_non_finite_training_inputs():
    x = np.ones((4, 3), np.float32)
    x[1, 2] = np.nan
    for kind in ("standardize", "per_channel", "minmax"):
        assert "NaN" in str(error_of(preprocess.fit, kind, x))


def test_apply_rejects_a_different_shape(shifted):
    x_train, _ = shifted
    st = preprocess.fit("standardize", x_train)
    with pytest.raises(ValueError, match="do not match"):
        preprocess.apply_numpy(st, np.zeros((2, 5, 4, 2), np.float32))


# --------------------------------------------------------------------------- preprocess: Keras layers


@pytest.mark.parametrize("kind", ["rescale", "minmax", "standardize", "per_channel", "gcn"])
@pytest.mark.parametrize("shape", [(5, 4, 3), (7,)])
def test_keras_layers_agree_with_numpy(kind, shape):
    import keras

    rng = np.random.default_rng(2)
    x_train = rng.integers(0, 256, size=(40, *shape)).astype(np.uint8)
    x_train[:, 0] = 3  # constant features
    x_test = rng.integers(0, 256, size=(10, *shape)).astype(np.uint8)
    stats = json.loads(json.dumps(preprocess.fit(kind, x_train)))
    layers = keras_layers(stats)
    assert [layer.name for layer in layers] == [f"preprocessing_{kind}"]
    model = keras.Sequential([keras.Input(shape), *layers])
    for x in (x_train, x_test):
        got = np.asarray(model(x.astype(np.float32)))
        np.testing.assert_allclose(got, preprocess.apply_numpy(stats, x), atol=1e-5, rtol=0)


def test_keras_layers_for_none_is_empty():
    assert keras_layers(preprocess.fit("none", np.zeros((2, 3)))) == []


def test_model_with_preprocessing_layers_saves_and_loads_safely(tmp_path):
    import keras

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(8, 6, 6, 1)).astype(np.float32)
    layers = []
    for kind in ("gcn", "standardize"):
        layers += keras_layers(preprocess.fit(kind, x))
    model = keras.Sequential([keras.Input((6, 6, 1)), *layers, keras.layers.Flatten(), keras.layers.Dense(2)])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("preprocessing_gcn")).__name__ == "GlobalContrastNormalization"
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    config = loaded.get_layer("preprocessing_gcn").get_config()
    assert config["epsilon"] == preprocess.GCN_EPSILON


def test_gcn_model_loads_in_a_fresh_process_after_registration(tmp_path):
    import keras

    x = np.random.default_rng(4).random((4, 5, 5, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((5, 5, 1)), *keras_layers(preprocess.fit("gcn", x))])
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "want.npy", np.asarray(model(x)))
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, keras; import dlrecipe.layers.registry; "
            f"m = keras.saving.load_model({str(path)!r}, safe_mode=True); "
            f"got = np.asarray(m(np.load({str(tmp_path / 'x.npy')!r}))); "
            f"np.testing.assert_allclose(got, np.load({str(tmp_path / 'want.npy')!r}), atol=1e-6)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("source, key", [("npz", "path"), ("npz", "test_path"), ("csv", "path"),
                                         ("image_dir", "path")])
def test_a_path_too_long_for_the_file_system_is_a_recipe_error_not_a_traceback(cli, tmp_path, tiny_npz,
                                                                               source, key):
    from conftest import recipe_dict, write_yaml
    recipe = recipe_dict(tiny_npz)
    recipe["data"] = {"source": source, "path": str(tiny_npz), key: "x" * 5000 + ".npz"}
    if source == "csv":
        recipe["data"]["label"] = "y"
    result = cli("validate", write_yaml(tmp_path / "r.yaml", recipe))
    assert result.exit_code == 2
    assert f"data.{key}" in result.stderr and "too long" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
