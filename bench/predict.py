"""`dlrecipe predict` throughput against calling the SavedModel's signature directly on the same batches.

Trains a small CNN on data/fashion_mnist_sample.npz for one epoch, exports it, writes the 1,000 test
images as PNGs, then interleaves rounds of
  baseline: plain TensorFlow, `serve(inputs=tf.constant(batch))` and `.numpy()` of its outputs, over the
            test images (tiled x10) in batches of --batch;
  predict:  dlrecipe's streaming loop (`write_predictions`: slicing, the call, top-k rows, the CSV) on an
            .npz holding the same images, and on the PNG folder (decoding included);
and prints images/s and the ratio predict / baseline (goal >= 0.95 for the .npz), with the CPU seconds of
each (the process's time, steadier than wall time when other work shares the cores). It checks that
predict's classes are the signature's (exit 1 otherwise). Usage: .venv/bin/python bench/predict.py [--top-k 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import scratch

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def recipe(npz: Path) -> dict:
    return {"name": "bench_predict", "seed": 1,
            "data": {"source": "npz", "path": str(npz), "validation_split": 0.1, "normalize": "rescale"},
            "model": {"layers": [{"type": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"},
                                 {"type": "MaxPooling2D"}, {"type": "Conv2D", "filters": 32, "kernel_size": 3,
                                                            "activation": "relu"},
                                 {"type": "GlobalAveragePooling2D"}, {"type": "Dense", "units": 10,
                                                                      "activation": "softmax"}]},
            "train": {"epochs": 1, "batch_size": 64}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--tile", type=int, default=10, help="repeat the 1,000 test images this many times")
    parser.add_argument("--top-k", type=int, default=1, help="predict's --top-k (the rows it formats per batch)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import yaml
    from PIL import Image

    from dlrecipe.api import run_folders, training
    from dlrecipe.export.inputs import read_inputs
    from dlrecipe.export.predict import open_served, write_predictions

    with scratch("predict") as folder:
        sample = np.load(ROOT / "data" / "fashion_mnist_sample.npz")
        (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe(ROOT / "data" / "fashion_mnist_sample.npz")))
        done = training.train(folder / "recipe.yaml", [], folder / "runs")
        run_folders.export(done.run_dir, ["saved_model"])
        x_test = sample["x_test"]
        x = np.concatenate([x_test] * args.tile)
        np.savez(folder / "tiled.npz", x=x)
        (folder / "png").mkdir()
        for i, image in enumerate(x_test):
            Image.fromarray(image[:, :, 0]).save(folder / f"png/{i:04d}.png")

        import tensorflow as tf
        saved = done.run_dir / "export" / "saved_model" / "1"
        serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
        batches = [x[i:i + args.batch] for i in range(0, len(x), args.batch)]

        def baseline() -> tuple[tuple[float, float], list[str]]:
            t0, c0 = time.perf_counter(), time.process_time()
            names = []
            for b in batches:
                out = {k: v.numpy() for k, v in serve(inputs=tf.constant(b)).items()}
                names += [n.decode() for n in out["class_name"]]
            return (time.perf_counter() - t0, time.process_time() - c0), names

        opened = open_served(saved)

        def predicted(paths: list[Path], out: Path) -> tuple[float, float]:
            sources = read_inputs(paths, opened.meta["signature"], False)
            t0, c0 = time.perf_counter(), time.process_time()
            write_predictions(opened, sources, out, top_k=args.top_k, batch=args.batch)
            return time.perf_counter() - t0, time.process_time() - c0

        baseline()  # warm-up: the first calls trace and allocate
        predicted([folder / "tiled.npz"], folder / "warm.csv")
        base_s, npz_s, png_s = [], [], []
        for r in range(args.rounds):
            seconds, expected = baseline()
            base_s.append(seconds)
            npz_s.append(predicted([folder / "tiled.npz"], folder / "npz.csv"))
            png_s.append(predicted([folder / "png"], folder / "png.csv"))
            print(f"round {r + 1}: load {os.getloadavg()[0]:.2f}", flush=True)
        import csv
        with open(folder / "npz.csv", newline="") as f:
            got = [row["class"] for row in csv.DictReader(f)]
        with open(folder / "png.csv", newline="") as f:
            got_png = [row["class"] for row in csv.DictReader(f)]
        same = got == expected and got_png == expected[:len(x_test)]
        b, n, p = (statistics.median(w for w, _ in s) for s in (base_s, npz_s, png_s))
        b_cpu, n_cpu = (statistics.median(c for _, c in s) for s in (base_s, npz_s))
        print(f"baseline (signature in a loop): {len(x) / b:10,.0f} images/s  ({len(x)} images, batch {args.batch}, "
              f"top-k {args.top_k}, load {os.getloadavg()[0]:.2f})")
        print(f"predict .npz:                   {len(x) / n:10,.0f} images/s  ratio {b / n:.3f}  (CPU seconds: "
              f"{n_cpu:.2f} vs {b_cpu:.2f}, ratio {b_cpu / n_cpu:.3f}; steadier on a shared machine)")
        print(f"predict PNG folder (decoding):  {len(x_test) / p:10,.0f} images/s  ratio "
              f"{(len(x_test) / p) / (len(x) / b):.3f}")
        print(f"classes identical to the signature's: {same} ({len(got)} + {len(got_png)} images)")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
