"""What a recipe compiles with: the task's default loss and metrics, and the switch to one-hot labels.

``finalize`` writes the defaults into the recipe (the run folder's recipe shows them). Labels go
one-hot for a batch-level augmentation (MixUp, CutMix mix them) or a categorical loss; sparse
losses and metrics then become their categorical forms (``switch_loss``).

Example:
    >>> finalize(recipe, "classification", 10).train.loss
    'sparse_categorical_crossentropy'
"""

from __future__ import annotations

from dlrecipe.build.augment import has_batch_level
from dlrecipe.recipe.schema import Recipe
from dlrecipe.tasks import segmentation

DEFAULT_LOSS = {"classification": "sparse_categorical_crossentropy", "regression": "mean_squared_error",
                "segmentation": "sparse_categorical_crossentropy"}  # segmentation: per pixel, averaged
DEFAULT_METRICS = {"classification": ["accuracy"], "regression": ["mean_absolute_error"]}
_SPARSE_TO_DENSE = {
    "sparse_categorical_crossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "CategoricalCrossentropy",
    "sparse_categorical_accuracy": "categorical_accuracy",
    "SparseCategoricalAccuracy": "CategoricalAccuracy",
    "sparse_top_k_categorical_accuracy": "top_k_categorical_accuracy",
    "SparseTopKCategoricalAccuracy": "TopKCategoricalAccuracy",
}
DENSE_LOSSES = ("categorical_crossentropy", "CategoricalCrossentropy", "categorical_focal_crossentropy",
                "CategoricalFocalCrossentropy", "categorical_hinge", "CategoricalHinge")


def switch_loss(train, task: str):
    """The ``train:`` section with one-hot-label counterparts of sparse losses and metrics.

    MixUp and CutMix produce soft (mixed one-hot) labels, so a sparse loss cannot take them:
    ``sparse_categorical_crossentropy`` becomes ``categorical_crossentropy`` (a mapping
    ``{type: SparseCategoricalCrossentropy, ...}`` keeps its other arguments), and sparse
    accuracy metrics their categorical forms. The resolved recipe shows the switch.
    """
    if task != "classification":
        return train

    def dense(value):
        if isinstance(value, str):
            return _SPARSE_TO_DENSE.get(value, value)
        if isinstance(value, dict) and value.get("type") in _SPARSE_TO_DENSE:
            return {**value, "type": _SPARSE_TO_DENSE[value["type"]]}
        return value

    update = {"loss": dense(train.loss if train.loss is not None else "sparse_categorical_crossentropy")}
    if train.metrics is not None:
        update["metrics"] = [dense(m) for m in train.metrics]
    return train.model_copy(update=update)


def dense_loss(loss) -> bool:
    """Whether ``train.loss`` names a categorical loss that takes one-hot targets (e.g. for ``label_smoothing``)."""
    name = loss.get("type") if isinstance(loss, dict) else loss
    return name in DENSE_LOSSES


def wants_one_hot(recipe) -> bool:
    """Whether a classification recipe's labels go one-hot: a batch-level augmentation, or a categorical
    (not sparse) loss such as ``{type: CategoricalCrossentropy, label_smoothing: 0.1}``."""
    return has_batch_level(recipe.data.augment) or dense_loss(recipe.train.loss)


def finalize(recipe: Recipe, task: str, n_classes: int | None = None) -> Recipe:
    """The recipe with the task's default loss and metrics written in (nothing hidden).

    Segmentation's default metrics are pixel accuracy and, when ``n_classes`` is known,
    ``{type: MeanIoU, num_classes: n, sparse_y_pred: false, name: mean_iou}``.
    With a batch-level augmentation (MixUp, CutMix) a sparse loss or metric becomes its categorical
    counterpart, since the labels are then fed one-hot (``switch_loss``); so do sparse metrics
    when the loss is a categorical one (``dense_loss``), which also gets one-hot labels.
    """
    train = recipe.train
    update = {}
    if train.loss is None:
        update["loss"] = DEFAULT_LOSS.get(task, "mean_squared_error")
    if train.metrics is None:
        if task == segmentation.SEGMENTATION:
            update["metrics"] = segmentation.default_metrics(n_classes)
        else:
            update["metrics"] = DEFAULT_METRICS.get(task, [])
    if update:
        train = train.model_copy(update=update)
    if task == "classification" and wants_one_hot(recipe):
        train = switch_loss(train, task)  # one-hot (or MixUp/CutMix's mixed) labels: see data.pipeline
    if train is recipe.train:
        return recipe
    return recipe.model_copy(update={"train": train})
