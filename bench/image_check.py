"""What checking every image of an image folder costs at startup: headers only against a full decode.

The shipped Fashion-MNIST sample (data/fashion_mnist_sample.npz, 4,000 28x28 training images) is written as
PNG files in one folder per class (a temp folder); then, in this process, timed in turn, twice each:
A, the header check (``image_dir._check_headers``, PIL reads each header) and B, the decode check
(``image_dir.check_decodes``: every file decoded by TensorFlow's decoder in a parallel tf.data pass, as
training decodes it). Printed: both times (the better of the two rounds), per image, and the ratio B / A.
``data.image_size`` is left unset (no resize). The first round of B includes tf.data's start-up.

    .venv/bin/python bench/image_check.py
    .venv/bin/python bench/image_check.py --images 20000   # the sample repeated to 20,000 files
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from common import scratch

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from PIL import Image

    from dlrecipe.backend import import_keras_quietly
    from dlrecipe.data.sources import image_dir
    import_keras_quietly()
    sample = np.load(ROOT / "data" / "fashion_mnist_sample.npz")
    x, y = sample["x_train"], sample["y_train"]
    with scratch("image-check") as folder:
        files = []
        for i in range(args.images):
            j = i % len(x)
            path = folder / str(int(y[j])) / f"{i}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(x[j].reshape(28, 28)).save(path)
            files.append(path)
        names = np.asarray([str(f) for f in files])
        shape = (28, 28, 1)
        header, decode = [], []
        for _ in range(2):
            t = time.perf_counter()
            image_dir._check_headers(files, shape, False, "data.path")
            header.append(time.perf_counter() - t)
            t = time.perf_counter()
            image_dir.check_decodes(names, shape, False, "data.path")
            decode.append(time.perf_counter() - t)
    a, b = min(header), min(decode)
    n = args.images
    print(f"{n} PNG files (28x28): headers {a:.2f}s ({a / n * 1e3:.3f} ms/image), full decode {b:.2f}s "
          f"({b / n * 1e3:.3f} ms/image); decode / headers = {b / a:.2f}; both checks: {a + b:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
