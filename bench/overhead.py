"""The overhead of ``dlrecipe train`` over the same training written by hand in Keras 3.

A (dlrecipe): ``dlrecipe train RECIPE --out TMP/runs --evaluate``, where RECIPE is recipes/quickstart.yaml
    (default) or recipes/fashion_mnist_cnn.yaml (``--full``) with only ``train.epochs`` changed (and a
    relative ``data.path`` made absolute), written to a temp folder.
B (hand-written): ``python bench/handwritten_cnn.py``: the same model, optimizer, learning rate, batch
    size, epochs, seed and normalization in plain Keras, on the identical splits (it loads them with
    ``dlrecipe.data.load``, so both processes pay the same data loading), fit with the same validation
    arrays, then ``model.evaluate`` on the test split and ``model.save``.

Both run as separate processes (each pays its own TensorFlow import), alternated A B A B for
``--repeats`` rounds, after one untimed ``import keras`` to warm the file cache. The wall time of each
whole process is measured; the report gives the medians, the ratio dlrecipe / hand-written (goal:
<= 1.05), both test accuracies, and the time inside training (the sum of Keras's per-epoch times, whole
seconds, parsed from the progress bar; the hand-written script also reports the exact ``fit`` time), so
that ``wall - training`` shows the fixed cost of each side (import, data, build, evaluation, saving).

What dlrecipe does on top by design is part of its time: a checkpoint, history.csv and TensorBoard logs
per epoch, the run folder, and for ``--evaluate`` reloading the model and the data and writing
metrics.json and plots.

Nothing is asserted about time: the exit code is 1 only when a run fails or the recipe no longer
matches the hand-written model.

Usage (from the repository root; nothing else should run meanwhile):
    .venv/bin/python bench/overhead.py                  # sample data, 3 epochs, 2 rounds
    .venv/bin/python bench/overhead.py --full           # full Fashion-MNIST, fashion_mnist_cnn's model
    .venv/bin/python bench/overhead.py --epochs 1 --repeats 1   # smoke test
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

GOAL_RATIO = 1.05
ROOT = Path(__file__).resolve().parent.parent
HANDWRITTEN = Path(__file__).resolve().parent / "handwritten_cnn.py"

# What bench/handwritten_cnn.py hard-codes, as recipe sections (train.epochs and data.path excepted).
# If the repository's recipe changes, the comparison is refused until both are brought back in line.
EXPECTED = {
    "quickstart": """
seed: 42
data: {source: npz, validation_split: 0.1, normalize: rescale}
model:
  layers:
    - {type: Conv2D, filters: 32, kernel_size: 3, padding: same, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Conv2D, filters: 64, kernel_size: 3, padding: same, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Flatten}
    - {type: Dropout, rate: 0.3}
    - {type: Dense, units: 128, activation: relu}
    - {type: Dense, units: 10, activation: softmax}
train: {batch_size: 64, loss: sparse_categorical_crossentropy, metrics: [accuracy], optimizer: adam,
        learning_rate: 0.001}
""",
    "full": """
seed: 42
data: {source: fashion_mnist, validation_split: 0.1, normalize: per_channel}
model:
  defaults: {kernel_initializer: he_normal}
  layers:
    - {type: Conv2D, filters: 32, kernel_size: 3, use_bias: false}
    - {type: BatchNormalization}
    - {type: Activation, activation: relu}
    - {type: Conv2D, filters: 32, kernel_size: 3, use_bias: false}
    - {type: BatchNormalization}
    - {type: Activation, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Dropout, rate: 0.25}
    - {type: Conv2D, filters: 64, kernel_size: 3, use_bias: false}
    - {type: BatchNormalization}
    - {type: Activation, activation: relu}
    - {type: Conv2D, filters: 64, kernel_size: 3, use_bias: false}
    - {type: BatchNormalization}
    - {type: Activation, activation: relu}
    - {type: MaxPooling2D, pool_size: 2}
    - {type: Dropout, rate: 0.25}
    - {type: Flatten}
    - {type: Dense, units: 512, use_bias: false}
    - {type: BatchNormalization}
    - {type: Activation, activation: relu}
    - {type: Dropout, rate: 0.5}
    - {type: Dense, units: 10, activation: softmax, kernel_initializer: glorot_uniform}
train: {batch_size: 128, loss: sparse_categorical_crossentropy, metrics: [accuracy], optimizer: adam,
        learning_rate: {schedule: cosine, initial: 0.001, warmup_epochs: 1}}
