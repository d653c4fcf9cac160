"""Linear learning-rate scaling with the number of replicas (Goyal et al., 2017).

``runtime.scale_learning_rate: linear`` multiplies every rate of ``train.learning_rate`` (a number, a
dlrecipe schedule's ``initial``/``max``/``final``/``values``, a Keras schedule's rate arguments, or the
optimizer's own rate) by the replicas the run trains on. The run folder's recipe keeps the base rates.

Example:
    >>> scaled(recipe, 4).train.learning_rate   # runtime.scale_learning_rate: linear, learning_rate: 0.1
    0.4
"""

from __future__ import annotations

from typing import Any

from dlrecipe.recipe.schema import Recipe, RuntimeConfig

SCHEDULE_RATES = ("initial", "max", "final")  # dlrecipe schedules; `values` of piecewise too
KERAS_RATES = ("initial_learning_rate", "end_learning_rate", "warmup_target")  # Keras schedules; `values` too


def factor(cfg: RuntimeConfig, replicas: int) -> float:
    """The multiplier of every rate: ``replicas`` under ``linear``, else 1."""
    return float(replicas) if cfg.scale_learning_rate == "linear" else 1.0


def describe(cfg: RuntimeConfig, replicas: int) -> dict[str, Any] | None:
    """What ``environment.json`` records: the rule, the replicas and the factor (None when off)."""
    if not cfg.scale_learning_rate:
        return None
    return {"rule": cfg.scale_learning_rate, "replicas": replicas, "factor": factor(cfg, replicas)}


def scaled(recipe: Recipe, replicas: int) -> Recipe:
    """``recipe`` with every learning rate multiplied by ``factor(recipe.runtime, replicas)``."""
    f = factor(recipe.runtime, replicas)
    if f == 1.0:
        return recipe
    t = recipe.train
    update: dict[str, Any] = {}
    lr = t.learning_rate
    if isinstance(lr, (int, float)):
        update["learning_rate"] = lr * f
    elif hasattr(lr, "model_dump"):  # a dlrecipe schedule
        changes = {k: getattr(lr, k) * f for k in SCHEDULE_RATES if getattr(lr, k) is not None}
        if lr.values is not None:
            changes["values"] = [v * f for v in lr.values]
        update["learning_rate"] = lr.model_copy(update=changes)
    elif isinstance(lr, dict):  # a Keras schedule, `type:` and its arguments
        new = {k: (v * f if k in KERAS_RATES and isinstance(v, (int, float)) else v) for k, v in lr.items()}
        if isinstance(lr.get("values"), list):
            new["values"] = [v * f for v in lr["values"]]
        update["learning_rate"] = new
    elif isinstance(t.optimizer, dict) and isinstance(t.optimizer.get("learning_rate"), (int, float)):
        update["optimizer"] = {**t.optimizer, "learning_rate": t.optimizer["learning_rate"] * f}
    else:  # the optimizer's default rate
        update["learning_rate"] = _default_rate(t.optimizer) * f
    return recipe.model_copy(update={"train": t.model_copy(update=update)})


def _default_rate(optimizer: Any) -> float:
    import keras

    from dlrecipe.build.resolve import optimizer as make_optimizer
    return float(keras.ops.convert_to_numpy(make_optimizer(optimizer, None).learning_rate))
