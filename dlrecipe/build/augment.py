"""The layers of ``data.augment``: Keras's by class name, dlrecipe's own (``ALIASES``) by lower_snake_case name.

Each item becomes one Keras layer at the start of the model, before the fitted preprocessing, so it
sees the raw inputs (0..255 pixels: Keras's default ``value_range`` fits), and acts in training only.
MixUp and CutMix blend labels too, so the tf.data pipeline applies them instead (``mixes_labels``);
for ``task: segmentation`` every layer runs there (``build.segaugment``). A layer that takes ``seed``
and has none gets ``derived_seed(recipe_seed, index)``, so runs repeat. ``fit_stats`` fits fancy_pca's
RGB eigen-decomposition on the training split. Image layers on flat features are a recipe error.
This module imports Keras only inside its functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dlrecipe.errors import Problem, RecipeError, join_path, suggest

LABEL_MIXING = ("MixUp", "CutMix")  # Keras classes that transform labels as well as images
_CHUNK_PIXELS = 1 << 20  # RGB pixels per float64 chunk while fitting fancy_pca (24 MiB)


@dataclass(frozen=True)
class Alias:
    """A dlrecipe augmentation name: the layer class it builds, its extra arguments, and a note."""

    target: str  # a keras.layers class name, or "dlrecipe>Name" for dlrecipe's own layers
    extra: tuple[str, ...] = ()  # arguments dlrecipe adds to the class's own
    note: str = ""
    translate: Callable[[dict[str, Any], str], dict[str, Any]] | None = field(default=None, compare=False)


def _probability(args: dict[str, Any], path: str) -> dict[str, Any]:
    """``probability: p`` -> Keras's ``factor: [p, p]`` (a single factor f draws the probability from [0, f])."""
    if "probability" not in args:
        return args
    out = dict(args)
    p = out.pop("probability")
    where = join_path(path, "probability")
    if "factor" in out:
        raise RecipeError.one(where, "Received both probability and factor. They set the same thing (Keras's factor "
                              "is the range the probability is drawn from); keep one.")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise RecipeError.one(where, f"Received: probability={p!r}. Expected a number between 0 and 1, e.g. 0.5.")
    out["factor"] = (float(p), float(p))
    return out


ALIASES: dict[str, Alias] = {
    "random_erasing": Alias("RandomErasing", ("probability",), "occlusion: erases a random rectangle",
                            _probability),
    "elastic": Alias("RandomElasticTransform", ("probability",), "Simard-style elastic distortion", _probability),
    "color_jitter": Alias("RandomColorJitter", (), "brightness, contrast, saturation, hue"),
    "mixup": Alias("MixUp", (), "blends pairs of images and their labels"),
    "cutmix": Alias("CutMix", (), "pastes a patch of another image, labels by area"),
    "gaussian_noise": Alias("dlrecipe>ScaledGaussianNoise", (), "noise of stddev * (high - low), clipped"),
    "fancy_pca": Alias("dlrecipe>FancyPCA", (), "AlexNet PCA lighting noise on RGB images"),
}


def derived_seed(seed: int, index: int) -> int:
    """The seed of ``data.augment[index]`` for the recipe seed ``seed`` (distinct per layer)."""
    return (int(seed) * 1_000_003 + 7919 * (index + 1)) % (2**31 - 1)


def names() -> list[str]:
    return sorted(ALIASES)


def _kind(spec: Any) -> str | None:
    return spec.get("type") if isinstance(spec, dict) and isinstance(spec.get("type"), str) else None


def wants_fancy_pca(augment: list[dict[str, Any]]) -> list[int]:
    """Indexes of ``fancy_pca`` items in ``data.augment``."""
    return [i for i, spec in enumerate(augment or []) if _kind(spec) == "fancy_pca"]


# --------------------------------------------------------------------------- fitted statistics (NumPy)


