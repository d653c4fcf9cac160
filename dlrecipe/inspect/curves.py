"""Read a run's loss curves and name the regime: diverging, overfitting, underfitting, still_improving, healthy.

Pure NumPy on history.csv's rows (``runs.read_history``): no TensorFlow, so ``dlrecipe diagnose`` answers at
once. Every rule is conservative (a false alarm costs trust): what fits no rule clearly is ``healthy`` or
``unclear``. The rules and their thresholds: docs/commands.md#diagnose. The fixes: ``inspect.fixes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrecipe.inspect import fixes

VERDICTS = ("diverging", "overfitting", "underfitting", "still_improving", "healthy", "unclear")
# Thresholds, relative to the loss itself so that they hold for any loss scale.
FALLING = -0.015      # relative slope per epoch (over the last k epochs) below which a loss is still falling
FLAT = -0.0075        # ... above which it has levelled off
RISE = 0.05           # a validation loss this far (relative) above its minimum, and above the noise, has risen
SMALL_GAP = 0.35      # (val_loss - loss) / val_loss at or below this is a small gap
HIGH_LOSS = 0.35      # a training loss above this fraction of the chance loss ln(classes) is high
MIN_EPOCHS = 3


@dataclass
class Diagnosis:
    """The verdict on one training run (or on each member / fold of a group, and overall).

    Attributes:
        verdict: one of ``VERDICTS``.
        confidence: 0..1 (0 for ``unclear``).
        onset_epoch: the epoch the regime began (overfitting: where the smoothed validation loss was lowest;
            diverging: the first bad epoch), or None.
        evidence: the numbers the verdict relied on (epochs, losses, gap, slopes over the last k epochs),
            and ``why``: the reason in words.
        suggestions: fixes to append to ``dlrecipe train RECIPE`` (or ``--resume RUN ...``), each with a
            ``# comment``.
        best_epoch: the epoch of the lowest validation loss (training loss without validation), or None.
        label: ``member 2``, ``fold 3``, or None for a single run.
        members: the per-member (per-fold) diagnoses of an ensemble or a cross-validation.
        rows: the history rows diagnosed (for the plot; not in the JSON).
    """

    verdict: str
    confidence: float
    onset_epoch: int | None
    evidence: dict[str, Any]
    suggestions: list[str] = field(default_factory=list)
    best_epoch: int | None = None
    label: str | None = None
    members: list[Diagnosis] = field(default_factory=list)
    rows: list[dict[str, float]] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "confidence": round(float(self.confidence), 2),
                               "onset_epoch": self.onset_epoch, "best_epoch": self.best_epoch,
                               "evidence": self.evidence, "suggestions": list(self.suggestions)}
        if self.label is not None:
            out = {"label": self.label, **out}
        if self.members:
            out["members"] = [m.as_json() for m in self.members]
        return out

    def line(self) -> str:
        """The one-line verdict: ``overfitting from epoch 10 (confidence 0.80): <why>``."""
        name = self.verdict.replace("_", " ")
        if self.verdict == "overfitting" and self.onset_epoch is not None:
            name += f" from epoch {self.onset_epoch}"
        conf = f" (confidence {self.confidence:.2f})" if self.verdict != "unclear" else ""
        who = f"{self.label}: " if self.label else ""
        return f"{who}{name}{conf}: {self.evidence.get('why', '')}"


def _r(x: float) -> float | None:
    """A number for the evidence: 4 significant digits, None for NaN."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.4g}")


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([float(r.get(key, math.nan)) for r in rows], dtype=float)


def slope(values: np.ndarray) -> tuple[float, float]:
    """Least-squares slope per epoch of ``values`` and its standard error (inf with fewer than 3 points)."""
    n = len(values)
    if n < 2:
        return 0.0, math.inf
    x = np.arange(n, dtype=float) - (n - 1) / 2
    b = float(np.dot(x, values - values.mean()) / np.dot(x, x))
    if n < 3:
        return b, math.inf
    resid = values - values.mean() - b * x
    se = math.sqrt(float(np.dot(resid, resid)) / (n - 2) / float(np.dot(x, x)))
    return b, se


def noise(values: np.ndarray) -> float:
    """The epoch-to-epoch noise (std) of a curve, from the median of its second differences (robust to trends)."""
    if len(values) < 4:
        return 0.0
    d2 = np.diff(values, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6))


