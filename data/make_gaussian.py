"""Build data/gaussian_1000x500.npz: unit-Gaussian inputs for the initialization experiment.

The input of Glorot & Bengio (2010)'s classic experiment: features drawn from N(0, 1), so
that what happens to the signal in a deep tanh network depends on the weights alone.
Labels are random (there is nothing to learn); they only give the loss something to act on.

Usage:
    python data/make_gaussian.py

Arrays written (seeded, np.savez_compressed, no pickled objects): x_train (1000, 500) float32,
y_train (1000,) uint8 in 0..9, x_test (200, 500) float32, y_test (200,) uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_TRAIN, N_TEST, DIMS, CLASSES, SEED = 1000, 200, 500, 10, 0
OUT = Path(__file__).resolve().parent / "gaussian_1000x500.npz"


def main() -> None:
    rng = np.random.default_rng(SEED)
    arrays = {
        "x_train": rng.standard_normal((N_TRAIN, DIMS), dtype=np.float32),
        "y_train": rng.integers(0, CLASSES, size=N_TRAIN).astype(np.uint8),
        "x_test": rng.standard_normal((N_TEST, DIMS), dtype=np.float32),
        "y_test": rng.integers(0, CLASSES, size=N_TEST).astype(np.uint8),
    }
    np.savez_compressed(OUT, **arrays)
    for name, a in arrays.items():
        print(f"{name}: {a.shape} {a.dtype}")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
