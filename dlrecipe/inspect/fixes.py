"""The fixes ``diagnose`` suggests: ``--set`` lines on the run's own recipe paths, each with a ``# reason``.

Each suggestion is what to append to ``dlrecipe train RECIPE`` (or the whole ``--resume RUN ...``): the paths
are the recipe's own (``model.layers[2].rate`` is its Dropout layer), so the line applies as printed. Pure
Python on the resolved recipe (a dict); no TensorFlow. See ``inspect.curves`` for the verdicts.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator
from typing import Any

import yaml

DROPOUTS = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "AlphaDropout"}
WIDTHS = {"Dense": "units", "Conv1D": "filters", "Conv2D": "filters", "Conv3D": "filters"}
CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")
PEAK_KEY = {"one_cycle": "max", "triangular": "max"}  # the schedule key holding its highest rate
DEFAULT_L2 = 1.0e-4
AUGMENT = [{"type": "RandomTranslation", "height_factor": 0.1, "width_factor": 0.1}]


def yaml_number(x: float) -> str:
    """``x`` as a YAML scalar the loader reads back as a float: ``0.0005``, ``1.0e-05``, ``5.0``."""
    text = f"{x:.3g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        mantissa += "" if "." in mantissa else ".0"
        return f"{mantissa}e{'-' if int(exp) < 0 else '+'}{abs(int(exp)):02d}"
    return text if "." in text else text + ".0"


def flow(value: Any) -> str:
    """A YAML flow value on one line: ``{type: L2, l2: 0.0001}``."""
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).strip()


def set_line(path: str, value: str, why: str) -> str:
    """``--set PATH=VALUE  # why``, quoted for a shell where the value needs it."""
    return f"--set {shlex.quote(f'{path}={value}')}  # {why}"


def walk_layers(layers: Any, base: str = "model.layers") -> Iterator[tuple[str, dict]]:
    """Every layer mapping of ``model.layers`` with its path, into the ``layers:`` of ``repeat`` blocks."""
    for i, layer in enumerate(layers if isinstance(layers, list) else []):
        if not isinstance(layer, dict):
            continue
        path = f"{base}[{i}]"
        yield path, layer
        if isinstance(layer.get("layers"), list):
            yield from walk_layers(layer["layers"], f"{path}.layers")


def would_stop(values: list[float], patience: int, min_delta: float = 0.0, mode: str = "min") -> tuple[int | None, int]:
    """Where Keras's EarlyStopping on ``values`` would stop (0-based index, or None) and its best index."""
    best, best_i, wait = math.inf if mode == "min" else -math.inf, 0, 0
    for i, v in enumerate(values):
        wait += 1
        if (v < best - min_delta) if mode == "min" else (v > best + min_delta):
            best, best_i, wait = v, i, 0
            continue
        if wait >= patience and i > 0:
            return i, best_i
    return None, best_i


def suggest(verdict: str, ev: dict[str, Any], rows: list[dict], recipe: dict, ctx: dict[str, Any]) -> list[str]:
    """The fixes for ``verdict`` on ``recipe``'s own paths (``ctx``: run, optimizer_class, image, ...)."""
    make = {"diverging": _diverging, "overfitting": _overfitting, "underfitting": _underfitting,
            "still_improving": _still_improving, "unclear": _unclear}.get(verdict)
    return make(ev, rows, recipe, ctx) if make else []


