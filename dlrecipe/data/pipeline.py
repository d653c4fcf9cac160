"""The input pipeline: what ``model.fit``, ``evaluate`` and ``export`` are fed, for every data source.

In-memory data (``fashion_mnist``, ``npz``, ``csv``) become, on the TensorFlow backend, a ``tf.data``
pipeline gathering seeded-shuffled batches of indices from the arrays; streamed data (``image_dir``,
``tfds``) are ``types.Streamed`` splits read from disk by parallel maps; nothing caches the whole data
set. Batch-level augmentations (MixUp, CutMix) mix images and labels, so they run here on one-hot training
batches, not in the model (``build.compile.switch_loss``); for segmentation every ``data.augment`` layer runs here on
(image, mask) batches (``build.segaugment``). See docs/data.md.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import keras
import numpy as np

from dlrecipe.build.augment import has_batch_level, is_batch_level_spec
from dlrecipe.build.compile import wants_one_hot
from dlrecipe.data import source
from dlrecipe.data.types import Streamed, StreamSplit
from dlrecipe.errors import RecipeError

BATCH_LEVEL = ("MixUp", "CutMix")


def load(cfg, seed: int, tabular: dict | None = None):
    """The recipe's data: a ``data.Dataset`` of arrays, or a ``types.Streamed`` for image_dir and tfds.

    Args:
        cfg: the ``data:`` section.
        seed: the recipe's seed (splits and shuffling).
        tabular: for csv, the encoding stored in a run (evaluate/export apply it instead of refitting).

    Raises:
        RecipeError: everything the source reports, before anything is written.
    """
    return source.load(cfg, seed, tabular=tabular, streamed=True)


def is_streamed(ds) -> bool:
    return isinstance(ds, Streamed)


def n_train(ds) -> int:
    return ds.train.n if is_streamed(ds) else len(ds.x_train)


def has_test(ds) -> bool:
    return (ds.test is not None) if is_streamed(ds) else (ds.x_test is not None)


# --------------------------------------------------------------------------- batch-level augmentation


def is_batch_level(layer: Any) -> bool:
    """True for augmentation layers that mix examples and labels (they run in the pipeline, not the model)."""
    return isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix))


def batch_level_layers(specs: list[dict[str, Any]], seed: int) -> list[Any]:
    """The batch-level layers of ``data.augment``, built as ``augment.build_layer`` builds them (with the
    recipe's derived seed where they have none)."""
    from dlrecipe.build import augment
    return [augment.build_layer(spec, f"data.augment[{i}]", seed=seed, index=i)
            for i, spec in enumerate(specs) if is_batch_level_spec(spec)]


def one_hot_labels(recipe, n_classes: int | None) -> bool:
    """Whether targets are fed one-hot: a classification recipe (``n_classes`` known) that :func:`wants_one_hot`."""
    return bool(n_classes) and wants_one_hot(recipe)


# --------------------------------------------------------------------------- building the pipelines


def uses_tf_data(ds, recipe) -> bool:
    """tf.data on the TensorFlow backend always; on others for streamed data and batch-level augmentation
    (and any augmentation of segmentation data, which runs in the pipeline)."""
    return (keras.backend.backend() == "tensorflow" or is_streamed(ds) or has_batch_level(recipe.data.augment)
            or segments_in_pipeline(ds, recipe))


def segments_in_pipeline(ds, recipe) -> bool:
    """Whether ``data.augment`` runs on (image, mask) training batches: segmentation data with augmentation."""
    return bool(recipe.data.augment) and getattr(ds.info, "task", None) == "segmentation"


def segmentation_augmenter(ds, recipe):
    """The tf.data map of ``data.augment`` over (image, mask) batches (``segaugment.tf_augmenter``)."""
    from dlrecipe.build import augment, segaugment
    stats = augment.fit_stats(recipe.data.augment, ds.x_train) if not is_streamed(ds) else None
    layers = segaugment.check(recipe.data.augment, seed=recipe.seed, stats=stats,
                              input_shape=tuple(ds.info.input_shape), backend=keras.backend.backend())
    return segaugment.tf_augmenter(layers)


def fit_inputs(ds, recipe, n_classes: int | None, *, epochs: tuple[int, int] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``model.fit`` for the training and validation data.

    Args:
        ds: what :func:`load` returned.
        recipe: the (finalized) recipe: ``train.batch_size``, ``data.augment``, ``seed``.
        n_classes: the number of classes (for one-hot labels), None for regression.
        epochs: ``(first, end)``, the 0-based epochs ``fit`` trains (``initial_epoch``, ``epochs``): in-memory
            data is then shuffled per epoch from ``(seed, epoch)`` alone, so a run resumed at epoch ``first``
            sees the batches the uninterrupted run saw (see ``epoch_orders``), and ``steps_per_epoch`` is given.
            None: reshuffled on every pass (tune's trials, lr-find).

    Returns:
        ``{"x": ..., "y": ..., "batch_size": ..., "shuffle": ..., "validation_data": ...}``
        (``y``/``batch_size`` only for NumPy input).
    """
    batch = recipe.train.batch_size
    depth = n_classes if one_hot_labels(recipe, n_classes) else None
    if not uses_tf_data(ds, recipe):
        validation = (ds.x_val, encode_labels(ds.y_val, depth)) if ds.x_val is not None else None
        return {"x": ds.x_train, "y": encode_labels(ds.y_train, depth), "batch_size": batch, "shuffle": True,
                "validation_data": validation}
    segment = segments_in_pipeline(ds, recipe)
    mixers = batch_level_layers(recipe.data.augment, recipe.seed) if n_classes and not segment else []
    augmenter = segmentation_augmenter(ds, recipe) if segment else None
    if is_streamed(ds):
        train = streamed_batches(ds.train, batch, seed=recipe.seed, one_hot=depth, mixers=mixers,
                                 augmenter=augmenter)
        val = streamed_batches(ds.val, batch, one_hot=depth) if ds.val is not None else None
    else:
        train = array_batches(ds.x_train, ds.y_train, batch, seed=recipe.seed, one_hot=depth, mixers=mixers,
                              augmenter=augmenter, epochs=epochs)
        val = array_batches(ds.x_val, ds.y_val, batch, one_hot=depth) if ds.x_val is not None else None
        if epochs is not None:
            return {"x": train, "shuffle": False, "validation_data": val,
                    "steps_per_epoch": max(1, math.ceil(len(ds.x_train) / batch))}
    return {"x": train, "shuffle": False, "validation_data": val}


def array_batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int | None = None,
                  one_hot: int | None = None, mixers: list | None = None, augmenter: Callable | None = None,
                  epochs: tuple[int, int] | None = None):
    """A batched ``tf.data.Dataset`` over arrays in memory.

    With ``seed`` (training): the indices are shuffled with that seed, again every epoch, and each batch
    is gathered from the arrays at once (one op per batch, not per example). Without: in order. With
    ``epochs`` too: the batches of those epochs end to end, each epoch's order from ``epoch_orders``.
    ``mixers`` are batch-level layers (MixUp, CutMix); ``augmenter`` a ``(x, y) -> (x, y)`` batch map
    (segmentation's ``data.augment``).
    """
    import tensorflow as tf
    n = len(x)
    xs, ys = tf.constant(x), tf.constant(y)
    if seed is not None and epochs is not None:
        batches = epoch_orders(n, batch_size, seed, *epochs)
    else:
        idx = tf.data.Dataset.range(n)
        if seed is not None:
            idx = idx.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        batches = idx.batch(batch_size)
    ds = batches.map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _finish(ds, one_hot, mixers, augmenter)


def epoch_orders(n: int, batch_size: int, seed: int, first: int, end: int):
    """Batches of indices into ``n`` examples for the 0-based epochs ``first`` .. ``end - 1``, end to end.

    Epoch ``e`` is the permutation ``stateless_shuffle(range(n), seed=(seed, e))``: it depends on nothing
    but the seed and the epoch, unlike a reshuffling ``Dataset.shuffle``, whose order in epoch ``e`` is
    that of its ``e``-th pass in this process (a resumed process would start again from the first).
    """
    import tensorflow as tf

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    return tf.data.Dataset.range(first, end).flat_map(one_epoch)


def streamed_batches(split: StreamSplit, batch_size: int, *, seed: int | None = None,
                     one_hot: int | None = None, mixers: list | None = None,
                     augmenter: Callable | None = None):
    """A batched ``tf.data.Dataset`` reading ``split`` from disk (shuffled with ``seed`` when given)."""
    import tensorflow as tf
    ds = split.make(seed).batch(batch_size, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _finish(ds, one_hot, mixers, augmenter)


def _finish(ds, one_hot: int | None, mixers: list | None, augmenter: Callable | None = None):
    import tensorflow as tf
    if one_hot:
        ds = ds.map(lambda x, y: (x, tf.one_hot(tf.cast(tf.reshape(y, [-1]), tf.int32), one_hot)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augmenter is not None:
        ds = ds.map(augmenter)  # sequential, as below: the seed generators advance in the same order every run
    if mixers:
        def mix(x, y):
            data = {"images": tf.cast(x, tf.float32), "labels": y}
            for layer in mixers:
                data = layer(data, training=True)
            return data["images"], data["labels"]
        # Sequential on purpose: the layers' seed generators then advance in the same order every run.
        ds = ds.map(mix)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- normalization and evaluation


def fit_stats(cfg, ds, batch_size: int = 256) -> dict:
    """Every statistic of the ``data:`` section (``preprocess.fit_data``), fitted on the training split.

    In-memory data are fitted from the arrays; streamed data batch by batch in one pass, which covers
    the normalizations (``zca``, ``pca`` and ``fancy_pca`` need the whole split in memory: refused).
    """
    from dlrecipe.data import preprocess
    if not is_streamed(ds):
        return preprocess.fit_data(cfg, ds.x_train)
    source.check_streamable(cfg)
    kind = cfg.normalize
    if kind in ("none", "rescale", "gcn"):  # nothing to fit: do not read the images
        return preprocess.fit(kind, np.zeros((1, *ds.info.input_shape), dtype=np.uint8))
    batches = streamed_batches(ds.train, batch_size).map(lambda x, y: x)
    return preprocess.fit(kind, _numpy_batches(batches))


def _numpy_batches(batches) -> Iterator[np.ndarray]:
    for b in batches.as_numpy_iterator():
        yield b


def test_inputs(ds, recipe, n_classes: int | None) -> tuple[Any, np.ndarray]:
    """``(x_test, y_test)`` for ``evaluate``: arrays, or a batched ordered dataset of (x, y) and the labels."""
    depth = n_classes if one_hot_labels(recipe, n_classes) else None
    if not is_streamed(ds):
        return ds.x_test, encode_labels(ds.y_test, depth)
    batches = streamed_batches(ds.test, recipe.train.batch_size, one_hot=depth)
    labels = ds.test.labels
    if labels is None:
        labels = np.concatenate([y for _, y in batches.as_numpy_iterator()]) if ds.test.n else np.zeros(0)
    else:
        labels = encode_labels(labels, depth)
    return batches, labels


def encode_labels(y, depth: int | None):
    """Class indices as one-hot float32 rows of ``depth`` columns; unchanged when ``depth`` is None."""
    return np.eye(depth, dtype=np.float32)[np.asarray(y).reshape(-1)] if depth else y


def first_train(ds, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` raw training examples and their labels, in the split's fixed order (inspect-init)."""
    if not is_streamed(ds):
        return ds.x_train[:count], ds.y_train[:count]
    pairs = list(ds.train.make(None).take(count).as_numpy_iterator())
    return np.stack([x for x, _ in pairs]), np.asarray([y for _, y in pairs])


def first_examples(ds, count: int) -> np.ndarray:
    """The first ``count`` raw test examples as an array (the export's check examples)."""
    if not is_streamed(ds):
        return ds.x_test[:count]
    return np.stack([x for x, _ in ds.test.make(None).take(count).as_numpy_iterator()])


# --------------------------------------------------------------------------- errors met while streaming


def data_error(ds, error: BaseException) -> RecipeError | None:
    """A RecipeError naming the file a streamed pipeline could not decode, or None if ``error`` is not that.

    Called after a TensorFlow error left ``fit``/``evaluate``: the splits' files are decoded one by one
    (slow, but only on failure). When all of them decode, the error came from elsewhere and is not
    disguised as a data problem.
    """
    if not is_streamed(ds):
        return None
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError,
                              tf.errors.FailedPreconditionError)):
        return None
    for split in (ds.train, ds.val, ds.test):
        if split is not None and split.find_bad is not None:
            found = split.find_bad()
            if found:
                return RecipeError.one("data.path", found)
    return None  # every file decodes: not a data error, so the original error is raised as it is


def steps(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))
