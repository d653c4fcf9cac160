"""Search spaces: a scalar anywhere in a recipe may be ``{choice|int|float|boolean: ...}``.

A space is found in the raw recipe before the schema sees it. ``dlrecipe train``
replaces every space with its default; ``dlrecipe tune`` asks KerasTuner for a
value per space, named after its dotted path (``model.layers[2].units``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from dlrecipe.errors import Problems, join_path, shown, suggest

KINDS = ("choice", "int", "float", "boolean")
OPTIONS = ("default", "step", "sampling")
SAMPLINGS = ("linear", "log", "reverse_log")


@dataclass(frozen=True)
class Space:
    """One search space, named by its path."""

    name: str
    kind: str
    values: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    sampling: str = "linear"
    default: Any = None

    def hp(self, hp: Any) -> Any:
        """The value of this space from a KerasTuner ``HyperParameters``."""
        if self.kind == "choice":
            return hp.Choice(self.name, list(self.values), default=self.default)
        if self.kind == "boolean":
            return hp.Boolean(self.name, default=self.default)
        if self.kind == "int":
            return hp.Int(self.name, self.low, self.high, step=self.step, sampling=self.sampling,
                          default=self.default)
        high = self.high
        if self.step is not None and self.sampling == "linear":
            # KerasTuner counts the steps with a float floor division: (0.5 - 0.0) // 0.1 is 4.0, so
            # {float: [0.0, 0.5], step: 0.1} would never try 0.5. A nudge far below one step keeps the end.
            high = self.high + self.step * 1e-6
        value = hp.Float(self.name, self.low, high, step=self.step, sampling=self.sampling, default=self.default)
        return min(value, self.high) if isinstance(value, (int, float)) else value

    def tidy(self, value: Any) -> Any:
        """A readable value: KerasTuner's float steps give 0.30000000000000004."""
        if self.kind == "float" and isinstance(value, float):
            return float(f"{value:.10g}")
        return value


def is_space(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in KINDS) and "type" not in value


def find_spaces(raw: Any, problems: Problems, path: str = "", bad: set[str] | None = None) -> dict[str, Space]:
    """Every search space in ``raw``, checked; problems go to ``problems``, bad spaces' paths to ``bad``."""
    found: dict[str, Space] = {}
    if is_space(raw):
        space = _parse(raw, path, problems)
        if space is not None:
            found[path] = space
        elif bad is not None:
            bad.add(path)
        return found
    if isinstance(raw, dict):
        for key, value in raw.items():
            found.update(find_spaces(value, problems, join_path(path, key), bad))
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            found.update(find_spaces(value, problems, join_path(path, i), bad))
    return found


def substitute(raw: Any, values: dict[str, Any], path: str = "") -> Any:
    """A copy of ``raw`` with each space replaced by ``values[path]``."""
    if path in values and is_space(raw):
        return copy.deepcopy(values[path])
    if isinstance(raw, dict):
        return {k: substitute(v, values, join_path(path, k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [substitute(v, values, join_path(path, i)) for i, v in enumerate(raw)]
    return raw


def defaults(spaces: dict[str, Space]) -> dict[str, Any]:
    return {path: s.default for path, s in spaces.items()}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse(raw: dict, path: str, problems: Problems) -> Space | None:
    kinds = [k for k in KINDS if k in raw]
    n_before = len(problems.items)
    if len(kinds) > 1:
        problems.add(path, f"A search space has exactly one of {', '.join(KINDS)}; received {', '.join(kinds)}. Keep one.")
        return None
    kind = kinds[0]
    for key in raw:
        if key not in KINDS and key not in OPTIONS:
            problems.add(join_path(path, key), f"Unknown search-space key '{key}'.{suggest(key, OPTIONS)} "
                         f"Expected: {kind}, default, step, sampling.")
    spec, default = raw[kind], raw.get("default")
    step, sampling = raw.get("step"), raw.get("sampling", "linear")
    if kind == "choice":
        if not isinstance(spec, list) or not spec or not all(isinstance(v, (str, int, float, bool)) for v in spec):
            problems.add(join_path(path, "choice"), f"Received: {shown(spec)}. Expected a non-empty list of scalars, "
                         "e.g. {choice: [64, 128], default: 128}.")
            return None
        if len({type(v) for v in spec}) > 1:
            problems.add(join_path(path, "choice"), f"Received: {shown(spec)}. The choices must all be of one type "
                         "(KerasTuner refuses mixed ones): write floats as 1.0, not 1.")
            return None
        default = spec[0] if default is None else default
        if default not in spec:
            problems.add(join_path(path, "default"), f"Received: default={default!r}. Expected one of {spec}.")
        extra = [k for k in ("step", "sampling") if k in raw]
        if extra:
            problems.add(join_path(path, extra[0]), f"'{extra[0]}' applies to int and float spaces, not to choice.")
        return Space(path, kind, values=tuple(spec), default=default) if len(problems.items) == n_before else None
    if kind == "boolean":
        if not isinstance(spec, bool):
            problems.add(join_path(path, "boolean"), f"Received: {shown(spec)}. Expected true or false (the default), "
                         "e.g. {boolean: true}.")
            return None
        default = spec if default is None else default
        if not isinstance(default, bool):
            problems.add(join_path(path, "default"), f"Received: default={default!r}. Expected true or false.")
            return None
        return Space(path, kind, default=default)
    # int or float: [low, high]
    want_int = kind == "int"
    ok = (isinstance(spec, list) and len(spec) == 2 and all(_number(v) for v in spec)
          and (not want_int or all(isinstance(v, int) for v in spec)) and spec[0] < spec[1])
    if not ok:
        example = "[16, 64]" if want_int else "[1.0e-4, 1.0e-1]"
        problems.add(join_path(path, kind), f"Received: {shown(spec)}. Expected [low, high] with low < high"
                     f"{', integers' if want_int else ''}, e.g. {{{kind}: {example}}}.")
        return None
    low, high = spec
    if sampling not in SAMPLINGS:
        problems.add(join_path(path, "sampling"), f"Received: sampling={sampling!r}. Expected one of "
                     f"{', '.join(SAMPLINGS)}.{suggest(str(sampling), SAMPLINGS)}")
    elif sampling != "linear" and low <= 0:
        problems.add(join_path(path, "sampling"), f"{sampling} sampling needs low > 0; received low={low}.")
    if step is not None and (not _number(step) or step <= 0 or (want_int and not isinstance(step, int))):
        problems.add(join_path(path, "step"), f"Received: step={step!r}. Expected a positive "
                     f"{'integer' if want_int else 'number'}.")
    default = low if default is None else default
    if not _number(default) or (want_int and not isinstance(default, int)) or not low <= default <= high:
        problems.add(join_path(path, "default"), f"Received: default={default!r}. Expected "
                     f"{'an integer' if want_int else 'a number'} within [{low}, {high}].")
    if len(problems.items) != n_before:
        return None
    return Space(path, kind, low=low, high=high, step=step, sampling=sampling, default=default)