def _rate(recipe: dict, ctx: dict, factor: float, verb: str) -> list[str]:
    lr = recipe.get("train", {}).get("learning_rate")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return [set_line("train.learning_rate", yaml_number(lr * factor), f"{verb} {yaml_number(lr)}")]
    if isinstance(lr, dict):
        if lr.get("schedule") == "piecewise" and isinstance(lr.get("values"), list):
            values = [yaml_number(v * factor) for v in lr["values"]]
            return [set_line("train.learning_rate.values", "[" + ", ".join(values) + "]",
                             f"{verb} every value of the piecewise schedule")]
        key = PEAK_KEY.get(lr.get("schedule"), "initial") if "schedule" in lr else "initial_learning_rate"
        if key not in lr and "initial" in lr:
            key = "initial"
        if isinstance(lr.get(key), (int, float)):
            return [set_line(f"train.learning_rate.{key}", yaml_number(lr[key] * factor),
                             f"{verb} the schedule's {key} {yaml_number(lr[key])}")]
        return []
    if lr is None and isinstance(ctx.get("optimizer_learning_rate"), (int, float)):
        rate = ctx["optimizer_learning_rate"]
        return [set_line("train.learning_rate", yaml_number(rate * factor),
                         f"{verb} the optimizer's default {yaml_number(rate)}")]
    return []


def _diverging(ev, rows, recipe, ctx) -> list[str]:
    out = _rate(recipe, ctx, 0.1, "10x lower than")
    opt = recipe.get("train", {}).get("optimizer")
    if isinstance(opt, dict) and not any(k in opt for k in CLIPS):
        out.append(set_line("train.optimizer.global_clipnorm", "1.0", "clip the gradient norm"))
    elif isinstance(opt, str) and ctx.get("optimizer_class"):
        out.append(set_line("train.optimizer", flow({"type": ctx["optimizer_class"], "global_clipnorm": 1.0}),
                            f"{opt} with the gradient norm clipped"))
    if recipe.get("data", {}).get("normalize", "none") == "none":
        out.append(set_line("data.normalize", "standardize", "inputs are not normalized"))
    return out


def _early_stopping(ev, rows, recipe, ctx) -> list[str]:
    callbacks = recipe.get("train", {}).get("callbacks") or []
    index = next((i for i, c in enumerate(callbacks) if isinstance(c, dict) and c.get("type") == "EarlyStopping"), None)
    mine = callbacks[index] if index is not None else {}
    if index is not None and ctx.get("stopped_early"):
        return []  # the recipe's EarlyStopping already ended the run
    monitor = mine.get("monitor", "val_loss")
    values = [r.get(monitor, math.nan) for r in rows]
    if not all(math.isfinite(v) for v in values):
        return []
    mode = mine.get("mode", "auto")
    mode = mode if mode in ("min", "max") else "min" if "loss" in monitor or "error" in monitor else "max"
    patience = 3 if len(rows) < 20 else 5
    if index is not None and int(mine.get("patience", 0)) <= patience:
        return []
    stop, best = would_stop(values, patience, float(mine.get("min_delta", 0.0)), mode)
    if stop is None:
        return []
    when = (f"with patience {patience} it would have stopped after epoch {rows[stop]['epoch']} and kept epoch "
            f"{rows[best]['epoch']} ({monitor} {values[best]:.4g})")
    if index is not None:
        return [set_line(f"train.callbacks[{index}].patience", str(patience), when)]
    new = {"type": "EarlyStopping", "monitor": monitor, "patience": patience, "restore_best_weights": True}
    return [set_line("train.callbacks", flow([*callbacks, new]), when)]


