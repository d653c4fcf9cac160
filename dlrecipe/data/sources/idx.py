"""The ``fashion_mnist`` source: finding the four IDX files of Fashion-MNIST, and THE reader of IDX files.

``data.path`` is the folder of the files (gzipped or not); without it the project's ``data/fashion-mnist``
and the system's copy are searched. NumPy only. See docs/data.md.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from dlrecipe.data.splits import check_counts, count_train, split
from dlrecipe.data.types import DataInfo, Dataset, Labels, Raw
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
PROJECT_ROOT = Path(__file__).resolve().parents[3]
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
    # Without data.path the recipe names only the source: the problem is there, not at a key it lacks.
    where = "data.path" if cfg.path else "data.source"
    apt = f"the Debian package dataset-fashion-mnist (`sudo apt-get install -y dataset-fashion-mnist`, into " \
          f"{SYSTEM_FASHION_MNIST_DIR})"
    fix = (f"point data.path at a folder holding them, or remove data.path to use {apt}" if cfg.path else
           f"install {apt}, put the four files in {PROJECT_ROOT / 'data' / 'fashion-mnist'}, or set data.path to "
           "a folder holding them")
    raise RecipeError.one(where, "Received: source='fashion_mnist', but the four Fashion-MNIST files ("
                          f"{', '.join(FASHION_MNIST_FILES.values())}) were not found. Looked in: "
                          f"{'; '.join(tried)}. Fix: {fix}. "
                          "recipes/quickstart.yaml trains on the sample shipped in data/ and needs neither.")


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


def read_idx(path: Path) -> np.ndarray:
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
    for part in ("train", "test"):
        nx, ny = shapes[f"x_{part}"][0], shapes[f"y_{part}"][0]
        if nx != ny:
            raise _corrupt(files[f"y_{part}"], f"{ny} labels for {nx} images in {files[f'x_{part}'].name}")
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


def _checked_files(cfg: DataConfig) -> tuple[dict[str, Path], dict[str, tuple[int, ...]]]:
    """The four files and the shapes their headers declare, checked as far as headers allow."""
    _check_fashion_task(cfg)
    files = _find_fashion_mnist(cfg)
    shapes = _fashion_shapes(files)
    check_counts(cfg, shapes["x_train"][0], True, f"Fashion-MNIST ({files['x_train'].parent})")
    return files, shapes


def _class_indices(files: dict[str, Path], role: str, y: np.ndarray) -> np.ndarray:
    if y.size and y.max() >= len(FASHION_MNIST_CLASSES):
        raise _corrupt(files[role], f"it holds the label {int(y.max())}, expected 0 to 9")
    return y.astype(np.int64)


def peek(cfg: DataConfig) -> DataInfo:
    """The facts about Fashion-MNIST, from the IDX headers of its four files (for ``validate``).

    Raises:
        RecipeError: files missing or broken, a task other than classification, a bad subset or test_split.
    """
    return _fashion_info(_checked_files(cfg)[1])


def load(cfg: DataConfig, seed: int) -> Dataset:
    """Read the four files (images as ``(N, 28, 28, 1)`` uint8) and carve the splits (``splits.split``)."""
    files, shapes = _checked_files(cfg)
    arrays = {role: read_idx(path) for role, path in files.items()}
    y_train, y_test = (_class_indices(files, role, arrays[role]) for role in ("y_train", "y_test"))
    raw = Raw(_fashion_info(shapes), Labels("classification", list(FASHION_MNIST_CLASSES), "int"),
              arrays["x_train"][..., None], y_train, arrays["x_test"][..., None], y_test)
    return split(cfg, raw, seed)


def count_train_examples(cfg: DataConfig) -> int:
    """The number of training examples ``load`` gives, reading the headers and the training labels only."""
    files, shapes = _checked_files(cfg)
    y_train = _class_indices(files, "y_train", read_idx(files["y_train"]))
    return count_train(cfg, shapes["x_train"][0], y_train, stratify=True)
