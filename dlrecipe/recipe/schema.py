"""The recipe's skeleton as a pydantic schema: keys, types and ranges.

Layer, optimizer, loss, callback and other Keras arguments are *not* re-typed
here: Keras checks them when ``resolve`` constructs the objects. This module
imports no TensorFlow, so structural errors are found within a second.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dlrecipe.errors import shown

# Bounds the backends accept: seeds are uint32, sizes and counts int32; floats must be finite.
INT32_MAX = 2**31 - 1
MAX_EPOCHS = 100_000  # far beyond any training, and dlrecipe lr still plots it
PositiveInt = Annotated[int, Field(gt=0, le=INT32_MAX)]
Count = Annotated[int, Field(gt=0, le=1000)]  # ensemble members, search trials, executions per trial
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Nested = Union[str, dict[str, Any]]  # a Keras string or a mapping with `type:`


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataConfig(Strict):
    source: Literal["fashion_mnist", "npz", "csv", "image_dir", "tfds"]
    path: str | None = None
    task: Literal["classification", "regression", "segmentation"] | None = None
    test_path: str | None = None
    test_split: Fraction | None = None
    validation_split: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    subset: PositiveInt | None = None
    normalize: Literal["none", "rescale", "minmax", "standardize", "per_channel", "gcn", "zca"] = "none"
    pca: PositiveInt | None = None
    augment: list[dict[str, Any]] = []
    keys: dict[Literal["x_train", "y_train", "x_test", "y_test"], str] | None = None
    label: str | None = None
    features: list[str] | None = None
    missing: Literal["drop", "mean", "median", "most_frequent"] | None = None
    image_size: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] | None = None
    color_mode: Literal["grayscale", "rgb", "rgba"] | None = None
    name: str | None = None
    split: dict[Literal["train", "test"], str] | str | None = None
    data_dir: str | None = None


class ModelConfig(Strict):
    input_shape: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    defaults: dict[str, Any] = {}
    layers: Annotated[list[dict[str, Any]], Field(min_length=1)]


def check_typed_items(items: Any, where: str, what: str, example: str, problems: Any) -> None:
    """Each item of a list of Keras objects is a mapping with a string ``type:``.

    ``repeat`` layers nest more layers, checked the same way.
    """
    if not isinstance(items, list):
        return  # the schema reports the wrong type
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if not isinstance(kind, str):
            problems.add(here, f"Received: {shown(item)}. Every item needs 'type:' naming {what}, e.g. {example}.")
        elif kind == "repeat":
            inner = item.get("layers")
            if not isinstance(inner, list) or not inner:
                problems.add(f"{here}.layers", "'repeat' needs 'layers:', a non-empty list of layers, e.g. "
                             "{type: repeat, times: 2, layers: [{type: Dense, units: 64}]}.")
            else:
                check_typed_items(inner, f"{here}.layers", what, example, problems)


class LearningRate(Strict):
    """An epoch-based schedule of dlrecipe (see the format's table)."""

    schedule: str
    initial: Annotated[Finite, Field(gt=0.0)] | None = None  # required by every schedule but piecewise
    warmup_epochs: Annotated[Finite, Field(ge=0.0, le=MAX_EPOCHS)] = 0.0
    final: Annotated[Finite, Field(ge=0.0)] | None = None
    factor: Annotated[Finite, Field(gt=0.0)] | None = None
    every_epochs: Annotated[Finite, Field(gt=0.0)] | None = None
    boundaries_epochs: list[Finite] | None = None
    values: list[Finite] | None = None
    rate: Annotated[Finite, Field(ge=0.0)] | None = None
    power: Annotated[Finite, Field(gt=0.0)] | None = None
    period_epochs: Annotated[Finite, Field(gt=0.0)] | None = None
    period_mult: Annotated[Finite, Field(ge=1.0)] | None = None
    max: Annotated[Finite, Field(gt=0.0)] | None = None
    mode: Literal["triangular", "triangular2", "exp_range"] | None = None
    gamma: Annotated[Finite, Field(gt=0.0, le=1.0)] | None = None


class TrainConfig(Strict):
    epochs: Annotated[int, Field(gt=0, le=MAX_EPOCHS)] = 10
    batch_size: PositiveInt = 32
    loss: Nested | None = None
    metrics: list[Nested] | None = None
    optimizer: Nested = "adam"
    learning_rate: Annotated[Finite, Field(gt=0.0)] | LearningRate | dict[str, Any] | None = None
    callbacks: list[dict[str, Any]] = []
    ensemble: Count = 1
    cross_validation: Annotated[int, Field(ge=0, le=1000)] = 0
    steps_per_execution: PositiveInt = 1

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _lr_kind(cls, v: Any) -> Any:
        # `schedule:` means a dlrecipe schedule (validated strictly); `type:` a Keras one.
        if isinstance(v, dict) and "schedule" in v:
            return LearningRate.model_validate(v)
        if isinstance(v, dict) and not isinstance(v.get("type"), str):
            raise ValueError("a learning-rate mapping needs 'schedule:' (a dlrecipe schedule, e.g. "
                             "{schedule: cosine, initial: 0.1}) or 'type:' (a Keras schedule, e.g. "
                             "{type: ExponentialDecay, initial_learning_rate: 0.1, decay_steps: 1000, decay_rate: 0.9})")
        return v


class Objective(Strict):
    name: str
    direction: Literal["min", "max"]


class EarlyStop(Strict):
    patience: PositiveInt = 3
    monitor: str | None = None
    min_delta: Annotated[Finite, Field(ge=0.0)] = 0.0


class TuneConfig(Strict):
    tuner: Literal["random", "grid", "bayesian", "hyperband"] = "random"
    objective: str | Objective = "val_loss"
    max_trials: Annotated[int, Field(gt=0, le=100_000)] = 10
    max_epochs: Annotated[int, Field(gt=0, le=MAX_EPOCHS)] | None = None
    executions_per_trial: Count = 1
    early_stopping: EarlyStop | None = None


class RuntimeConfig(Strict):
    strategy: Literal["auto", "one_device", "mirrored", "multi_worker", "tpu", "data_parallel"] = "auto"
    mixed_precision: Literal[False, "mixed_float16", "mixed_bfloat16"] = False
    jit_compile: Literal["auto"] | bool = "auto"
    deterministic: bool = False
    scale_learning_rate: Literal[False, "linear"] = False  # linear: rates x replicas (dlrecipe.scaling)


class ExportConfig(Strict):
    formats: Annotated[list[Literal["saved_model", "keras", "tflite", "onnx"]], Field(min_length=1)] = ["saved_model"]
    include_preprocessing: bool = True
    class_names: list[str] | None = None


class Recipe(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 42  # NumPy's and the backends' seeds are uint32
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    export: ExportConfig = ExportConfig()


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "tune": TuneConfig,
            "runtime": RuntimeConfig, "export": ExportConfig}
