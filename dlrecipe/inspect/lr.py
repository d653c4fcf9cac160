"""``dlrecipe lr``: a recipe's learning rate at every optimizer step, printed per epoch and plotted.

``learning_rates`` evaluates ``train.learning_rate`` (a number, a Keras schedule or a dlrecipe
schedule) at every step of the run, exactly as the optimizer will, without loading the data: the
number of training examples comes from file headers and labels (``count_train_examples``).

A run of more than ``MAX_STEPS`` steps is evaluated at a sample of them (``sample_steps``: at most
``PLOT_POINTS`` spread over the run, plus the first and last step of each epoch in the table), so a
100,000-epoch recipe plots at once in bounded memory; the table shows at most ``TABLE_ROWS`` epochs.

Example:
    >>> rates = learning_rates(load_recipe(Path("recipes/quickstart.yaml")))
    >>> rates.per_step.shape  # (epochs * steps_per_epoch,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from dlrecipe.data.source import count_train_examples
from dlrecipe.errors import Problem, RecipeError
from dlrecipe.layers.schedules import EpochSchedule
from dlrecipe.recipe.loader import LoadedRecipe


MAX_STEPS = 100_000    # a run of at most this many steps is evaluated at every step
PLOT_POINTS = 4_000    # beyond it, at this many steps spread over the run (a plot is ~700 pixels wide) ...
TABLE_ROWS = 1_000     # ... and the table shows at most this many epochs, spread over the run


@dataclass
class LearningRates:
    """The learning rate at the optimizer steps of a run: every step, or a sample of a very long run.

    Attributes:
        per_step: float64, the rate at each of ``steps``: ``epochs * steps_per_epoch`` of them, or a sample
            (``sample_steps``) when the run has more than ``MAX_STEPS`` steps.
        steps_per_epoch, epochs, n_train, batch_size: the run's shape.
        source: what gives the rate, in words (``"cosine schedule"``, ``"adam's default"``, ...).
        notes: what may change the rate at run time (``ReduceLROnPlateau``).
        steps: the 0-based step of each value of ``per_step`` (None: every step).
    """

    per_step: np.ndarray
    steps_per_epoch: int
    epochs: int
    n_train: int
    batch_size: int
    source: str
    notes: list[str] = field(default_factory=list)
    steps: np.ndarray | None = None

    @property
    def step_index(self) -> np.ndarray:
        return np.arange(len(self.per_step)) if self.steps is None else self.steps

    def epoch(self, i: int) -> np.ndarray:
        """The rates of epoch ``i`` (1-based): one per step, or those of its steps that were sampled."""
        if self.steps is None:
            return self.per_step[(i - 1) * self.steps_per_epoch: i * self.steps_per_epoch]
        lo, hi = np.searchsorted(self.steps, [(i - 1) * self.steps_per_epoch, i * self.steps_per_epoch])
        return self.per_step[lo:hi]


def table_epochs(epochs: int) -> np.ndarray:
    """The 1-based epochs the table shows: all of them, or ``TABLE_ROWS`` spread evenly, the first and last."""
    if epochs <= TABLE_ROWS:
        return np.arange(1, epochs + 1)
    return np.unique(np.linspace(1, epochs, TABLE_ROWS).round().astype(np.int64))


def sample_steps(total: int, steps_per_epoch: int, epochs: int) -> np.ndarray | None:
    """The steps to evaluate: None for every step (at most ``MAX_STEPS``), else ``PLOT_POINTS`` spread over the
    run and the first and last step of each epoch of the table (sorted, unique)."""
    if total <= MAX_STEPS:
        return None
    shown = table_epochs(epochs) - 1
    return np.unique(np.concatenate([np.linspace(0, total - 1, PLOT_POINTS).round().astype(np.int64),
                                     shown * steps_per_epoch, (shown + 1) * steps_per_epoch - 1]))


def learning_rates(loaded: LoadedRecipe, replicas: int = 1) -> LearningRates:
    """Evaluate the recipe's learning rate at every step, as training's optimizer will.

    Steps per epoch are ``ceil(n_train / batch_size)`` with ``n_train`` from
    ``count_train_examples``; the schedule object is the one ``train`` builds, scaled
    for ``replicas`` when ``runtime.scale_learning_rate`` asks for it.

    Raises:
        RecipeError: a bad data section, learning rate or optimizer, each with its path.
    """
    from dlrecipe.build.checks import feature_problems, learning_rate_of
    from dlrecipe.build.resolve import optimizer as make_optimizer
    from dlrecipe.build.scaling import scaled
    recipe = loaded.recipe
    problems: list[Problem] = [p for p in feature_problems(recipe) if p.path.startswith("train.")]
    try:
        recipe = scaled(recipe, replicas)
    except RecipeError as e:
        problems.extend(e.problems)
    t = recipe.train
    n_train = 0
    try:
        n_train = count_train_examples(recipe.data)
    except RecipeError as e:  # reported together with the problems of train
        problems.extend(e.problems)
    spe = max(1, math.ceil(n_train / t.batch_size))
    rate = learning_rate_of(t.learning_rate, problems, spe, t.epochs)
    opt = None
    try:
        opt = make_optimizer(t.optimizer, rate)
    except RecipeError as e:
        problems.extend(e.problems)
    if problems:
        raise RecipeError(list({(p.path, p.message): p for p in problems}.values()))
    total = spe * t.epochs
    sampled = sample_steps(total, spe, t.epochs)
    at = np.arange(total, dtype=np.int64) if sampled is None else sampled
    if isinstance(rate, EpochSchedule):
        per_step, source = _evaluate_schedule(rate, at), f"{rate.name} schedule"
    elif isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        per_step, source = _evaluate_schedule(rate, at), f"Keras {type(rate).__name__}"
    elif rate is not None:
        per_step, source = np.full(len(at), float(rate)), "constant"
    else:
        per_step = np.full(len(at), float(ops.convert_to_numpy(opt.learning_rate)))
        source = "constant, set in train.optimizer" if _sets_rate(t.optimizer) else \
            f"constant, {type(opt).__name__}'s default"
    notes = []
    if recipe.runtime.scale_learning_rate:
        notes.append(f"runtime.scale_learning_rate: {recipe.runtime.scale_learning_rate}: the recipe's rates times "
                     f"{replicas} replica(s) (--replicas).")
    elif replicas > 1:
        notes.append(f"--replicas {replicas}: the rates are the recipe's; runtime.scale_learning_rate: linear would "
                     f"multiply them by {replicas}.")
    for i, cb in enumerate(t.callbacks):
        if cb.get("type") == "ReduceLROnPlateau":
            notes.append(f"train.callbacks[{i}]: ReduceLROnPlateau may lower the rate further at run time (by "
                         f"factor {cb.get('factor', 0.1)} after {cb.get('patience', 10)} epoch(s) without improvement "
                         f"of {cb.get('monitor', 'val_loss')}); the rates shown are those before any reduction.")
    return LearningRates(per_step, spe, t.epochs, n_train, t.batch_size, source, notes, sampled)


def _sets_rate(optimizer: Any) -> bool:
    return isinstance(optimizer, dict) and "learning_rate" in optimizer


def _evaluate_schedule(schedule: Any, at: np.ndarray | int) -> np.ndarray:
    """``schedule(step)`` for each step of ``at`` (sorted; an int N: steps 0..N-1), vectorized where the
    schedule allows it."""
    at = np.arange(at, dtype=np.int64) if isinstance(at, (int, np.integer)) else np.asarray(at, dtype=np.int64)
    total = len(at)
    steps = ops.convert_to_tensor(at.astype(np.int32 if at[-1] < 2**31 else np.int64))
    check = [0, total - 1]
    expected = [float(ops.convert_to_numpy(schedule(int(at[i])))) for i in check]
    for attempt in (lambda: schedule(steps), lambda: ops.vectorized_map(schedule, steps)):
        try:
            values = np.asarray(ops.convert_to_numpy(attempt()), dtype=np.float64).reshape(-1)
        except Exception:  # e.g. a schedule with a Python-level branch on the step
            continue
        if values.shape == (total,) and np.allclose(values[check], expected, rtol=1e-5, atol=1e-12):
            return values
    return np.array([float(ops.convert_to_numpy(schedule(int(s)))) for s in at])


def print_learning_rates(rates: LearningRates, recipe_name: str, console: Any) -> None:
    """A table: per epoch the rate at its first step and, where it varies within the epoch, min and max."""
    from rich.table import Table

    table = Table(title=f"{recipe_name}: learning rate ({rates.source})")
    for column in ("epoch", "first step", "min", "max"):
        table.add_column(column, justify="right")
    shown = table_epochs(rates.epochs)
    for i in shown:
        values = rates.epoch(int(i))
        low, high = float(values.min()), float(values.max())
        varies = high > low
        table.add_row(str(i), _num(values[0]), _num(low) if varies else "", _num(high) if varies else "")
    console.print(table)
    console.print(f"{rates.n_train} training examples, batch size {rates.batch_size}: {rates.steps_per_epoch} "
                  f"steps per epoch, {rates.epochs * rates.steps_per_epoch} steps in {rates.epochs} epochs.",
                  highlight=False)
    if len(shown) < rates.epochs:
        console.print(f"The table shows {len(shown)} of the {rates.epochs} epochs, spread evenly; the plot samples "
                      f"{len(rates.per_step)} of the steps.", highlight=False)
    for note in rates.notes:
        console.print(f"note: {note}", highlight=False)


def _num(v: float) -> str:
    return f"{v:.6g}"


def plot_learning_rates(rates: LearningRates, recipe_name: str, path: Path) -> None:
    """Write a PNG of the rate per step (x axis in epochs), atomically."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from dlrecipe.evaluate.plots import save_figure

    x = rates.step_index / rates.steps_per_epoch
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, rates.per_step, drawstyle="steps-post", linewidth=1.4)
    ax.set_xlim(0, rates.epochs)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{recipe_name}: {rates.source}, {rates.steps_per_epoch} steps per epoch")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
