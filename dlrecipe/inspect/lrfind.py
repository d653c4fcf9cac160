"""``dlrecipe lr-find``: the learning-rate range test (Smith 2015/2017; fastai's ``lr_find``).

The recipe's own model, optimizer, batch size and training pipeline, prepared by ``train.setup.prepare``
as training prepares them, are fitted for at most one epoch (or ``steps``) while the rate grows
exponentially from ``start`` to ``end``, one value per step; the recipe's schedule and callbacks are
left out. The loss of every batch is smoothed (an exponential moving average with bias correction, as
fastai) and the test stops once the smoothed loss exceeds 4 times its minimum, or climbs back above its
first value after falling by a tenth (a classifier's loss is bounded and may never reach 4 times). Nothing
is written but the plot. See docs/commands.md#lr-find.

Example:
    >>> found = lr_find(load_recipe(Path("recipes/quickstart.yaml")))
    >>> found.suggestion, found.set_line
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecipe.recipe.loader import LoadedRecipe

FEW_STEPS = 40  # below this, one epoch gives a coarse curve: a note suggests --steps
DIVERGED = 4.0  # stop once the smoothed loss exceeds this many times its minimum (fastai)
SUGGESTION = "steepest"  # the estimate printed as the suggestion: chosen with bench/lrfind.py (docs/commands.md)


@dataclass
class RangeTest:
    """What the range test measured, and the rates it suggests.

    Attributes:
        lrs, losses: the rate of every step and the batch's loss; ``smoothed`` the smoothed loss.
        steepest: the rate where the smoothed loss falls fastest (min gradient over log rate).
        valley: fastai's "valley", a rate inside the longest stretch of falling loss (see ``valley``).
        min_loss_lr: the rate at the smoothed loss's minimum.
        suggestion: ``valley`` or ``steepest`` (``SUGGESTION``).
        set_line: the ``--set`` that uses the suggestion in this recipe.
        stopped: why the test ended (``"diverged"``, ``"end"``, ``"steps"``).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    steepest: float | None
    valley: float | None
    min_loss_lr: float | None
    suggestion: float | None
    set_line: str | None
    stopped: str
    steps_per_epoch: int
    planned_steps: int
    batch_size: int
    beta: float
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"suggestion": self.suggestion, "steepest": self.steepest, "valley": self.valley,
                "min_loss_lr": self.min_loss_lr,
                "curve": [[float(r), float(v)] for r, v in zip(self.lrs, self.smoothed) if math.isfinite(v)]}


def smoothing(steps: int) -> float:
    """The EMA factor: fastai's 0.98 for runs of 500 steps and more, less for shorter ones.

    An EMA lags about ``1 / (1 - beta)`` steps; over one short epoch (57 steps for the quickstart) 0.98 would
    lag by most of the range, so the window is kept to about a tenth of the steps (at least 0.6).
    """
    return float(min(0.98, max(0.6, 1.0 - 10.0 / max(steps, 1))))


def smooth(losses: np.ndarray, beta: float) -> np.ndarray:
    """The exponential moving average of ``losses`` with bias correction (fastai's ``SmoothenValue``)."""
    out, avg = np.empty(len(losses)), 0.0
    for i, v in enumerate(np.asarray(losses, dtype=np.float64)):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _trimmed(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As fastai: the first tenth and the last 5 steps are left out of the estimates (where enough remain)."""
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    n = len(lrs)
    lo, hi = n // 10, n - 5 if n >= 20 else n
    return lrs[lo:hi], smoothed[lo:hi]


def steepest(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """The rate of the steepest descent: the minimum of d loss / d log(rate) (fastai's ``steep``)."""
    lrs, losses = _trimmed(lrs, smoothed)
    if len(lrs) < 2:
        return None
    grads = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(grads))])


