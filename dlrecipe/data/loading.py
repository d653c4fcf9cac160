"""Loading the recipe's ``data:`` section into NumPy arrays, with seeded splits.

Sources read here: ``fashion_mnist`` (the IDX files, parsed here),
``npz`` (``x_train``/``y_train`` and optionally ``x_test``/``y_test``) and
``csv`` (a table, in ``csvdata``, which reuses the labels and splits here). The
streamed sources ``image_dir`` and ``tfds`` are peeked through
``dlrecipe.imagedir``/``dlrecipe.tfdsdata`` and loaded by ``dlrecipe.pipeline``.
``peek`` reads file headers only, for ``dlrecipe validate``; ``load`` reads
everything and carves the subset, test and validation splits.

This module uses NumPy only: it never imports TensorFlow or Keras, so that
``dlrecipe validate`` can check the data without starting a backend.
Arrays are loaded with ``allow_pickle=False``: a pickled array is refused,
never unpickled.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig
from dlrecipe.tasks import segmentation

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

STREAMED_SOURCES = ("image_dir", "tfds")  # read by dlrecipe.imagedir / dlrecipe.tfdsdata through dlrecipe.pipeline
_ROLES = ("x_train", "y_train", "x_test", "y_test")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class DataInfo:
    """Cheap facts about the data, found without loading it all.

    Attributes:
        input_shape: the shape of one example, e.g. ``(28, 28, 1)``.
        input_dtype: the raw dtype of ``x`` as the source gives it, e.g. ``"uint8"``.
        task: ``"classification"``, ``"regression"`` or ``"segmentation"``.
        class_names: one name per class index; ``None`` for regression.
        n_classes: ``len(class_names)``; ``None`` for regression.
    """

    input_shape: tuple[int, ...]
    input_dtype: str
    task: str
    class_names: list[str] | None
    n_classes: int | None


@dataclass
class Dataset:
    """The loaded splits.

    ``x`` arrays keep the source's dtype (normalization happens later). For
    classification ``y`` is int64 of shape ``(N,)`` holding class indices;
    for regression it is float32 of shape ``(N,)`` or ``(N, k)``; for
    segmentation it is int32 masks ``(N, H, W)`` (see ``dlrecipe.segmentation``).

    Attributes:
        info: the same facts ``peek`` returns.
        x_train, y_train: the training split.
        x_val, y_val: the validation split; ``None`` when ``validation_split`` is 0.
        x_test, y_test: the test split; ``None`` when the source has none and
            ``test_split`` is unset.
    """

    info: DataInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    tabular: dict | None = None  # csv: the encoding fitted on the training split (see csvdata)
    raw_test: dict | None = None  # csv: the test split's raw columns, for the export's check


def peek(cfg: DataConfig, seed: int | None = None) -> DataInfo:
    """Read the facts about the data from file headers (and ``y_train``).

    Checks as much as can be checked without loading ``x``: files exist and
    hold the expected arrays, lengths agree, test and training examples have
    the same shape, ``subset`` and ``test_split`` fit the data.

    Args:
        cfg: the validated ``data:`` section.
        seed: the recipe's seed; csv only (its input width depends on the categories of the
            seeded training split; default 42, the recipe's default).

    Returns:
        The same ``DataInfo`` that ``load(cfg, seed).info`` returns.

    Raises:
        RecipeError: unsupported source or task, missing or broken files,
            inconsistent arrays.
    """
    check_source(cfg)
    if cfg.source == "csv":
        from dlrecipe.data.sources import csv as csvdata
        return csvdata.peek(cfg, 42 if seed is None else seed)
    if cfg.source == "image_dir":
        from dlrecipe.data.sources import image_dir as imagedir
        return imagedir.peek(cfg)
    if cfg.source == "tfds":
        from dlrecipe.data.sources import tfds as tfdsdata
        return tfdsdata.peek(cfg)
    if cfg.source == "fashion_mnist":
        return _peek_fashion_mnist(cfg)
    return _peek_npz(cfg)


def load(cfg: DataConfig, seed: int, tabular: dict | None = None) -> Dataset:
    """Load the data and carve the seeded subset, test and validation splits.

    The order is: ``subset`` (the first N training examples), then
    ``test_split`` (only for sources without a test split), then
    ``validation_split`` from what remains. Held-out examples are chosen with
    ``np.random.default_rng(seed)``, stratified per class for
    classification; every split keeps the original order of the examples.

    Args:
        cfg: the validated ``data:`` section.
        seed: the recipe's seed.
        tabular: csv only: a run's stored encoding, applied instead of fitting one (evaluate, export).

    Returns:
        The splits and their ``DataInfo``.

    Raises:
        RecipeError: everything ``peek`` reports, bad labels, and splits that
            would leave a side empty.
    """
    check_source(cfg)
    if cfg.source == "csv":
        from dlrecipe.data.sources import csv as csvdata
        return csvdata.load(cfg, seed, tabular)
    if cfg.source in STREAMED_SOURCES:
        raise RecipeError.one("data.source", f"Received: source={cfg.source!r}, which is streamed from disk "
                              "by dlrecipe.pipeline.load, never loaded into arrays. Fix: call pipeline.load, which "
                              "every dlrecipe command uses; or convert the data to an .npz (source: npz).")
    if cfg.source == "fashion_mnist":
        raw = _load_fashion_mnist(cfg)
    else:
        raw = _load_npz(cfg)
    return _split(cfg, raw, seed)


# --------------------------------------------------------------------------- checks shared by the sources


# The keys of ``data:`` that belong to particular sources, and which source takes which; the others
# (task, test_split, validation_split, subset, normalize, pca, augment) apply to every source.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("path",),
    "npz": ("path", "test_path", "keys"),
    "csv": ("path", "test_path", "label", "features", "missing"),
    "image_dir": ("path", "test_path", "image_size", "color_mode"),
    "tfds": ("name", "split", "data_dir", "image_size", "color_mode"),
}
_WHY_NOT = {("fashion_mnist", "test_path"): ", which has its own test split (10,000 images)",
            ("csv", "keys"): ": a CSV names its columns with label and features"}


def check_source(cfg: DataConfig) -> None:
    """Refuse a source-specific key given to a source that does not take it (it would be ignored)."""
    takes = SOURCE_KEYS[cfg.source]
    for key in sorted({k for keys in SOURCE_KEYS.values() for k in keys} - set(takes)):
        value = getattr(cfg, key)
        if value is None:
            continue
        owners = [source for source, keys in SOURCE_KEYS.items() if key in keys]
        shown = dict(value) if isinstance(value, dict) else value
        raise RecipeError.one(f"data.{key}", f"Received: {key}={shown!r}. {key} does not apply to source: "
                              f"{cfg.source}{_WHY_NOT.get((cfg.source, key), '')} ({key} is for source "
                              f"{' or '.join(owners)}; {cfg.source} takes {', '.join(takes)} besides the keys every "
                              f"source takes). Fix: remove {key}.")


def _check_counts(cfg: DataConfig, n_train: int, has_test: bool, origin: str) -> None:
    """Checks of ``subset`` and ``test_split`` that need only the number of examples."""
    if n_train == 0:
        raise RecipeError.one("data.path", f"Received: {origin} has 0 training examples. Expected at least one.")
    if cfg.subset is not None and cfg.subset > n_train:
        raise RecipeError.one("data.subset", f"Received: subset={cfg.subset}, but {origin} has only {n_train} "
                              f"training examples. Fix: set subset to at most {n_train}, or remove it to use them all.")
    if cfg.test_split is not None and has_test:
        raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split}, but {origin} already has "
                              "a test split. test_split is for sources without one: it carves the test examples "
                              "from the training data. Fix: remove test_split to use the source's test split.")


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class _Labels:
    """How labels become targets: the task, the class names, and the label form of the training data."""

    task: str
    class_names: list[str] | None
    form: str  # "int" | "onehot" | "float_int" | "str" | "float"

    @property
    def n_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)


def _as_1d_or_2d(y: np.ndarray, name: str, origin: str, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        return y.reshape(-1)
    if y.ndim not in (1, 2):
        raise RecipeError.one(where, f"Received: {name} in {origin} has shape {y.shape}. Expected labels of shape "
                              "(N,) (class indices, class names or numbers) or (N, k) (one-hot rows, or k regression "
                              "targets). Fix: reshape the labels before saving.")
    return y


def _is_one_hot(y: np.ndarray) -> bool:
    if y.ndim != 2 or y.shape[1] < 2 or y.dtype.kind not in "biuf" or len(y) == 0:
        return False
    ones = y == 1
    return bool(np.all(ones | (y == 0)) and np.all(ones.sum(axis=1) == 1))


def _label_kind(y: np.ndarray, name: str, origin: str, where: str) -> str:
    kind = y.dtype.kind
    if kind in "US":
        return "str"
    if kind in "biu":
        return "int"
    if kind == "f":
        return "float"
    raise RecipeError.one(where, f"Received: {name} in {origin} has dtype {y.dtype}. Expected integer class "
                          "indices, strings (class names) or floats (regression targets). Fix: convert the labels "
                          "before saving, e.g. y.astype(np.int64).")


def _to_str(y: np.ndarray) -> np.ndarray:
    return np.char.decode(y, "utf-8") if y.dtype.kind == "S" else y


def _infer_labels(cfg: DataConfig, y: np.ndarray, names: np.ndarray | None, origin: str, where: str,
                  masks: bool = False) -> _Labels:
    """Decide the task and the class names from the (full) training labels.

    Args:
        cfg: the ``data:`` section (``task`` overrides the inference).
        y: ``y_train`` as stored.
        names: the optional ``class_names`` array of the file.
        origin: the file, for messages.
        where: the recipe path of ``y_train``.
        masks: the labels are masks whose shapes were checked (see ``_mask_task``): task segmentation.
    """
    if masks:
        indices = segmentation.mask_indices(y, "y_train", origin, where)
        return _Labels("segmentation", _index_classes(int(indices.max()) + 1 if indices.size else 0, names, origin),
                       "mask")
    y = _as_1d_or_2d(y, "y_train", origin, where)
    kind = _label_kind(y, "y_train", origin, where)
    if cfg.task == "regression" or (cfg.task is None and kind == "float" and not _is_one_hot(y)):
        if kind == "str":
            raise RecipeError.one("data.task", f"Received: task='regression', but y_train in {origin} holds strings "
                                  f"(e.g. {str(_to_str(y.reshape(-1)[:1])[0])!r}). Expected numbers for regression. "
                                  "Fix: use task: classification, or store numeric targets.")
        return _Labels("regression", None, "float")
    if y.ndim == 2 and not _is_one_hot(y):
        raise RecipeError.one(where, f"Received: y_train in {origin} has shape {y.shape} and its rows are not "
                              "one-hot. Expected class indices of shape (N,) or one-hot rows for classification. "
                              "Fix: set task: regression for several regression targets, or store class indices.")
    if kind == "str":
        return _Labels("classification", _string_classes(y, names, origin, where), "str")
    if y.ndim == 2:
        n = y.shape[1]
        form = "onehot"
    else:
        if kind == "float":
            _check_integral(y, "y_train", origin, where)
        n = int(y.max()) + 1 if len(y) else 0
        if len(y) and y.min() < 0:
            raise RecipeError.one(where, f"Received: y_train in {origin} holds the label {int(y.min())}. Expected "
                                  "class indices 0, 1, 2, ... Fix: shift the labels so that the smallest is 0.")
        form = "int" if kind == "int" else "float_int"
    return _Labels("classification", _index_classes(n, names, origin), form)


def _check_integral(y: np.ndarray, name: str, origin: str, where: str) -> None:
    bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0)
    if np.any(bad):
        value = y.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
        raise RecipeError.one(where, f"Received: {name} in {origin} holds the value {value!r}, with "
                              "task: classification. Expected class indices 0, 1, 2, ... Fix: store integer class "
                              "indices, or set task: regression (or leave task unset) for numeric targets.")


def _string_classes(y: np.ndarray, names: np.ndarray | None, origin: str, where: str) -> list[str]:
    found = np.unique(_to_str(y)).tolist()
    if names is None:
        return found
    given = _names_list(names, origin)
    unknown = sorted(set(found) - set(given))
    if unknown:
        raise RecipeError.one(where, f"Received: y_train in {origin} holds the labels {unknown[:5]!r}, which are "
                              f"not in its class_names {given!r}. Expected every label to be a class name. Fix: add "
                              "them to class_names, or remove class_names (the sorted labels are then used).")
    return given


def _index_classes(n: int, names: np.ndarray | None, origin: str) -> list[str]:
    if names is None:
        return [str(i) for i in range(n)]
    given = _names_list(names, origin)
    if len(given) < n:
        raise RecipeError.one("data.path", f"Received: class_names in {origin} has {len(given)} names, but y_train "
                              f"holds class indices up to {n - 1}. Expected at least {n} names, one per class index. "
                              "Fix: complete class_names, or remove it (names '0', '1', ... are then used).")
    return given


def _names_list(names: np.ndarray, origin: str) -> list[str]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise RecipeError.one("data.path", f"Received: class_names in {origin} has dtype {names.dtype} and shape "
                              f"{names.shape}. Expected a 1-D array of strings, e.g. "
                              "np.array(['cat', 'dog']).")
    given = _to_str(names).tolist()
    if len(set(given)) != len(given):
        dup = sorted({g for g in given if given.count(g) > 1})
        raise RecipeError.one("data.path", f"Received: class_names in {origin} repeats {dup!r}. Expected each "
                              "class name once. Fix: make the names unique.")
    return given


def _encode(labels: _Labels, y: np.ndarray, name: str, origin: str, where: str) -> np.ndarray:
    """Turn stored labels into targets: int64 class indices, float32 for regression, int32 masks."""
    if labels.task == "segmentation":  # shapes were checked from the headers (_mask_task)
        assert labels.n_classes is not None
        masks = segmentation.mask_indices(y, name, origin, where)
        segmentation.check_index_range(masks, labels.n_classes, name, origin, where)
        return masks
    y = _as_1d_or_2d(y, name, origin, where)
    kind = _label_kind(y, name, origin, where)
    if labels.task == "regression":
        if kind == "str":
            raise RecipeError.one(where, f"Received: {name} in {origin} holds strings, but the task is regression. "
                                  "Expected numbers. Fix: store numeric targets.")
        out = y.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise RecipeError.one(where, f"Received: {name} in {origin} holds {int(np.sum(~np.isfinite(out)))} "
                                  "NaN or infinite targets. Expected finite numbers. Fix: drop or fill them.")
        return out
    if (kind == "str") != (labels.form == "str"):
        raise RecipeError.one(where, f"Received: {name} in {origin} holds {'strings' if kind == 'str' else 'numbers'}"
                              f", but y_train holds {'strings' if labels.form == 'str' else 'numbers'}. Expected "
                              "the same kind of labels in every split. Fix: store them alike.")
    assert labels.class_names is not None
    n = len(labels.class_names)
    if kind == "str":
        return _encode_strings(labels.class_names, _to_str(y), name, origin, where)
    if y.ndim == 2:
        if not _is_one_hot(y) or y.shape[1] != n:
            raise RecipeError.one(where, f"Received: {name} in {origin} has shape {y.shape}. Expected class indices "
                                  f"of shape (N,) or one-hot rows of width {n}. Fix: store them like y_train.")
        return np.argmax(y, axis=1).astype(np.int64)
    if kind == "float":
        _check_integral(y, name, origin, where)
    out = y.astype(np.int64)
    bad = (out < 0) | (out >= n)
    if np.any(bad):
        raise RecipeError.one(where, f"Received: {name} in {origin} holds the class index "
                              f"{int(out[np.flatnonzero(bad)[0]])}. Expected 0 to {n - 1} ({n} classes, from "
                              "y_train and class_names). Fix: correct the labels, or list every class in class_names.")
    return out


def _encode_strings(classes: list[str], y: np.ndarray, name: str, origin: str, where: str) -> np.ndarray:
    table = np.asarray(classes)
    order = np.argsort(table, kind="stable")
    pos = np.searchsorted(table[order], y)
    pos = np.minimum(pos, len(table) - 1)
    hit = table[order][pos] == y
    if not np.all(hit):
        unseen = sorted(set(np.asarray(y)[~hit].tolist()))
        raise RecipeError.one(where, f"Received: {name} in {origin} holds the labels {unseen[:5]!r}, which do not "
                              f"occur in the training labels {classes[:20]!r}. Expected only classes seen in "
                              "training. Fix: drop those examples, or add class_names listing every class.")
    return order[pos].astype(np.int64)


# --------------------------------------------------------------------------- fashion_mnist


def fashion_mnist_dirs(cfg: DataConfig) -> list[Path]:
    """The folders searched for the Fashion-MNIST files, in order.

    An explicit ``data.path`` is the only folder searched: a typo there must be an error,
    not a silent fall-back to another copy of the data.
    """
    if cfg.path:
        return [Path(cfg.path)]
    return [PROJECT_ROOT / "data" / "fashion-mnist", SYSTEM_FASHION_MNIST_DIR]


def _fashion_files(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (gzipped or not), or ``None`` when any is missing."""
    files = {}
    for role, gz in FASHION_MNIST_FILES.items():
        for candidate in (folder / gz, folder / gz[:-3]):
            if candidate.is_file():
                files[role] = candidate
                break
        else:
            return None
    return files


