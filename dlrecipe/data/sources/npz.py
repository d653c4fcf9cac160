"""The ``npz`` source: ``x_train``/``y_train`` (and ``x_test``/``y_test``) arrays in an .npz file.

``data.keys`` maps these roles to other array names; ``data.test_path`` names a second file holding the
test split; an optional ``class_names`` array names the classes. Headers are read without the data
(for ``validate``) and arrays are loaded with ``allow_pickle=False``: a pickled array is refused,
never unpickled. NumPy only. See docs/data.md.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlrecipe.data.labels import encode, infer_labels
from dlrecipe.data.splits import check_counts, count_train, split
from dlrecipe.data.types import DataInfo, Dataset, Labels, Raw
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig
from dlrecipe.tasks import segmentation


class NpzFile:
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
        if not path.is_file():  # /dev/zero, a FIFO, a socket: reading it never ends or fails oddly
            raise RecipeError.one(where, f"Received: {path}, which is not a regular file (a device, pipe or socket)."
                                  " Expected an .npz file. Fix: point the path at the .npz file itself.")
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


def _missing_key(cfg: DataConfig, npz: NpzFile, role: str, default: str) -> RecipeError:
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

    npz: NpzFile
    x_key: str
    y_key: str
    x_where: str
    y_where: str


def _train_pair(cfg: DataConfig, npz: NpzFile) -> _Pair:
    for role in ("x_train", "y_train"):
        if _key_name(cfg, role) not in npz:
            raise _missing_key(cfg, npz, role, npz.where)
    return _Pair(npz, _key_name(cfg, "x_train"), _key_name(cfg, "y_train"),
                 _key_where(cfg, "x_train", npz.where), _key_where(cfg, "y_train", npz.where))


def _test_pair_in(cfg: DataConfig, npz: NpzFile) -> _Pair | None:
    """The x_test/y_test pair of the main file, ``None`` when it has neither."""
    has = {role: _key_name(cfg, role) in npz for role in ("x_test", "y_test")}
    for role in ("x_test", "y_test"):
        if not has[role] and (has["x_test"] or has["y_test"] or (cfg.keys and role in cfg.keys)):
            raise _missing_key(cfg, npz, role, npz.where)
    if not any(has.values()):
        return None
    return _Pair(npz, _key_name(cfg, "x_test"), _key_name(cfg, "y_test"),
                 _key_where(cfg, "x_test", npz.where), _key_where(cfg, "y_test", npz.where))


def _test_pair_from(cfg: DataConfig, npz: NpzFile) -> _Pair:
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


def _class_names_array(npz: NpzFile) -> np.ndarray | None:
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
    main = NpzFile(path, "data.path")
    other: NpzFile | None = None
    try:
        train = _train_pair(cfg, main)
        x_shape, x_dtype, _ = _pair_shapes(train, "training")
        test = _test_pair_in(cfg, main)
        if cfg.test_path is not None:
            if test is not None:
                raise RecipeError.one("data.test_path", f"Received: test_path={cfg.test_path!r}, but {path} has its "
                                      f"own test split ({test.x_key!r}, {test.y_key!r}). Expected one test split. "
                                      "Fix: remove test_path, or save the main file without x_test/y_test.")
            other = NpzFile(Path(cfg.test_path), "data.test_path")
            test = _test_pair_from(cfg, other)
        if test is not None:
            test_shape, _, _ = _pair_shapes(test, "test")
            _check_test_shape(x_shape, test_shape, test)
        check_counts(cfg, x_shape[0], test is not None and cfg.test_path is None, str(path))
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


def _npz_info(plan: _NpzPlan, labels: Labels) -> DataInfo:
    return DataInfo(input_shape=tuple(plan.x_shape[1:]), input_dtype=plan.x_dtype.name, task=labels.task,
                    class_names=labels.class_names, n_classes=labels.n_classes)


def _mask_task(cfg: DataConfig, plan: _NpzPlan) -> bool:
    """True when the labels are masks (task segmentation), whose shapes are then checked from the headers.

    Masks are inferred from their shape when ``data.task`` is unset (see ``dlrecipe.tasks.segmentation``).
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


