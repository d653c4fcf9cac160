"""Under KERAS_BACKEND=jax: the train step of a recipe jitted, as dlrecipe builds it, against Keras's default.

Keras marks RandomTranslation, RandomRotation, RandomZoom, RandomShear and RandomPerspective
``supports_jit = False`` on every backend (true of TensorFlow's transform op, not of JAX's), and then
runs the whole JAX train step un-jitted, op by op. dlrecipe marks them as supporting XLA on JAX
(``layers.jit.JAX_JIT_OK``). This builds the recipe's model once (``dlrecipe validate``'s path, with
placeholder statistics), and times ``fit`` on random images, alternating rounds:

- A: the model as dlrecipe builds it (``jit_compile: true`` honoured);
- B: the same model with those layers set back to Keras's ``supports_jit = False`` (the baseline:
  what a hand-written Keras script gets).

It prints the median seconds per step of each and B / A. The exit code is 1 only if A did not
compile with XLA, or B did (then the comparison measures nothing).

    KERAS_BACKEND=jax .venv/bin/python bench/jax_jit.py                    # resnet20, 20 steps x 2 rounds
    KERAS_BACKEND=jax .venv/bin/python bench/jax_jit.py --steps 10 --rounds 1   # smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "resnet20.yaml")
    parser.add_argument("--steps", type=int, default=20, help="timed train steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds")
    args = parser.parse_args()
    if os.environ.get("KERAS_BACKEND") != "jax":
        sys.exit("Run with KERAS_BACKEND=jax: this measures the JAX train step.")
    import keras
    import numpy as np

    from dlrecipe.inspect.validation import build_for_validation
    from dlrecipe.layers.jit import JAX_JIT_OK
    from dlrecipe.recipe.loader import load_recipe

    sample = ROOT / "data" / "fashion_mnist_sample.npz"  # only its header is read: the model's input shape
    loaded = load_recipe(args.recipe, ["data.source=npz", f"data.path={sample}", "runtime.jit_compile=true"])
    model, info, _ = build_for_validation(loaded)
    batch = loaded.recipe.train.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(batch * args.steps, *info.input_shape)).astype("float32")
    y = rng.integers(0, info.n_classes or 2, size=len(x))
    marked = [layer for layer in model._flatten_layers() if type(layer).__name__ in JAX_JIT_OK]
    print(f"{args.recipe.name}: {model.count_params():,} parameters, batch {batch}, {args.steps} steps per round; "
          f"layers dlrecipe marks: {', '.join(type(m).__name__ for m in marked) or 'none'}", flush=True)

    def timed(jit_ok: bool) -> tuple[float, bool]:
        for layer in marked:
            layer.supports_jit = jit_ok
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                      jit_compile=True)
        model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile / warm up
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        return (time.perf_counter() - start) / args.steps, bool(model.jit_compile)

    a_times, b_times = [], []
    for r in range(args.rounds):
        a, a_jit = timed(True)
        b, b_jit = timed(False)
        if not a_jit or b_jit:
            print(f"FAIL: jit_compile A={a_jit} (expected True), B={b_jit} (expected False)")
            return 1
        a_times.append(a)
        b_times.append(b)
        print(f"round {r + 1}: A (dlrecipe, jitted) {a:.3f} s/step, B (Keras default, un-jitted) {b:.3f} s/step, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    a, b = statistics.median(a_times), statistics.median(b_times)
    print(f"median: A {a:.3f} s/step, B {b:.3f} s/step; B / A = {b / a:.2f} (how many times faster dlrecipe's step is)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
