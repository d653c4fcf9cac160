"""Labels: the task and class names inferred from the training labels, and labels encoded as targets.

``infer_labels`` decides the task (classification, regression, segmentation) and the class names from
the whole training split; ``encode`` turns the labels of any split into targets the same way.
NumPy only. See docs/data.md.
"""

from __future__ import annotations

import numpy as np

from dlrecipe.data.types import Labels
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig
from dlrecipe.tasks import segmentation


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


def infer_labels(cfg: DataConfig, y: np.ndarray, names: np.ndarray | None, origin: str, where: str,
                 masks: bool = False) -> Labels:
    """Decide the task and the class names from the (full) training labels.

    Args:
        cfg: the ``data:`` section (``task`` overrides the inference).
        y: ``y_train`` as stored.
        names: the optional ``class_names`` array of the file.
        origin: the file, for messages.
        where: the recipe path of ``y_train``.
        masks: the labels are masks whose shapes were checked (``sources.npz``): task segmentation.

    Returns:
        The task, the class names (``None`` for regression) and the form of the labels, for ``encode``.
    """
    if masks:
        indices = segmentation.mask_indices(y, "y_train", origin, where)
        return Labels("segmentation", _index_classes(int(indices.max()) + 1 if indices.size else 0, names, origin),
                      "mask")
    y = _as_1d_or_2d(y, "y_train", origin, where)
    kind = _label_kind(y, "y_train", origin, where)
    if cfg.task == "regression" or (cfg.task is None and kind == "float" and not _is_one_hot(y)):
        if kind == "str":
            raise RecipeError.one("data.task", f"Received: task='regression', but y_train in {origin} holds strings "
                                  f"(e.g. {str(_to_str(y.reshape(-1)[:1])[0])!r}). Expected numbers for regression. "
                                  "Fix: use task: classification, or store numeric targets.")
        return Labels("regression", None, "float")
    if y.ndim == 2 and not _is_one_hot(y):
        raise RecipeError.one(where, f"Received: y_train in {origin} has shape {y.shape} and its rows are not "
                              "one-hot. Expected class indices of shape (N,) or one-hot rows for classification. "
                              "Fix: set task: regression for several regression targets, or store class indices.")
    if kind == "str":
        return Labels("classification", _string_classes(y, names, origin, where), "str")
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
    return Labels("classification", _index_classes(n, names, origin), form)


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


def encode(labels: Labels, y: np.ndarray, name: str, origin: str, where: str) -> np.ndarray:
    """Turn stored labels into targets: int64 class indices, float32 for regression, int32 masks.

    Args:
        labels: what ``infer_labels`` found on the training labels.
        y: the labels of one split, as stored.
        name, origin, where: the array, its file and its recipe path, for messages.
    """
    if labels.task == "segmentation":  # shapes were checked from the headers (sources.npz)
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

