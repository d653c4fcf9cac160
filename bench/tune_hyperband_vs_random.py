"""Hyperband against random search with the same compute budget in epochs: best objective and wall time.

Both search recipes/tune_quickstart.yaml (the Fashion-MNIST sample shipped in data/), same spaces, same
seed, objective val_accuracy, as real `dlrecipe tune` processes in fresh --out folders, without early
stopping. Hyperband runs first with `tune.max_epochs = E`; the epochs its trials trained (summed from its
trials.csv) are the budget B. Random search then trains every trial for E epochs, with
`--max-trials round(B / E)`, so both spend the same number of epochs (up to one trial's rounding).

    .venv/bin/python bench/tune_hyperband_vs_random.py            # E = 9 on the 4,000-image sample (~6 min)
    .venv/bin/python bench/tune_hyperband_vs_random.py --small    # E = 2 on 500 images: a smoke test
    .venv/bin/python bench/tune_hyperband_vs_random.py --max-epochs 12 --keep

Reports, for each tuner: trials, epochs trained, best val_accuracy, wall time. The exit code is 1 only
when a run fails or ends without a completed trial.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from common import find_dlrecipe, scratch

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "tune_quickstart.yaml"


def run(dlrecipe: str, out: Path, sets: list[str]) -> dict:
    cmd = [dlrecipe, "tune", str(RECIPE), "--out", str(out), *sets]
    print(f"$ {' '.join(cmd)}   (load {os.getloadavg()[0]:.2f})", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"FAILED (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with open(out / "tune_quickstart" / "tune" / "trials.csv") as f:
        rows = [r for r in csv.DictReader(f)]
    done = [r for r in rows if r["status"] == "COMPLETED"]
    if not done:
        sys.exit(f"FAILED: no completed trial in {out}")
    return {"trials": len(done), "epochs": sum(int(r["epochs"] or 0) for r in rows),
            "best": max(float(r["objective"]) for r in done), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="max_epochs 2 on 500 images (smoke test)")
    parser.add_argument("--max-epochs", type=int, help="Hyperband's max_epochs, and random search's epochs per "
                        "trial (default 9; --small 2)")
    parser.add_argument("--subset", type=int, help="training images (default: the whole sample; --small 500)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder with both searches")
    args = parser.parse_args()
    epochs = args.max_epochs or (2 if args.small else 9)
    subset = args.subset or (500 if args.small else None)
    common = ["--set", "tune.early_stopping=null", "--set", f"train.epochs={epochs}"]
    if subset:
        common += ["--set", f"data.subset={subset}"]
    dlrecipe = find_dlrecipe()
    with scratch("hyperband", args.keep) as tmp:
        hb = run(dlrecipe, tmp / "hyperband", [*common, "--set", "tune.tuner=hyperband",
                                                "--set", f"tune.max_epochs={epochs}"])
        trials = max(1, round(hb["epochs"] / epochs))
        rs = run(dlrecipe, tmp / "random", [*common, "--set", "tune.tuner=random", "--max-trials", str(trials)])
        print(f"\n{'tuner':<10} {'trials':>6} {'epochs':>7} {'best val_accuracy':>18} {'wall s':>8}")
        for name, r in (("hyperband", hb), ("random", rs)):
            print(f"{name:<10} {r['trials']:>6} {r['epochs']:>7} {r['best']:>18.4f} {r['wall']:>8.1f}")
        print(f"\nbudget: {hb['epochs']} epochs (Hyperband, max_epochs {epochs}); random search: {trials} trials x "
              f"{epochs} epochs = {rs['epochs']} epochs")


if __name__ == "__main__":
    main()