def _overfitting(ev, rows, recipe, ctx) -> list[str]:
    layers = list(walk_layers(recipe.get("model", {}).get("layers")))
    out = []
    for path, layer in layers:
        rate = layer.get("rate")
        if layer.get("type") in DROPOUTS and isinstance(rate, (int, float)) and rate < 0.7 and len(out) < 2:
            new = round(min(0.7, max(0.5, rate + 0.2)), 2)
            out.append(set_line(f"{path}.rate", str(new), f"{layer['type']} rate {rate} -> {new}"))
    out += _l2(recipe, layers, 5.0, "stronger L2")
    if ctx.get("image") and not recipe.get("data", {}).get("augment"):
        out.append(set_line("data.augment", flow(AUGMENT), "augment the training images"))
    out += _early_stopping(ev, rows, recipe, ctx)
    widest = _hidden(layers, max)
    if widest is not None and widest[2] >= 32:
        path, key, width = widest
        out.append(set_line(f"{path}.{key}", str(width // 2), f"a smaller model: {key} {width} -> {width // 2}"))
    return out


def _l2(recipe: dict, layers: list, factor: float, why: str) -> list[str]:
    reg = recipe.get("model", {}).get("defaults", {}).get("kernel_regularizer")
    if isinstance(reg, dict) and isinstance(reg.get("l2"), (int, float)):
        return [set_line("model.defaults.kernel_regularizer.l2", yaml_number(reg["l2"] * factor),
                         f"{why}: {yaml_number(reg['l2'])} -> {yaml_number(reg['l2'] * factor)}")]
    for path, layer in layers:
        reg = layer.get("kernel_regularizer")
        if isinstance(reg, dict) and isinstance(reg.get("l2"), (int, float)):
            return [set_line(f"{path}.kernel_regularizer.l2", yaml_number(reg["l2"] * factor),
                             f"{why} on {layer.get('type')}: {yaml_number(reg['l2'])} -> "
                             f"{yaml_number(reg['l2'] * factor)}")]
    if factor > 1 and any(layer.get("type") in WIDTHS for _, layer in layers):
        return [set_line("model.defaults.kernel_regularizer", flow({"type": "L2", "l2": DEFAULT_L2}),
                         "L2 on every kernel")]
    return []


def _hidden(layers: list, pick) -> tuple[str, str, int] | None:
    """The widest (``pick=max``) or narrowest (``min``) hidden Dense or convolution: path, key, width."""
    found = [(path, WIDTHS[layer["type"]], layer[WIDTHS[layer["type"]]]) for path, layer in layers
             if layer.get("type") in WIDTHS and isinstance(layer.get(WIDTHS[layer["type"]]), int)]
    if found and found[-1][1] == "units":
        found = found[:-1]  # the output layer
    dense = [f for f in found if f[1] == "units"] or found
    return pick(dense, key=lambda f: f[2]) if dense else None


def _underfitting(ev, rows, recipe, ctx) -> list[str]:
    layers = list(walk_layers(recipe.get("model", {}).get("layers")))
    out = []
    narrow = _hidden(layers, min)
    if narrow is not None:
        path, key, width = narrow
        new = max(64, 2 * width) if width < 64 else 2 * width
        out.append(set_line(f"{path}.{key}", str(new), f"a bigger model: {key} {width} -> {new}"))
    for path, layer in layers:
        rate = layer.get("rate")
        if layer.get("type") in DROPOUTS and isinstance(rate, (int, float)) and rate >= 0.3:
            new = round(rate - 0.2, 2)
            out.append(set_line(f"{path}.rate", str(new), f"less dropout: {rate} -> {new}"))
    out += _l2(recipe, layers, 0.1, "weaker L2")
    out += _rate(recipe, ctx, 3.0, "3x higher than")
    if (ev.get("loss_rel_slope") or 0.0) < -0.002:
        out += _still_improving(ev, rows, recipe, ctx)
    return out


def _still_improving(ev, rows, recipe, ctx) -> list[str]:
    n = int(ev.get("last_epoch", len(rows)))
    run = shlex.quote(str(ctx.get("run", "RUN")))
    why = f"{n} more epochs; the losses were still falling at epoch {n}"
    if isinstance(recipe.get("train", {}).get("learning_rate"), dict):
        why += " (the schedule is recomputed for the new train.epochs)"
    return [f"--resume {run} --set train.epochs={2 * n}  # {why}"]


def _unclear(ev, rows, recipe, ctx) -> list[str]:
    out = []
    if ev.get("epochs", 0) < 3:
        out += _still_improving(ev, rows, recipe, ctx)
    data, train = recipe.get("data", {}), recipe.get("train", {})
    if "val_loss_last" not in ev and not data.get("validation_split") and not train.get("cross_validation"):
        out.append(set_line("data.validation_split", "0.1", "hold out validation data to see overfitting"))
    if (ev.get("gap_last_rel") or 0.0) > 0.35:
        out += _early_stopping(ev, rows, recipe, ctx)
    return out
