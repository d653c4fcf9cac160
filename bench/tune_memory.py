"""Memory across a long search: the resident set size (RSS) of one process after trial 1 and after trial N.

KerasTuner users report memory that grows trial after trial (keras-team/keras-tuner #395, #873, #1031).
This runs a tiny random search of N trials (default 40; 1 epoch each on 8x8 synthetic images, a Dense layer
whose units and a Dropout rate are searched) in this one process, through dlrecipe's own search
(``dlrecipe.tune.tuner.tune``, the code behind ``dlrecipe tune``), and reads this process's RSS from
/proc/self/status when each trial's line is printed. The baseline is the RSS after trial 1, measured in the
same run (it holds TensorFlow, the data and one trained model); the figure is the growth ratio
RSS(after trial N) / RSS(after trial 1) - 1. Goal: <= 10%. Also printed: RSS after every 10th trial, so a
steady climb is told from a one-off step.

Nothing is asserted: the exit code is 1 only when the search does not complete N trials.

    .venv/bin/python bench/tune_memory.py              # 40 trials (a few minutes on 2 cores)
    .venv/bin/python bench/tune_memory.py --trials 5   # smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from common import scratch

GOAL = 0.10
ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Recorder:
    """Stands in for the rich console: records the RSS as each trial's line is printed."""

    is_terminal = False

    def __init__(self):
        self.rss: list[float] = []

    def print(self, what, *args, **kwargs) -> None:
        if isinstance(what, str) and what.startswith("Trial "):
            self.rss.append(rss_mib())
            n = len(self.rss)
            if n == 1 or n % 10 == 0:
                print(f"after trial {n:3d}: RSS {self.rss[-1]:8.1f} MiB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from dlrecipe.backend import import_keras_quietly
    from dlrecipe.recipe.loader import load_recipe
    import_keras_quietly()
    from dlrecipe.tune.tuner import tune

    with scratch("tune-memory", keep=args.keep) as folder:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 255, size=(200, 8, 8, 1)).astype(np.uint8)
        y = (np.arange(200) % 3).astype(np.int64)
        np.savez(folder / "tiny.npz", x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:])
        recipe = {
            "name": "memory", "seed": 1,
            "data": {"source": "npz", "path": str(folder / "tiny.npz"), "validation_split": 0.2,
                     "normalize": "rescale"},
            "model": {"layers": [{"type": "Flatten"}, {"type": "Dense", "units": {"int": [4, 64]},
                                                       "activation": "relu"},
                                 {"type": "Dropout", "rate": {"float": [0.0, 0.5]}},
                                 {"type": "Dense", "units": 3, "activation": "softmax"}]},
            "train": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.01,
                      "metrics": ["accuracy"]},
            "tune": {"tuner": "random", "objective": "val_accuracy", "max_trials": args.trials},
        }
        path = folder / "memory.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        recorder = Recorder()
        started = time.time()
        tune(load_recipe(path, []), folder / "runs", console=recorder)
        seconds = time.time() - started
    if len(recorder.rss) < args.trials:
        print(f"only {len(recorder.rss)} of {args.trials} trials ended")
        return 1
    first, last = recorder.rss[0], recorder.rss[-1]
    growth = last / first - 1
    print(f"{args.trials} trials in {seconds:.0f}s; RSS after trial 1: {first:.1f} MiB, after trial "
          f"{args.trials}: {last:.1f} MiB; growth {growth:+.1%} (goal <= {GOAL:.0%}): "
          f"{'met' if growth <= GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
