"""Build data/fashion_mnist_sample.npz: a small Fashion-MNIST sample for examples and tests.

Reads the IDX files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``, or the folder given as the first
argument) with dlrecipe's own reader, and keeps the first 4,000 training
and the first 1,000 test images, unshuffled.

Usage:
    python data/make_sample.py [FOLDER_WITH_THE_IDX_FILES]

Arrays written: x_train (4000, 28, 28, 1) uint8, y_train (4000,) uint8,
x_test (1000, 28, 28, 1) uint8, y_test (1000,) uint8, class_names (10,) str.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from dlrecipe.data import loading as data
from dlrecipe.recipe.schema import DataConfig

N_TRAIN, N_TEST = 4000, 1000
OUT = HERE / "fashion_mnist_sample.npz"


def main(argv: list[str]) -> None:
    folder = argv[1] if len(argv) > 1 else str(data.SYSTEM_FASHION_MNIST_DIR)
    cfg = DataConfig.model_validate({"source": "fashion_mnist", "path": str(Path(folder).resolve()),
                                     "validation_split": 0.0})
    ds = data.load(cfg, seed=0)  # no split is random here: the first examples are kept
    arrays = {
        "x_train": ds.x_train[:N_TRAIN],
        "y_train": ds.y_train[:N_TRAIN].astype(np.uint8),
        "x_test": ds.x_test[:N_TEST],
        "y_test": ds.y_test[:N_TEST].astype(np.uint8),
        "class_names": np.asarray(ds.info.class_names),
    }
    np.savez_compressed(OUT, **arrays)
    for name, a in arrays.items():
        print(f"{name}: {a.shape} {a.dtype}")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv)
