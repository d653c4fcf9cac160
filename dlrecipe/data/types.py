"""The containers of the data stage: facts about the data, loaded splits, streamed splits.

Plain dataclasses, shared by every source (``data.sources``), the splits (``data.splits``) and the
input pipeline (``data.pipeline``); NumPy only. See docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


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
    segmentation it is int32 masks ``(N, H, W)`` (see ``dlrecipe.tasks.segmentation``).

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
    tabular: dict | None = None  # csv: the encoding fitted on the training split (see data.tabular)
    raw_test: dict | None = None  # csv: the test split's raw columns, for the export's check


@dataclass(frozen=True)
class Labels:
    """How labels become targets: the task, the class names, and the label form of the training data."""

    task: str
    class_names: list[str] | None
    form: str  # "int" | "onehot" | "float_int" | "str" | "float" | "mask"

    @property
    def n_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)


@dataclass
class Raw:
    """A source's data before the splits: encoded targets, the training and the source's own test split."""

    info: DataInfo
    labels: Labels
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None


@dataclass
class StreamSplit:
    """One split of a streamed source.

    Attributes:
        n: number of examples.
        make: ``make(shuffle_seed)`` returns an unbatched ``tf.data.Dataset`` of ``(image uint8, label int64)``,
            decoded in parallel; in a fixed order when ``shuffle_seed`` is None, else shuffled with that seed
            and reshuffled on every iteration (every epoch).
        labels: the labels in the fixed order, when known without decoding (image_dir); else None.
        find_bad: decodes the split's files one by one and returns a message naming the first that fails
            (None if all decode); called only after the pipeline failed (see ``pipeline.data_error``).
    """

    n: int
    make: Callable[[int | None], Any]
    labels: np.ndarray | None = None
    find_bad: Callable[[], str | None] | None = None


@dataclass
class Streamed:
    """A streamed data set: its facts and its splits (``val``/``test`` may be None)."""

    info: DataInfo
    train: StreamSplit
    val: StreamSplit | None
    test: StreamSplit | None
    source: str = ""
