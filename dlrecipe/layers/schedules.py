"""``EpochSchedule``: the recipe format's learning-rate schedules as one Keras schedule, evaluated per step.

``warmup_epochs`` ramps linearly from 0 to ``initial``; the schedule then runs over the remaining
epochs, so ``e`` below counts from the end of warm-up and ``E`` is ``epochs - warmup_epochs``.
Written with ``keras.ops`` only, so it runs on every backend, and registered (``dlrecipe>EpochSchedule``)
so a saved model loads with safe mode. ``dlrecipe.build.schedules`` checks a recipe's schedule and builds it.

Example:
    >>> s = EpochSchedule("cosine", {"initial": 0.1}, steps_per_epoch=100, epochs=10)
    >>> float(s(0))
    0.1
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

ONE_CYCLE_UP = 0.3  # fraction of the run spent rising to `max` (as PyTorch's OneCycleLR's pct_start)


@keras.saving.register_keras_serializable(package="dlrecipe")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One of the format's schedules, as a Keras schedule of the optimizer step."""

    def __init__(self, name: str, args: dict[str, Any], steps_per_epoch: int, epochs: int):
        self.name = name
        self.args = dict(args)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)

    def __call__(self, step):
        epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        return self.at_epoch(epoch)

    def at_epoch(self, epoch):
        """The rate at a (fractional) epoch; works on tensors and on Python floats."""
        a = self.args
        initial, warmup = float(a["initial"]), float(a.get("warmup_epochs") or 0.0)
        e = ops.maximum(ops.convert_to_tensor(epoch, "float32") - warmup, 0.0)
        total = max(self.epochs - warmup, 1e-9)
        rate = getattr(self, "_" + self.name)(e, total, initial, a)
        if warmup > 0:
            ramp = ops.convert_to_tensor(epoch, "float32") / warmup * initial
            rate = ops.where(ops.convert_to_tensor(epoch, "float32") < warmup, ramp, rate)
        return ops.cast(rate, "float32")

    # Each formula takes e (epochs after warm-up), E (epochs of the schedule), initial and the arguments.
    def _constant(self, e, E, lr0, a):
        return lr0 + 0.0 * e

    def _step(self, e, E, lr0, a):
        return lr0 * ops.power(float(a["factor"]), ops.floor(e / float(a["every_epochs"])))

    def _piecewise(self, e, E, lr0, a):
        values = [float(v) for v in a["values"]]
        rate = values[0] + 0.0 * e
        for boundary, value in zip(a["boundaries_epochs"], values[1:]):
            rate = ops.where(e >= float(boundary), value, rate)
        return rate

    def _exponential(self, e, E, lr0, a):
        return lr0 * ops.power(float(a["rate"]), e)

    def _inverse_time(self, e, E, lr0, a):
        return lr0 / (1.0 + float(a["rate"]) * e)

    def _polynomial(self, e, E, lr0, a):
        final, frac = float(a["final"]), ops.minimum(e / E, 1.0)
        return (lr0 - final) * ops.power(1.0 - frac, float(a["power"])) + final

    def _cosine(self, e, E, lr0, a):
        return _cos(lr0, float(a["final"]), ops.minimum(e / E, 1.0))

    def _cosine_restarts(self, e, E, lr0, a):
        t0, mult, final = float(a["period_epochs"]), float(a["period_mult"]), float(a["final"])
        if mult == 1.0:
            start, period = ops.floor(e / t0) * t0, t0 + 0.0 * e
        else:  # period i lasts t0 * mult^i; find the period e falls in
            i = ops.floor(ops.log(1.0 + e / t0 * (mult - 1.0)) / math.log(mult))
            start = t0 * (ops.power(mult, i) - 1.0) / (mult - 1.0)
            period = t0 * ops.power(mult, i)
        return _cos(lr0, final, (e - start) / period)

    def _triangular(self, e, E, lr0, a):
        period, top, mode = float(a["period_epochs"]), float(a["max"]), a["mode"]
        cycle = ops.floor(1.0 + e / period)
        x = ops.abs(2.0 * e / period - 2.0 * cycle + 1.0)
        scale = {"triangular": 1.0 + 0.0 * e, "triangular2": 1.0 / ops.power(2.0, cycle - 1.0),
                 "exp_range": ops.power(float(a["gamma"]), e)}[mode]
        return lr0 + (top - lr0) * ops.maximum(0.0, 1.0 - x) * scale

    def _one_cycle(self, e, E, lr0, a):
        top, final, up = float(a["max"]), float(a["final"]), ONE_CYCLE_UP * E
        rising = _cos(lr0, top, ops.minimum(e / up, 1.0))  # from lr0 up to top
        falling = _cos(top, final, ops.minimum((e - up) / (E - up), 1.0))
        return ops.where(e < up, rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.args, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs}


def _cos(start: float, end: float, frac):
    """Cosine from ``start`` (frac 0) to ``end`` (frac 1)."""
    return end + (start - end) * (1.0 + ops.cos(math.pi * frac)) / 2.0
