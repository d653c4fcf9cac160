"""Every Keras object dlrecipe defines, in one registry (the Keras idiom: ``ALL_OBJECTS`` and ``get``).

Each class is registered with Keras by its own module (``@keras.saving.register_keras_serializable(
package="dlrecipe")``, so ``dlrecipe>Residual``, ``dlrecipe>FancyPCA``, ...); importing this module
imports them all, so every model dlrecipe saves loads with ``safe_mode=True``.

Example:
    >>> get("dlrecipe>FancyPCA") is get("FancyPCA")
    True
"""

from __future__ import annotations

from dlrecipe.layers.augment import FancyPCA, ScaledGaussianNoise
from dlrecipe.layers.blocks.conv import ConvBNAct, Inception, VggBlock
from dlrecipe.layers.blocks.densenet import DenseBlock, Transition
from dlrecipe.layers.blocks.grouped import GroupedConv1D, GroupedConv2D, GroupedConv3D
from dlrecipe.layers.blocks.lrn import LRN
from dlrecipe.layers.blocks.maxout import Maxout
from dlrecipe.layers.blocks.residual import Residual, Resnext
from dlrecipe.layers.blocks.upsample import Upsample
from dlrecipe.layers.preprocessing import GlobalContrastNormalization
from dlrecipe.layers.schedules import EpochSchedule

PACKAGE = "dlrecipe"  # the package of every registered name: "dlrecipe>ClassName"

ALL_OBJECTS = {
    ConvBNAct, VggBlock, Inception, Residual, Resnext, DenseBlock, Transition, Maxout, LRN, Upsample,
    GroupedConv1D, GroupedConv2D, GroupedConv3D,
    FancyPCA, ScaledGaussianNoise, GlobalContrastNormalization,
    EpochSchedule,
}
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}


def get(name: str) -> type:
    """The dlrecipe class registered as ``name``: ``"FancyPCA"`` or ``"dlrecipe>FancyPCA"``.

    Raises:
        ValueError: ``name`` is not one of dlrecipe's Keras objects.
    """
    package, _, short = name.rpartition(">")
    if package in ("", PACKAGE) and short in ALL_OBJECTS_DICT:
        return ALL_OBJECTS_DICT[short]
    raise ValueError(f"Could not interpret dlrecipe object identifier: {name!r}. Known: "
                     f"{', '.join(sorted(ALL_OBJECTS_DICT))}.")
