"""The one choice of the data source: ``peek``, ``load`` and ``count_train_examples`` dispatch on ``data.source``.

Each source lives in ``data.sources``; this module imports no TensorFlow (the streamed sources import it
only when their pipelines are built). It is not ``data/__init__.py``: importing any ``data`` submodule runs
that ``__init__``, so one that imported the sources would form an import cycle with them.
See docs/data.md.
"""

from __future__ import annotations

from dlrecipe.data.sources import STREAMED_SOURCES, check_source, csv, idx, image_dir, npz, tfds
from dlrecipe.data.types import DataInfo, Dataset, Streamed
from dlrecipe.errors import RecipeError
from dlrecipe.recipe.schema import DataConfig

_SOURCES = {"fashion_mnist": idx, "npz": npz, "csv": csv, "image_dir": image_dir, "tfds": tfds}


def check_streamable(cfg: DataConfig, cross_validation: int = 0) -> None:
    """What a streamed source (image_dir, tfds) cannot do, refused by ``validate`` and ``train`` alike: the
    statistics fitted on the whole training split in memory (``normalize: zca``, ``pca``, ``fancy_pca``) and
    k-fold cross-validation.

    Raises:
        RecipeError: at the recipe path of the first of them, when ``cfg.source`` is streamed.
    """
    if cfg.source not in STREAMED_SOURCES:
        return
    from dlrecipe.build.augment import wants_fancy_pca
    needs_memory = [(path, what) for path, what, used in (
        ("data.normalize", "normalize: zca", cfg.normalize == "zca"), ("data.pca", "pca", cfg.pca is not None),
        ("data.augment", "fancy_pca", wants_fancy_pca(cfg.augment))) if used]
    if needs_memory:
        path, what = needs_memory[0]
        raise RecipeError.one(path, f"Received: {what} with source: {cfg.source}, which is streamed from disk; "
                              f"{what} is fitted on the whole training split in memory. Fix: convert the data to an "
                              ".npz (source: npz), or remove it.")
    if cross_validation > 1:
        raise RecipeError.one("train.cross_validation", f"Received: cross_validation={cross_validation} with source: "
                              f"{cfg.source}, which is streamed from disk; k-fold needs the examples in memory. Fix: "
                              "convert the data to an .npz (source: npz), or remove cross_validation.")


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

    Example:
        >>> peek(DataConfig(source="npz", path="data/fashion_mnist_sample.npz")).input_shape
        (28, 28, 1)
    """
    check_source(cfg)
    if cfg.source == "csv":
        return csv.peek(cfg, 42 if seed is None else seed)
    return _SOURCES[cfg.source].peek(cfg)


def load(cfg: DataConfig, seed: int, tabular: dict | None = None, *, streamed: bool = False) -> Dataset | Streamed:
    """Load the data and carve the seeded subset, test and validation splits (``data.splits``).

    Args:
        cfg: the validated ``data:`` section.
        seed: the recipe's seed.
        tabular: csv only: a run's stored encoding, applied instead of fitting one (evaluate, export).
        streamed: give image_dir and tfds as ``Streamed`` splits (``pipeline.load``); without it they
            are refused, as they are never loaded into arrays.

    Returns:
        The splits and their ``DataInfo``: arrays, or for a streamed source a ``Streamed``.

    Raises:
        RecipeError: everything ``peek`` reports, bad labels, and splits that
            would leave a side empty.
    """
    if streamed and cfg.source in STREAMED_SOURCES:
        return _SOURCES[cfg.source].load(cfg, seed)  # each checks its keys itself
    check_source(cfg)
    if cfg.source == "csv":
        return csv.load(cfg, seed, tabular)
    if cfg.source in STREAMED_SOURCES:
        raise RecipeError.one("data.source", f"Received: source={cfg.source!r}, which is streamed from disk "
                              "by dlrecipe.pipeline.load, never loaded into arrays. Fix: call pipeline.load, which "
                              "every dlrecipe command uses; or convert the data to an .npz (source: npz).")
    return _SOURCES[cfg.source].load(cfg, seed)


def count_train_examples(cfg: DataConfig) -> int:
    """The number of training examples ``load(cfg, seed)`` gives, without loading the inputs.

    Reads the example count from the headers and, for classification, the training labels (held-out
    splits are stratified per class, so their sizes depend on the class counts, not on the seed), then
    applies the split rule (``splits.count_train``). A csv table is read whole.

    Raises:
        RecipeError: everything ``peek`` reports, a split that would select nothing, and a streamed
            source (image_dir, tfds), whose examples are counted only when it is loaded.
    """
    check_source(cfg)
    if cfg.source in STREAMED_SOURCES:
        raise RecipeError.one("data.source", f"Received: source={cfg.source!r}, which is streamed from disk. "
                              "Expected an in-memory source (fashion_mnist, npz or csv): the training examples "
                              "are counted from file headers and labels only for those. Fix: convert the data "
                              "to an .npz (source: npz).")
    return _SOURCES[cfg.source].count_train_examples(cfg)
