"""Seeds, precision and the distribution strategy of ``runtime:``.

``auto`` uses every visible GPU: MirroredStrategy for several, the default
one-device strategy otherwise (on the JAX backend, Keras's DataParallel over
several devices). Other backends than TensorFlow get no tf.distribute.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

import keras

from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import RuntimeConfig


@dataclass
class Runtime:
    scope: Any  # a context manager for building and compiling
    replicas: int
    description: str
    strategy: Any = None  # the tf.distribute strategy behind ``scope``, if any
    distribution: Any = None  # the Keras (JAX) distribution set, if any

    def reapply(self, cfg: RuntimeConfig) -> None:
        """Set the dtype policy and the Keras distribution again: ``keras.backend.clear_session()`` (which
        KerasTuner calls before every trial) resets both to float32 and none."""
        set_precision(cfg.mixed_precision)
        if self.distribution is not None:
            keras.distribution.set_distribution(self.distribution)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Python, NumPy and backend seeds; deterministic ops on request."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config  # no public disable/is_enabled
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        elif tf_config.is_op_determinism_enabled():
            # a flag of the process, not of the run: an earlier in-process run must not leak it (it also
            # turns XLA off for every model)
            tf_config.disable_op_determinism()


def set_precision(policy: str | bool) -> None:
    keras.mixed_precision.set_dtype_policy(policy if policy else "float32")


def make_runtime(cfg: RuntimeConfig) -> Runtime:
    """The strategy scope for ``cfg.strategy`` on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        split = os.environ.get(LOGICAL_CPUS, "1") != "1"
        if cfg.jit_compile is True and cfg.strategy in ("auto", "mirrored") and split:
            # XLA then reads a replica's variables from another logical device and fails mid-step.
            raise RecipeError.one("runtime.jit_compile", f"Received: jit_compile=true with {LOGICAL_CPUS}="
                                  f"{os.environ[LOGICAL_CPUS]}. XLA cannot compile MirroredStrategy's step over "
                                  "logical CPU devices. Use jit_compile: auto (or false) there.")
        return _tf_runtime(cfg.strategy)
    if backend == "jax":
        import jax
        devices = jax.devices()
        if jax.process_count() > 1:  # a worker of `train --workers N` (see dlrecipe.workers)
            dist = keras.distribution.DataParallel(devices=devices)
            dist.auto_shard_dataset = False  # each worker feeds its own shard of NumPy arrays
            keras.distribution.set_distribution(dist)
            return Runtime(contextlib.nullcontext(), len(devices), f"DataParallel over {len(devices)} JAX device(s) "
                           f"in {jax.process_count()} processes", distribution=dist)
        if cfg.strategy == "data_parallel" or (cfg.strategy == "auto" and len(devices) > 1):
            dist = keras.distribution.DataParallel(devices=devices)
            keras.distribution.set_distribution(dist)
            return Runtime(contextlib.nullcontext(), len(devices), f"DataParallel over {len(devices)} JAX device(s)",
                           distribution=dist)
        return Runtime(contextlib.nullcontext(), 1, f"one JAX device ({devices[0].platform})")
    return Runtime(contextlib.nullcontext(), 1, f"one device ({backend} backend)")


LOGICAL_CPUS = "DLRECIPE_LOGICAL_CPUS"


def _split_cpu(tf) -> None:
    """``DLRECIPE_LOGICAL_CPUS=N``: split the CPU into N logical devices, so that ``mirrored`` runs N replicas
    without GPUs (to try a multi-replica recipe, or test one). TensorFlow allows it only before it starts."""
    raw = os.environ.get(LOGICAL_CPUS)
    if not raw:
        return
    if not raw.isdigit() or int(raw) < 1:
        raise RecipeError.one(LOGICAL_CPUS, f"Received: {LOGICAL_CPUS}={raw!r}. Expected a positive integer.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration()] * int(raw)
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) == int(raw):
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise RecipeError.one(LOGICAL_CPUS, f"Received: {LOGICAL_CPUS}={raw}, but TensorFlow had already started "
                              "in this process; the split applies to a fresh `dlrecipe` process.") from None


def _tf_runtime(strategy: str) -> Runtime:
    import tensorflow as tf
    _split_cpu(tf)
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise RecipeError.one("runtime.strategy", f"strategy: tpu, but no TPU was found ({e}). Use auto on this "
                                  "machine.") from None
        s = tf.distribute.TPUStrategy(resolver)
        return Runtime(s.scope(), s.num_replicas_in_sync, f"TPUStrategy, {s.num_replicas_in_sync} cores", s)
    if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
        s = tf.distribute.MirroredStrategy()
        return Runtime(s.scope(), s.num_replicas_in_sync, f"MirroredStrategy over {s.num_replicas_in_sync} device(s)",
                       s)
    if strategy == "one_device":
        device = "/gpu:0" if gpus else "/cpu:0"
        s = tf.distribute.OneDeviceStrategy(device)
        return Runtime(s.scope(), 1, f"OneDeviceStrategy on {device}", s)
    where = "GPU:0" if gpus else "CPU"
    return Runtime(contextlib.nullcontext(), 1, f"default strategy, one device ({where})")


def environment(seed: int, runtime: Runtime, cfg: RuntimeConfig, argv: list[str]) -> dict[str, Any]:
    """What a run needs to be understood and reproduced: versions, devices, settings."""
    import numpy as np

    import dlrecipe
    versions = {"python": sys.version.split()[0], "dlrecipe": dlrecipe.__version__, "keras": keras.__version__,
                "numpy": np.__version__}
    for name in ("tensorflow", "keras_tuner", "jax"):
        mod = sys.modules.get(name)
        if mod is not None:
            versions[name] = getattr(mod, "__version__", "?")
    return {
        "versions": versions,
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "strategy": runtime.description,
        "replicas": runtime.replicas,
        "mixed_precision": cfg.mixed_precision,
        "dtype_policy": keras.mixed_precision.dtype_policy().name,
        "jit_compile": cfg.jit_compile,
        "deterministic": cfg.deterministic,
        "seed": seed,
        "command": argv,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def _devices() -> list[str]:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        return [d.name for d in tf.config.list_logical_devices()]
    if backend == "jax":
        import jax
        return [str(d) for d in jax.devices()]
    return []
