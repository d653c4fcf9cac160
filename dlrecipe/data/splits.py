"""The split rule of the in-memory sources: ``subset``, then ``test_split``, then ``validation_split``.

Held-out examples are chosen with ``np.random.default_rng(seed)``, stratified per class for
classification, each class giving ``held_out_count(frac, n_class)``; every split keeps the original
order. ``count_train`` applies the same rule to the labels alone. NumPy only. See docs/data.md.
"""

from __future__ import annotations

import math

import numpy as np

from dlrecipe.data.types import Dataset, Raw
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig


def check_counts(cfg: DataConfig, n_train: int, has_test: bool, origin: str) -> None:
    """Checks of ``subset`` and ``test_split`` that need only the number of examples.

    Raises:
        RecipeError: no training example, ``subset`` over ``n_train``, or ``test_split`` for a source
            that has its own test split (``has_test``).
    """
    if n_train == 0:
        raise RecipeError.one("data.path", f"Received: {origin} has 0 training examples. Expected at least one.")
    if cfg.subset is not None and cfg.subset > n_train:
        raise RecipeError.one("data.subset", f"Received: subset={cfg.subset}, but {origin} has only {n_train} "
                              f"training examples. Fix: set subset to at most {n_train}, or remove it to use them all.")
    if cfg.test_split is not None and has_test:
        raise RecipeError.one("data.test_split", f"Received: test_split={cfg.test_split}, but {origin} already has "
                              "a test split. test_split is for sources without one: it carves the test examples "
                              "from the training data. Fix: remove test_split to use the source's test split.")


def held_out_count(frac: float, n: int) -> int:
    """round(frac * n), halves up; at least 1 when n >= 2; at most n - 1."""
    k = math.floor(frac * n + 0.5)
    if n >= 2:
        k = max(k, 1)
    return min(k, max(n - 1, 0))


def carve(pool: np.ndarray, y: np.ndarray | None, frac: float, stratify: bool, rng: np.random.Generator,
          field: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``pool`` (sorted indices) into (held out, rest), both sorted; ``split`` and image_dir use it.

    For classification each class gives ``round(frac * n_class)`` examples
    (at least one if it has two or more, never all of them).

    Args:
        pool: the indices to carve from.
        y: the class of each example (indexed by ``pool``); read only when ``stratify``.
        frac: the fraction to hold out.
        stratify: carve per class.
        rng: the seeded generator; its draws decide which examples are held out.
        field: ``test_split`` or ``validation_split``, for the message.

    Raises:
        RecipeError: the carve selects nothing (a split may not leave the training set empty).
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


def _indices(cfg: DataConfig, n: int, y: np.ndarray | None, stratify: bool,
             seed: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(train, validation, test) indices into the first ``n`` examples; ``None`` for a split not carved."""
    rng = np.random.default_rng(seed)
    pool = np.arange(n)
    test_idx = val_idx = None
    if cfg.test_split is not None:
        test_idx, pool = carve(pool, y, cfg.test_split, stratify, rng, "test_split")
    if cfg.validation_split > 0:
        val_idx, pool = carve(pool, y, cfg.validation_split, stratify, rng, "validation_split")
    return pool, val_idx, test_idx


def split(cfg: DataConfig, raw: Raw, seed: int) -> Dataset:
    """Carve the seeded subset, test and validation splits of a source's data.

    ``subset`` keeps the first N training examples; ``test_split`` applies only to sources without a
    test split (``check_counts`` refused it otherwise); ``validation_split`` comes from what remains.

    Args:
        cfg: the validated ``data:`` section.
        raw: the source's data; its ``x`` arrays may also be row indices (csv encodes after splitting).
        seed: the recipe's seed.

    Raises:
        RecipeError: a split that selects nothing or would leave the training set empty.
    """
    n = cfg.subset or len(raw.x_train)
    train_idx, val_idx, test_idx = _indices(cfg, n, raw.y_train, raw.labels.task == "classification", seed)
    x_test, y_test = raw.x_test, raw.y_test
    if test_idx is not None:
        x_test, y_test = raw.x_train[test_idx], raw.y_train[test_idx]
    x_val = y_val = None
    if val_idx is not None:
        x_val, y_val = raw.x_train[val_idx], raw.y_train[val_idx]
    return Dataset(raw.info, _take(raw.x_train, train_idx), _take(raw.y_train, train_idx), x_val, y_val, x_test,
                   y_test)


def count_train(cfg: DataConfig, n_total: int, y: np.ndarray | None, stratify: bool) -> int:
    """The number of training examples ``split`` keeps, from the targets alone (it does not depend on the seed).

    Args:
        cfg: the validated ``data:`` section.
        n_total: the number of training examples of the source.
        y: the encoded training targets (class indices), needed when ``stratify``; else may be None.
        stratify: classification: the held-out splits are carved per class.

    Example:
        >>> count_train(DataConfig(source="npz", path="d.npz", validation_split=0.2), 100, None, False)
        80
    """
    return len(_indices(cfg, cfg.subset or n_total, y, stratify, seed=0)[0])
