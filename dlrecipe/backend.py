"""Importing Keras and its backend quietly, once, where a command needs it."""

from __future__ import annotations

import os
import sys

from dlrecipe.errors import RecipeError

# The backends Keras can run on and how to get each where dlrecipe does not install it.
INSTALL = {"jax": "pip install -e '.[jax]' (or pip install 'jax[cpu]')",
           "torch": "pip install torch", "numpy": "pip install scipy 'jax[cpu]'"}


def quiet_backend() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ info and CUDA-probe noise
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def import_keras_quietly() -> None:
    """Import Keras (and its backend) with the C++ start-up chatter of TensorFlow hidden.

    TensorFlow's absl logging prints 'All log messages before absl::InitializeLog()...' and CUDA probes
    straight to file descriptor 2 during import, whatever TF_CPP_MIN_LOG_LEVEL says. A Python error
    during the import is still raised, after stderr is restored.
    """
    try:
        _import_keras()
    except ModuleNotFoundError as e:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if e.name and e.name.split(".")[0] in ("jax", "jaxlib", "torch", "scipy") and backend in INSTALL:
            raise RecipeError.one("KERAS_BACKEND", f"Received: KERAS_BACKEND={backend}, but {e.name} is not "
                                  f"installed. Install it with: {INSTALL[backend]}; or leave KERAS_BACKEND unset "
                                  "for TensorFlow.") from None
        raise


def _import_keras() -> None:
    if "keras" in sys.modules or os.environ.get("DLRECIPE_VERBOSE_IMPORT"):
        import keras  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import keras  # noqa: F401
                if keras.backend.backend() == "tensorflow":
                    import tensorflow as tf
                    tf.config.list_physical_devices()  # the CUDA probe logs here, once
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
