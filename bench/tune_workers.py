"""`dlrecipe tune --workers 2` against `--workers 1`: the same search, the wall time of each, and the ratio.

Both runs search recipes/tune_quickstart.yaml (the Fashion-MNIST sample shipped in data/) with random
search, the same seed, the same number of trials and epochs, each in a fresh --out folder, as a real
`dlrecipe tune` process. With --workers N each worker's TensorFlow gets cores // N threads, so both
runs use the whole machine: one process with all cores against N processes with a share each.

    .venv/bin/python bench/tune_workers.py            # 12 trials of 4 epochs on the 4,000-image sample (~4 min)
    .venv/bin/python bench/tune_workers.py --small    # 2 trials of 1 epoch on 500 images: a smoke test
    .venv/bin/python bench/tune_workers.py --trials 16 --epochs 6 --keep

Goal (2 cores): wall time with 2 workers / wall time with 1 worker <= 0.7. The exit code is 1 only when a
correctness check fails (a run fails, does not end with exactly the requested number of completed
trials, each a different trial id, or --workers 2 did not use both workers); the time is reported, not
asserted.
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


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def run(dlrecipe: str, out: Path, workers: int, sets: list[str], trials: int) -> tuple[float, list[dict]]:
    cmd = [dlrecipe, "tune", str(RECIPE), "--out", str(out), "--workers", str(workers), "--max-trials", str(trials),
           *sets]
    print(f"$ {' '.join(cmd)}   (load {load()})", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"FAILED (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith(("Trial ", "Worker ", "Restarted ")):
            print(f"    {line}")
    with open(out / "tune_quickstart" / "tune" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    ids = [r["trial"] for r in rows]
    done = [r for r in rows if r["status"] == "COMPLETED"]
    if len(done) != trials or len(set(ids)) != len(ids):
        found = [(r["trial"], r["status"]) for r in rows]
        sys.exit(f"FAILED: expected {trials} completed trials with distinct ids, got {found}")
    return wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="2 trials of 1 epoch on 500 images (smoke test)")
    parser.add_argument("--trials", type=int, help="trials per run (default 12; --small 2)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default 4; --small 1)")
    parser.add_argument("--subset", type=int, help="training images (default: the whole sample; --small 500)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder with both searches")
    args = parser.parse_args()
    trials = args.trials or (2 if args.small else 12)
    epochs = args.epochs or (1 if args.small else 4)
    subset = args.subset or (500 if args.small else None)
    # No early stopping: every trial trains the same number of epochs in both runs.
    sets = ["--set", f"train.epochs={epochs}", "--set", "tune.early_stopping=null"]
    if subset:
        sets += ["--set", f"data.subset={subset}"]
    dlrecipe = find_dlrecipe()
    print(f"{trials} trials x {epochs} epoch(s), {subset or 'all'} training images, {os.cpu_count()} cores")
    with scratch("tune-workers", args.keep) as tmp:
        walls, seconds = {}, {}
        for workers in (1, 2):
            wall, rows = run(dlrecipe, tmp / f"workers{workers}", workers, sets, trials)
            walls[workers] = wall
            seconds[workers] = sum(float(r["seconds"] or 0) for r in rows)
            print(f"  --workers {workers}: {wall:.1f} s wall, {seconds[workers]:.1f} s inside trials (summed over "
                  f"workers), workers used: {sorted({r.get('worker') for r in rows})}   (load {load()})")
        used = {r.get("worker") for r in rows}
        if used != {"tuner0", "tuner1"}:
            sys.exit(f"FAILED: --workers 2 ran its trials on {sorted(used)}, not on both workers")
        ratio = walls[2] / walls[1]
        print(f"\nwall time --workers 2 / --workers 1: {walls[2]:.1f} / {walls[1]:.1f} s = {ratio:.2f}  (goal <= 0.7)")
        print("Both wall times include start-up (with workers: the chief's and each worker's TensorFlow import).")


if __name__ == "__main__":
    main()