""",
}
RECIPES = {"quickstart": ROOT / "recipes" / "quickstart.yaml", "full": ROOT / "recipes" / "fashion_mnist_cnn.yaml"}

ANSI = re.compile(r"\x1b\[[0-9;]*m")
EPOCH = re.compile(r"^Epoch (\d+)/(\d+)\s*$", re.M)
BAR_DONE = re.compile(r"(\d+)/(\d+) ━+ (\d+)s\b")
ACCURACY = re.compile(r"^Test accuracy: ([0-9.]+)\s*$", re.M)
FIT = re.compile(r"^BENCH_FIT_SECONDS: ([0-9.]+)\s*$", re.M)
LINE = re.compile(r"^Epoch \d+/\d+ - ([0-9.]+)s - ", re.M)  # dlrecipe's one line per epoch in a pipe


def make_recipe(variant: str, epochs: int, subset: int | None, folder: Path) -> Path:
    """The repository's recipe with train.epochs changed; refused if it no longer matches the baseline."""
    source = RECIPES[variant]
    recipe = yaml.safe_load(source.read_text())
    expected = yaml.safe_load(EXPECTED[variant])
    mismatches = []
    for section, want in expected.items():
        got = recipe.get(section)
        if isinstance(want, dict) and isinstance(got, dict):
            got = {k: v for k, v in got.items() if k not in ("path", "epochs")}
        if got != want:
            mismatches.append(f"  {section}:\n    recipe:   {got}\n    expected: {want}")
    extra = sorted(set(recipe) - set(expected) - {"name", "export"})
    if extra:
        mismatches.append(f"  sections the baseline does not mirror: {', '.join(extra)}")
    if mismatches:
        sys.exit(f"{source} no longer matches what bench/handwritten_cnn.py hard-codes; update both "
                 "(handwritten_cnn.py and EXPECTED in bench/overhead.py) first:\n" + "\n".join(mismatches))
    recipe["name"] = f"bench_overhead_{variant}"
    recipe["train"]["epochs"] = epochs
    if subset:
        recipe["data"]["subset"] = subset
    if recipe["data"].get("path"):
        recipe["data"]["path"] = str((source.parent / recipe["data"]["path"]).resolve())
    out = folder / f"{recipe['name']}.yaml"
    out.write_text(f"# Generated by bench/overhead.py from {source.relative_to(ROOT)} (train.epochs={epochs}"
                   f"{f', data.subset={subset}' if subset else ''}).\n"
                   + yaml.safe_dump(recipe, sort_keys=False))
    return out


def epoch_seconds(stdout: str) -> list[int]:
    """Keras's elapsed time at the end of each training epoch (whole seconds), from the progress bar.

    dlrecipe writes one line per epoch when its output is a pipe (``Epoch 1/3 - 4.2s - ...``): read those.
    """
    text = ANSI.sub("", stdout).replace("\b", "\n").replace("\r", "\n")
    lines = LINE.findall(text)
    if lines:
        return [round(float(s)) for s in lines]
    marks = list(EPOCH.finditer(text))  # Keras prints "Epoch e/E" only when E > 1
    starts = [m.end() for m in marks] or [0]
    ends = [m.start() for m in marks[1:]] + [len(text)]
    result, steps = [], None
    for start, end in zip(starts, ends):
        chunk = text[start:end]
        done = [b for b in BAR_DONE.finditer(chunk) if b.group(1) == b.group(2)]
        if steps is None and done:
            steps = done[0].group(2)  # the training bar comes first after "Epoch 1/E"
        done = [b for b in done if b.group(2) == steps]
        if done:
            result.append(int(done[-1].group(3)))
    return result


