"""The ``tfds`` source: a TensorFlow Datasets data set already prepared on disk, streamed, never downloaded.

Keys: ``name`` (``mnist`` or ``mnist:3.0.1``), ``split`` (a training split name, or ``{train, test}``),
``data_dir`` (default tfds's ``~/tensorflow_datasets``), ``image_size``, ``color_mode``. The builder is
opened offline (``try_gcs=False``); an unprepared data set is a RecipeError saying how to prepare it.
It must have ``supervised_keys`` (image, label). ``test_split`` and ``validation_split`` take the *last*
examples of the training split in stored order (``[train | validation | test]``); shuffling is a seeded
buffer of up to ``SHUFFLE_BUFFER`` examples. TensorFlow is imported only inside functions. See docs/data.md.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from dlrecipe.data.sources import check_source
from dlrecipe.data.splits import held_out_count
from dlrecipe.data.types import DataInfo, Streamed, StreamSplit
from dlrecipe.errors import RecipeError

SHUFFLE_BUFFER = 10_000
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def _tfds():
    import tensorflow_datasets as tfds
    return tfds


def _data_dir(cfg) -> str:
    if cfg.data_dir:
        return str(Path(cfg.data_dir).expanduser())
    return os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())


def _check_keys(cfg) -> None:
    if not cfg.name:
        raise RecipeError.one("data.name", "Received: no name. source: tfds needs name: the TensorFlow Datasets "
                              "name, e.g. name: mnist.")
    check_source(cfg)
    if cfg.task not in (None, "classification"):
        raise RecipeError.one("data.task", f"Received: task={cfg.task!r}. source: tfds reads labelled images for "
                              "classification. Fix: remove task.")


def _builder(cfg):
    tfds = _tfds()
    data_dir = _data_dir(cfg)
    base = cfg.name.split(":")[0].split("/")[0]
    known = tfds.list_builders(with_community_datasets=False)
    if base not in known:
        close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise RecipeError.one("data.name", f"Received: name={cfg.name!r}, which is not a TensorFlow Datasets name."
                              f"{hint} Fix: use a name from `tfds.list_builders()` "
                              "(https://www.tensorflow.org/datasets/catalog/overview).")
    try:
        builder = tfds.builder(cfg.name, data_dir=data_dir, try_gcs=False)
    except Exception as e:  # tfds raises several kinds (unknown version or config, ...)
        raise RecipeError.one("data.name", f"Received: name={cfg.name!r}: {str(e).splitlines()[0]}. Fix: check the "
                              "name, its config and its version.") from None
    if not builder.is_prepared():
        raise RecipeError.one("data.name", f"Received: name={cfg.name!r}, which is not prepared in {data_dir} (no "
                              f"{builder.data_dir}/dataset_info.json). dlrecipe reads TensorFlow Datasets offline and "
                              f"never downloads. Fix: on a machine with internet, run `tfds build {cfg.name} "
                              f"--data_dir {data_dir}` (or, in Python, tfds.builder({cfg.name!r}, data_dir="
                              f"{data_dir!r}).download_and_prepare()), then copy {data_dir} here, or set "
                              "data.data_dir to where the prepared data is.")
    return builder


def _split_names(cfg, builder) -> tuple[str, str | None]:
    known = list(builder.info.splits.keys())
    if isinstance(cfg.split, dict):
        train, test = cfg.split.get("train", "train"), cfg.split.get("test")
    elif isinstance(cfg.split, str):
        train, test = cfg.split, None
    else:
        train, test = "train", ("test" if "test" in known else None)
    if known:  # a prepared data set lists its splits (tfds's mock data does not)
        for key, name in (("train", train), ("test", test)):
            base = name.split("[")[0] if name else None
            if base is not None and base not in known:
                where = f"data.split.{key}" if isinstance(cfg.split, dict) else "data.split"
                raise RecipeError.one(where, f"Received: split {name!r}, but {cfg.name} has the splits {known}. "
                                      f"Fix: use one of them.")
    if test is not None and cfg.test_split is not None:
        raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split}, but the test split "
                              f"{test!r} is used. Expected one test split. Fix: remove test_split, or give "
                              "split: as the training split name only.")
    return train, test


def _shape(cfg, builder) -> tuple[tuple[int, int, int], str, str, int]:
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not isinstance(keys[0], str):
        raise RecipeError.one("data.name", f"Received: name={cfg.name!r}, which has no (input, label) supervised "
                              "keys. Expected an image classification data set such as mnist or cifar10. Fix: choose "
                              "such a data set.")
    x_key, y_key = keys
    feature = builder.info.features[x_key]
    label = builder.info.features[y_key]
    shape = tuple(getattr(feature, "shape", ()) or ())
    if len(shape) != 3 or not hasattr(label, "names"):
        raise RecipeError.one("data.name", f"Received: name={cfg.name!r}, whose {x_key!r} has shape {shape} and "
                              f"{y_key!r} is {type(label).__name__}. Expected images (height, width, channels) and "
                              "class labels. Fix: choose an image classification data set.")
    channels = CHANNELS[cfg.color_mode] if cfg.color_mode else shape[2]
    if channels is None:
        raise RecipeError.one("data.color_mode", f"{cfg.name} has images with a varying number of channels. Fix: "
                              "set color_mode: grayscale, rgb or rgba.")
    if cfg.image_size:
        hw = tuple(cfg.image_size)
    elif shape[0] is None or shape[1] is None:
        raise RecipeError.one("data.image_size", f"{cfg.name}'s images have no fixed size {shape}. Fix: set "
                              "data.image_size: [height, width] to resize them.")
    else:
        hw = shape[:2]
    return (hw[0], hw[1], channels), x_key, y_key, shape[2]


def peek(cfg):
    """The data's facts from the prepared data set's metadata (nothing is read)."""
    _check_keys(cfg)
    builder = _builder(cfg)
    _split_names(cfg, builder)
    shape, _, y_key, _ = _shape(cfg, builder)
    names = list(builder.info.features[y_key].names)
    return DataInfo(input_shape=shape, input_dtype="uint8", task="classification", class_names=names,
                    n_classes=len(names))


def load(cfg, seed: int):
    """The splits as streamed ``tf.data`` pipelines over the prepared files (``types.Streamed``)."""
    import tensorflow as tf
    info = peek(cfg)
    builder = _builder(cfg)
    train_name, test_name = _split_names(cfg, builder)
    shape, x_key, y_key, stored_channels = _shape(cfg, builder)

    def read(split_name: str):
        ds = builder.as_dataset(split=split_name, shuffle_files=False, as_supervised=True,
                                read_config=_tfds().ReadConfig(try_autocache=False))
        return ds.map(lambda x, y: (_convert(x, shape, stored_channels), tf.cast(y, tf.int64)),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    n = _count(builder, train_name, read)
    if cfg.subset is not None:
        if cfg.subset > n:
            raise RecipeError.one("data.subset", f"Received: subset={cfg.subset}, but the split {train_name!r} of "
                                  f"{cfg.name} has {n} examples. Fix: set subset to at most {n}.")
        n = cfg.subset
    n_test = held_out_count(cfg.test_split, n) if cfg.test_split is not None else 0
    n_val = held_out_count(cfg.validation_split, n - n_test) if cfg.validation_split > 0 else 0
    n_train = n - n_test - n_val
    if n_train <= 0:
        raise RecipeError.one("data.validation_split", f"The split {train_name!r} of {cfg.name} has {n} examples; "
                              "the test and validation splits would leave none to train on. Fix: lower them.")

    def part(start: int, count: int, buffer: int) -> StreamSplit:
        def make(shuffle_seed):
            ds = read(train_name).skip(start).take(count)
            if shuffle_seed is not None:
                ds = ds.shuffle(min(count, buffer), seed=shuffle_seed, reshuffle_each_iteration=True)
            return ds
        return StreamSplit(n=count, make=make)

    train = part(0, n_train, SHUFFLE_BUFFER)
    val = part(n_train, n_val, SHUFFLE_BUFFER) if n_val else None
    test = part(n_train + n_val, n_test, SHUFFLE_BUFFER) if n_test else None
    if test_name is not None:
        n_t = _count(builder, test_name, read)
        test = StreamSplit(n=n_t, make=lambda s: read(test_name))
    return Streamed(info, train, val, test, source="tfds")


def _count(builder, split_name: str, read) -> int:
    splits = builder.info.splits
    base = split_name.split("[")[0]
    if "[" not in split_name and base in splits:
        return int(splits[base].num_examples)
    import tensorflow as tf
    card = int(read(split_name).cardinality())
    if card < 0:  # unknown: count once (labels only would still decode; happens only for sliced splits)
        card = int(read(split_name).reduce(tf.constant(0, tf.int64), lambda c, _x: c + 1))
    return card


def _convert(x, shape: tuple[int, int, int], stored: int | None):
    """uint8 image -> the recipe's channels and size."""
    import tensorflow as tf
    x = tf.cast(x, tf.uint8) if x.dtype != tf.uint8 else x
    want = shape[2]
    if stored != want:  # ``stored`` is the feature's static channel count
        rgb = tf.image.grayscale_to_rgb(x) if stored == 1 else x[..., :3]
        if want == 1:
            x = tf.image.rgb_to_grayscale(rgb) if stored != 1 else x
        elif want == 3:
            x = rgb
        else:
            alpha = tf.fill(tf.concat([tf.shape(x)[:2], [1]], 0), tf.constant(255, tf.uint8))
            x = tf.concat([rgb, alpha], -1)
    if tuple(x.shape[:2]) != tuple(shape[:2]):
        x = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(x, shape[:2])), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(x, shape)

