"""Does ``dlrecipe train --workers 2`` reach the accuracy of one worker? And how long does each take?

One worker:  ``KERAS_BACKEND=jax dlrecipe train RECIPE --out TMP/one --evaluate``
Two workers: ``KERAS_BACKEND=jax dlrecipe train RECIPE --out TMP/two --evaluate --workers 2``

RECIPE is recipes/quickstart.yaml (the small CNN on the Fashion-MNIST sample in data/: 4,000 training
and 1,000 test images) with its relative ``data.path`` made absolute, written to a temp folder. Both
runs use the JAX backend, the same seed and the same global batch (``batch_size`` 64: 32 per worker
with two), so the only difference is the split of each batch over two processes on loopback. They
cannot give identical weights: the workers shuffle their halves, not the whole training set, so the
examples meet in other batches. The goal is the same test accuracy within 1 point (0.01).

With ``--seeds N`` both are trained with seeds 42, 43, ... and the mean accuracies are compared too,
since on 1,000 test images one seed alone moves the accuracy by about one point.

Reported per seed: test accuracy of each, the difference, and the wall time of each whole command
(start-up, training, evaluation). The exit code is 1 when a run fails, or (without ``--small``) when
the mean accuracies differ by more than the goal; nothing is asserted about time.

Usage (from the repository root; nothing else should run meanwhile: two workers on two cores
compete with anything else running):
    .venv/bin/python bench/train_workers.py                # the recipe as it is (10 epochs), seed 42
    .venv/bin/python bench/train_workers.py --seeds 3      # seeds 42, 43, 44
    .venv/bin/python bench/train_workers.py --small        # smoke test: 600 examples, 1 epoch
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from common import find_dlrecipe, scratch

GOAL = 0.01
ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "quickstart.yaml"
ACCURACY = re.compile(r"^Test accuracy: ([0-9.]+)\s*$", re.M)


def make_recipe(folder: Path) -> Path:
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["data"]["path"] = str((RECIPE.parent / recipe["data"]["path"]).resolve())
    path = folder / "quickstart.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run(label: str, argv: list[str], log: Path) -> tuple[float, float]:
    """Run one command; returns (test accuracy, wall seconds). Exits 1 on failure."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    log.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    found = ACCURACY.search(proc.stdout)
    if proc.returncode != 0 or not found:
        print(f"{label}: FAILED (exit code {proc.returncode}); see {log}\n{proc.stderr[-3000:]}", file=sys.stderr)
        sys.exit(1)
    return float(found[1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1, help="train each side with this many seeds (42, 43, ...)")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: the recipe's)")
    parser.add_argument("--small", action="store_true", help="smoke test: 600 training examples, 1 epoch")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (recipe, logs, run folders)")
    args = parser.parse_args()
    dlrecipe = find_dlrecipe()
    sets = []
    if args.small:
        sets += ["--set", "data.subset=600", "--set", "train.epochs=1"]
    if args.epochs:
        sets += ["--set", f"train.epochs={args.epochs}"]
    print(f"recipe={RECIPE.relative_to(ROOT)} seeds={args.seeds}{' small' if args.small else ''}  "
          f"cpus={os.cpu_count()}  load={os.getloadavg()[0]:.2f}")
    print(f"{'seed':>5} {'1 worker':>9} {'2 workers':>10} {'diff':>8} {'wall 1':>8} {'wall 2':>8} {'load':>6}")
    ones, twos, walls1, walls2 = [], [], [], []
    with scratch("bench-workers", args.keep) as folder:
        recipe = make_recipe(folder)
        for seed in range(42, 42 + args.seeds):
            common = [dlrecipe, "train", str(recipe), *sets, "--set", f"seed={seed}", "--evaluate"]
            a1, w1 = run("1 worker", [*common, "--out", str(folder / "one")], folder / f"one-{seed}.log")
            a2, w2 = run("2 workers", [*common, "--out", str(folder / "two"), "--workers", "2"],
                         folder / f"two-{seed}.log")
            ones.append(a1), twos.append(a2), walls1.append(w1), walls2.append(w2)
            print(f"{seed:>5} {a1:>9.4f} {a2:>10.4f} {a2 - a1:>+8.4f} {w1:>7.1f}s {w2:>7.1f}s "
                  f"{os.getloadavg()[0]:>6.2f}", flush=True)
    diff = statistics.mean(twos) - statistics.mean(ones)
    met = abs(diff) <= GOAL
    print(f"mean test accuracy: 1 worker {statistics.mean(ones):.4f}, 2 workers {statistics.mean(twos):.4f}, "
          f"difference {diff:+.4f} (goal: within {GOAL:.2f}): {'met' if met else 'NOT met'}")
    print(f"median wall time: 1 worker {statistics.median(walls1):.1f} s, 2 workers {statistics.median(walls2):.1f} s "
          f"(ratio {statistics.median(walls2) / statistics.median(walls1):.2f})")
    if not met and not args.small:
        sys.exit(1)


if __name__ == "__main__":
    main()
