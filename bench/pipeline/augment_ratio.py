"""Epoch time with five augmentations against the same training without them, in one run.

    .venv/bin/python bench/pipeline/augment_ratio.py            # full Fashion-MNIST, 1 epoch, 2 rounds
    .venv/bin/python bench/pipeline/augment_ratio.py --small    # first 3,000 training images: a smoke test
    .venv/bin/python bench/pipeline/augment_ratio.py --epochs 2 # also a steady-state epoch (no tracing)

A is ``dlrecipe train recipes/fashion_mnist_cnn.yaml`` with ``train.epochs`` set; B is the same with
``data.augment`` set to the five label-preserving augmentations in ``AUGMENT``. They run as separate
processes, alternating A B A B (after one untimed ``import keras`` to warm the file cache), each through
dlrecipe's own CLI code (``dlrecipe.cli.app``) in a child process of this script that times every epoch
with ``time.perf_counter`` from Keras's ``on_epoch_begin`` to ``on_epoch_end`` (training steps and the
validation pass, not the checkpoint written after it). Reported: each process's epoch times, the median
per side, and the ratio B / A per epoch; the goal is at most 1.15 for the first epoch. The exit code is
1 only when a training fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import scratch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "fashion_mnist_cnn.yaml"
# Label-preserving for Fashion-MNIST: garments are left-right symmetric, centred on a black background.
AUGMENT = ("[{type: RandomFlip, mode: horizontal},"
           " {type: RandomTranslation, height_factor: 0.1, width_factor: 0.1, fill_mode: constant},"
           " {type: RandomRotation, factor: 0.05, fill_mode: constant},"
           " {type: random_erasing, probability: 0.5},"
           " {type: gaussian_noise, stddev: 0.02}]")
MARK = "BENCH_EPOCHS "
GOAL = 1.15


def child(argv: list[str]) -> None:
    """Run ``dlrecipe train ARGV`` in this process and print the time of every epoch."""
    from dlrecipe import cli
    from dlrecipe.train import fit as trainmod

    times: list[float] = []
    info: dict = {}
    base = trainmod._Watcher

    class Timed(base):  # the run's own callback, timed: epoch begin to epoch end
        def on_train_begin(self, logs=None):
            info["jit_compile"] = bool(getattr(self.model, "jit_compile", False))
            info["augmentation_layers"] = [type(layer).__name__ for layer in self.model.layers
                                           if layer.name.startswith(("random_", "gaussian_noise", "scaled_gaussian_noise"))]
            super().on_train_begin(logs)

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()
            super().on_epoch_begin(epoch, logs)

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self._start)
            super().on_epoch_end(epoch, logs)

    trainmod._Watcher = Timed
    sys.argv = ["dlrecipe", "train", *argv]
    try:
        cli.app(args=["train", *argv], standalone_mode=False)
    finally:
        print(MARK + json.dumps({"epochs": times, **info}), flush=True)


def run_one(label: str, sets: list[str], folder: Path, i: int) -> dict:
    out = folder / f"runs-{label}-{i}"
    argv = [sys.executable, __file__, "--child", str(RECIPE), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    wall = time.perf_counter() - t0
    (folder / f"{label}-{i}.log").write_text(f"$ {' '.join(argv)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    found = [json.loads(line[len(MARK):]) for line in proc.stdout.splitlines() if line.startswith(MARK)]
    result = {"label": label, "wall": wall, "rc": proc.returncode, **(found[-1] if found else {"epochs": []})}
    if proc.returncode != 0 or not result["epochs"]:
        print(f"   FAIL: {label} exited {proc.returncode}; log {folder / f'{label}-{i}.log'}\n"
              f"{(proc.stderr or proc.stdout)[-3000:]}")
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description="Epoch time with augmentation / without, same run.")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per training (default 1)")
    ap.add_argument("--repeats", type=int, default=2, help="A B rounds (default 2)")
    ap.add_argument("--small", action="store_true", help="only the first 3,000 training images (smoke test)")
    ap.add_argument("--subset", type=int, default=None, help="only the first N training images")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs, run folders)")
    args = ap.parse_args()
    if args.epochs < 1 or args.repeats < 1:
        ap.error("--epochs and --repeats must be at least 1")
    subset = args.subset or (3000 if args.small else None)
    common = [f"train.epochs={args.epochs}"] + ([f"data.subset={subset}"] if subset else [])
    with scratch("augment-ratio", args.keep) as folder:
        print(f"bench/pipeline/augment_ratio.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  recipe={RECIPE.name}  "
              f"epochs={args.epochs}  repeats={args.repeats}  subset={subset or 'all'}  cpus={os.cpu_count()}  "
              f"load={os.getloadavg()[0]:.2f}")
        print(f"   B adds data.augment={AUGMENT}")
        subprocess.run([sys.executable, "-c", "import keras"], capture_output=True)  # warm the file cache
        results: dict[str, list[dict]] = {"A": [], "B": []}
        failed = False
        for i in range(args.repeats):
            for label, sets in (("A", common), ("B", common + [f"data.augment={AUGMENT}"])):
                r = run_one(label, sets, folder, i)
                failed |= r["rc"] != 0 or not r["epochs"]
                results[label].append(r)
                shown = ", ".join(f"{t:.2f}" for t in r["epochs"])
                print(f"   {label}{i + 1}: epochs [{shown}] s  (process {r['wall']:.1f} s, augmentation layers "
                      f"{len(r.get('augmentation_layers', []))}, jit_compile={r.get('jit_compile')}, "
                      f"load {os.getloadavg()[0]:.2f})")
                if label == "B" and len(r.get("augmentation_layers", [])) != 5:
                    print(f"   FAIL: B's model holds {r.get('augmentation_layers')}, expected the five augmentations")
                    failed = True
        if failed:
            print("FAILED")
            sys.exit(1)
        print("epoch   A median (s)   B median (s)   B / A")
        ratios = []
        for e in range(args.epochs):
            a = statistics.median(r["epochs"][e] for r in results["A"])
            b = statistics.median(r["epochs"][e] for r in results["B"])
            ratios.append(b / a)
            print(f"{e + 1:>5}   {a:12.2f}   {b:12.2f}   {b / a:5.3f}")
        verdict = "meets" if ratios[0] <= GOAL else "misses"
        print(f"Ratio with / without augmentation, epoch 1: {ratios[0]:.3f} ({verdict} the goal <= {GOAL})"
              + (f"; last epoch: {ratios[-1]:.3f}" if len(ratios) > 1 else ""))


if __name__ == "__main__":
    main()
