"""Test-time averaging for ``dlrecipe evaluate --tta`` and ``--mc-dropout N`` (docs/training.md#test-time-averaging).

``--tta`` averages the softmax probabilities over a fixed set of views derived from the recipe's
``data.augment``: the identity, a horizontal / vertical flip where RandomFlip flips that way, and shifts
of ±k pixels where RandomTranslation shifts (k = round(factor * size / 2), at least 1: the mean shift
of training), filled as the layer fills. ``--mc-dropout N`` averages N passes with every dropout layer
(nested ones included) active and batch norm in inference mode (moving statistics): each dropout layer's
``call`` is wrapped while Keras's predict function is traced, and predict runs with ``training=False``.
The masks are seeded per (recipe seed, sample, view, batch, layer), so two evaluations give the same
numbers. Views are ``keras.ops`` on whole batches.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.evaluate.reports import classification_report, labels_of, predicted_classes

_SUMMARY = ("accuracy", "macro_f1", "log_loss")  # the numbers each averaging reports, with their gain
_EPS = 1e-7


@dataclass(frozen=True)
class View:
    """One deterministic test-time view: ``flip`` an image axis (1 rows, 2 columns) or shift by (dy, dx)."""

    name: str
    flip: int | None = None
    shift: tuple[int, int] = (0, 0)
    fill_mode: str = "reflect"
    fill_value: float = 0.0


IDENTITY = View("identity")


@dataclass
class Averaging:
    """What ``evaluate --tta/--mc-dropout`` will average: the views and the number of dropout samples."""

    views: list[View]
    samples: int  # 0: no MC dropout
    seed: int
    tta: bool
    dropout_layers: list = field(default_factory=list)


# --------------------------------------------------------------------------- the plan (checked before any work)


def plan(recipe, meta: dict, model, *, tta: bool, mc_dropout: int | None, run_dir) -> Averaging:
    """Check the flags against the run and list the views and samples; nothing is computed yet.

    Raises:
        RecipeError: not a classification run, ``--tta`` on non-image inputs or without flip/translation
            in ``data.augment``, ``--mc-dropout`` below 2 or on a model without dropout (``model.layers``).
    """
    flag = "--tta" if tta else "--mc-dropout"
    task = meta.get("task")
    if task != "classification":
        raise RecipeError.one(flag, f"The run {run_dir} is a {task} run, but {flag} averages class probabilities, "
                              "so it works for classification runs only. Fix: evaluate without it.")
    views = [IDENTITY]
    if tta:
        shape = tuple(meta.get("input_shape") or ())
        if len(shape) != 3:
            raise RecipeError.one("--tta", f"The run {run_dir} has inputs of shape {list(shape)}, not images "
                                  "(height, width, channels); --tta flips and shifts images. Fix: evaluate without "
                                  "--tta (--mc-dropout N works on any classifier with dropout).")
        views += views_of(recipe.data.augment, shape[:2], recipe.seed)
        if len(views) == 1:
            raise RecipeError.one("data.augment", f"The recipe of run {run_dir} has no RandomFlip or "
                                  "RandomTranslation in data.augment, so --tta has no view to add to the identity. "
                                  "Fix: train with e.g. {type: RandomFlip, mode: horizontal} and {type: "
                                  "RandomTranslation, height_factor: 0.1, width_factor: 0.1} in data.augment, or "
                                  "evaluate without --tta.")
    samples = 0
    layers: list = []
    if mc_dropout is not None:
        if isinstance(mc_dropout, bool) or mc_dropout < 2:
            raise RecipeError.one("--mc-dropout", f"Received: --mc-dropout {mc_dropout}. Expected N >= 2 stochastic "
                                  "passes to average, e.g. --mc-dropout 10.")
        layers = dropout_layers(model)
        if not layers:
            raise RecipeError.one("model.layers", f"The model of run {run_dir} has no dropout layer (Dropout, "
                                  "SpatialDropout2D, GaussianDropout, AlphaDropout), so every --mc-dropout pass "
                                  "would be the same. Fix: add e.g. {type: Dropout, rate: 0.3} to model.layers and "
                                  "train again, or evaluate without --mc-dropout.")
        samples = int(mc_dropout)
    return Averaging(views=views, samples=samples, seed=int(recipe.seed), tta=tta, dropout_layers=layers)


def views_of(augment: list[dict[str, Any]], size: tuple[int, int], seed: int = 0) -> list[View]:
    """The views (identity excluded) that ``data.augment``'s RandomFlip and RandomTranslation layers imply.

    Example:
        >>> views_of([{"type": "RandomFlip", "mode": "horizontal"}], (28, 28))  # [View("flip_horizontal", flip=2)]
    """
    import keras

    from dlrecipe.build.augment import build_layers

    views: list[View] = []
    for layer in build_layers(augment, seed=seed, stats=None):
        if isinstance(layer, keras.layers.RandomFlip):
            if "horizontal" in layer.mode:
                views.append(View("flip_horizontal", flip=2))
            if "vertical" in layer.mode:
                views.append(View("flip_vertical", flip=1))
        elif isinstance(layer, keras.layers.RandomTranslation):
            fill = {"fill_mode": layer.fill_mode, "fill_value": float(layer.fill_value)}
            for axis, (lower, upper), n in ((0, (layer.height_lower, layer.height_upper), size[0]),
                                            (1, (layer.width_lower, layer.width_upper), size[1])):
                for sign, bound in ((1, upper), (-1, -lower)):
                    if bound > 0:  # half the range's edge: the mean shift of a uniform draw on that side
                        k = sign * max(1, int(round(bound * n / 2)))
                        shift = (k, 0) if axis == 0 else (0, k)
                        name = f"shift_{'down' if k > 0 else 'up'}" if axis == 0 else \
                            f"shift_{'right' if k > 0 else 'left'}"
                        views.append(View(f"{name}_{abs(k)}", shift=shift, **fill))
    unique: dict[tuple, View] = {}
    for v in views:  # two RandomFlip layers, or two translations, give each view once
        unique.setdefault((v.flip, v.shift), v)
    return list(unique.values())


def dropout_layers(model) -> list:
    """Every dropout layer of ``model``, nested ones (inside blocks and sub-models) included."""
    import keras

    kinds = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)  # SpatialDropout* too
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, kinds)]


# --------------------------------------------------------------------------- computing


def apply_view(x, view: View):
    """``view`` of a batch of channels-last images ``x`` (a tensor op on the whole batch)."""
    from keras import ops

    if view.flip is not None:
        return ops.flip(x, axis=view.flip)
    dy, dx = view.shift
    if not dy and not dx:
        return x
    # affine_transform maps each output pixel (x, y) to the input pixel (x - dx, y - dy).
    transform = ops.convert_to_tensor([1.0, 0.0, -float(dx), 0.0, 1.0, -float(dy), 0.0, 0.0], dtype="float32")
    return ops.image.affine_transform(x, transform, interpolation="nearest", fill_mode=view.fill_mode,
                                      fill_value=view.fill_value, data_format="channels_last")


@contextlib.contextmanager
def dropout_active(layers: list):
    """Within the block, ``layers`` drop as in training whatever ``training`` their call receives."""
    def forced(original):
        def call(*args, **kwargs):
            kwargs["training"] = True
            return original(*args, **kwargs)
        return call

    for layer in layers:
        layer.call = forced(layer.call)
    try:
        yield
    finally:
        for layer in layers:
            del layer.call  # back to the class's call


def _reseed(layers: list, key: tuple[int, ...]) -> None:
    """Set each dropout layer's seed state from ``key`` (and its index): the masks depend on nothing else."""
    for i, layer in enumerate(layers):
        generator = getattr(layer, "seed_generator", None)  # absent for rate 0
        if generator is not None:
            value = np.random.SeedSequence([*key, i]).generate_state(1)[0] % (2**31 - 1)
            generator.state.assign(np.asarray([value, 0], dtype=generator.state.dtype))


