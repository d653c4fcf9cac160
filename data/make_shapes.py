"""Build data/shapes_32x32.npz: synthetic shapes for semantic segmentation.

Each image is 32x32 grey pixels: a noisy background (mean 40-100, noise sigma 12) with one to
three filled shapes drawn on it: circles, squares and triangles of random size, position and
brightness (each shape a flat grey level 130-255 plus the same pixel noise). Shapes may overlap;
a shape drawn later covers the earlier ones, in the image and in the mask alike. The mask gives
the class of every pixel: 0 background, 1 circle, 2 square, 3 triangle. Brightness does not tell
the classes apart (every class draws from the same range): a model has to see the outline.

Usage:
    python data/make_shapes.py

Arrays written (seed 0, np.savez_compressed, no pickled objects; rebuilding gives the same arrays):
x_train (1000, 32, 32, 1) uint8, y_train (1000, 32, 32) uint8 in 0..3, x_test (200, 32, 32, 1)
uint8, y_test (200, 32, 32) uint8, class_names (4,) str.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_TRAIN, N_TEST, SIZE, SEED = 1000, 200, 32, 0
CLASS_NAMES = ["background", "circle", "square", "triangle"]
OUT = Path(__file__).resolve().parent / "shapes_32x32.npz"


def _shape_mask(kind: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """A boolean (size, size) mask of one shape of class ``kind`` (1 circle, 2 square, 3 triangle)."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    half = rng.uniform(4.0, 8.0)  # radius, half side, half base
    cy, cx = rng.uniform(half, size - half, size=2)
    if kind == 1:
        return (rows - cy) ** 2 + (cols - cx) ** 2 <= half ** 2
    if kind == 2:
        return (np.abs(rows - cy) <= half) & (np.abs(cols - cx) <= half)
    # an upright isosceles triangle: apex at the top, base at the bottom, 2 * half high and wide
    top, bottom = cy - half, cy + half
    t = (rows - top) / (bottom - top)  # 0 at the apex, 1 at the base
    return (t >= 0) & (t <= 1) & (np.abs(cols - cx) <= t * half)


def make(n: int, rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, size, size, 1) uint8 and their masks (n, size, size) uint8."""
    x = np.empty((n, size, size, 1), dtype=np.uint8)
    y = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        image = np.full((size, size), rng.uniform(40, 100), dtype=np.float32)
        for _ in range(rng.integers(1, 4)):
            kind = int(rng.integers(1, 4))
            inside = _shape_mask(kind, rng, size)
            image[inside] = rng.uniform(130, 255)
            y[i][inside] = kind
        image += rng.normal(0, 12, size=(size, size))
        x[i, :, :, 0] = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return x, y


def main() -> None:
    rng = np.random.default_rng(SEED)
    x_train, y_train = make(N_TRAIN, rng)
    x_test, y_test = make(N_TEST, rng)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
              "class_names": np.array(CLASS_NAMES)}
    np.savez_compressed(OUT, **arrays)
    for name, a in arrays.items():
        print(f"{name}: {a.shape} {a.dtype}")
    share = np.bincount(y_train.reshape(-1), minlength=len(CLASS_NAMES)) / y_train.size
    print("pixels per class (train): " + ", ".join(f"{c} {s:.1%}" for c, s in zip(CLASS_NAMES, share)))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
