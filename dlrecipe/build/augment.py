"""Augmentation layers: Keras's by class name, and dlrecipe's own by lower_snake_case name.

Every item of ``data.augment`` becomes one Keras layer at the start of the
model, before the fitted preprocessing: the layers see the raw inputs as the
data source gives them (0..255 pixels for Fashion-MNIST, so Keras's default
``value_range: [0, 255]`` fits). Keras's augmentation layers act only when the
model is called with ``training=True`` (``fit``), never in ``evaluate``,
``predict`` or the exported model.

dlrecipe's names (``ALIASES``) map onto Keras layers where Keras has one; the
other keys are that Keras class's constructor arguments:

=================  ==========================  ==========================================
name               Keras layer                 notes
=================  ==========================  ==========================================
random_erasing     RandomErasing               ``probability: p`` erases with probability
                                               exactly ``p`` (Keras's ``factor: [p, p]``;
                                               a single ``factor: f`` draws the
                                               probability uniformly from [0, f])
elastic            RandomElasticTransform      ``probability:`` as for random_erasing
color_jitter       RandomColorJitter
mixup              MixUp                       mixes labels too (see below)
cutmix             CutMix                      mixes labels too (see below)
gaussian_noise     ScaledGaussianNoise (ours)  ``stddev`` is a fraction of ``value_range``
fancy_pca          FancyPCA (ours)             AlexNet lighting noise on RGB images
=================  ==========================  ==========================================

``gaussian_noise`` is dlrecipe's own because Keras's ``GaussianNoise`` only takes
``stddev <= 1`` in input units, which is invisible on raw 0..255 pixels; the
dlrecipe layer adds noise of standard deviation ``stddev * (high - low)`` and
clips to ``value_range`` (default ``[0, 255]``; set it to the data's range for
other inputs). ``fancy_pca`` (Krizhevsky et al. 2012, section 4.1) adds to every
pixel of an image ``sum_i alpha_i * sqrt(lambda_i) * p_i``, with ``p_i`` and
``lambda_i`` the eigenvectors and eigenvalues of the 3x3 RGB covariance of the
*training split's* pixels (fitted by ``fit_stats``, stored in the run's
``preprocessing.json``) and ``alpha_i ~ N(0, stddev)`` drawn per image
(``stddev: 0.1`` as in the paper). The square roots (standard deviations along
the principal axes) make the noise scale with the data, whatever its pixel
range; AlexNet's eigenvalues were computed on its own pixel scale.

``mixup`` and ``cutmix`` blend the labels as well as the images, so they
cannot be model layers: ``build_model`` leaves them out (``mixes_labels``) and
the tf.data input pipeline (``dlrecipe.pipeline``) applies them to (images,
one-hot labels) batches.

Seeds: a layer that takes ``seed`` and has none in the recipe gets
``derived_seed(recipe_seed, index)``, so two trainings of one recipe see the same
augmented batches, and two layers of one recipe draw different numbers.

Image layers (every Keras image augmentation layer, and fancy_pca) need image
inputs ``(height, width, channels)``; on flat features they are a recipe error.

For ``task: segmentation`` no layer goes into the model: they all run in the
input pipeline on (image, mask) batches (``dlrecipe.segaugment``).
This module imports Keras only inside its functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dlrecipe.errors import Problem, RecipeError, join_path, suggest

LABEL_MIXING = ("MixUp", "CutMix")  # Keras classes that transform labels as well as images
NO_XLA = ("RandomElasticTransform",)  # Keras layers that fail under XLA but do not say so (supports_jit)
# Keras layers that say they do not support XLA on every backend (``supports_jit = False``), which is
# true of TensorFlow's (its ImageProjectiveTransformV3 has no XLA kernel) but not of JAX's: under
# jax.jit they give the same images as eagerly (tests/test_augment.py). Left so, Keras runs the whole
# JAX train step un-jitted, op by op, so on JAX they are marked as supporting it.
JAX_JIT_OK = ("RandomTranslation", "RandomRotation", "RandomZoom", "RandomShear", "RandomPerspective")
FANCY_PCA_STDDEV = 0.1  # AlexNet's standard deviation of the random weights alpha
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

    kind, args = resolve.split_type(spec, path)
    if kind[:1].isupper():
        cls = resolve.layer_classes().get(kind)
        if cls is not None and seed is not None and "seed" not in args and "seed" in (resolve._accepted_args(cls) or ()):
            spec = {**spec, "seed": derived_seed(seed, index)}
        return set_jit_support(resolve.build_layer(spec, path, {}))
    alias = ALIASES.get(kind)
    if alias is None:
        raise RecipeError.one(join_path(path, "type"), f"Unknown augmentation '{kind}'.{suggest(kind, ALIASES)} "
                              f"dlrecipe's own: {', '.join(names())}; or any Keras layer by its CamelCase class name "
                              "(RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomContrast, ...).")
    cls = _target_class(alias)
    accepted = (resolve._accepted_args(cls) or set()) | set(alias.extra)
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


def set_jit_support(layer: Any) -> Any:
    """Correct what ``layer`` says about XLA where Keras is wrong for the backend (``NO_XLA``, ``JAX_JIT_OK``).

    Keras 3.15's RandomElasticTransform builds its blur kernel with a data-dependent range, which XLA
    cannot compile; marked so, Keras trains the model without XLA instead of failing. Returns ``layer``.
    """
    import keras

    name = type(layer).__name__
    if name in NO_XLA:
        layer.supports_jit = False
    elif name in JAX_JIT_OK and keras.backend.backend() == "jax":
        layer.supports_jit = True
    return layer


def _target_name(alias: Alias) -> str:
    return alias.target.split(">")[-1] + (" of dlrecipe" if alias.target.startswith("dlrecipe>") else " of Keras")


def _target_class(alias: Alias) -> type:
    import keras

    if alias.target.startswith("dlrecipe>"):
        return register_keras_objects()[alias.target.split(">", 1)[1]]
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


def mark_jit_support(model: Any) -> Any:
    """``set_jit_support`` on every layer of a loaded model (the mark is not part of a layer's config).

    The model was compiled while loading, before the marks: its ``jit_compile`` is set again to what it
    was saved with, which Keras then allows only if every layer now supports XLA.
    """
    import warnings

    for layer in model._flatten_layers():
        set_jit_support(layer)
    saved = getattr(model, "_compile_config", None)
    if getattr(model, "compiled", False) and saved is not None:
        with warnings.catch_warnings():  # "Model doesn't support `jit_compile=True`": known, and kept off
            warnings.filterwarnings("ignore", message="Model doesn't support")
            model.jit_compile = bool(saved.config.get("jit_compile"))
    return model


def is_image_layer(layer: Any) -> bool:
    """True for layers that need image batches ``(batch, height, width, channels)``."""
    names_ = {c.__name__ for c in type(layer).__mro__}
    return "BaseImagePreprocessingLayer" in names_ or "FancyPCA" in names_


def mixes_labels(layer: Any) -> bool:
    """True for MixUp and CutMix: they blend labels, so they belong in the input pipeline, not the model."""
    return type(layer).__name__ in LABEL_MIXING


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


# --------------------------------------------------------------------------- dlrecipe's own layers


_KERAS_OBJECTS: dict[str, Any] = {}


def register_keras_objects() -> dict[str, Any]:
    """Define and register dlrecipe's augmentation layers with Keras (once).

    Call it before ``keras.saving.load_model`` on a model that contains them
    (``runs.register_layers`` does).

    Returns:
        ``{"FancyPCA": <class>, "ScaledGaussianNoise": <class>}`` (registered as ``dlrecipe>FancyPCA``, ...).
    """
    if _KERAS_OBJECTS:
        return _KERAS_OBJECTS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="dlrecipe")
    class FancyPCA(keras.layers.Layer):
        """AlexNet's PCA lighting noise: one random RGB shift per image along the principal colour axes.

        In training, adds ``eigenvectors @ (alpha * sqrt(eigenvalues))`` to every pixel of an image, with
        ``alpha ~ N(0, stddev)`` (3 values per image). The identity at inference.

        Args:
            stddev: standard deviation of ``alpha`` (AlexNet: 0.1).
            eigenvalues: the 3 eigenvalues of the training pixels' RGB covariance.
            eigenvectors: 3x3, its columns the matching eigenvectors.
            seed: seed of the random weights.
        """

        def __init__(self, stddev: float = FANCY_PCA_STDDEV, eigenvalues: Any = (1.0, 1.0, 1.0),
                     eigenvectors: Any = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), seed: int | None = None,
                     **kwargs: Any):
            super().__init__(**kwargs)
            values = np.asarray(eigenvalues, dtype=np.float64)
            vectors = np.asarray(eigenvectors, dtype=np.float64)
            if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0 <= stddev <= 10:
                raise ValueError(f"Expected stddev to be a number between 0 and 10 (AlexNet: 0.1). Received: "
                                 f"stddev={stddev!r}")
            if values.shape != (3,) or vectors.shape != (3, 3) or np.any(values < 0):
                raise ValueError("Expected 3 non-negative eigenvalues and a 3x3 matrix of eigenvectors. Received: "
                                 f"eigenvalues of shape {values.shape}, eigenvectors of shape {vectors.shape}")
            self.stddev = float(stddev)
            self.eigenvalues = values.tolist()
            self.eigenvectors = vectors.tolist()
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)
            # (alpha * sqrt(lambda)) @ V^T gives per image the RGB shift sum_i alpha_i sqrt(lambda_i) p_i.
            self._basis = (np.sqrt(values)[:, None] * vectors.T).astype(np.float32)

        def build(self, input_shape: Any) -> None:
            if len(input_shape) != 4 or input_shape[-1] != 3:
                raise ValueError("fancy_pca expects RGB image batches (batch, height, width, 3). Received: "
                                 f"input_shape={tuple(input_shape)}")

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            if not training:
                return inputs
            x = ops.cast(inputs, self.compute_dtype)
            alpha = keras.random.normal((ops.shape(x)[0], 3), stddev=self.stddev, seed=self.seed_generator,
                                        dtype=self.compute_dtype)
            shift = ops.matmul(alpha, ops.cast(self._basis, self.compute_dtype))
            return x + shift[:, None, None, :]

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict:
            return {**super().get_config(), "stddev": self.stddev, "eigenvalues": self.eigenvalues,
                    "eigenvectors": self.eigenvectors, "seed": self.seed}

    @keras.saving.register_keras_serializable(package="dlrecipe")
    class ScaledGaussianNoise(keras.layers.Layer):
        """Additive Gaussian noise of standard deviation ``stddev * (high - low)``, clipped to ``value_range``.

        Active in training only (the identity at inference). Works on inputs of any rank.

        Args:
            stddev: a fraction of the value range, between 0 and 1 (0.05 on 0..255 pixels: about 13 levels).
            value_range: ``[low, high]`` of the raw inputs (default ``[0, 255]``).
            seed: seed of the noise.
        """

        def __init__(self, stddev: float = 0.05, value_range: Any = (0, 255), seed: int | None = None, **kwargs: Any):
            super().__init__(**kwargs)
            if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0 <= stddev <= 1:
                raise ValueError(f"Expected stddev to be a fraction of the value range, between 0 and 1. Received: "
                                 f"stddev={stddev!r}")
            if (not isinstance(value_range, (list, tuple)) or len(value_range) != 2
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value_range)
                    or value_range[0] >= value_range[1]):
                raise ValueError(f"Expected value_range to be [low, high] with low < high. Received: "
                                 f"value_range={value_range!r}")
            self.stddev = float(stddev)
            self.value_range = [float(v) for v in value_range]
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            if not training or self.stddev == 0:
                return inputs
            x = ops.cast(inputs, self.compute_dtype)
            low, high = self.value_range
            noise = keras.random.normal(ops.shape(x), stddev=self.stddev * (high - low), seed=self.seed_generator,
                                        dtype=self.compute_dtype)
            return ops.clip(x + noise, low, high)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict:
            return {**super().get_config(), "stddev": self.stddev, "value_range": self.value_range,
                    "seed": self.seed}

    _KERAS_OBJECTS.update(FancyPCA=FancyPCA, ScaledGaussianNoise=ScaledGaussianNoise)
    return _KERAS_OBJECTS
