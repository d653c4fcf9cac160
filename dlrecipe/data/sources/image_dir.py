"""The ``image_dir`` source: one sub-folder per class (``path/cat/1.png``), images streamed from disk.

Class names are the sorted sub-folder names; ``.png``, ``.jpg``/``.jpeg``, ``.bmp`` and ``.gif`` files
are read, converted to ``color_mode`` and resized to ``image_size`` when decoded. The splits are drawn
over the file list, seeded (``subset`` at random, then ``test_split`` and ``validation_split``,
stratified, by ``splits.carve``). ``load`` reads every file's header, then decodes every file with the
decoder training uses (``check_decodes``), before anything is written: a file broken past its header or
truncated is named then, not once training has begun. The pixels stay raw uint8 until the model.
TensorFlow is imported only inside the functions that build pipelines.
See docs/data.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrecipe.data.sources import check_source
from dlrecipe.data.splits import carve
from dlrecipe.data.types import DataInfo, Streamed, StreamSplit
from dlrecipe.errors import RecipeError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FORMATS = {"PNG", "JPEG", "BMP", "GIF", "MPO"}  # MPO: a JPEG with extra frames, as cameras write it
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
_LAYOUT = ("Expected one sub-folder per class holding its images, e.g. path/cat/1.png, path/dog/2.png.")


def _mode_of(pil_mode: str) -> str:
    if pil_mode in ("L", "1", "I", "I;16", "F", "P;L"):
        return "grayscale"
    if "A" in pil_mode or pil_mode == "PA":
        return "rgba"
    return "rgb"


def _listing(folder: Path, where: str) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, files, labels) of an image folder, sorted; checks the layout."""
    if not folder.exists():
        raise RecipeError.one(where, f"Received: {folder}, which does not exist. {_LAYOUT} Fix: check the path.")
    if not folder.is_dir():
        raise RecipeError.one(where, f"Received: {folder}, which is a file, not a folder. source: image_dir reads "
                              f"a folder. {_LAYOUT} Fix: point {where} at the folder that holds the class folders.")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = [p.name for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS][:3]
        extra = f" It holds images directly ({', '.join(loose)}, ...)." if loose else ""
        raise RecipeError.one(where, f"Received: {folder}, which has no sub-folders.{extra} {_LAYOUT} Fix: move "
                              "each class's images into a folder named after the class.")
    files, labels = [], []
    for i, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS)
        if not found:
            raise RecipeError.one(where, f"Received: the class folder {folder / name} holds no images "
                                  f"({', '.join(EXTENSIONS)}). Expected at least one image per class. Fix: add "
                                  "its images, or remove the empty folder.")
        files += found
        labels += [i] * len(found)
    return classes, files, np.asarray(labels, dtype=np.int64)


def read_header(path: Path, where: str) -> tuple[tuple[int, int], str]:
    """((height, width), PIL mode) of an image, reading its header only."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            fmt, (w, h), mode = im.format, im.size, im.mode
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise RecipeError.one(where, f"Received: {path}, which cannot be read as an image ({type(e).__name__}: "
                              f"{e}). Expected a PNG, JPEG, BMP or GIF file. Fix: replace the file, or delete it.") \
            from None
    if fmt not in FORMATS:
        raise RecipeError.one(where, f"Received: {path}, a {fmt} image. Expected PNG, JPEG, BMP or GIF (what "
                              "TensorFlow decodes). Fix: convert it, e.g. to PNG.")
    return (h, w), mode


def _shape_and_mode(cfg, first: Path, where: str) -> tuple[tuple[int, int, int], str]:
    size, mode = read_header(first, where)
    color = cfg.color_mode or _mode_of(mode)
    hw = tuple(cfg.image_size) if cfg.image_size else size
    return (hw[0], hw[1], CHANNELS[color]), color


def _check_test(cfg) -> None:
    if cfg.test_split is not None and cfg.test_path is not None:
        raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split} and test_path="
                              f"{cfg.test_path!r}. Expected one of them: test_split carves the test images from "
                              "the training folder, test_path reads them from another folder. Fix: remove one.")
    check_source(cfg)
    if cfg.task not in (None, "classification"):
        raise RecipeError.one("data.task", f"Received: task={cfg.task!r}. source: image_dir gives class folders, "
                              "so its task is classification. Fix: remove task.")


def _path(cfg) -> Path:
    if not cfg.path:
        raise RecipeError.one("data.path", "Received: no path. source: image_dir needs path: the folder with one "
                              "sub-folder per class, e.g. path: data/flowers.")
    return Path(cfg.path)


def peek(cfg):
    """The data's facts from the folder listing and the first image's header (for ``validate``)."""
    _check_test(cfg)
    classes, files, _ = _listing(_path(cfg), "data.path")
    shape, _ = _shape_and_mode(cfg, files[0], "data.path")
    if cfg.subset is not None and cfg.subset > len(files):
        raise RecipeError.one("data.subset", f"Received: subset={cfg.subset}, but {cfg.path} holds only "
                              f"{len(files)} images. Fix: set subset to at most {len(files)}, or remove it.")
    if cfg.test_path is not None:
        _test_listing(cfg, classes)
    return DataInfo(input_shape=shape, input_dtype="uint8", task="classification", class_names=classes,
                    n_classes=len(classes))


def _test_listing(cfg, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    test_classes, files, labels = _listing(Path(cfg.test_path), "data.test_path")
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise RecipeError.one("data.test_path", f"Received: {cfg.test_path} with the class folders {unknown}, which "
                              f"are not training classes {classes}. Expected the same class folders as data.path. "
                              "Fix: rename or remove them.")
    index = {c: i for i, c in enumerate(classes)}
    return files, np.asarray([index[test_classes[j]] for j in labels], dtype=np.int64)


def _check_headers(files: list[Path], shape: tuple[int, int, int], resize: bool, where: str) -> None:
    """Every file is a readable image of a supported format; without resize, of the first image's size."""
    for path in files:
        size, _ = read_header(path, where)
        if not resize and size != shape[:2]:
            raise RecipeError.one(where, f"Received: {path}, an image of {size[0]}x{size[1]} pixels (height x "
                                  f"width), but the first image is {shape[0]}x{shape[1]}. Expected images of one "
                                  f"size. Fix: set data.image_size: [{shape[0]}, {shape[1]}] to resize every image "
                                  "to it (or resize the files).")