def _find_fashion_mnist(cfg: DataConfig) -> dict[str, Path]:
    tried = []
    for folder in fashion_mnist_dirs(cfg):
        files = _fashion_files(folder)
        if files is not None:
            return files
        if not folder.is_dir():
            tried.append(f"{folder} (no such folder)")
        else:
            missing = [gz for gz in FASHION_MNIST_FILES.values()
                       if not (folder / gz).is_file() and not (folder / gz[:-3]).is_file()]
            tried.append(f"{folder} (missing {', '.join(missing)})")
    raise RecipeError.one("data.path", "Received: source='fashion_mnist', but the four Fashion-MNIST files ("
                          f"{', '.join(FASHION_MNIST_FILES.values())}) were not found. Looked in: "
                          f"{'; '.join(tried)}. Fix: `sudo apt-get install dataset-fashion-mnist` (installs them in "
                          f"{SYSTEM_FASHION_MNIST_DIR}), or set data.path to a folder holding the four files.")


def _corrupt(path: Path, detail: str) -> RecipeError:
    return RecipeError.one("data.path", f"Received: {path} is not a valid IDX file ({detail}). Expected a "
                           "Fashion-MNIST file as published (gzipped IDX). Fix: download it again, or reinstall "
                           "`sudo apt-get install --reinstall dataset-fashion-mnist`.")


