"""Shared fixtures: tiny synthetic data and recipes, so every test trains in seconds."""

from __future__ import annotations

import gzip
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent


def tiny_arrays(n_train: int = 120, n_test: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    """8x8 grey images in 3 classes told apart by which third of the image is bright."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, size=(n, 8, 8, 1))
        for i, c in enumerate(y):
            x[i, :, c * 2:c * 2 + 3, 0] += 180
        return x.astype(np.uint8), y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "class_names": np.array(["left", "middle", "right"])}


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.npz"
    np.savez(path, **tiny_arrays())
    return path


TINY_MODEL = [
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
]


def recipe_dict(npz: Path, **sections) -> dict:
    """A tiny, valid recipe; ``sections`` replace or extend its top-level sections."""
    recipe = {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "npz", "path": str(npz), "validation_split": 0.2, "normalize": "rescale"},
        "model": {"layers": [dict(layer) for layer in TINY_MODEL]},
        "train": {"epochs": 2, "batch_size": 16, "optimizer": "adam", "learning_rate": 0.01},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


def write_yaml(path: Path, data: dict) -> Path:
    """Write ``data`` (a recipe) as YAML to ``path``, keys in their order, and return the path."""
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def only_run(out: Path) -> Path:
    """The one run folder under ``out`` (a ``--out`` folder), asserting there is exactly one."""
    found = sorted(p.parent for p in out.glob("*/*/recipe.yaml"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def write_recipe(tmp_path: Path, tiny_npz: Path):
    """``write_recipe(name, **sections)`` writes a tiny recipe and returns its path."""
    def write(filename: str = "tiny.yaml", text: str | None = None, **sections) -> Path:
        path = tmp_path / filename
        if text is None:
            return write_yaml(path, recipe_dict(tiny_npz, **sections))
        path.write_text(text)
        return path
    return write


def diverging_recipe(write_recipe, tmp_path: Path, epochs: int) -> Path:
    """A regression recipe whose loss is NaN in epoch 1 (cubed targets, SGD at 1e6): the NaN tests' recipe."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32") * 100
    np.savez(tmp_path / "reg.npz", x_train=x, y_train=x.sum(axis=1) ** 3)
    return write_recipe(data={"source": "npz", "path": str(tmp_path / "reg.npz"), "normalize": "none"},
                        model={"layers": [{"type": "Dense", "units": 1}]},
                        train={"epochs": epochs, "optimizer": "sgd", "learning_rate": 1.0e6})


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """The four Fashion-MNIST IDX .gz files holding ``arrays`` (images (N, 28, 28, 1))."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
    for key, name in names.items():
        a = np.asarray(arrays[key], dtype=np.uint8)
        a = a.reshape(a.shape[0], 28, 28) if a.ndim == 4 else a
        header = struct.pack(">HBB", 0, 0x08, a.ndim) + b"".join(struct.pack(">I", d) for d in a.shape)
        with gzip.open(folder / name, "wb") as f:
            f.write(header + a.tobytes())
    return folder


@pytest.fixture(scope="session")
def fashion_idx(tmp_path_factory) -> Path:
    """A small Fashion-MNIST IDX folder made from the shipped sample, for recipes with source fashion_mnist."""
    sample = np.load(ROOT / "data" / "fashion_mnist_sample.npz")
    arrays = {"x_train": sample["x_train"][:300], "y_train": sample["y_train"][:300],
              "x_test": sample["x_test"][:100], "y_test": sample["y_test"][:100]}
    return write_idx_folder(tmp_path_factory.mktemp("fashion-idx"), arrays)


@pytest.fixture
def cli():
    """Run the CLI in-process; returns the Click result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from dlrecipe.cli.main import app
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return invoke


def lr_rows(stdout: str) -> list[tuple[int, float, float | None, float | None]]:
    """(epoch, rate at the first step, min, max) from the printed table."""
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]
        if len(cells) == 4 and cells[0].isdigit():
            rows.append((int(cells[0]), float(cells[1]), *(float(c) if c else None for c in cells[2:])))
    return rows