def _batches(x_test, batch_size: int) -> Iterator[Any]:
    if hasattr(x_test, "element_spec"):  # a batched tf.data.Dataset of (x, y), in a fixed order
        for x, _ in x_test:
            yield x
        return
    x = np.asarray(x_test)
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


def probabilities(model, x_test, averaging: Averaging, batch_size: int) -> dict[str, np.ndarray]:
    """Per-view probabilities: ``plain`` ``(views, n, k)`` and, with MC dropout, ``mc`` ``(samples, views, n, k)``.

    Every pass is ``model.predict_on_batch`` (Keras's compiled predict function, ``training=False``); the MC
    passes use a predict function traced while the dropout layers are forced on, then a clean one is made.
    """
    from keras import ops

    def views(x):
        x = ops.cast(ops.convert_to_tensor(x), "float32")
        return [apply_view(x, view) for view in averaging.views]

    def predict(x):
        return np.asarray(ops.convert_to_numpy(model.predict_on_batch(x)))

    n_views = len(averaging.views)
    plain: list[list[np.ndarray]] = [[] for _ in range(n_views)]
    for x in _batches(x_test, batch_size):
        for v, xv in enumerate(views(x)):
            plain[v].append(predict(xv))
    out = {"plain": np.stack([np.concatenate(p) for p in plain])}
    if averaging.samples:
        out["mc"] = _mc_passes(model, x_test, averaging, batch_size, views, predict)
    return out