def run_one(label: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    log.write_text(f"$ {' '.join(argv)}\n# exit {proc.returncode}, {wall:.3f} s\n--- stdout\n{out}\n--- stderr\n{err}")
    acc = ACCURACY.search(out)
    fit = FIT.search(out)
    epochs = epoch_seconds(out)
    result = {"label": label, "wall": wall, "rc": proc.returncode, "log": log,
              "accuracy": float(acc.group(1)) if acc else None, "fit": float(fit.group(1)) if fit else None,
              "epochs": epochs, "train": float(sum(epochs)) if epochs else None}
    if proc.returncode != 0:
        tail = (err or out)[-3000:]
        print(f"   FAIL: {label} exited {proc.returncode}; log {log}\n{tail}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description="dlrecipe train vs. a hand-written Keras script, same run.")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs for both (default 3)")
    ap.add_argument("--repeats", type=int, default=2, help="A B rounds (default 2)")
    ap.add_argument("--full", action="store_true", help="full Fashion-MNIST and fashion_mnist_cnn's model")
    ap.add_argument("--subset", type=int, default=None,
                    help="use only the first N training examples, both sides (for smoke tests of --full)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (recipe, logs, run folders)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed `import keras` first")
    args = ap.parse_args()
    if args.epochs < 1 or args.repeats < 1:
        ap.error("--epochs and --repeats must be at least 1")
    variant = "full" if args.full else "quickstart"
    dlrecipe = find_dlrecipe()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    with scratch("overhead", args.keep) as folder:
        recipe = make_recipe(variant, args.epochs, args.subset, folder)
        # Timed: training alone on both sides (train + save); the test accuracies come from untimed passes after.
        a_argv = [dlrecipe, "train", str(recipe), "--out", str(folder / "runs")]
        subset = f"  subset={args.subset}" if args.subset else ""
        print(f"bench/overhead.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  variant={variant}  epochs={args.epochs}  "
              f"repeats={args.repeats}{subset}  cpus={os.cpu_count()}  load={os.getloadavg()[0]:.2f}")
        print(f"   temp folder: {folder}\n   A: {' '.join(a_argv)}")
        b_cmd = [sys.executable, str(HANDWRITTEN), "--variant", variant, "--epochs", str(args.epochs)]
        if args.subset:
            b_cmd += ["--subset", str(args.subset)]
        print(f"   B: {' '.join(b_cmd)} --out {folder}/handwritten-N")
        if not args.no_warmup:
            subprocess.run([sys.executable, "-c", "import keras"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        results: dict[str, list[dict]] = {"dlrecipe": [], "handwritten": []}
        ok = True
        for i in range(1, args.repeats + 1):
            for label in ("dlrecipe", "handwritten"):
                argv = a_argv if label == "dlrecipe" else [*b_cmd, "--out", str(folder / f"handwritten-{i}")]
                r = run_one(label, argv, env, folder, folder / f"{label}-{i}.log")
                if r["rc"] == 0:  # the untimed accuracy pass
                    if label == "dlrecipe":
                        run = max((folder / "runs").glob("*/*/model.keras"), key=lambda p: p.stat().st_mtime).parent
                        check = [dlrecipe, "evaluate", str(run)]
                    else:
                        check = [*b_cmd, "--out", str(folder / f"handwritten-{i}"), "--evaluate"]
                    r["accuracy"] = run_one(label, check, env, folder, folder / f"{label}-{i}-evaluate.log")["accuracy"]
                ok &= r["rc"] == 0
                results[label].append(r)
                per_epoch = "+".join(str(s) for s in r["epochs"]) or "?"
                print(f"   round {i} {label:<11} wall {r['wall']:7.2f} s   epochs {per_epoch} s   "
                      f"test accuracy {r['accuracy'] if r['accuracy'] is not None else '?'}   "
                      f"(load after: {os.getloadavg()[0]:.2f})")
        if not ok:
            print("\nA run failed")
            sys.exit(1)

        def med(label: str, key: str) -> float | None:
            vals = [r[key] for r in results[label] if r[key] is not None]
            return statistics.median(vals) if vals else None

        a, b = med("dlrecipe", "wall"), med("handwritten", "wall")
        print(f"\n   {'':<13} {'wall s':>8} {'in epochs s':>11} {'rest s':>7} {'test acc':>8}   (medians)")
        for label in ("dlrecipe", "handwritten"):
            wall, train, acc = med(label, "wall"), med(label, "train"), med(label, "accuracy")
            rest = f"{wall - train:7.2f}" if train is not None else "      ?"
            print(f"   {label:<13} {wall:8.2f} {train if train is not None else float('nan'):11.0f} {rest} {acc:8.4f}")
        fit = med("handwritten", "fit")
        if fit is not None:
            print(f"   (hand-written model.fit, exact: {fit:.2f} s)")
        ratio = a / b
        print(f"\n   dlrecipe / hand-written wall time: {ratio:.3f} ({a - b:+.2f} s); goal <= {GOAL_RATIO}: "
              f"{'ok' if ratio <= GOAL_RATIO else 'OVER'}")
        acc_a, acc_b = med("dlrecipe", "accuracy"), med("handwritten", "accuracy")
        print(f"   test accuracy: dlrecipe {acc_a:.4f}, hand-written {acc_b:.4f} ({acc_a - acc_b:+.4f})")


if __name__ == "__main__":
    main()