def load(cfg, seed: int):
    """List the folders, check every file's header, carve the splits; returns a ``types.Streamed``.

    Nothing is decoded here: the splits decode their files when their pipelines run. Without
    ``image_size`` every image must have the first image's size; ``color_mode`` defaults to the first
    image's (PIL modes ``L``/``1``/``I``/``F`` -> grayscale, with alpha -> rgba, else rgb). ``test_path`` is a
    folder of the same layout whose class folders are training classes.
    """
    info = peek(cfg)
    classes, files, labels = _listing(_path(cfg), "data.path")
    resize = cfg.image_size is not None
    shape = tuple(info.input_shape)
    _check_headers(files, shape, resize, "data.path")
    check_decodes(np.asarray([str(f) for f in files]), shape, resize, "data.path")
    test_files = test_labels = None
    if cfg.test_path is not None:
        test_files, test_labels = _test_listing(cfg, classes)
        _check_headers(test_files, shape, resize, "data.test_path")
        check_decodes(np.asarray([str(f) for f in test_files]), shape, resize, "data.test_path")
    rng = np.random.default_rng(seed)
    pool = np.arange(len(files))
    if cfg.subset is not None:
        pool = np.sort(rng.permutation(len(files))[: cfg.subset])
    files_arr = np.asarray([str(f) for f in files])
    if cfg.test_split is not None:
        held, pool = carve(pool, labels, cfg.test_split, True, rng, "test_split")
        test_files, test_labels = list(files_arr[held]), labels[held]
    val = None
    if cfg.validation_split > 0:
        held, pool = carve(pool, labels, cfg.validation_split, True, rng, "validation_split")
        val = _split(files_arr[held], labels[held], shape, resize)
    train = _split(files_arr[pool], labels[pool], shape, resize)
    test = _split(np.asarray([str(f) for f in test_files]), test_labels, shape, resize) \
        if test_files is not None else None
    return Streamed(info, train, val, test, source="image_dir")


def _split(files: np.ndarray, labels: np.ndarray, shape: tuple[int, int, int], resize: bool):
    def make(shuffle_seed):
        return dataset(files, labels, shape, resize, shuffle_seed)

    return StreamSplit(n=len(files), make=make, labels=np.asarray(labels, dtype=np.int64),
                       find_bad=lambda: find_bad(files, shape, resize))


def decode(path, shape: tuple[int, int, int], resize: bool):
    """One image file -> uint8 tensor of ``shape`` (TensorFlow ops; runs inside the tf.data graph)."""
    import tensorflow as tf
    img = tf.io.decode_image(tf.io.read_file(path), channels=shape[2], expand_animations=False, dtype=tf.uint8)
    if resize:
        size = tf.constant(shape[:2], dtype=tf.int32)
        same = tf.reduce_all(tf.equal(tf.shape(img)[:2], size))
        img = tf.cond(same, lambda: img, lambda: tf.cast(
            tf.clip_by_value(tf.round(tf.image.resize(img, shape[:2])), 0.0, 255.0), tf.uint8))
    return tf.ensure_shape(img, shape)


def dataset(files: np.ndarray, labels: np.ndarray, shape: tuple[int, int, int], resize: bool,
            shuffle_seed: int | None):
    """Unbatched ``(image, label)`` pipeline: file names shuffled (not images), decoded by a parallel map."""
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(files, dtype=tf.string), tf.constant(labels, tf.int64)))
    if shuffle_seed is not None:
        # The whole file list is shuffled (a few bytes per file), so no buffer of decoded images is needed.
        ds = ds.shuffle(len(files), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.map(lambda p, y: (decode(p, shape, resize), y), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)


def check_decodes(files: np.ndarray, shape: tuple[int, int, int], resize: bool, where: str) -> None:
    """Decode every file as training will (a parallel tf.data pass, images dropped as decoded); a file that
    fails is named. About one epoch's decoding, without the model: see docs/data.md for the cost."""
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files, dtype=tf.string))
    # A value of the pixels: a static shape alone would let tf.data's optimizer drop the decoding.
    ds = ds.map(lambda p: tf.reduce_max(decode(p, shape, resize)), num_parallel_calls=tf.data.AUTOTUNE)
    decoded = int(ds.ignore_errors(log_warning=False).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if decoded < len(files):
        raise RecipeError.one(where, find_bad(files, shape, resize) or f"Received: {len(files) - decoded} of the "
                              f"{len(files)} images, which cannot be decoded. Fix: replace or delete them.")


def find_bad(files: np.ndarray, shape: tuple[int, int, int], resize: bool) -> str | None:
    """Decode the files one by one; a message naming the first that fails, or None."""
    import tensorflow as tf
    for path in files:
        try:
            decode(tf.constant(str(path)), shape, resize)
        except (tf.errors.OpError, ValueError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return (f"Received: {path}, which cannot be decoded as an image ({reason}). Expected an intact PNG, JPEG, "
                    "BMP or GIF file. Fix: replace the file (e.g. export it again), or delete it.")
    return None
