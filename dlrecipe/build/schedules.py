"""The recipe's ``train.learning_rate: {schedule: ...}``: its arguments checked, then its ``EpochSchedule``.

Example:
    >>> build({"schedule": "cosine", "initial": 0.1}, steps_per_epoch=100, epochs=10)
"""

from __future__ import annotations

from typing import Any

from dlrecipe.errors import RecipeError, join_path, suggest
from dlrecipe.layers.schedules import EpochSchedule

# schedule -> (required arguments, optional arguments with defaults)
SCHEDULES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "constant": ((), {}),
    "step": (("factor", "every_epochs"), {}),
    "piecewise": (("boundaries_epochs", "values"), {}),
    "exponential": (("rate",), {}),
    "inverse_time": (("rate",), {}),
    "polynomial": ((), {"final": 0.0, "power": 1.0}),
    "cosine": ((), {"final": 0.0}),
    "cosine_restarts": (("period_epochs",), {"period_mult": 1.0, "final": 0.0}),
    "triangular": (("max", "period_epochs"), {"mode": "triangular", "gamma": 0.99}),
    "one_cycle": (("max",), {"final": 0.0}),
}
COMMON = ("schedule", "initial", "warmup_epochs")


def check(cfg: dict[str, Any], path: str = "train.learning_rate") -> dict[str, Any]:
    """The schedule's arguments with defaults filled in; a RecipeError for anything that does not fit."""
    name = cfg["schedule"]
    if name not in SCHEDULES:
        raise RecipeError.one(join_path(path, "schedule"), f"Unknown schedule '{name}'.{suggest(name, SCHEDULES)} "
                              f"Known: {', '.join(SCHEDULES)}; or give a Keras schedule with 'type:'.")
    required, optional = SCHEDULES[name]
    given = {k: v for k, v in cfg.items() if v is not None}
    for key in given:
        if key not in COMMON and key not in required and key not in optional:
            allowed = ", ".join([*COMMON, *required, *optional])
            raise RecipeError.one(join_path(path, key), f"'{key}' does not apply to the {name} schedule. "
                                  f"It takes: {allowed}.")
    missing = [k for k in required if k not in given]
    if missing:
        raise RecipeError.one(path, f"The {name} schedule needs {', '.join(missing)}.")
    args = {**optional, **given}
    if name == "piecewise":
        b, v = args["boundaries_epochs"], args["values"]
        if list(b) != sorted(b):
            raise RecipeError.one(join_path(path, "boundaries_epochs"), f"Received: boundaries_epochs={list(b)}. "
                                  "Expected them in increasing order.")
        if len(v) != len(b) + 1:
            raise RecipeError.one(join_path(path, "values"), f"Received {len(b)} boundaries and {len(v)} values. "
                                  "Expected one more value than boundaries.")
        # The first value is the initial rate; `initial`, if written, must agree (warm-up ramps to it).
        if args.get("initial") is None:
            args["initial"] = v[0]
        elif args["initial"] != v[0]:
            raise RecipeError.one(join_path(path, "initial"), f"Received: initial={args['initial']}, but the "
                                  f"piecewise schedule starts at values[0]={v[0]}. Remove initial or make them equal.")
    elif args.get("initial") is None:
        raise RecipeError.one(path, f"The {name} schedule needs initial (the learning rate it starts from).")
    if name in ("triangular", "one_cycle") and args["max"] <= args["initial"]:
        raise RecipeError.one(join_path(path, "max"), f"Received: max={args['max']}. Expected max > initial "
                              f"({args['initial']}).")
    return args


def build(cfg: dict[str, Any], steps_per_epoch: int, epochs: int, path: str = "train.learning_rate") -> EpochSchedule:
    """The ``EpochSchedule`` of a recipe's schedule mapping, checked by ``check``."""
    args = check(cfg, path)
    name = args.pop("schedule")
    return EpochSchedule(name, args, steps_per_epoch, epochs)
