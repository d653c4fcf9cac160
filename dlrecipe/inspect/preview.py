"""``dlrecipe augment-preview``: a PNG grid of training images as the augmentation layers change them.

``n`` columns (the first training images, after the seeded carving) and ``rows + 1`` rows: the
originals, then each a pass of the recipe's ``data.augment`` layers in training mode, as a training
batch goes through them (same layers, same seeds). Tiles are enlarged by an integer factor to at
least 64 pixels, 2 pixels apart, on the data's own scale. For ``task: segmentation`` every image row
is followed by its masks' row, one colour per class (``tab10``; see ``dlrecipe.build.segaugment``).
Nothing is trained; the default file is ``runs/<name>/augment-preview.png``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from dlrecipe.build import augment
from dlrecipe.data import source as datamod
from dlrecipe.errors import RecipeError
from dlrecipe.io import write_bytes
from dlrecipe.recipe.loader import LoadedRecipe

TILE_MIN = 64  # pixels: small images are enlarged to at least this size
GAP = 2  # pixels between tiles


def default_out(loaded: LoadedRecipe, root: Path = Path("runs")) -> Path:
    return Path(root) / loaded.recipe.name / "augment-preview.png"


def augment_preview(loaded: LoadedRecipe, out: Path, n: int = 8, rows: int = 3) -> Path:
    """Write the preview grid of ``loaded``'s augmentation to ``out`` (atomically) and return ``out``.

    Raises:
        RecipeError: no ``data.augment`` list, data that are not images, bad augmentation items.
    """
    from dlrecipe.train.runtime import seed_everything

    recipe = loaded.recipe
    if not recipe.data.augment:
        raise RecipeError.one("data.augment", "The recipe has no augmentation list, so there is nothing to preview. "
                              "Add one, e.g. augment: [{type: RandomFlip, mode: horizontal}, {type: RandomTranslation, "
                              "height_factor: 0.1, width_factor: 0.1}].")
    info = datamod.peek(recipe.data)
    shape = tuple(info.input_shape)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise RecipeError.one("data", f"The data's examples have shape {list(shape)}, which are not images (height, "
                              "width, 1 or 3 channels), so there is no picture to preview. augment-preview shows "
                              "image data only.")
    seed_everything(recipe.seed, recipe.runtime.deterministic)
    dataset = datamod.load(recipe.data, recipe.seed)
    x = np.asarray(dataset.x_train[:n])
    stats = augment.fit_stats(recipe.data.augment, dataset.x_train)
    if info.task == "segmentation":
        grid = _segmentation_grid(recipe, x, np.asarray(dataset.y_train[:n]), stats, shape, rows)
        write_bytes(out, png_bytes(grid))
        return out
    layers = augment.build_layers(recipe.data.augment, seed=recipe.seed, stats=stats, input_shape=shape)
    passes = [x.astype(np.float32)]
    for _ in range(rows):
        batch = x.astype(np.float32)
        for layer in layers:
            batch = layer(batch, training=True)
        passes.append(np.asarray(batch, dtype=np.float32))
    low, high = (0.0, 255.0) if x.dtype.kind in "iu" else (float(x.min()), float(x.max()))
    grid = make_grid(passes, low, high)
    write_bytes(out, png_bytes(grid))
    return out


def _segmentation_grid(recipe, x: np.ndarray, masks: np.ndarray, stats: dict, shape: tuple, rows: int) -> np.ndarray:
    """Image rows, each followed by its masks' row in class colours (as the training pipeline augments them)."""
    import keras
    from matplotlib import colormaps

    from dlrecipe.build import segaugment
    layers = segaugment.check(recipe.data.augment, seed=recipe.seed, stats=stats, input_shape=shape,
                              backend=keras.backend.backend())
    low, high = (0.0, 255.0) if x.dtype.kind in "iu" else (float(x.min()), float(x.max()))
    palette = np.asarray(colormaps["tab10"].colors, dtype=np.float32) * 255.0  # class c: colour c % 10

    def rgb(images: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(images, dtype=np.float32) - low) / ((high - low) or 1.0) * 255.0
        return np.repeat(scaled, 3, axis=-1) if scaled.shape[-1] == 1 else scaled

    images, labels = x.astype(np.float32), masks.astype(np.float32)[..., None]
    passes = [rgb(images), palette[masks.astype(np.int64) % 10]]
    for _ in range(rows):
        out_images, out_masks = segaugment.apply(layers, images, labels)
        out_masks = np.rint(np.asarray(out_masks, dtype=np.float32)[..., 0]).astype(np.int64)
        passes += [rgb(np.asarray(out_images, dtype=np.float32)), palette[out_masks % 10]]
    return make_grid(passes, 0.0, 255.0)


def make_grid(passes: list[np.ndarray], low: float, high: float) -> np.ndarray:
    """Tile ``passes`` (each ``(n, h, w, c)``) into one uint8 image: a row per pass, a column per example."""
    n, h, w, c = passes[0].shape
    scale = max(1, math.ceil(TILE_MIN / max(h, w)))
    th, tw = h * scale, w * scale
    grid = np.full((len(passes) * th + (len(passes) - 1) * GAP, n * tw + (n - 1) * GAP, c), 255, dtype=np.uint8)
    span = high - low if high > low else 1.0
    for r, images in enumerate(passes):
        pixels = np.clip((images - low) / span * 255.0, 0, 255).round().astype(np.uint8)
        pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
        for i in range(n):
            top, left = r * (th + GAP), i * (tw + GAP)
            grid[top:top + th, left:left + tw] = pixels[i]
    return grid


def png_bytes(grid: np.ndarray) -> bytes:
    """The PNG encoding of a uint8 ``(height, width, 1 or 3)`` image (matplotlib's writer, no timestamp).

    Grey images are written as RGB with three equal channels, so every pixel keeps its exact value.
    """
    import matplotlib.image

    buf = io.BytesIO()
    matplotlib.image.imsave(buf, np.repeat(grid, 3, axis=-1) if grid.shape[-1] == 1 else grid, format="png")
    return buf.getvalue()
