"""A chief or worker process of ``tune --workers N``: ``python -m dlrecipe.tune.child SPEC``.

Started by the launcher (``dlrecipe.tune.launch``) with KerasTuner's ``KERASTUNER_*`` variables and a JSON
spec (the search's recipe and folder, its limits, the threads of each worker). The process ends when its
launcher is gone, so a killed launcher leaves no orphans that would go on writing the search. Keras is
imported only once TensorFlow's thread pools can still be sized.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dlrecipe.distributed import processes


def run_child(spec: dict) -> int:
    """Run the search of ``spec`` (written by the launcher) in this process's role; 0 when it is over."""
    from dlrecipe.recipe.loader import load_recipe
    from dlrecipe.train.runtime import seed_everything, set_precision
    from dlrecipe.tune.tuner import role, search
    loaded = load_recipe(Path(spec["recipe"]))
    folder = Path(spec["folder"])
    if role() != "chief":  # the chief trains nothing (and Keras's seeding would import TensorFlow)
        set_precision(loaded.recipe.runtime.mixed_precision)
        seed_everything(loaded.recipe.seed, loaded.recipe.runtime.deterministic)

    def emit(line):
        print(line, flush=True)
    search(loaded, folder, max_trials=spec.get("max_trials"), max_time=spec.get("max_time"), emit=emit)
    print(f"{role()} {os.environ.get('KERASTUNER_TUNER_ID')} done", flush=True)
    sys.stdout.flush()
    return 0


def child_main(spec_json: str) -> int:
    """The entry point of a chief or worker process: TensorFlow's threads set, then ``run_child``."""
    spec = json.loads(spec_json)
    processes.watch_parent()
    from dlrecipe.backend import import_keras_quietly, quiet_backend
    from dlrecipe.errors import RecipeError
    quiet_backend()
    import_keras_quietly()
    import keras
    if keras.backend.backend() == "tensorflow":  # before TensorFlow's runtime starts its thread pools
        import tensorflow as tf
        threads = int(spec.get("threads") or 1)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    try:
        return run_child(spec)
    except RecipeError as e:
        for p in e.problems:
            print(f"error: {p}", flush=True)
        return 2


if __name__ == "__main__":
    code = 1
    try:
        code = child_main(sys.argv[1])
    except BaseException:  # noqa: BLE001 - the log gets the traceback, the launcher the exit code
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # TensorFlow's and gRPC's shutdown add seconds; every file is written already