def _mc_passes(model, x_test, averaging: Averaging, batch_size: int, views, predict) -> np.ndarray:
    layers = averaging.dropout_layers
    saved = [np.asarray(layer.seed_generator.state.value) if hasattr(layer, "seed_generator") else None
             for layer in layers]
    mc: list[list[list[np.ndarray]]] = [[[] for _ in averaging.views] for _ in range(averaging.samples)]
    try:
        with dropout_active(layers):
            model.make_predict_function(force=True)  # traced on its first call, inside this block
            for b, x in enumerate(_batches(x_test, batch_size)):
                for v, xv in enumerate(views(x)):
                    for s in range(averaging.samples):
                        _reseed(layers, (averaging.seed, s, v, b))
                        mc[s][v].append(predict(xv))
    finally:
        model.make_predict_function(force=True)  # predict() without dropout again
        for layer, state in zip(layers, saved):
            if state is not None:
                layer.seed_generator.state.assign(state)
    return np.stack([np.stack([np.concatenate(p) for p in sample]) for sample in mc])


# --------------------------------------------------------------------------- the numbers


def summary(probs: np.ndarray, y_true: np.ndarray, names: list[str]) -> dict[str, float]:
    """Accuracy and macro F1 (as ``evaluate`` computes them) and the log loss of averaged probabilities."""
    report = classification_report(y_true, predicted_classes(probs), names)
    p = probs.reshape(len(probs), -1)
    if p.shape[1] == 1:  # one sigmoid unit: P(class 1)
        p = np.concatenate([1.0 - p, p], axis=1)
    picked = np.clip(p[np.arange(len(p)), y_true], _EPS, 1.0)
    return {"accuracy": float(report["accuracy"]), "macro_f1": float(report["macro_f1"]),
            "log_loss": float(-np.mean(np.log(picked)))}


def _entry(base: dict[str, float], averaged: dict[str, float], **sizes) -> dict[str, Any]:
    return {**sizes, "plain": base, "metrics": averaged, "gain": {k: averaged[k] - base[k] for k in _SUMMARY}}


def average(model, x_test, y_test, averaging: Averaging, *, class_names: list[str], batch_size: int) -> dict:
    """``metrics.json``'s ``tta`` / ``mc_dropout`` / ``tta_mc_dropout`` objects for ``averaging``.

    Each holds its sizes (``views`` names, ``n_views``, ``samples``), ``plain`` (the identity view, no
    dropout: the same numbers as the top level's), ``metrics`` (averaged) and ``gain`` (averaged - plain;
    for ``log_loss`` lower is better).
    """
    y_true = labels_of(np.asarray(y_test))
    found = probabilities(model, x_test, averaging, batch_size)
    names = list(class_names) if class_names else [str(i) for i in range(max(2, found["plain"].shape[-1]))]
    base = summary(found["plain"][0], y_true, names)
    view_names = [v.name for v in averaging.views]
    out: dict[str, Any] = {}
    if averaging.tta:
        out["tta"] = _entry(base, summary(found["plain"].mean(axis=0), y_true, names),
                            views=view_names, n_views=len(view_names))
    if averaging.samples:
        out["mc_dropout"] = _entry(base, summary(found["mc"][:, 0].mean(axis=0), y_true, names),
                                   samples=averaging.samples)
        if averaging.tta:
            out["tta_mc_dropout"] = _entry(base, summary(found["mc"].mean(axis=(0, 1)), y_true, names),
                                           views=view_names, n_views=len(view_names), samples=averaging.samples)
    return out
