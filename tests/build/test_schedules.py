"""The epoch-based learning-rate schedules against the format's table, computed here independently.

The reference below is written from /work/shared/recipe-format.md and the
convention at the top of dlrecipe/schedules.py, in plain Python: warm-up ramps
linearly from 0 to ``initial`` over ``warmup_epochs``; after it, ``e`` counts
epochs from the end of warm-up and ``E = epochs - warmup_epochs``. Schedules
are evaluated per step: epoch = step / steps_per_epoch.

Where the table leaves a detail open, the reference states the reading it tests:
- piecewise: values[i] where i is the number of boundaries <= e (a boundary
  opens its interval, like ``step``'s floor);
- triangular: ``period_epochs`` is one whole cycle (initial -> max -> initial);
  triangular2 halves the amplitude every cycle; exp_range scales by gamma^e
  (e in epochs);
- one_cycle: cosine from initial up to max over the first 30% of E, then
  cosine from max down to final (PyTorch OneCycleLR's shape).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from dlrecipe.build.schedules import SCHEDULES, build, check
from dlrecipe.errors import RecipeError
from dlrecipe.layers.schedules import EpochSchedule

STEPS = 7  # steps per epoch: mid-epoch steps fall on fractions like 3/7
EPOCHS = 10


def _cos(start: float, end: float, frac: float) -> float:
    frac = min(max(frac, 0.0), 1.0)
    return end + (start - end) * (1.0 + math.cos(math.pi * frac)) / 2.0


def reference(name: str, a: dict, epoch: float, epochs: int) -> float:
    initial = a["initial"]
    warmup = a.get("warmup_epochs", 0.0)
    if warmup and epoch < warmup:
        return initial * epoch / warmup
    e = epoch - warmup
    E = epochs - warmup
    if name == "constant":
        return initial
    if name == "step":
        return initial * a["factor"] ** math.floor(e / a["every_epochs"])
    if name == "piecewise":
        return a["values"][sum(1 for b in a["boundaries_epochs"] if e >= b)]
    if name == "exponential":
        return initial * a["rate"] ** e
    if name == "inverse_time":
        return initial / (1.0 + a["rate"] * e)
    if name == "polynomial":
        final, power = a.get("final", 0.0), a.get("power", 1.0)
        return (initial - final) * (1.0 - min(e / E, 1.0)) ** power + final
    if name == "cosine":
        final = a.get("final", 0.0)
        return final + (initial - final) * (1.0 + math.cos(math.pi * min(e / E, 1.0))) / 2.0
    if name == "cosine_restarts":
        period, mult, final = a["period_epochs"], a.get("period_mult", 1.0), a.get("final", 0.0)
        start = 0.0
        while e >= start + period - 1e-9:
            start += period
            period *= mult
        return _cos(initial, final, (e - start) / period)
    if name == "triangular":
        period, top, mode = a["period_epochs"], a["max"], a.get("mode", "triangular")
        cycle = math.floor(e / period)  # 0 for the first cycle
        pos = e / period - cycle  # 0 .. 1 within the cycle
        height = 1.0 - abs(2.0 * pos - 1.0)  # 0 at both ends, 1 in the middle
        scale = {"triangular": 1.0, "triangular2": 0.5 ** cycle, "exp_range": a.get("gamma", 0.99) ** e}[mode]
        return initial + (top - initial) * height * scale
    if name == "one_cycle":
        top, final = a["max"], a.get("final", 0.0)
        up = 0.3 * E
        if e < up:
            return _cos(initial, top, e / up)
        return _cos(top, final, (e - up) / (E - up))
    raise AssertionError(f"no reference for {name}")


CASES = [
    ("constant", {"initial": 0.1}),
    ("step", {"initial": 0.1, "factor": 0.5, "every_epochs": 3}),
    ("step", {"initial": 0.2, "factor": 0.1, "every_epochs": 2.5}),
    ("piecewise", {"initial": 0.1, "boundaries_epochs": [2, 5], "values": [0.1, 0.01, 0.001]}),
    ("exponential", {"initial": 0.1, "rate": 0.8}),
    ("inverse_time", {"initial": 0.1, "rate": 0.5}),
    ("polynomial", {"initial": 0.1}),
    ("polynomial", {"initial": 0.1, "final": 0.01, "power": 2.0}),
    ("cosine", {"initial": 0.1}),
    ("cosine", {"initial": 0.1, "final": 0.02}),
    ("cosine_restarts", {"initial": 0.1, "period_epochs": 2}),
    ("cosine_restarts", {"initial": 0.1, "period_epochs": 1, "period_mult": 2.0, "final": 0.01}),
    ("cosine_restarts", {"initial": 0.1, "period_epochs": 1.5, "period_mult": 3.0}),
    ("triangular", {"initial": 0.01, "max": 0.1, "period_epochs": 2}),
    ("triangular", {"initial": 0.01, "max": 0.1, "period_epochs": 2, "mode": "triangular2"}),
    ("triangular", {"initial": 0.01, "max": 0.1, "period_epochs": 3, "mode": "exp_range", "gamma": 0.8}),
    ("one_cycle", {"initial": 0.01, "max": 0.1}),
    ("one_cycle", {"initial": 0.01, "max": 0.1, "final": 0.001}),
]


def test_every_schedule_is_covered():
    assert {name for name, _ in CASES} == set(SCHEDULES)
    assert {a.get("mode", "triangular") for n, a in CASES if n == "triangular"} == {"triangular", "triangular2", "exp_range"}


def _ids(case):
    name, args = case
    return name + "-" + "-".join(f"{k}={v}" for k, v in args.items() if k != "initial")


@pytest.mark.parametrize("warmup", [0, 2], ids=["no-warmup", "warmup2"])
@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_schedule_matches_the_table_per_step(case, warmup):
    name, args = case
    args = {**args, "warmup_epochs": warmup} if warmup else dict(args)
    schedule = build({"schedule": name, **args}, steps_per_epoch=STEPS, epochs=EPOCHS)
    steps = np.arange(0, STEPS * EPOCHS + 2 * STEPS)  # every step of the run, and two epochs past its end
    got = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(steps)))
    want = np.array([reference(name, args, s / STEPS, EPOCHS) for s in steps])
    bad = np.flatnonzero(~np.isclose(got, want, rtol=2e-5, atol=1e-7))
    assert bad.size == 0, [(int(steps[i]), float(got[i]), float(want[i])) for i in bad[:5]]
    # Scalar steps too, as the optimizer calls it, at mid-epoch steps.
    for step in (3, STEPS * 2 + 4, STEPS * 7 + 1):
        assert float(schedule(step)) == pytest.approx(reference(name, args, step / STEPS, EPOCHS), rel=2e-5, abs=1e-7)


def test_warmup_is_linear_from_zero_to_initial():
    s = build({"schedule": "cosine", "initial": 0.1, "warmup_epochs": 2}, steps_per_epoch=4, epochs=10)
    assert [float(s(k)) for k in range(9)] == pytest.approx([0.1 * k / 8 for k in range(9)])
    # After warm-up the cosine runs over the remaining 8 epochs: half-way at epoch 2 + 4.
    assert float(s(4 * 6)) == pytest.approx(0.05)
    assert float(s(4 * 10)) == pytest.approx(0.0, abs=1e-7)


def test_cosine_restarts_period_mult_1_and_2():
    one = build({"schedule": "cosine_restarts", "initial": 1.0, "period_epochs": 2}, steps_per_epoch=10, epochs=10)
    assert [float(one(k)) for k in (0, 10, 19, 20, 30, 40)] == pytest.approx(
        [1.0, 0.5, _cos(1, 0, 19 / 20), 1.0, 0.5, 1.0], abs=1e-6)
    two = build({"schedule": "cosine_restarts", "initial": 1.0, "period_epochs": 1, "period_mult": 2.0},
                steps_per_epoch=10, epochs=20)
    # periods: [0, 1), [1, 3), [3, 7), [7, 15): restarts at epochs 1, 3, 7, 15
    assert [float(two(k)) for k in (0, 5, 10, 20, 30, 50, 70, 110, 150)] == pytest.approx(
        [1.0, 0.5, 1.0, 0.5, 1.0, 0.5, 1.0, 0.5, 1.0], abs=1e-6)


def test_triangular_modes_peak_and_decay():
    base = {"schedule": "triangular", "initial": 0.1, "max": 1.0, "period_epochs": 4}
    tri = build(base, steps_per_epoch=1, epochs=20)
    assert [float(tri(k)) for k in range(9)] == pytest.approx([0.1, 0.55, 1.0, 0.55, 0.1, 0.55, 1.0, 0.55, 0.1])
    tri2 = build({**base, "mode": "triangular2"}, steps_per_epoch=1, epochs=20)
    assert [float(tri2(k)) for k in (2, 6, 10)] == pytest.approx([1.0, 0.55, 0.325])  # peaks halve
    exp = build({**base, "mode": "exp_range", "gamma": 0.9}, steps_per_epoch=1, epochs=20)
    assert [float(exp(k)) for k in (2, 6)] == pytest.approx([0.1 + 0.9 * 0.9 ** 2, 0.1 + 0.9 * 0.9 ** 6])


def test_one_cycle_rises_to_max_at_30_percent_then_falls_to_final():
    s = build({"schedule": "one_cycle", "initial": 0.01, "max": 0.1, "final": 0.001}, steps_per_epoch=10, epochs=10)
    rates = [float(s(k)) for k in range(101)]
    peak = int(np.argmax(rates))
    assert peak == 30 and rates[30] == pytest.approx(0.1)
    assert rates[0] == pytest.approx(0.01) and rates[100] == pytest.approx(0.001)
    assert all(a < b for a, b in zip(rates[:30], rates[1:31]))  # rising
    assert all(a > b for a, b in zip(rates[30:100], rates[31:101]))  # falling


# --------------------------------------------------------------------------- check()


@pytest.mark.parametrize("cfg, path, words", [
    ({"schedule": "cosinus", "initial": 0.1}, "train.learning_rate.schedule",
     ["Unknown schedule 'cosinus'. Did you mean 'cosine'?", "Known: constant, step"]),
    ({"schedule": "cosine", "initial": 0.1, "factor": 0.5}, "train.learning_rate.factor",
     ["'factor' does not apply to the cosine schedule", "It takes: schedule, initial, warmup_epochs, final"]),
    ({"schedule": "step", "initial": 0.1, "factor": 0.5}, "train.learning_rate",
     ["The step schedule needs every_epochs"]),
    ({"schedule": "triangular", "initial": 0.1, "max": 1.0}, "train.learning_rate",
     ["The triangular schedule needs period_epochs"]),
    ({"schedule": "piecewise", "initial": 0.1, "boundaries_epochs": [1, 2], "values": [0.1, 0.01]},
     "train.learning_rate.values", ["2 boundaries and 2 values", "one more value than boundaries"]),
    ({"schedule": "piecewise", "initial": 0.1, "boundaries_epochs": [3, 2], "values": [0.1, 0.01, 0.001]},
     "train.learning_rate.boundaries_epochs", ["boundaries_epochs=[3, 2]", "increasing order"]),
    ({"schedule": "triangular", "initial": 0.1, "max": 0.1, "period_epochs": 2}, "train.learning_rate.max",
     ["Received: max=0.1. Expected max > initial (0.1)"]),
    ({"schedule": "one_cycle", "initial": 0.1, "max": 0.05}, "train.learning_rate.max", ["Expected max > initial"]),
])
def test_check_errors(cfg, path, words):
    with pytest.raises(RecipeError) as info:
        check(cfg)
    [p] = info.value.problems
    assert p.path == path
    for w in words:
        assert w in p.message


def test_check_fills_defaults_and_ignores_none():
    args = check({"schedule": "triangular", "initial": 0.1, "max": 1.0, "period_epochs": 2, "final": None})
    assert args == {"schedule": "triangular", "initial": 0.1, "max": 1.0, "period_epochs": 2,
                    "mode": "triangular", "gamma": 0.99}


# --------------------------------------------------------------------------- serialization


def test_get_config_from_config_round_trip():
    s = build({"schedule": "one_cycle", "initial": 0.01, "max": 0.1, "warmup_epochs": 1}, steps_per_epoch=5, epochs=6)
    again = EpochSchedule.from_config(s.get_config())
    via_keras = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(via_keras, EpochSchedule)
    steps = keras.ops.convert_to_tensor(np.arange(35))
    for other in (again, via_keras):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(other(steps)), keras.ops.convert_to_numpy(s(steps)))


def test_model_with_the_schedule_saves_and_loads_in_safe_mode(tmp_path):
    args = {"initial": 0.1, "warmup_epochs": 1, "final": 0.01}
    s = build({"schedule": "cosine", **args}, steps_per_epoch=4, epochs=5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=s), loss="mse")
    model.fit(np.zeros((6, 3), "float32"), np.zeros((6, 2), "float32"), batch_size=2, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 3
    before = float(model.optimizer.learning_rate)
    assert before == pytest.approx(reference("cosine", args, 3 / 4, 5))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert int(loaded.optimizer.iterations.numpy()) == 3
    assert float(loaded.optimizer.learning_rate) == pytest.approx(before)
    for opt in (model.optimizer, loaded.optimizer):
        opt.iterations.assign(11)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(model.optimizer.learning_rate))
    assert float(loaded.optimizer.learning_rate) == pytest.approx(reference("cosine", args, 11 / 4, 5))


def test_piecewise_starts_at_its_first_value_and_refuses_a_different_initial():
    from dlrecipe.build.schedules import build
    from dlrecipe.errors import RecipeError
    s = build({"schedule": "piecewise", "boundaries_epochs": [2], "values": [0.1, 0.01], "warmup_epochs": 1}, 10, 4)
    # warm-up ramps to values[0], then the piecewise values follow
    assert float(s(5)) == pytest.approx(0.05)
    assert float(s(10)) == pytest.approx(0.1) and float(s(30)) == pytest.approx(0.01)
    with pytest.raises(RecipeError) as info:
        build({"schedule": "piecewise", "initial": 0.5, "boundaries_epochs": [2], "values": [0.1, 0.01]}, 10, 4)
    assert info.value.problems[0].path == "train.learning_rate.initial" and "values[0]=0.1" in str(info.value)
    with pytest.raises(RecipeError) as info:
        build({"schedule": "cosine"}, 10, 4)
    assert "needs initial" in str(info.value)