def smooth(values: np.ndarray, width: int = 3) -> np.ndarray:
    """A centred moving average (shorter at the ends)."""
    h = width // 2
    return np.array([values[max(0, i - h):i + h + 1].mean() for i in range(len(values))])


def chance_loss(recipe: dict | None, n_classes: int | None) -> float | None:
    """ln(classes) for a cross-entropy loss (what a uniform guess scores), else None (no reference)."""
    loss = ((recipe or {}).get("train") or {}).get("loss")
    name = loss.get("type", "") if isinstance(loss, dict) else (loss or "")
    name = str(name).lower().replace("_", "")
    if loss is None and ((recipe or {}).get("data") or {}).get("task") in (None, "classification", "segmentation"):
        name = "crossentropy"  # the task's default loss
    if "crossentropy" not in name or "focal" in name:
        return None
    k = 2 if "binary" in name else n_classes
    return math.log(k) if k and k >= 2 else None


def diagnose_history(rows: list[dict], recipe: Any = None, *, n_classes: int | None = None,
                     context: dict[str, Any] | None = None) -> Diagnosis:
    """The regime of one run's curves: history.csv's rows (``runs.read_history``) and its resolved recipe.

    ``recipe``: the run's ``Recipe`` (or its dict), for the chance loss and the fixes' paths; ``n_classes``:
    for the chance loss of a classifier; ``context``: what the fixes need beyond the recipe (``run``,
    ``optimizer_class``, ``optimizer_learning_rate``, ``image``, ``stopped_early``).

    Example:
        >>> diagnose_history(runs.read_history(run / runs.HISTORY), recipe, n_classes=10).verdict
        'overfitting'
    """
    if recipe is not None and not isinstance(recipe, dict):
        recipe = recipe.model_dump(mode="json", exclude_none=True)
    ctx = dict(context or {})
    rows = [r for r in rows if "epoch" in r]
    d = _judge(rows, recipe, chance_loss(recipe, n_classes))
    d.rows = rows
    d.suggestions = fixes.suggest(d.verdict, d.evidence, rows, recipe, ctx) if recipe is not None else []
    return d


