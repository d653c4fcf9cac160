"""Augmentation for segmentation: geometric layers move image and mask together, photometric ones touch the image.

For ``task: segmentation`` the ``data.augment`` layers run in the ``tf.data`` training pipeline
(``pipeline.fit_inputs``), never in the model, which never sees the masks. Geometric layers
(``GEOMETRIC``) get ``{"images": x, "segmentation_masks": m}``: Keras 3.15 applies one random transform
to both, the masks with nearest-neighbour interpolation, so a mask pixel stays a class index (new
pixels take ``fill_value``, which must then be 0, the background). Photometric layers (``PHOTOMETRIC``)
get the images alone. Every other layer is refused at ``data.augment[i]`` (``problems``). Masks enter
as float32 ``(N, H, W, 1)`` and leave rounded, as int32 ``(N, H, W)``; the layers come from
``augment.build_layers``, with the same derived seeds as in a model.
"""

from __future__ import annotations

from typing import Any

from dlrecipe.errors import Problem, RecipeError

# Keras 3.15 layers whose transform_segmentation_masks applies the image's transform with "nearest" (checked:
# image pixels that encode their class still match the mask after each of these, in tf.data).
GEOMETRIC = ("RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomShear", "RandomPerspective")
# Layers that change pixel values only: Keras 3.15's own return the masks unchanged; the others (no mask support)
# are given the images alone.
PHOTOMETRIC = ("RandomBrightness", "RandomContrast", "RandomColorJitter", "RandomColorDegeneration", "RandomHue",
               "RandomSaturation", "RandomSharpness", "RandomGrayscale", "RandomInvert", "RandomPosterization",
               "Solarization", "AutoContrast", "Equalization", "RandomGaussianBlur", "RandomErasing",
               "ContrastLimitedAdaptiveHistogramEqualization", "GaussianNoise", "GaussianDropout",
               "FancyPCA", "ScaledGaussianNoise")
_SIZE_CHANGING = ("RandomCrop", "CenterCrop", "Resizing")
_WHY = {
    "RandomElasticTransform": "Keras 3.15 draws a new random displacement field for the masks, so they would no "
                              "longer match the image",
    "MixUp": "it blends two images and their labels; blended masks are no class indices",
    "CutMix": "it mixes the labels of classification; dlrecipe does not apply it to masks",
}
_FIX = ("Fix: remove it, or use the geometric layers that move masks with the image (" + ", ".join(GEOMETRIC) +
        ") and photometric ones that leave masks alone (RandomBrightness, RandomContrast, color_jitter, "
        "gaussian_noise, ...).")


def kind_of(layer: Any) -> str:
    """``"geometric"``, ``"photometric"``, or ``""`` (refused for segmentation)."""
    name = type(layer).__name__
    if name in GEOMETRIC:
        return "geometric"
    if name in PHOTOMETRIC:
        return "photometric"
    return ""


def _uses_data_backend(layer: Any) -> bool:
    """Keras data layers switch to TensorFlow ops inside tf.data, whatever the backend."""
    return any(c.__name__ == "DataLayer" for c in type(layer).__mro__)


def problems(augment: list[dict[str, Any]], layers: list[Any], backend: str) -> list[Problem]:
    """What ``data.augment`` cannot do with masks (see the module docstring); one problem per item."""
    out = []
    for i, (spec, layer) in enumerate(zip(augment, layers)):
        path, name, kind = f"data.augment[{i}]", type(layer).__name__, kind_of(layer)
        written = spec.get("type", name) if isinstance(spec, dict) else name
        shown = written if written == name else f"{written} ({name})"
        if name in _SIZE_CHANGING:
            out.append(Problem(path, f"{shown} changes the image size, but with task segmentation the model predicts "
                               "every pixel at the data's size. Fix: remove it (RandomZoom or RandomTranslation move "
                               "the content and keep the size)."))
        elif not kind:
            why = _WHY.get(name, "it is not one of the layers dlrecipe applies to masks")
            out.append(Problem(path, f"{shown} cannot augment segmentation data: {why}. {_FIX}"))
        elif kind == "geometric" and _fills(layer) and float(getattr(layer, "fill_value", 0.0)) != 0.0:
            out.append(Problem(f"{path}.fill_value", f"Received: fill_value={layer.fill_value!r} with task "
                               "segmentation. The pixels that come in from outside the image take this value in the "
                               "masks too, which would make it a class index. Fix: fill_value: 0 (class 0, the "
                               "background), or fill_mode: reflect/nearest."))
        elif backend != "tensorflow" and not _uses_data_backend(layer):
            out.append(Problem(path, f"{shown} runs in the tf.data pipeline with task segmentation, and it computes "
                               f"with the backend's ops, which cannot run there on the {backend} backend. Fix: run "
                               "with KERAS_BACKEND=tensorflow, or use a Keras layer (RandomBrightness, "
                               "RandomContrast, ...)."))
    return out


def _fills(layer: Any) -> bool:
    """Whether the layer fills new pixels with ``fill_value`` (constant mode; RandomPerspective always)."""
    return type(layer).__name__ == "RandomPerspective" or getattr(layer, "fill_mode", None) == "constant"


def check(augment: list[dict[str, Any]], *, seed: int | None, stats: dict[str, Any] | None,
          input_shape: tuple[int, ...], backend: str) -> list[Any]:
    """Build the layers of ``data.augment`` and refuse what cannot augment masks.

    Returns:
        The layers, in order.

    Raises:
        RecipeError: every bad item, with its path ``data.augment[i]``.
    """
    from dlrecipe.build import augment as augmod
    layers = augmod.build_layers(augment, seed=seed, stats=stats, input_shape=input_shape)
    found = problems(augment, layers, backend)
    if found:
        raise RecipeError(found)
    return layers


def apply(layers: list[Any], images: Any, masks: Any) -> tuple[Any, Any]:
    """One training pass of ``layers`` over a batch: float images ``(N, H, W, C)``, float masks ``(N, H, W, 1)``.

    Geometric layers get both (one random transform for both); photometric ones the images only.
    """
    for layer in layers:
        if kind_of(layer) == "geometric":
            data = layer({"images": images, "segmentation_masks": masks}, training=True)
            images, masks = data["images"], data["segmentation_masks"]
        else:
            images = layer(images, training=True)
    return images, masks


def tf_augmenter(layers: list[Any]):
    """The ``tf.data`` map function ``(x, mask) -> (augmented float32 x, augmented int32 mask)``."""
    import tensorflow as tf

    def run(x, y):
        images, masks = apply(layers, tf.cast(x, tf.float32), tf.cast(y, tf.float32)[..., None])
        return images, tf.cast(tf.round(masks[..., 0]), tf.int32)
    return run
