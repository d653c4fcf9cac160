"""Peak memory of `dlrecipe train` from an image_dir of 2,000 and of 20,000 images: streaming, not loading all.

Writes the first N Fashion-MNIST training images as PNG folders (one per class), then trains the
model of recipes/fashion_mnist_cnn.yaml for one epoch from each folder, each in its own `dlrecipe
train` process, and reads that child's peak resident memory (ru_maxrss from os.wait4). The baseline
is the smallest size, measured in the same run; the report is the ratio largest / smallest.

    .venv/bin/python bench/pipeline/image_dir_memory.py            # 2,000 and 20,000 images
    .venv/bin/python bench/pipeline/image_dir_memory.py --small    # 200 and 2,000 (a check, ~1 min)

Goal: ratio under 1.3. If the images were loaded whole, 18,000 more 28x28 images would add only about
14 MB of uint8 pixels (56 MB as float32), which is small beside TensorFlow's ~1 GB: so the script
also reports the growth in MB against what loading the pixels would cost (float32), to read the ratio
against the data size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import find_dlrecipe, scratch  # noqa: E402
from images import write_pngs  # noqa: E402

ROOT = HERE.parent.parent


def recipe_for(folder: Path, path: Path, epochs: int) -> Path:
    base = yaml.safe_load((ROOT / "recipes" / "fashion_mnist_cnn.yaml").read_text())
    base["name"] = f"image_dir_{folder.name}"
    base["data"] = {"source": "image_dir", "path": str(folder), "validation_split": 0.1,
                    "normalize": "per_channel", "color_mode": "grayscale"}
    base["train"]["epochs"] = epochs
    base["train"]["learning_rate"] = 0.001
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def peak_rss_mb(cmd: list[str]) -> tuple[float, float, int]:
    """(peak RSS of the child in MB, wall seconds, exit code)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - started, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="200 and 2,000 images instead of 2,000 and 20,000")
    ap.add_argument("--sizes", type=int, nargs="+", help="image counts (the first is the baseline)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    sizes = args.sizes or ([200, 2000] if args.small else [2000, 20000])
    dlrecipe = find_dlrecipe()
    with scratch("imgmem", args.keep) as tmp:
        print(f"load average (1 min): {os.getloadavg()[0]:.2f}; temp folder {tmp}")
        results = {}
        for n in sizes:
            folder = write_pngs(tmp / f"img{n}", n)
            recipe = recipe_for(folder, tmp / f"img{n}.yaml", args.epochs)
            mb, wall, code = peak_rss_mb([dlrecipe, "train", str(recipe), "--out", str(tmp / "runs")])
            if code != 0:
                print(f"FAIL: training from {n} images exited with {code}")
                sys.exit(1)  # inside scratch: the folder is kept
            results[n] = mb
            print(f"{n:>7,} images: peak RSS {mb:8.1f} MB   ({wall:.1f} s, load {os.getloadavg()[0]:.2f})")
        base, last = sizes[0], sizes[-1]
        ratio = results[last] / results[base]
        loaded = (last - base) * 28 * 28 * 4 / 2**20
        print(f"ratio {last:,} / {base:,} images: {ratio:.3f}  (goal < 1.3); growth {results[last] - results[base]:+.1f} MB, "
              f"against {loaded:.1f} MB for holding the extra images as float32")
        return 0


if __name__ == "__main__":
    sys.exit(main())
