"""lr-find on a recipe: its wall time against one training epoch, and the test accuracy its suggestion gives.

Usage (from the repository root):
    .venv/bin/python bench/lrfind.py                       # quickstart, 3 epochs per training (~5 min)
    .venv/bin/python bench/lrfind.py --epochs 2 --subset 2000
    .venv/bin/python bench/lrfind.py --time-only --repeats 5   # part 1 only

Part 1: ``dlrecipe train RECIPE --set train.epochs=1`` (in process, TensorFlow already imported) against
``dlrecipe lr-find RECIPE``, both from recipe to result (data loading, model building and tracing
included): ratio goal <= 1.0. Part 2: the recipe trained for ``--epochs`` at each rate of the grid
{1e-4, 3e-4, 1e-3, 3e-3, 1e-2} and at lr-find's steepest and valley estimates, test accuracy of each:
goal, the suggestion within 0.01 of the best of the grid. Nothing is asserted about times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from common import scratch

ROOT = Path(__file__).resolve().parent.parent
GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "quickstart.yaml")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each training of part 2")
    parser.add_argument("--subset", type=int, default=None, help="first N examples of the data (data.subset)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of part 1 (epoch, lr-find), median")
    parser.add_argument("--time-only", action="store_true", help="part 1 only")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    from dlrecipe.api.run_folders import evaluate
    from dlrecipe.api.training import train
    from dlrecipe.api.understand import lr_find
    from dlrecipe.backend import import_keras_quietly, quiet_backend

    quiet_backend()
    import_keras_quietly()
    base = [f"data.subset={args.subset}"] if args.subset else []
    with scratch("lrfind", args.keep) as tmp:
        print(f"recipe {args.recipe}, load {load()}")
        epochs, finds = [], []
        for _ in range(args.repeats):  # interleaved, so that a busy moment hits both sides
            began = time.perf_counter()
            train(args.recipe, [*base, "train.epochs=1"], tmp / "epoch", argv=[])
            epochs.append(time.perf_counter() - began)
            began = time.perf_counter()
            _, found = lr_find(args.recipe, base, tmp / "lr-find.png")
            finds.append(time.perf_counter() - began)
        epoch_s, find_s = statistics.median(epochs), statistics.median(finds)
        print(f"\none training epoch (recipe to run folder)   {epoch_s:7.1f} s  (median of {args.repeats})")
        print(f"lr-find ({len(found.lrs)} steps, {found.stopped})     {find_s:7.1f} s  (median of {args.repeats})")
        print(f"ratio lr-find / epoch                       {find_s / epoch_s:7.2f}   (goal <= 1.0)  load {load()}")
        print(f"steepest {found.steepest:.3g}, valley {found.valley:.3g}, min loss at {found.min_loss_lr:.3g}; "
              f"suggestion {found.suggestion:.3g}")
        if args.time_only:
            return 0
        rates = [(f"{r:g}", r) for r in GRID] + [("steepest", found.steepest), ("valley", found.valley)]
        rows = []
        for label, rate in rates:
            began = time.perf_counter()
            done = train(args.recipe, [*base, f"train.epochs={args.epochs}", f"train.learning_rate={rate}"],
                         tmp / "runs", argv=[])
            _, metrics, _ = evaluate(done.run_dir)
            rows.append((label, rate, metrics["accuracy"], time.perf_counter() - began))
            print(f"  trained {label:>9} ({rate:.3g}): test accuracy {metrics['accuracy']:.4f}  "
                  f"({rows[-1][3]:.0f} s, load {load()})", flush=True)
        best = max(rows[:len(GRID)], key=lambda r: r[2])
        print(f"\n{'rate':>10} {'value':>9} {'test acc':>9} {'vs best':>8}")
        for label, rate, acc, _ in rows:
            print(f"{label:>10} {rate:9.3g} {acc:9.4f} {acc - best[2]:+8.4f}")
        chosen = {"steepest": rows[-2][2], "valley": rows[-1][2]}
        print(f"\nbest of the grid: {best[0]} ({best[2]:.4f}); {args.epochs} epoch(s) each")
        for name, acc in chosen.items():
            verdict = "within 0.01" if acc >= best[2] - 0.01 else "NOT within 0.01"
            print(f"{name}: {acc:.4f}, {acc - best[2]:+.4f} against the best: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
