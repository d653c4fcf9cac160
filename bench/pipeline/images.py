"""Write Fashion-MNIST images as an image_dir folder of PNGs (shared by the pipeline benchmarks)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def fashion_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,)) read from the IDX files with dlrecipe's reader."""
    from dlrecipe.data.sources import idx
    prefix = "train" if split == "train" else "t10k"
    if not (FASHION / f"{prefix}-images-idx3-ubyte.gz").is_file():
        sys.exit(f"Fashion-MNIST not found in {FASHION}: sudo apt-get install dataset-fashion-mnist")
    x = idx.read_idx(FASHION / f"{prefix}-images-idx3-ubyte.gz")
    y = idx.read_idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz")
    return x, y


def write_pngs(folder: Path, n: int, split: str = "train") -> Path:
    """The first ``n`` images of ``split`` as folder/<class>/<index>.png (class names are the label digits)."""
    from PIL import Image
    x, y = fashion_arrays(split)
    if n > len(x):
        sys.exit(f"Asked for {n} images; the {split} split has {len(x)}.")
    for c in range(10):
        (folder / f"class_{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(x[i], mode="L").save(folder / f"class_{int(y[i])}" / f"{i:05d}.png")
    return folder