def _train_labels(cfg: DataConfig, plan: _NpzPlan) -> tuple[Labels, np.ndarray]:
    """The labels found on the training labels, and the training labels as stored."""
    tr = plan.train
    y_raw = tr.npz.array(tr.y_key)
    return infer_labels(cfg, y_raw, _class_names_array(tr.npz), str(tr.npz.path), tr.y_where,
                        _mask_task(cfg, plan)), y_raw


def peek(cfg: DataConfig) -> DataInfo:
    """The facts about the data from the .npy headers and the training labels (for ``validate``).

    Raises:
        RecipeError: missing or broken files or arrays, inconsistent shapes, bad labels, subset or test_split.
    """
    plan = _plan_npz(cfg)
    try:
        return _npz_info(plan, _train_labels(cfg, plan)[0])
    finally:
        plan.close()


def load(cfg: DataConfig, seed: int) -> Dataset:
    """Load the arrays, encode the targets and carve the splits (``splits.split``)."""
    plan = _plan_npz(cfg)
    try:
        tr = plan.train
        labels, y_raw = _train_labels(cfg, plan)
        y_train = encode(labels, y_raw, tr.y_key, str(tr.npz.path), tr.y_where)
        del y_raw
        x_train = _finite(tr.npz.array(tr.x_key), tr)
        x_test = y_test = None
        if plan.test is not None:
            te = plan.test
            y_test = encode(labels, te.npz.array(te.y_key), te.y_key, str(te.npz.path), te.y_where)
            if y_test.shape[1:] != y_train.shape[1:]:
                raise RecipeError.one(te.y_where, f"Received: {te.y_key!r} in {te.npz.path} of shape {y_test.shape}, "
                                      f"but training targets of shape {y_train.shape}. Expected the same number of "
                                      "targets per example. Fix: store the test targets like the training targets.")
            x_test = _finite(te.npz.array(te.x_key), te)
    finally:
        plan.close()
    return split(cfg, Raw(_npz_info(plan, labels), labels, x_train, y_train, x_test, y_test), seed)


def _finite(x: np.ndarray, pair: _Pair) -> np.ndarray:
    """``x``, refused when it holds NaN or infinity (training would run on, its loss NaN or its model wrong).

    dlrecipe fills missing values only in csv tables (``data.missing``); arrays must come clean.
    """
    if x.dtype.kind not in "fc":
        return x
    step = max(1, (1 << 24) // max(1, x[:1].size))  # about 16M values at a time
    first, n = None, 0
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if bad.any():
            first = start + int(np.argmax(bad)) if first is None else first
            n += int(bad.sum())
    if first is not None:
        kind = "NaN" if np.isnan(x[first]).any() else "an infinite value"
        raise RecipeError.one(pair.x_where, f"Received: {pair.npz.path}, whose array {pair.x_key!r} holds {kind} "
                              f"at example {first} ({n} example(s) hold NaN or inf). Expected finite numbers: "
                              "dlrecipe fills missing values only in csv files (data.missing). Fix: fill or drop "
                              "them before saving, e.g. x = np.nan_to_num(x) or keep np.isfinite(x).all(axis=...).")
    return x


def count_train_examples(cfg: DataConfig) -> int:
    """The number of training examples ``load`` gives, from the headers and the training labels (not ``x``)."""
    plan = _plan_npz(cfg)
    try:
        tr = plan.train
        labels, y_raw = _train_labels(cfg, plan)
        stratify = labels.task == "classification"  # the held-out splits are carved per class
        y = encode(labels, y_raw, tr.y_key, str(tr.npz.path), tr.y_where) if stratify else None
        return count_train(cfg, plan.x_shape[0], y, stratify)
    finally:
        plan.close()
