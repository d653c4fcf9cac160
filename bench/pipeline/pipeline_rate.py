"""The input pipeline alone (batches/s, no model) against the training step rate: is the input ever the bottleneck?

For recipes/fashion_mnist_cnn.yaml, in one process:

1. the training pipeline dlrecipe builds (`dlrecipe.pipeline.fit_inputs`: shuffled, batched, prefetched)
   is iterated for one full epoch with no model, after one warm-up epoch: batches per second;
2. the same recipe's model is trained on that pipeline for two epochs; the second epoch's steps per
   second (a Keras callback times it) is the training step rate;
3. the same for an image_dir source: the first N Fashion-MNIST training images written as PNGs
   (decoded from disk each epoch).

The baseline is the training step rate, measured in the same run; the report is the ratio
pipeline batches/s / training steps/s. Goal: well above 1 (the input never the bottleneck).

    .venv/bin/python bench/pipeline/pipeline_rate.py            # full Fashion-MNIST + 10,000 PNGs
    .venv/bin/python bench/pipeline/pipeline_rate.py --small    # 3,000 examples + 1,000 PNGs (a check)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import scratch  # noqa: E402
from images import write_pngs  # noqa: E402

ROOT = HERE.parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def measure(loaded, label: str) -> tuple[float, float]:
    import keras

    from dlrecipe.build.checks import build_all
    from dlrecipe.build.compile import finalize
    from dlrecipe.data import pipeline
    from dlrecipe.train.runtime import seed_everything
    recipe = loaded.recipe
    seed_everything(recipe.seed, False)
    ds = pipeline.load(recipe.data, recipe.seed)
    stats = pipeline.fit_stats(recipe.data, ds)
    recipe = finalize(recipe, ds.info.task, ds.info.n_classes)
    inputs = pipeline.fit_inputs(ds, recipe, ds.info.n_classes)
    train = inputs["x"]
    steps = pipeline.steps(pipeline.n_train(ds), recipe.train.batch_size)

    for _ in train:  # warm-up epoch (graph tracing, file cache)
        pass
    started = time.perf_counter()
    count = sum(1 for _ in train)
    pipe_rate = count / (time.perf_counter() - started)

    built = build_all(recipe, ds.info.input_shape, stats, task=ds.info.task, n_classes=ds.info.n_classes,
                      steps_per_epoch=steps)
    built.model.compile(optimizer=built.optimizer, loss=built.loss, metrics=built.metrics)

    class EpochTimer(keras.callbacks.Callback):
        times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t)

    timer = EpochTimer()
    built.model.fit(train, epochs=2, callbacks=[timer], verbose=0, shuffle=False)
    train_rate = steps / timer.times[-1]
    print(f"{label}: pipeline {pipe_rate:8.1f} batches/s ({count} batches); training {train_rate:6.2f} steps/s; "
          f"ratio {pipe_rate / train_rate:6.1f}  (goal > 1; load {os.getloadavg()[0]:.2f})", flush=True)
    return pipe_rate, train_rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="3,000 Fashion-MNIST examples and 1,000 PNGs")
    ap.add_argument("--images", type=int, help="PNG count for the image_dir part (default 10,000; --small 1,000)")
    args = ap.parse_args()
    from dlrecipe.backend import import_keras_quietly
    from dlrecipe.recipe.loader import load_recipe
    import_keras_quietly()
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")
    recipe_path = ROOT / "recipes" / "fashion_mnist_cnn.yaml"
    sets = ["data.subset=3000"] if args.small else []
    measure(load_recipe(recipe_path, sets), "fashion_mnist (in memory)")
    n = args.images or (1000 if args.small else 10000)
    with scratch("rate") as tmp:
        folder = write_pngs(tmp / "images", n)
        image_sets = ["data.source=image_dir", f"data.path={folder}", "data.color_mode=grayscale"]
        measure(load_recipe(recipe_path, image_sets), f"image_dir ({n:,} PNGs, streamed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