def check_rgb(augment: list[dict[str, Any]], input_shape: tuple[int, ...]) -> None:
    """fancy_pca needs RGB images ``(height, width, 3)``.

    Raises:
        RecipeError: at ``data.augment[i]`` for every fancy_pca on other data.
    """
    shape = tuple(input_shape)
    if len(shape) == 3 and shape[-1] == 3:
        return
    what = f"grayscale images {list(shape)}" if len(shape) == 3 and shape[-1] == 1 else f"examples of shape {list(shape)}"
    raise RecipeError([Problem(f"data.augment[{i}]", f"fancy_pca changes the colour of RGB images (height, width, 3), "
                               f"but the data has {what}. Fix: remove it (for grayscale images use RandomBrightness "
                               "or RandomContrast).") for i in wants_fancy_pca(augment)])


def fit_stats(augment: list[dict[str, Any]], x_train: np.ndarray) -> dict[str, Any]:
    """Statistics the augmentation layers need, fitted on the training inputs only.

    Args:
        augment: ``data.augment`` as written in the recipe.
        x_train: the training split's inputs (the caller passes nothing else).

    Returns:
        ``{}``, or ``{"fancy_pca": {"eigenvalues": [3], "eigenvectors": [[3] x 3]}}`` (columns are the
        eigenvectors, eigenvalues in decreasing order) when the recipe uses fancy_pca.
    """
    if not wants_fancy_pca(augment):
        return {}
    x = np.asarray(x_train)
    check_rgb(augment, x.shape[1:])
    pixels = x.reshape(-1, 3)
    n, shift = 0, pixels[: min(len(pixels), 4096)].astype(np.float64).mean(axis=0)
    total, cross = np.zeros(3), np.zeros((3, 3))
    for start in range(0, len(pixels), _CHUNK_PIXELS):
        chunk = pixels[start:start + _CHUNK_PIXELS].astype(np.float64) - shift
        total += chunk.sum(axis=0)
        cross += chunk.T @ chunk
        n += len(chunk)
    mean = total / max(n, 1)
    cov = cross / max(n, 1) - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    vectors *= np.where(vectors[np.argmax(np.abs(vectors), axis=0), range(3)] < 0, -1.0, 1.0)  # a fixed sign
    return {"fancy_pca": {"eigenvalues": values.tolist(), "eigenvectors": vectors.tolist()}}