def valley(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    """fastai's ``valley``: the longest decreasing run of the loss, and the rate 1/2 of the way into its
    middle third (index ``start + int(len/3) + int(len/6)``)."""
    lrs, losses = _trimmed(lrs, smoothed)
    n = len(losses)
    if n < 2:
        return None
    lds, max_start, max_end = [1] * n, 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end, max_start = i, i - lds[i]
    sections = (max_end - max_start) / 3
    return float(lrs[min(n - 1, max_start + int(sections) + int(sections / 2))])


def set_line(train: Any, value: float) -> str:
    """The ``--set`` that gives ``value`` to the recipe's rate: the number, or a cyclical schedule's ``max``."""
    lr, v = train.learning_rate, f"{value:.3g}"
    schedule = getattr(lr, "schedule", None)
    if schedule in ("one_cycle", "triangular"):
        return f"--set train.learning_rate.max={v}"
    if schedule == "piecewise" and getattr(lr, "initial", None) is None:
        return f"--set train.learning_rate.values[0]={v}"
    if schedule is not None:
        return f"--set train.learning_rate.initial={v}"
    if isinstance(lr, dict):  # a Keras schedule: {type: ExponentialDecay, initial_learning_rate: ...}
        return f"--set train.learning_rate.initial_learning_rate={v}"
    if lr is None and isinstance(train.optimizer, dict) and "learning_rate" in train.optimizer:
        return f"--set train.optimizer.learning_rate={v}"
    return f"--set train.learning_rate={v}"


class _Sweep(keras.callbacks.Callback):
    """Sets the rate before every batch, records the batch's loss, and stops at divergence or ``total``."""

    def __init__(self, rates: np.ndarray, beta: float):
        super().__init__()
        self.rates, self.beta = rates, beta
        self.losses: list[float] = []
        self.stopped = "end"
        self._avg, self._best, self._first = 0.0, math.inf, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()  # the logged loss is then this batch's, not the epoch's running mean
        self.model.optimizer.learning_rate = float(self.rates[len(self.losses)])

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", math.nan))
        self.losses.append(loss)
        i = len(self.losses)
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smoothed = self._avg / (1 - self.beta ** i)
        self._first = smoothed if i == 1 else self._first
        # diverged: 4x the minimum (fastai), or back above the start after falling by a tenth (a softmax's
        # bounded loss may never reach 4x: the rate then undoes what the first steps learned)
        back = self._best < 0.9 * self._first and smoothed > self._first
        if not math.isfinite(smoothed) or smoothed > DIVERGED * self._best or back:
            self.stopped = "diverged"
            self.model.stop_training = True
        self._best = min(self._best, smoothed) if math.isfinite(smoothed) else self._best
        if i >= len(self.rates) and not self.model.stop_training:
            self.stopped = "end"
            self.model.stop_training = True


def lr_find(loaded: LoadedRecipe, start: float = 1e-7, end: float = 10.0, steps: int | None = None) -> RangeTest:
    """Run the range test on ``loaded``'s model and data: see the module docstring.

    ``start`` < ``end`` (both > 0) and ``steps`` >= 2 are the caller's to check (``api.understand``).

    Raises:
        RecipeError: bad data or recipe, each problem with its path.
    """
    from dlrecipe.build import scaling
    from dlrecipe.build.checks import build_all
    from dlrecipe.data import pipeline
    from dlrecipe.train.setup import prepare

    original = loaded.recipe.train
    ready = prepare(_constant_rate(loaded.recipe, start))
    recipe, dataset, info, rt = ready.recipe, ready.dataset, ready.info, ready.runtime
    batch = recipe.train.batch_size
    spe = pipeline.steps(pipeline.n_train(dataset), batch)
    total = steps or spe
    rates = start * (end / start) ** (np.arange(total) / (total - 1))
    with rt.scope:
        built = build_all(scaling.scaled(recipe, rt.replicas), info.input_shape, ready.stats, task=info.task,
                          n_classes=info.n_classes, steps_per_epoch=spe)
        model = built.model
        model.compile(optimizer=built.optimizer, loss=built.loss, jit_compile=recipe.runtime.jit_compile)
    beta = smoothing(total)
    sweep = _Sweep(rates, beta)
    inputs = pipeline.fit_inputs(dataset, recipe, info.n_classes)
    inputs.pop("validation_data", None)
    try:
        model.fit(**inputs, epochs=math.ceil(total / spe), callbacks=[sweep], verbose=0)
    except Exception as e:
        raise pipeline.data_error(dataset, e) or e
    losses = np.asarray(sweep.losses, dtype=np.float64)
    lrs = rates[:len(losses)]
    smoothed = smooth(losses, beta)
    factor = scaling.factor(recipe.runtime, rt.replicas)  # rates of the optimizer; the recipe's are 1/factor
    found = {"steepest": steepest(lrs, smoothed), "valley": valley(lrs, smoothed)}
    ok = np.isfinite(smoothed)
    min_lr = float(lrs[ok][int(np.argmin(smoothed[ok]))]) if ok.any() else None
    found = {k: (v / factor if v is not None else None) for k, v in found.items()}
    suggestion = found[SUGGESTION] if found[SUGGESTION] is not None else found["steepest"]
    notes = []
    if factor != 1.0:
        notes.append(f"runtime.scale_learning_rate: linear over {rt.replicas} replicas: the curve shows the "
                     f"optimizer's rates; the suggestions are the recipe's (divided by {factor:g}).")
    if steps is None and total < FEW_STEPS:
        notes.append(f"One epoch is only {total} steps: a coarse curve. --steps 100 gives a finer one (over "
                     "several epochs).")
    if sweep.stopped == "end":
        notes.append(f"The loss did not diverge up to {rates[len(losses) - 1]:.3g}; a larger --end shows where it "
                     "does (the estimates stand).")
    if original.callbacks or getattr(original.learning_rate, "schedule", None) or isinstance(
            original.learning_rate, dict):
        notes.append("The recipe's schedule and callbacks were left out: the test sets the rate of every step.")
    return RangeTest(lrs, losses, smoothed, found["steepest"], found["valley"],
                     min_lr / factor if min_lr is not None else None, suggestion,
                     set_line(original, suggestion) if suggestion is not None else None,
                     sweep.stopped if sweep.stopped == "diverged" or steps is None else "steps", spe, total, batch,
                     beta, notes)


def _constant_rate(recipe, rate: float):
    """``recipe`` with a constant ``train.learning_rate`` (settable per step), no callbacks, one step per call."""
    t = recipe.train
    optimizer = t.optimizer
    if isinstance(optimizer, dict):
        optimizer = {k: v for k, v in optimizer.items() if k != "learning_rate"}
    return recipe.model_copy(update={"train": t.model_copy(update={
        "learning_rate": rate, "optimizer": optimizer, "callbacks": [], "steps_per_execution": 1})})


def plot_range_test(found: RangeTest, recipe_name: str, path: Path) -> None:
    """Write a PNG of the loss against the rate (log axis), with the suggestions marked, atomically."""
    from matplotlib.figure import Figure

    from dlrecipe.evaluate.plots import save_figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(found.lrs, found.losses, color="0.75", linewidth=0.8, label="batch loss")
    ax.plot(found.lrs, found.smoothed, color="tab:blue", linewidth=1.8, label=f"smoothed (EMA {found.beta:.2f})")
    ax.set_xscale("log")
    finite = found.smoothed[np.isfinite(found.smoothed)]
    if finite.size:
        low, high = float(finite.min()), float(finite[: max(1, len(finite) // 10)].max())
        ax.set_ylim(low - 0.1 * abs(high - low) - 1e-6, max(high, low) + 0.6 * abs(high - low) + 1e-6)
    marks = (("steepest", found.steepest, "tab:orange"), ("valley", found.valley, "tab:green"),
             ("min loss", found.min_loss_lr, "tab:red"))
    for label, value, color in marks:
        if value is not None:
            y = float(np.interp(np.log(value), np.log(found.lrs), found.smoothed))
            chosen = " (suggestion)" if label == SUGGESTION else ""
            ax.plot([value], [y], "o", color=color, markersize=7, label=f"{label}: {value:.2g}{chosen}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(f"{recipe_name}: learning-rate range test, {len(found.lrs)} steps of batch {found.batch_size}"
                 f" ({found.stopped})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, path)
