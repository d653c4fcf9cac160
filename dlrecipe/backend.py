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


class TracedGraphs:
    """Frees, between trainings in one process, the traced graphs TensorFlow would keep for ever.

    In graph mode ``tf.custom_gradient`` registers each gradient it makes in TensorFlow's global gradient
    registry under a fresh name ("CustomGradient-<n>") and never removes it. ``tf.distribute``'s
    ``ReplicaContext.all_reduce`` is such a custom gradient, and Keras's train and test steps call it, so
    every ``fit`` leaves two entries whose closures hold the whole traced step (its FuncGraph, its cond
    branches): about 4.4 MiB per ``fit`` of a tiny model, for ever, whatever ``clear_session`` and
    ``gc.collect`` do. A gradient entry serves only while its graph is being differentiated, during tracing:
    ``release()``, called once the previous training is over and before the next one is built, drops the
    entries registered since this object was made, and the graphs go with them (bench/tune_memory.py:
    RSS flat over 40 trials). Entries that existed before are left alone. A no-op off TensorFlow, or
    where TensorFlow's private registry is not where it is today (TF 2.21).
    """

    PREFIX = "CustomGradient-"

    def __init__(self) -> None:
        registry = self._registry()
        self._before = {k for k in registry if k.startswith(self.PREFIX)} if registry is not None else set()

    @staticmethod
    def _registry() -> dict | None:
        if "tensorflow" not in sys.modules:  # another backend, or TensorFlow not imported yet: nothing traced
            return None
        try:
            from tensorflow.python.framework import ops
            registry = ops._gradient_registry._registry  # noqa: SLF001 - see the class docstring
        except (ImportError, AttributeError):
            return None
        return registry if isinstance(registry, dict) else None

    def release(self) -> int:
        """Drop the custom-gradient entries registered since this object was made; returns how many."""
        registry = self._registry()
        if registry is None:
            return 0
        stale = [k for k in list(registry) if k.startswith(self.PREFIX) and k not in self._before]
        for key in stale:
            registry.pop(key, None)
        return len(stale)