def placeholder_stats(augment: list[dict[str, Any]], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Statistics of the right shape without data (``validate``): fancy_pca along the RGB axes."""
    if not wants_fancy_pca(augment):
        return {}
    check_rgb(augment, input_shape)
    return {"fancy_pca": {"eigenvalues": [1.0, 1.0, 1.0], "eigenvectors": np.eye(3).tolist()}}


# --------------------------------------------------------------------------- layers


def build_layer(spec: dict[str, Any], path: str, *, seed: int | None = None, index: int = 0,
                stats: dict[str, Any] | None = None):
    """The Keras layer of one ``data.augment`` item.

    Args:
        spec: ``{type: Name, **args}``: a Keras layer class, or a name in ``ALIASES``.
        path: its recipe path, e.g. ``data.augment[2]``.
        seed: the recipe's seed; a layer that takes ``seed`` and has none gets ``derived_seed(seed, index)``.
        index: the item's position in ``data.augment``.
        stats: the fitted statistics (``fit_stats``; fancy_pca reads its eigen-decomposition there).

    Raises:
        RecipeError: unknown name (with a suggestion), bad argument (with its path).
    """
    from dlrecipe.build import resolve
    from dlrecipe.layers.jit import set_jit_support

    kind, args = resolve.split_type(spec, path)
    if kind[:1].isupper():
        cls = resolve.layer_classes().get(kind)
        if cls is not None and seed is not None and "seed" not in args and "seed" in (resolve.accepted_args(cls) or ()):
            args = {**args, "seed": derived_seed(seed, index)}
        args.pop("inputs", None)
        return set_jit_support(resolve.keras_layer(kind, args, path, {}))
    alias = ALIASES.get(kind)
    if alias is None:
        raise RecipeError.one(join_path(path, "type"), f"Unknown augmentation '{kind}'.{suggest(kind, ALIASES)} "
                              f"dlrecipe's own: {', '.join(names())}; or any Keras layer by its CamelCase class name "
                              "(RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomContrast, ...).")
    cls = _target_class(alias)
    accepted = (resolve.accepted_args(cls) or set()) | set(alias.extra)
    accepted -= {"input_shape", "input_dim", "batch_size", "autocast", "trainable", "dtype"}
    bad = [k for k in args if k not in accepted]
    if bad:
        shown = ", ".join(sorted(accepted))
        raise RecipeError([Problem(join_path(path, k), f"Unknown argument '{k}' for {kind} ({_target_name(alias)})."
                                   f"{suggest(k, accepted)} {kind} takes: {shown}.") for k in bad])
    if alias.translate is not None:
        args = alias.translate(args, path)
    if kind == "fancy_pca":
        fitted = (stats or {}).get("fancy_pca") or {"eigenvalues": [1.0, 1.0, 1.0], "eigenvectors": np.eye(3).tolist()}
        args = {**args, **fitted}
    if seed is not None and "seed" not in args and "seed" in accepted:
        args["seed"] = derived_seed(seed, index)
    return set_jit_support(resolve.construct(cls, args, path))


def _target_name(alias: Alias) -> str:
    return alias.target.split(">")[-1] + (" of dlrecipe" if alias.target.startswith("dlrecipe>") else " of Keras")


def _target_class(alias: Alias) -> type:
    import keras

    from dlrecipe.layers import registry

    if alias.target.startswith("dlrecipe>"):
        return registry.get(alias.target)
    return getattr(keras.layers, alias.target)


def layer_class(spec: Any) -> type | None:
    """The class an augment entry builds (a Keras class name or a dlrecipe alias), without building it;
    None where the entry names no known layer."""
    from dlrecipe.build import resolve

    kind = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(kind, str):
        return None
    if kind in ALIASES:
        return _target_class(ALIASES[kind])
    return resolve.layer_classes().get(kind)


def is_image_layer(layer: Any) -> bool:
    """True for layers that need image batches ``(batch, height, width, channels)``."""
    names_ = {c.__name__ for c in type(layer).__mro__}
    return "BaseImagePreprocessingLayer" in names_ or "FancyPCA" in names_


def mixes_labels(layer: Any) -> bool:
    """True for MixUp and CutMix: they blend labels, so they belong in the input pipeline, not the model."""
    return type(layer).__name__ in LABEL_MIXING


def is_batch_level_spec(spec: Any) -> bool:
    """True for an augment entry that builds a batch-level layer; the class is looked up without building
    the layer, which would draw a seed (and take a name) and so shift the model's starting weights."""
    import keras

    cls = layer_class(spec)
    return cls is not None and issubclass(cls, (keras.layers.MixUp, keras.layers.CutMix))


def has_batch_level(augment: list[dict[str, Any]]) -> bool:
    """Whether ``data.augment`` holds a batch-level layer (by the class it builds, so aliases count)."""
    return any(is_batch_level_spec(spec) for spec in augment)


def build_layers(augment: list[dict[str, Any]], *, seed: int | None, stats: dict[str, Any] | None,
                 input_shape: tuple[int, ...] | None = None) -> list:
    """Every layer of ``data.augment``, all problems raised together.

    With ``input_shape`` (one raw example's shape), image layers on non-image data are refused.
    """
    layers, problems = [], []
    for i, spec in enumerate(augment or []):
        path = f"data.augment[{i}]"
        try:
            layer = build_layer(spec, path, seed=seed, index=i, stats=stats)
        except RecipeError as e:
            problems.extend(e.problems)
            continue
        if input_shape is not None:
            problems.extend(_shape_problems(layer, spec, path, tuple(input_shape)))
        layers.append(layer)
    if problems:
        raise RecipeError(problems)
    return layers


def _shape_problems(layer: Any, spec: dict[str, Any], path: str, shape: tuple[int, ...]) -> list[Problem]:
    kind = spec.get("type")
    if is_image_layer(layer) and len(shape) != 3:
        return [Problem(path, f"{kind} works on images (height, width, channels), but the data's examples have shape "
                        f"{list(shape)}. Fix: remove it from data.augment (for flat features, gaussian_noise works), "
                        "or store the inputs as images, e.g. x.reshape(-1, 28, 28, 1).")]
    if kind == "fancy_pca" and shape[-1] != 3:
        try:
            check_rgb([spec], shape)
        except RecipeError as e:
            return [Problem(path, p.message) for p in e.problems]
    return []