def _open_idx(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_idx_header(f: Any, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES or head[3] == 0:
        raise _corrupt(path, f"bad magic number {head.hex() or '(empty file)'}")
    ndim = head[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise _corrupt(path, "the header is truncated")
    return np.dtype(_IDX_DTYPES[head[2]]), struct.unpack(">" + "I" * ndim, dims)


def _idx_header(path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape an IDX file declares, reading its first bytes only."""
    try:
        with _open_idx(path) as f:
            return _read_idx_header(f, path)
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None


def _read_idx(path: Path) -> np.ndarray:
    """Read a whole IDX file into a native-endian array, checking its length."""
    try:
        with _open_idx(path) as f:
            dtype, shape = _read_idx_header(f, path)
            nbytes = math.prod(shape) * dtype.itemsize
            buf = np.empty(nbytes, dtype=np.uint8)
            got = _read_into(f, memoryview(buf))
            if got < nbytes:
                raise _corrupt(path, f"truncated: {got} bytes of data, the header {shape} needs {nbytes}")
            if f.read(1):
                raise _corrupt(path, f"more data than the header {shape} declares")
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    arr = buf.view(dtype).reshape(shape)
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def _read_into(f: Any, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _fashion_shapes(files: dict[str, Path]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for role, path in files.items():
        dtype, shape = _idx_header(path)
        want = 3 if role.startswith("x") else 1
        if len(shape) != want or dtype != np.uint8:
            raise _corrupt(path, f"it declares {dtype} data of shape {shape}, expected uint8 "
                           f"{'images (N, 28, 28)' if want == 3 else 'labels (N,)'}")
        shapes[role] = shape
    for split in ("train", "test"):
        nx, ny = shapes[f"x_{split}"][0], shapes[f"y_{split}"][0]
        if nx != ny:
            raise _corrupt(files[f"y_{split}"], f"{ny} labels for {nx} images in {files[f'x_{split}'].name}")
    if shapes["x_train"][1:] != shapes["x_test"][1:]:
        raise _corrupt(files["x_test"], f"images of {shapes['x_test'][1:]}, the training images are "
                       f"{shapes['x_train'][1:]}")
    return shapes


def _fashion_info(shapes: dict[str, tuple[int, ...]]) -> DataInfo:
    return DataInfo(input_shape=tuple(shapes["x_train"][1:]) + (1,), input_dtype="uint8", task="classification",
                    class_names=list(FASHION_MNIST_CLASSES), n_classes=len(FASHION_MNIST_CLASSES))


def _check_fashion_task(cfg: DataConfig) -> None:
    if cfg.task in ("regression", "segmentation"):
        raise RecipeError.one("data.task", f"Received: task={cfg.task!r}, but Fashion-MNIST labels are 10 clothing "
                              "classes. Expected task: classification. Fix: remove task or set it to classification.")


def _peek_fashion_mnist(cfg: DataConfig) -> DataInfo:
    _check_fashion_task(cfg)
    files = _find_fashion_mnist(cfg)
    shapes = _fashion_shapes(files)
    _check_counts(cfg, shapes["x_train"][0], True, f"Fashion-MNIST ({files['x_train'].parent})")
    return _fashion_info(shapes)


@dataclass
class _Raw:
    info: DataInfo
    labels: _Labels
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None


def _load_fashion_mnist(cfg: DataConfig) -> _Raw:
    _check_fashion_task(cfg)
    files = _find_fashion_mnist(cfg)
    shapes = _fashion_shapes(files)
    _check_counts(cfg, shapes["x_train"][0], True, f"Fashion-MNIST ({files['x_train'].parent})")
    arrays = {role: _read_idx(path) for role, path in files.items()}
    for role in ("y_train", "y_test"):
        if arrays[role].size and arrays[role].max() >= len(FASHION_MNIST_CLASSES):
            raise _corrupt(files[role], f"it holds the label {int(arrays[role].max())}, expected 0 to 9")
    labels = _Labels("classification", list(FASHION_MNIST_CLASSES), "int")
    return _Raw(_fashion_info(shapes), labels,
                arrays["x_train"][..., None], arrays["y_train"].astype(np.int64),
                arrays["x_test"][..., None], arrays["y_test"].astype(np.int64))


# --------------------------------------------------------------------------- npz


class _Npz:
    """An .npz file read member by member, headers without data, never unpickling.

    Args:
        path: the file.
        where: the recipe path that named it (``data.path`` or ``data.test_path``).
    """

    def __init__(self, path: Path, where: str):
        self.path, self.where = path, where
        if not path.exists():
            raise RecipeError.one(where, f"Received: {path}, which does not exist. Expected an .npz file with "
                                  "x_train and y_train. Fix: check the path, or create it with "
                                  "np.savez(path, x_train=x, y_train=y).")
        if path.is_dir():
            raise RecipeError.one(where, f"Received: {path}, which is a folder. Expected an .npz file. Fix: point "
                                  "the path at the .npz file itself.")
        if not zipfile.is_zipfile(path):
            raise RecipeError.one(where, f"Received: {path}, which is not an .npz (zip) archive{self._hint()}. "
                                  "Expected a file written by np.savez or np.savez_compressed. Fix: save the arrays "
                                  "with np.savez(path, x_train=x, y_train=y, x_test=..., y_test=...).")
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise RecipeError.one(where, f"Received: {path}, which cannot be opened as an .npz ({e}). Fix: write "
                                  "it again with np.savez.") from None
        self.members = {n[:-4]: n for n in self.zip.namelist() if n.endswith(".npy")}

    def _hint(self) -> str:
        with open(self.path, "rb") as f:
            start = f.read(6)
        return " (it is a single .npy array)" if start == b"\x93NUMPY" else ""

    @property
    def keys(self) -> list[str]:
        return sorted(self.members)

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def _broken(self, key: str, e: Exception) -> RecipeError:
        return RecipeError.one(self.where, f"Received: {self.path}, whose array {key!r} cannot be read "
                               f"({type(e).__name__}: {e}). Expected an intact .npz. Fix: write it again with "
                               "np.savez.")

    def _check_dtype(self, key: str, dtype: np.dtype) -> None:
        if dtype.hasobject:
            raise RecipeError.one(self.where, f"Received: {self.path}, whose array {key!r} holds Python objects "
                                  "(dtype=object, stored pickled). dlrecipe never unpickles data (it could run "
                                  "code). Expected a numeric or string array. Fix: convert it before saving, e.g. "
                                  "np.asarray(a, dtype=np.float32) or np.asarray(labels, dtype=str).")

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """The shape and dtype of array ``key``, from its .npy header."""
        fmt = np.lib.format
        try:
            with self.zip.open(self.members[key]) as f:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(f)
                else:  # (2, 0); (3, 0) differs only for non-latin-1 field names, which are refused anyway
                    shape, _, dtype = fmt.read_array_header_2_0(f)
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as e:
            raise self._broken(key, e) from None
        self._check_dtype(key, dtype)
        return tuple(shape), dtype

    def array(self, key: str) -> np.ndarray:
        """Array ``key``, loaded without pickle, in native byte order."""
        self.header(key)
        try:
            with self.zip.open(self.members[key]) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as e:
            raise self._broken(key, e) from None
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _key_name(cfg: DataConfig, role: str) -> str:
    return (cfg.keys or {}).get(role, role)


def _key_where(cfg: DataConfig, role: str, default: str) -> str:
    return f"data.keys.{role}" if cfg.keys and role in cfg.keys else default


def _npz_path(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise RecipeError.one("data.path", "Received: no path. source: npz needs path: the .npz file with x_train "
                              "and y_train, e.g. path: data/fashion_mnist_sample.npz.")
    return Path(cfg.path)


def _missing_key(cfg: DataConfig, npz: _Npz, role: str, default: str) -> RecipeError:
    name = _key_name(cfg, role)
    fix = (f"Fix: set data.keys.{role} to one of {npz.keys}, or save the array under {name!r}."
           if cfg.keys and role in cfg.keys else
           f"Fix: save it with np.savez(path, {role}=...), or map another array with data.keys: {{{role}: NAME}}.")
    what = "" if name == role else f" (for {role})"
    return RecipeError.one(_key_where(cfg, role, npz.where), f"Received: {npz.path} with the arrays {npz.keys}. "
                           f"Expected an array named {name!r}{what}. {fix}")


@dataclass(frozen=True)
class _Pair:
    """Where a split's x and y live in an .npz."""

    npz: _Npz
    x_key: str
    y_key: str
    x_where: str
    y_where: str


def _train_pair(cfg: DataConfig, npz: _Npz) -> _Pair:
    for role in ("x_train", "y_train"):
        if _key_name(cfg, role) not in npz:
            raise _missing_key(cfg, npz, role, npz.where)
    return _Pair(npz, _key_name(cfg, "x_train"), _key_name(cfg, "y_train"),
                 _key_where(cfg, "x_train", npz.where), _key_where(cfg, "y_train", npz.where))


def _test_pair_in(cfg: DataConfig, npz: _Npz) -> _Pair | None:
    """The x_test/y_test pair of the main file, ``None`` when it has neither."""
    has = {role: _key_name(cfg, role) in npz for role in ("x_test", "y_test")}
    for role in ("x_test", "y_test"):
        if not has[role] and (has["x_test"] or has["y_test"] or (cfg.keys and role in cfg.keys)):
            raise _missing_key(cfg, npz, role, npz.where)
    if not any(has.values()):
        return None
    return _Pair(npz, _key_name(cfg, "x_test"), _key_name(cfg, "y_test"),
                 _key_where(cfg, "x_test", npz.where), _key_where(cfg, "y_test", npz.where))


def _test_pair_from(cfg: DataConfig, npz: _Npz) -> _Pair:
    """The test split of a ``test_path`` file: its x_test/y_test, else its x_train/y_train."""
    for a, b in (("x_test", "y_test"), ("x_train", "y_train")):
        xa, yb = _key_name(cfg, a), _key_name(cfg, b)
        if xa in npz and yb in npz:
            return _Pair(npz, xa, yb, npz.where, npz.where)
    names = f"{_key_name(cfg, 'x_test')}/{_key_name(cfg, 'y_test')} or {_key_name(cfg, 'x_train')}/" \
            f"{_key_name(cfg, 'y_train')}"
    raise RecipeError.one(npz.where, f"Received: {npz.path} with the arrays {npz.keys}. Expected a test split "
                          f"named {names}. Fix: save it with np.savez(path, x_test=x, y_test=y).")


def _pair_shapes(pair: _Pair, role: str) -> tuple[tuple[int, ...], np.dtype, tuple[int, ...]]:
    """Check one split's headers: x is numeric with one row per example, y has as many rows."""
    x_shape, x_dtype = pair.npz.header(pair.x_key)
    y_shape, _ = pair.npz.header(pair.y_key)
    if x_dtype.kind not in "biuf":
        raise RecipeError.one(pair.x_where, f"Received: array {pair.x_key!r} in {pair.npz.path} has dtype {x_dtype}. "
                              "Expected numbers (integers or floats). Fix: convert the inputs before saving, e.g. "
                              "x.astype(np.float32).")
    if len(x_shape) < 2:
        raise RecipeError.one(pair.x_where, f"Received: array {pair.x_key!r} in {pair.npz.path} has shape {x_shape}. "
                              f"Expected one row per example: (N, features) or (N, height, width, channels). Fix: "
                              "reshape it before saving, e.g. x.reshape(-1, 1) for a single feature.")
    if not y_shape or y_shape[0] != x_shape[0]:
        raise RecipeError.one(pair.y_where, f"Received: {pair.npz.path} with {x_shape[0] if x_shape else 0} examples "
                              f"in {pair.x_key!r} {x_shape} but {y_shape[0] if y_shape else 0} labels in "
                              f"{pair.y_key!r} {y_shape}. Expected one label per example ({role}). Fix: save matching "
                              "arrays.")
    return x_shape, x_dtype, y_shape


def _check_test_shape(train: tuple[int, ...], test: tuple[int, ...], pair: _Pair) -> None:
    if tuple(train[1:]) != tuple(test[1:]):
        raise RecipeError.one(pair.x_where, f"Received: test examples {pair.x_key!r} in {pair.npz.path} of shape "
                              f"{tuple(test[1:])}, but training examples of shape {tuple(train[1:])}. Expected the "
                              "same shape per example. Fix: resize or reshape the test data like the training data.")


def _class_names_array(npz: _Npz) -> np.ndarray | None:
    return npz.array("class_names") if "class_names" in npz else None


@dataclass
class _NpzPlan:
    """The .npz files of a recipe, opened, with their splits checked from headers."""

    train: _Pair
    test: _Pair | None
    x_shape: tuple[int, ...]
    x_dtype: np.dtype

    def close(self) -> None:
        self.train.npz.zip.close()
        if self.test is not None:
            self.test.npz.zip.close()


def _plan_npz(cfg: DataConfig) -> _NpzPlan:
    path = _npz_path(cfg)
    main = _Npz(path, "data.path")
    other: _Npz | None = None
    try:
        train = _train_pair(cfg, main)
        x_shape, x_dtype, _ = _pair_shapes(train, "training")
        test = _test_pair_in(cfg, main)
        if cfg.test_path is not None:
            if test is not None:
                raise RecipeError.one("data.test_path", f"Received: test_path={cfg.test_path!r}, but {path} has its "
                                      f"own test split ({test.x_key!r}, {test.y_key!r}). Expected one test split. "
                                      "Fix: remove test_path, or save the main file without x_test/y_test.")
            other = _Npz(Path(cfg.test_path), "data.test_path")
            test = _test_pair_from(cfg, other)
        if test is not None:
            test_shape, _, _ = _pair_shapes(test, "test")
            _check_test_shape(x_shape, test_shape, test)
        _check_counts(cfg, x_shape[0], test is not None and cfg.test_path is None, str(path))
        if cfg.test_split is not None and cfg.test_path is not None:
            raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split} and test_path="
                                  f"{cfg.test_path!r}. Expected one of them: test_split carves the test examples "
                                  "from the training data, test_path reads them from a file. Fix: remove one.")
    except BaseException:
        main.zip.close()
        if other is not None:
            other.zip.close()
        raise
    return _NpzPlan(train, test, x_shape, x_dtype)


def _npz_info(plan: _NpzPlan, labels: _Labels) -> DataInfo:
    return DataInfo(input_shape=tuple(plan.x_shape[1:]), input_dtype=plan.x_dtype.name, task=labels.task,
                    class_names=labels.class_names, n_classes=labels.n_classes)


def _mask_task(cfg: DataConfig, plan: _NpzPlan) -> bool:
    """True when the labels are masks (task segmentation), whose shapes are then checked from the headers.

    Masks are inferred from their shape when ``data.task`` is unset (see ``dlrecipe.segmentation``).
    """
    y_shape, _ = plan.train.npz.header(plan.train.y_key)
    if not (cfg.task == "segmentation" or (cfg.task is None and segmentation.is_mask_shape(y_shape))):
        return False
    for pair in (plan.train, plan.test):
        if pair is not None:
            segmentation.check_mask_shape(pair.npz.header(pair.x_key)[0], pair.npz.header(pair.y_key)[0],
                                          x_key=pair.x_key, y_key=pair.y_key, origin=str(pair.npz.path),
                                          where=pair.y_where)
    return True


def _peek_npz(cfg: DataConfig) -> DataInfo:
    plan = _plan_npz(cfg)
    try:
        train = plan.train
        labels = _infer_labels(cfg, train.npz.array(train.y_key), _class_names_array(train.npz),
                               str(train.npz.path), train.y_where, _mask_task(cfg, plan))
        return _npz_info(plan, labels)
    finally:
        plan.close()


def _load_npz(cfg: DataConfig) -> _Raw:
    plan = _plan_npz(cfg)
    try:
        tr = plan.train
        origin = str(tr.npz.path)
        y_raw = tr.npz.array(tr.y_key)
        labels = _infer_labels(cfg, y_raw, _class_names_array(tr.npz), origin, tr.y_where, _mask_task(cfg, plan))
        y_train = _encode(labels, y_raw, tr.y_key, origin, tr.y_where)
        del y_raw
        x_train = tr.npz.array(tr.x_key)
        x_test = y_test = None
        if plan.test is not None:
            te = plan.test
            y_test = _encode(labels, te.npz.array(te.y_key), te.y_key, str(te.npz.path), te.y_where)
            if y_test.shape[1:] != y_train.shape[1:]:
                raise RecipeError.one(te.y_where, f"Received: {te.y_key!r} in {te.npz.path} of shape {y_test.shape}, "
                                      f"but training targets of shape {y_train.shape}. Expected the same number of "
                                      "targets per example. Fix: store the test targets like the training targets.")
            x_test = te.npz.array(te.x_key)
    finally:
        plan.close()
    return _Raw(_npz_info(plan, labels), labels, x_train, y_train, x_test, y_test)


# --------------------------------------------------------------------------- splits


def held_out_count(frac: float, n: int) -> int:
    """round(frac * n), halves up; at least 1 when n >= 2; at most n - 1."""
    k = math.floor(frac * n + 0.5)
    if n >= 2:
        k = max(k, 1)
    return min(k, max(n - 1, 0))


def _carve(pool: np.ndarray, y: np.ndarray, frac: float, stratify: bool, rng: np.random.Generator,
           field: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` (sorted indices) into (held out, rest), both sorted.

    For classification each class gives ``round(frac * n_class)`` examples
    (at least one if it has two or more, never all of them).
    """
    if stratify:
        labels = y[pool]
        chosen = []
        for c in np.unique(labels):
            members = pool[labels == c]
            k = held_out_count(frac, len(members))
            if k:
                chosen.append(rng.permutation(members)[:k])
        held = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=pool.dtype)
    else:
        k = held_out_count(frac, len(pool))
        held = np.sort(rng.permutation(pool)[:k])
    if len(held) == 0:
        per = " (each class needs at least 2 examples to give one)" if stratify else ""
        raise RecipeError.one(f"data.{field}", f"Received: {field}={frac} with {len(pool)} training example(s) "
                              f"left after subset{'' if field == 'test_split' else ' and test_split'}. This "
                              f"selects no examples{per}, and a split may not leave the training set empty. "
                              f"Fix: use more data (a larger subset), or set {field}: "
                              f"{'0' if field == 'validation_split' else 'null'}.")
    rest = np.setdiff1d(pool, held, assume_unique=True)
    return held, rest


def _take(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``arr[idx]``, without a copy when ``idx`` is all of ``arr`` in order."""
    if len(idx) == len(arr):
        return arr
    if len(idx) and idx[-1] == len(idx) - 1:  # a prefix (sorted, unique)
        return arr[: len(idx)].copy()  # a copy, so the rest can be freed
    return arr[idx]


def _split(cfg: DataConfig, raw: _Raw, seed: int) -> Dataset:
    n = cfg.subset or len(raw.x_train)
    stratify = raw.labels.task == "classification"
    rng = np.random.default_rng(seed)
    pool = np.arange(n)
    x_test, y_test = raw.x_test, raw.y_test
    if cfg.test_split is not None:
        test_idx, pool = _carve(pool, raw.y_train, cfg.test_split, stratify, rng, "test_split")
        x_test, y_test = raw.x_train[test_idx], raw.y_train[test_idx]
    x_val = y_val = None
    if cfg.validation_split > 0:
        val_idx, pool = _carve(pool, raw.y_train, cfg.validation_split, stratify, rng, "validation_split")
        x_val, y_val = raw.x_train[val_idx], raw.y_train[val_idx]
    return Dataset(raw.info, _take(raw.x_train, pool), _take(raw.y_train, pool), x_val, y_val, x_test, y_test)