def _judge(rows: list[dict], recipe: dict | None, chance: float | None) -> Diagnosis:
    n = len(rows)
    if n == 0:
        return Diagnosis("unclear", 0.0, None, {"epochs": 0, "why": "no finished epoch in history.csv"})
    epochs = [int(r["epoch"]) for r in rows]
    loss = _column(rows, "loss")
    val = _column(rows, "val_loss") if any("val_loss" in r for r in rows) else None
    ev: dict[str, Any] = {"epochs": n, "last_epoch": epochs[-1]}
    bad = [i for i in range(n) if not math.isfinite(loss[i]) or (val is not None and not math.isfinite(val[i]))]
    if bad:
        ev["nonfinite_epoch"] = epochs[bad[0]]
        return Diagnosis("diverging", 0.95, epochs[bad[0]], {**ev, "why": f"the loss is not a number (NaN or inf) "
                         f"from epoch {epochs[bad[0]]}"})
    k = int(min(n, max(MIN_EPOCHS, min(10, n // 3))))
    ev.update(k=k, loss_first=_r(loss[0]), loss_last=_r(loss[-1]), loss_min=_r(loss.min()),
              loss_min_epoch=epochs[int(loss.argmin())])
    s_t, se_t = slope(loss[-k:])
    rel_t = s_t / max(abs(loss[-k:].mean()), 1e-12)
    ev.update(loss_slope=_r(s_t), loss_rel_slope=_r(rel_t))
    if chance is not None:
        ev.update(chance_loss=_r(chance), loss_vs_chance=_r(loss[-1] / chance))
    if val is not None:
        ev.update(val_loss_first=_r(val[0]), val_loss_last=_r(val[-1]), val_loss_min=_r(val.min()),
                  best_epoch=epochs[int(val.argmin())], gap_last=_r(val[-1] - loss[-1]))

    div = _diverging(loss, val, _column(rows, "learning_rate"), epochs, chance, k, ev)
    if div is not None:
        return div
    if n < MIN_EPOCHS:
        return Diagnosis("unclear", 0.0, None, {**ev, "why": f"only {n} epoch(s): too few to read a trend"},
                         best_epoch=ev.get("best_epoch"))
    if val is None:
        return _without_validation(loss, rel_t, s_t, se_t, chance, ev)
    return _with_validation(loss, val, epochs, k, rel_t, s_t, se_t, chance, ev)


def _diverging(loss, val, lr, epochs, chance, k, ev) -> Diagnosis | None:
    n = len(loss)
    if chance is not None and n >= 2 and loss[-k:].mean() >= chance:
        exploded = loss.max() >= 2 * chance or (val is not None and val[-1] >= 1.5 * chance) or loss[-1] > 1.1 * loss[0]
        if exploded:
            peak = int(loss.argmax())
            ev.update(loss_max=_r(loss.max()), loss_max_epoch=epochs[peak])
            val_text = f", val_loss {val[-1]:.4g}" if val is not None else ""
            return Diagnosis("diverging", 0.9, epochs[0 if loss[0] >= chance else peak], {
                **ev, "why": f"the training loss is {loss[-1]:.4g} at epoch {epochs[-1]}{val_text}, no better than "
                f"guessing (ln {round(math.exp(chance))} = {chance:.4g}); it peaked at {loss.max():.4g} in epoch "
                f"{epochs[peak]}"})
    if n >= MIN_EPOCHS:
        m = int(loss.argmin())
        rise = loss[-1] - loss[m]
        s, _ = slope(loss[max(m, n - k):])
        # a rise that matters: 1.5x its minimum, above the noise, and a tenth of the way back to the start
        if m < n - 2 and loss[-1] > 1.5 * loss[m] and rise > max(3 * noise(loss), 0.1 * loss[0]) and s > 0:
            ev.update(loss_rise=_r(rise))
            why = (f"the training loss rose from {loss[m]:.4g} at epoch {epochs[m]} to {loss[-1]:.4g} at epoch "
                   f"{epochs[-1]}")
            later = lr[m:][np.isfinite(lr[m:])]
            if math.isfinite(lr[m]) and later.size and later.max() > 1.01 * lr[m]:  # a cyclic schedule raised it
                ev["lr_rose"] = True
                return Diagnosis("unclear", 0.0, None, {**ev, "why": why + ", but the learning rate rose too "
                                 "(the schedule's): rerun diagnose after the schedule's low point"})
            conf = 0.6 + 0.3 * min(1.0, (loss[-1] / loss[m] - 1.5) / 1.5)
            return Diagnosis("diverging", conf, epochs[m + 1], {**ev, "why": why})
    return None


def _without_validation(loss, rel_t, s_t, se_t, chance, ev) -> Diagnosis:
    ev["note"] = "no val_loss: overfitting cannot be seen without validation data"
    if rel_t <= FALLING and s_t < -2 * se_t:
        return Diagnosis("still_improving", 0.6, None, {**ev, "why": f"the training loss is still falling "
                         f"({100 * rel_t:.1f}% per epoch over the last {ev['k']} epochs); no validation loss"})
    if chance is not None and loss[-1] / chance >= HIGH_LOSS and rel_t > FLAT:
        return Diagnosis("underfitting", 0.55, None, {**ev, "why": f"the training loss levelled off at "
                         f"{loss[-1]:.4g}, {100 * loss[-1] / chance:.0f}% of the chance loss {chance:.4g}; "
                         "no validation loss"})
    return Diagnosis("unclear", 0.0, None, {**ev, "why": "no validation loss, and the training loss alone shows "
                     "no problem"})


def _with_validation(loss, val, epochs, k, rel_t, s_t, se_t, chance, ev) -> Diagnosis:
    n = len(loss)
    best = int(val.argmin())
    sv = smooth(val)
    onset = int(sv.argmin())
    nv = noise(val)
    s_v, se_v = slope(val[-k:])
    rel_v = s_v / max(abs(val[-k:].mean()), 1e-12)
    gap_last = val[-1] - loss[-1]
    gap_rel = gap_last / max(abs(val[-1]), 1e-12)
    ev.update(val_loss_slope=_r(s_v), val_loss_rel_slope=_r(rel_v), val_noise=_r(nv), gap_last_rel=_r(gap_rel))
    # overfitting: the smoothed validation loss rose from its minimum, above its noise, while the training
    # loss kept falling and the gap grew
    after = n - 1 - onset
    if after >= 2:
        w = min(k, after)
        val_end = float(val[-w:].mean())
        rise = val_end - float(sv[onset])
        # the minimum of a noisy curve is biased low by about sqrt(2 ln n) noise; the mean of w points is not
        margin = max(RISE * abs(sv[onset]), nv * (math.sqrt(2 * math.log(max(n, 2))) / math.sqrt(3) + 2 / math.sqrt(w)))
        gap_onset = sv[onset] - smooth(loss)[onset]
        gap_end = val_end - float(loss[-w:].mean())
        train_fell = loss[-w:].mean() < 0.9 * loss[onset]
        ev.update(onset_epoch=epochs[onset], val_loss_at_onset=_r(sv[onset]), val_loss_end=_r(val_end),
                  val_rise=_r(rise), rise_margin=_r(margin), gap_at_onset=_r(gap_onset), gap_end=_r(gap_end))
        if rise > margin and train_fell and gap_end - gap_onset > margin:
            strength = min(1.0, (rise / margin - 1) / 2) * min(1.0, after / max(3, k))
            why = (f"val_loss (smoothed) was lowest at epoch {epochs[onset]} ({sv[onset]:.4g}) and rose to "
                   f"{val_end:.4g} over the last {w} epochs (by {rise:.4g}, more than the {margin:.4g} noise "
                   f"allows) while loss fell from {loss[onset]:.4g} to {loss[-1]:.4g}; the gap grew from "
                   f"{gap_onset:.4g} to {gap_end:.4g}")
            return Diagnosis("overfitting", 0.55 + 0.4 * strength, epochs[onset], {**ev, "why": why},
                             best_epoch=epochs[best])
    near_min = val[-1] <= val.min() + max(nv, 0.01 * abs(val.min())) or best >= n - 2
    falling_v = rel_v <= FALLING and s_v < -2 * se_v
    if near_min and s_t < 0 and (falling_v or (rel_v <= FLAT and rel_t <= FALLING)):
        conf = 0.85 if falling_v and rel_t <= FALLING else 0.6
        why = (f"both losses are still falling at epoch {epochs[-1]}: val_loss {100 * rel_v:.1f}% and loss "
               f"{100 * rel_t:.1f}% per epoch over the last {k} epochs (val_loss {val[-1]:.4g}, its lowest yet)")
        return Diagnosis("still_improving", conf, None, {**ev, "why": why}, best_epoch=epochs[best])
    converged = rel_v > FLAT or abs(s_v) < 2 * se_v
    if chance is not None and loss[-1] / chance >= HIGH_LOSS and abs(gap_rel) <= 0.15 and rel_t > FALLING:
        ratio = loss[-1] / chance
        conf = 0.6 + 0.3 * min(1.0, (ratio - HIGH_LOSS) / 0.35)
        why = (f"the training loss levelled off at {loss[-1]:.4g} ({100 * rel_t:.1f}% per epoch over the last {k} "
               f"epochs), {100 * ratio:.0f}% of the chance loss ln {round(math.exp(chance))} = {chance:.4g}, "
               f"with val_loss {val[-1]:.4g} close to it")
        return Diagnosis("underfitting", conf, None, {**ev, "why": why}, best_epoch=epochs[best])
    if converged and near_min and gap_rel <= SMALL_GAP:
        conf = 0.6 + 0.3 * (1 - max(0.0, gap_rel) / SMALL_GAP)
        why = (f"converged: val_loss {val[-1]:.4g} at epoch {epochs[-1]} ({100 * rel_v:+.1f}% per epoch over the "
               f"last {k}), within noise of its minimum {val.min():.4g}, gap to loss {gap_last:.4g} "
               f"({100 * gap_rel:.0f}% of val_loss)")
        return Diagnosis("healthy", conf, None, {**ev, "why": why}, best_epoch=epochs[best])
    parts = []
    if gap_rel > SMALL_GAP:
        parts.append(f"a large gap: val_loss {val[-1]:.4g} ({100 * rel_v:+.1f}% per epoch over the last {k}) against "
                     f"loss {loss[-1]:.4g} ({100 * rel_t:+.1f}%), {100 * gap_rel:.0f}% of val_loss, but val_loss has "
                     f"not clearly risen from its minimum {val.min():.4g} (epoch {epochs[best]})")
    if not near_min:
        parts.append(f"val_loss {val[-1]:.4g} is above its minimum {val.min():.4g} (epoch {epochs[best]}) but "
                     "within what its noise allows")
    if not converged:
        parts.append(f"val_loss still moves ({100 * rel_v:+.1f}% per epoch)")
    return Diagnosis("unclear", 0.0, None, {**ev, "why": "; ".join(parts) or "no regime fits clearly"},
                     best_epoch=epochs[best])
