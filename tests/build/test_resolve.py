"""Tests of the Keras level: dlrecipe.resolve, dlrecipe.check and dlrecipe.model.

Every model here is tiny (a few units, 8x8 inputs) and nothing is trained.
"""

from __future__ import annotations

import keras
import pytest

from dlrecipe.build import checks as check
from dlrecipe.build import resolve
from dlrecipe.build.model import build_layer, build_model, check_output, expand_layers
from dlrecipe.errors import Problem, RecipeError
from dlrecipe.layers.schedules import EpochSchedule
from dlrecipe.recipe.schema import Recipe

NONE = {"kind": "none"}


def recipe(layers=None, **sections) -> Recipe:
    doc = {"name": "t", "data": {"source": "npz"}, "model": {"layers": layers or [{"type": "Dense", "units": 3}]}}
    doc.update(sections)
    return Recipe.model_validate(doc)


def error(fn, *args, **kwargs) -> list[Problem]:
    with pytest.raises(RecipeError) as info:
        fn(*args, **kwargs)
    return info.value.problems


def one_error(fn, *args, **kwargs) -> Problem:
    problems = error(fn, *args, **kwargs)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def inbound_names(layer) -> list[str]:
    node = layer._inbound_nodes[0]
    return [t._keras_history.operation.name for t in node.input_tensors]


# --------------------------------------------------------------------------- layers


def test_build_layer_with_nested_initializer_and_regularizer():
    layer = build_layer({"type": "Dense", "units": 4, "kernel_initializer": {"type": "HeNormal", "seed": 1},
                                 "kernel_regularizer": {"type": "L2", "l2": 1e-4}, "bias_initializer": "ones",
                                 "activation": "relu"}, "model.layers[0]", {})
    assert isinstance(layer, keras.layers.Dense) and layer.units == 4
    assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)
    assert layer.kernel_initializer.seed == 1
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
    assert layer.kernel_regularizer.l2 == pytest.approx(1e-4)
    assert isinstance(layer.bias_initializer, keras.initializers.Ones)
    assert layer.activation is keras.activations.relu


def test_defaults_go_only_to_layers_that_accept_them_and_explicit_args_win():
    r = recipe(model={
        "defaults": {"kernel_initializer": {"type": "HeNormal", "seed": 3},
                     "kernel_regularizer": {"type": "L2", "l2": 5e-4}},
        "layers": [{"type": "Conv2D", "filters": 2, "kernel_size": 3, "name": "conv"},
                   {"type": "MaxPooling2D", "name": "pool"},
                   {"type": "Flatten"},
                   {"type": "Dense", "units": 3, "kernel_initializer": "zeros", "name": "dense"}]})
    model = build_model(r, (8, 8, 1), NONE)
    conv, dense = model.get_layer("conv"), model.get_layer("dense")
    assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal) and conv.kernel_initializer.seed == 3
    assert conv.kernel_regularizer.l2 == pytest.approx(5e-4)
    assert isinstance(dense.kernel_initializer, keras.initializers.Zeros)  # explicit beats the default
    assert dense.kernel_regularizer.l2 == pytest.approx(5e-4)
    assert not hasattr(model.get_layer("pool"), "kernel_initializer")
    assert model.output.shape == (None, 3)


def test_applicable_defaults():
    defaults = {"kernel_initializer": "he_normal", "use_bias": False, "pool_size": 3}
    assert resolve.applicable_defaults(keras.layers.Dense, defaults) == {"kernel_initializer": "he_normal",
                                                                        "use_bias": False}
    assert resolve.applicable_defaults(keras.layers.MaxPooling2D, defaults) == {"pool_size": 3}


@pytest.mark.parametrize("kind, hint", [("Dence", "Did you mean 'Dense'?"), ("dense", "Did you mean 'Dense'?"),
                                        ("GlobalAvgPool2d", "Did you mean 'GlobalAvgPool2D'?"), ("Frobnicate", None)])
def test_unknown_layer(kind, hint):
    p = one_error(build_layer, {"type": kind, "units": 4}, "model.layers[2]", {})
    assert p.path == "model.layers[2].type"
    assert f"'{kind}'" in p.message and "Unknown layer type" in p.message
    if hint is None:
        assert "Did you mean" not in p.message and "https://keras.io/api/layers/" in p.message
    else:
        assert hint in p.message


def test_unknown_argument_suggests_and_lists():
    p = one_error(build_layer, {"type": "Dense", "unit": 4}, "model.layers[3]", {})
    assert p.path == "model.layers[3].unit"
    assert "Unknown argument 'unit' for Dense. Did you mean 'units'?" in p.message
    assert "Dense takes: " in p.message and "kernel_initializer" in p.message


def test_unknown_arguments_all_reported():
    problems = error(build_layer, {"type": "Conv2D", "filter": 4, "kernel_sise": 3}, "model.layers[0]", {})
    assert sorted(p.path for p in problems) == ["model.layers[0].filter", "model.layers[0].kernel_sise"]


def test_unknown_argument_of_a_nested_initializer():
    p = one_error(build_layer, {"type": "Dense", "units": 3, "kernel_initializer": {"type": "HeNormal", "sed": 1}},
                  "model.layers[0]", {})
    assert p.path == "model.layers[0].kernel_initializer.sed" and "Did you mean 'seed'?" in p.message


@pytest.mark.parametrize("spec, words", [
    ({"type": "Dense", "units": -4}, "units=-4"),
    ({"type": "Dropout", "rate": 2}, "rate=2"),
    ({"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "sme"}, "padding"),
])
def test_value_refused_by_keras(spec, words):
    p = one_error(build_layer, spec, "model.layers[1]", {})
    assert p.path == "model.layers[1]"
    assert f"{spec['type']}(" in p.message and "was refused by Keras" in p.message and words in p.message


def test_bad_regularizer_value_has_its_path():
    p = one_error(build_layer, {"type": "Dense", "units": 3, "kernel_regularizer": {"type": "L2", "l2": -1}},
                  "model.layers[0]", {})
    assert p.path == "model.layers[0].kernel_regularizer" and "l2=-1" in p.message


def test_unknown_activation_string():
    p = one_error(build_layer, {"type": "Dense", "units": 3, "activation": "rellu"}, "model.layers[1]", {})
    assert p.path == "model.layers[1].activation"
    assert "Unknown activation 'rellu'. Did you mean 'relu'?" in p.message and "Known:" in p.message


def test_activation_must_be_a_name():
    p = one_error(build_layer, {"type": "Dense", "units": 3, "activation": 3}, "model.layers[1]", {})
    assert p.path == "model.layers[1].activation" and "LeakyReLU" in p.message


@pytest.mark.parametrize("value, path, words", [
    ("he_normall", "model.layers[0].kernel_initializer", "Unknown initializer 'he_normall'. Did you mean 'he_normal'?"),
    ({"type": "HeNormall"}, "model.layers[0].kernel_initializer.type", "Did you mean 'HeNormal'?"),
    ({"seed": 1}, "model.layers[0].kernel_initializer.type", "Expected a mapping with 'type:'"),
])
def test_unknown_initializer(value, path, words):
    p = one_error(build_layer, {"type": "Dense", "units": 3, "kernel_initializer": value}, "model.layers[0]", {})
    assert p.path == path and words in p.message


# --------------------------------------------------------------------------- optimizer, schedule, loss, metrics


@pytest.mark.parametrize("name, cls", [("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW),
                                       ("rmsprop", keras.optimizers.RMSprop), ("SGD", keras.optimizers.SGD)])
def test_optimizer_by_name(name, cls):
    opt = resolve.optimizer(name, 0.01)
    assert type(opt) is cls
    assert float(opt.learning_rate) == pytest.approx(0.01)


def test_optimizer_mapping_with_learning_rate_given_separately():
    opt = resolve.optimizer({"type": "SGD", "momentum": 0.9, "nesterov": True, "global_clipnorm": 1.0}, 0.05)
    assert isinstance(opt, keras.optimizers.SGD)
    assert opt.momentum == pytest.approx(0.9) and opt.nesterov is True and opt.global_clipnorm == 1.0
    assert float(opt.learning_rate) == pytest.approx(0.05)


def test_optimizer_without_learning_rate_keeps_keras_default():
    assert float(resolve.optimizer("sgd", None).learning_rate) == pytest.approx(0.01)


def test_learning_rate_set_twice():
    p = one_error(resolve.optimizer, {"type": "SGD", "learning_rate": 0.1}, 0.05)
    assert p.path == "train.optimizer.learning_rate" and "set twice" in p.message


def test_unknown_optimizer():
    p = one_error(resolve.optimizer, "adamm", None)
    assert p.path == "train.optimizer"
    assert "Unknown optimizer 'adamm'. Did you mean 'adam'?" in p.message and "sgd" in p.message


def test_optimizer_refused_argument_is_an_error():
    p = one_error(resolve.optimizer, {"type": "SGD", "momentun": 0.9}, None)
    assert p.path.startswith("train.optimizer") and "momentun" in p.message


def test_optimizer_unknown_argument_has_path_and_suggestion():
    p = one_error(resolve.optimizer, {"type": "SGD", "momentun": 0.9}, None)
    assert p.path == "train.optimizer.momentun" and "Did you mean 'momentum'?" in p.message


def test_keras_schedule():
    s = resolve.keras_schedule({"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_steps": 10,
                                "decay_rate": 0.5})
    assert isinstance(s, keras.optimizers.schedules.ExponentialDecay)
    assert float(s(10)) == pytest.approx(0.05) and float(s(20)) == pytest.approx(0.025)
    opt = resolve.optimizer("adam", s)
    assert opt._learning_rate is s


@pytest.mark.parametrize("value, path, words", [
    ({"type": "ExponentialDecey", "initial_learning_rate": 0.1}, "train.learning_rate.type", "Did you mean 'ExponentialDecay'?"),
    ({"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_step": 1, "decay_rate": 0.5},
     "train.learning_rate.decay_step", "Did you mean 'decay_steps'?"),
])
def test_keras_schedule_errors(value, path, words):
    p = one_error(resolve.keras_schedule, value)
    assert p.path == path and words in p.message


def test_callback_constructed_with_arguments():
    cb = resolve.callback({"type": "EarlyStopping", "monitor": "val_loss", "patience": 8, "restore_best_weights": True},
                          "train.callbacks[0]")
    assert isinstance(cb, keras.callbacks.EarlyStopping)
    assert (cb.monitor, cb.patience, cb.restore_best_weights) == ("val_loss", 8, True)


@pytest.mark.parametrize("kind, reason", [("ModelCheckpoint", "checkpoints/"), ("CSVLogger", "history.csv"),
                                          ("LambdaCallback", "Python code"), ("TensorBoard", "tensorboard/")])
def test_managed_callbacks_refused_with_reason(kind, reason):
    p = one_error(resolve.callback, {"type": kind}, "train.callbacks[1]")
    assert p.path == "train.callbacks[1].type"
    assert f"{kind} is not available in a recipe" in p.message and reason in p.message


@pytest.mark.parametrize("spec, path, words", [
    ({"type": "EarlyStoping"}, "train.callbacks[0].type", "Did you mean 'EarlyStopping'?"),
    ({"type": "EarlyStopping", "patients": 3}, "train.callbacks[0].patients", "Did you mean 'patience'?"),
])
def test_callback_errors(spec, path, words):
    p = one_error(resolve.callback, spec, "train.callbacks[0]")
    assert p.path == path and words in p.message


def test_losses_by_string_and_mapping():
    assert resolve.loss("sparse_categorical_crossentropy") == "sparse_categorical_crossentropy"
    loss = resolve.loss({"type": "CategoricalCrossentropy", "label_smoothing": 0.1})
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and loss.label_smoothing == pytest.approx(0.1)
    p = one_error(resolve.loss, "sparse_categorical_crossentropyy")
    assert p.path == "train.loss" and "Did you mean 'sparse_categorical_crossentropy'?" in p.message
    p = one_error(resolve.loss, {"type": "CategoricalCrossentropy", "label_smothing": 0.1})
    assert p.path == "train.loss.label_smothing" and "Did you mean 'label_smoothing'?" in p.message


def test_metrics_by_string_and_mapping():
    assert resolve.metric("accuracy", "train.metrics[0]") == "accuracy"
    assert resolve.metric("mae", "train.metrics[0]") == "mae"
    m = resolve.metric({"type": "TopKCategoricalAccuracy", "k": 3}, "train.metrics[1]")
    assert isinstance(m, keras.metrics.TopKCategoricalAccuracy) and m._fn_kwargs["k"] == 3
    p = one_error(resolve.metric, {"type": "Precison"}, "train.metrics[2]")
    assert p.path == "train.metrics[2].type" and "Did you mean 'Precision'?" in p.message
    p = one_error(resolve.metric, "precison", "train.metrics[2]")
    assert p.path == "train.metrics[2]" and "Unknown metric 'precison'" in p.message


def test_metric_typo_suggests_accuracy_string():
    p = one_error(resolve.metric, "acuracy", "train.metrics[0]")
    assert "Did you mean 'accuracy'?" in p.message


# --------------------------------------------------------------------------- check


BROKEN = {
    "name": "t",
    "data": {"source": "npz", "augment": [{"type": "RandomFlipp"}]},
    "model": {"defaults": {"kernel_initializer": "he_normall"},
              "layers": [{"type": "Dence", "units": 3}, {"type": "Dense", "unitz": 3}]},
    "train": {"loss": "msee", "metrics": ["accuracy", "precison"], "optimizer": "adamm",
              "callbacks": [{"type": "EarlyStoping"}, {"type": "CSVLogger", "filename": "x"}],
              "learning_rate": {"schedule": "cosin", "initial": 0.1}},
}


def test_keras_problems_reports_every_bad_name():
    problems = check.keras_problems(BROKEN, [])
    by_path = {p.path: p.message for p in problems}
    assert set(by_path) == {"model.defaults.kernel_initializer", "model.layers[0].type", "model.layers[1].unitz",
                            "data.augment[0].type", "train.loss", "train.metrics[1]", "train.learning_rate.schedule",
                            "train.optimizer", "train.callbacks[0].type", "train.callbacks[1].type"}
    assert "Did you mean 'he_normal'?" in by_path["model.defaults.kernel_initializer"]
    assert "Did you mean 'RandomFlip'?" in by_path["data.augment[0].type"]
    assert "Did you mean 'cosine'?" in by_path["train.learning_rate.schedule"]
    assert "history.csv" in by_path["train.callbacks[1].type"]


def test_keras_problems_skips_what_is_already_reported():
    structural = [Problem("train.loss", "x"), Problem("train.callbacks[0]", "y"), Problem("data", "z")]
    paths = {p.path for p in check.keras_problems(BROKEN, structural)}
    assert "train.loss" not in paths and "train.callbacks[0].type" not in paths
    assert "data.augment[0].type" not in paths
    assert {"train.callbacks[1].type", "model.layers[0].type", "train.metrics[1]"} <= paths


def test_keras_problems_checks_the_other_layers():
    structural = [Problem("model.layers[0]", "needs type")]
    paths = {p.path for p in check.keras_problems(BROKEN, structural)}
    assert "model.layers[1].unitz" in paths


def test_build_all_collects_every_problem():
    r = recipe([{"type": "Dense", "units": 4}], train={"loss": "msee", "optimizer": "adamm", "metrics": ["acc", "f1"],
                                                       "callbacks": [{"type": "ModelCheckpoint"}]})
    problems = error(check.build_all, r, (5,), NONE, task="classification", n_classes=3, steps_per_epoch=10)
    by_path = {p.path: p.message for p in problems}
    assert set(by_path) == {"model.layers[0]", "train.optimizer", "train.loss", "train.metrics[1]",
                            "train.callbacks[0].type"}
    assert "4 output(s) per example, but the data has 3 classes" in by_path["model.layers[0]"]


def test_build_all_builds_a_valid_recipe():
    r = recipe([{"type": "Dense", "units": 3, "activation": "softmax"}],
               train={"epochs": 5, "learning_rate": {"schedule": "cosine", "initial": 0.1, "warmup_epochs": 1},
                      "optimizer": {"type": "SGD", "momentum": 0.9},
                      "callbacks": [{"type": "EarlyStopping", "patience": 2}]})
    built = check.build_all(r, (5,), NONE, task="classification", n_classes=3, steps_per_epoch=10)
    assert built.model.output.shape == (None, 3)
    assert built.loss == "sparse_categorical_crossentropy" and built.metrics == ["accuracy"]  # task defaults
    lr = built.optimizer._learning_rate
    assert isinstance(lr, EpochSchedule) and (lr.steps_per_epoch, lr.epochs) == (10, 5)
    assert float(lr(10)) == pytest.approx(0.1) and float(lr(5)) == pytest.approx(0.05)
    assert isinstance(built.callbacks[0], keras.callbacks.EarlyStopping) and built.callbacks[0].patience == 2


def test_feature_problems(monkeypatch):
    monkeypatch.setattr(check, "missing_onnx", lambda: ["tf2onnx"])  # as without the onnx extra
    r = recipe(train={"learning_rate": {"schedule": "cosine", "initial": 0.1},
                      "callbacks": [{"type": "EarlyStopping"}, {"type": "ReduceLROnPlateau", "factor": 0.1}]},
               runtime={"strategy": "multi_worker"}, export={"formats": ["saved_model", "onnx"]})
    by_path = {p.path: p.message for p in check.feature_problems(r)}
    assert set(by_path) == {"train.callbacks[1]", "runtime.strategy", "export.formats"}
    assert "ReduceLROnPlateau and a learning-rate schedule" in by_path["train.callbacks[1]"]
    assert "data_parallel" in by_path["runtime.strategy"] and "KERAS_BACKEND=jax" in by_path["runtime.strategy"]
    assert "tf2onnx" in by_path["export.formats"] and "pip install -e '.[onnx]'" in by_path["export.formats"]


def test_feature_problems_plateau_with_keras_schedule_but_not_with_a_number():
    plateau = [{"type": "ReduceLROnPlateau"}]
    keras_lr = {"type": "ExponentialDecay", "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}
    assert [p.path for p in check.feature_problems(recipe(train={"learning_rate": keras_lr, "callbacks": plateau}))] \
        == ["train.callbacks[0]"]
    assert check.feature_problems(recipe(train={"learning_rate": 0.1, "callbacks": plateau})) == []


# --------------------------------------------------------------------------- model


def test_repeat_with_first_and_renamed_copies():
    r = recipe([{"type": "repeat", "times": 3, "first": {"strides": 2},
                 "layers": [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "name": "c"}]},
                {"type": "Flatten"}])
    items = expand_layers(r.model.layers, "model.layers")
    assert len(items) == 4
    assert [s.get("name") for _, s in items[:3]] == ["c", "c_2", "c_3"]
    model = build_model(r, (8, 8, 1), NONE)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.name for c in convs] == ["c", "c_2", "c_3"]
    assert [c.strides for c in convs] == [(2, 2), (1, 1), (1, 1)]
    assert model.output.shape == (None, 4 * 4 * 4)


def test_repeat_renames_inputs_inside_the_copies():
    r = recipe([{"type": "repeat", "times": 2, "layers": [
        {"type": "Dense", "units": 4, "name": "d"}, {"type": "Add", "inputs": ["d", "inputs"], "name": "s"}]}])
    model = build_model(r, (4,), NONE)
    assert inbound_names(model.get_layer("s")) == ["d", "raw_inputs"]
    assert inbound_names(model.get_layer("s_2")) == ["d_2", "raw_inputs"]
    assert inbound_names(model.get_layer("d_2")) == ["s"]


def test_repeat_errors():
    p = one_error(expand_layers, [{"type": "repeat", "times": 0, "layers": [{"type": "Dense", "units": 1}]}], "model.layers")
    assert p.path == "model.layers[0].times" and "from 1 to 1000" in p.message
    p = one_error(expand_layers, [{"type": "repeat", "times": 2, "frist": {}, "layers": [{"type": "Dense"}]}], "model.layers")
    assert p.path == "model.layers[0].frist" and "repeat takes: times, layers, first" in p.message


def test_graph_with_names_and_inputs():
    r = recipe([{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "name": "a"},
                {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "name": "b"},
                {"type": "Add", "inputs": ["a", "b"], "name": "sum"},
                {"type": "Concatenate", "inputs": ["sum", "a", "inputs"], "name": "cat"},
                {"type": "GlobalAveragePooling2D"}])
    model = build_model(r, (8, 8, 1), NONE)
    assert model.output.shape == (None, 4 + 4 + 1)
    assert inbound_names(model.get_layer("sum")) == ["a", "b"]
    assert inbound_names(model.get_layer("cat")) == ["sum", "a", "raw_inputs"]
    assert inbound_names(model.get_layer("b")) == ["a"]  # a layer without inputs: takes the previous one


def test_inputs_naming_an_unknown_layer():
    r = recipe([{"type": "Dense", "units": 4, "name": "first"}, {"type": "Add", "inputs": ["frist", "first"]}])
    p = one_error(build_model, r, (3,), NONE)
    assert p.path == "model.layers[1].inputs"
    assert "No earlier layer is named 'frist'. Did you mean 'first'?" in p.message and "Known so far: inputs, first" in p.message


def test_shape_error_names_the_layer():
    r = recipe([{"type": "Dense", "units": 4}, {"type": "Conv2D", "filters": 3, "kernel_size": 3}])
    p = one_error(build_model, r, (3,), NONE)
    assert p.path == "model.layers[1]"
    assert "Conv2D cannot take its input of shape (None, 4)" in p.message


def test_shape_error_inside_repeat_names_the_recipe_path():
    r = recipe([{"type": "Flatten"}, {"type": "repeat", "times": 2, "layers": [{"type": "MaxPooling2D"}]}])
    p = one_error(build_model, r, (4, 4, 1), NONE)
    assert p.path == "model.layers[1].layers[0]" and "MaxPooling2D cannot take" in p.message


def test_build_model_reports_every_bad_layer():
    r = recipe([{"type": "Dense", "units": 4, "kernel_size": 3}, {"type": "Dence", "units": 4}, {"type": "Dropout", "rate": 3}])
    assert [p.path for p in error(build_model, r, (3,), NONE)] == ["model.layers[0].kernel_size", "model.layers[1].type",
                                                                   "model.layers[2]"]


def test_duplicate_layer_names_are_a_recipe_error():
    r = recipe([{"type": "Dense", "units": 4, "name": "d"}, {"type": "Dense", "units": 4, "name": "d"}])
    p = one_error(build_model, r, (4,), NONE)
    assert p.path == "model.layers[1].name"


def test_nested_repeat_with_a_named_layer():
    r = recipe([{"type": "repeat", "times": 2, "layers": [
        {"type": "repeat", "times": 2, "layers": [{"type": "Dense", "units": 4, "name": "d"}]}]}])
    model = build_model(r, (4,), NONE)
    assert len(model.layers) == 5


def test_check_output():
    model = build_model(recipe([{"type": "Dense", "units": 4}]), (3,), NONE)
    p = one_error(check_output, model, 10, "classification", "model.layers[0]")
    assert p.path == "model.layers[0]"
    assert "ends with 4 output(s) per example, but the data has 10 classes" in p.message and "units: 10" in p.message
    check_output(model, 4, "classification", "model.layers[0]")  # matches
    check_output(model, None, "regression", "model.layers[0]")  # not a classification
    binary = build_model(recipe([{"type": "Dense", "units": 1, "activation": "sigmoid"}]), (3,), NONE)
    check_output(binary, 2, "classification", "model.layers[0]")  # one sigmoid unit for two classes


def test_a_model_that_ends_without_flattening_is_refused_for_classification_and_regression():
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(10, 3, strides=2, padding="same")(inputs))  # (None, 14, 14, 10)
    for task in ("classification", "regression"):
        p = one_error(check_output, model, 10 if task == "classification" else None, task, "model.layers[0]")
        assert p.path == "model.layers[0]" and "(None, 14, 14, 10)" in p.message and "Flatten" in p.message


@pytest.mark.parametrize("times, words", [(1001, "from 1 to 1000"), (1000, "more than 10,000 layers")])
def test_repeat_is_bounded_before_anything_is_built(times, words):
    layers = [{"type": "repeat", "times": times, "layers": [{"type": "Dense", "units": 2}] * 11}]
    p = one_error(expand_layers, layers, "model.layers")
    assert p.path == "model.layers[0].times" and words in p.message


def test_text_where_keras_wants_a_number_names_the_argument():
    p = one_error(resolve.construct, keras.layers.Conv2D, {"filters": "many", "kernel_size": 3}, "model.layers[2]")
    assert p.path == "model.layers[2].filters"
    assert "Received: filters='many'. Expected a number here" in p.message


def test_every_problem_of_a_layer_is_reported_at_once_nested_ones_included():
    spec = {"type": "Conv2D", "filtres": 8, "kernel_size": 3, "activaton": "relu",
            "kernel_initializer": {"type": "HeNormal", "sed": 1}, "bias_regularizer": {"type": "L2", "l22": 0.1}}
    paths = sorted(p.path for p in error(build_layer, spec, "model.layers[0]", {}))
    assert paths == ["model.layers[0].activaton", "model.layers[0].bias_regularizer.l22",
                     "model.layers[0].filtres", "model.layers[0].kernel_initializer.sed"]


@pytest.mark.parametrize("args, path, words", [
    ({"patience": "three"}, "train.callbacks[0].patience", "Expected a number (default: 0)"),
    ({"min_delta": "1e-3"}, "train.callbacks[0].min_delta", "YAML reads '1e-3' as text"),
    ({"restore_best_weights": "yes please"}, "train.callbacks[0].restore_best_weights", "Expected true or false"),
])
def test_callback_arguments_of_the_wrong_type_are_refused_before_training(args, path, words):
    p = one_error(resolve.callback, {"type": "EarlyStopping", **args}, "train.callbacks[0]")
    assert p.path == path and words in p.message


def test_a_monitor_the_run_does_not_log_is_refused_with_a_suggestion():
    r = recipe([{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}],
               train={"metrics": ["acc"], "callbacks": [{"type": "EarlyStopping", "monitor": "val_los"},
                                                       {"type": "ReduceLROnPlateau", "monitor": "val_acc"}]})
    p = one_error(check.build_all, r, (4, 4, 1), NONE, task="classification", n_classes=3, steps_per_epoch=1)
    assert p.path == "train.callbacks[0].monitor" and "Did you mean 'val_loss'?" in p.message
    assert "It logs: loss, acc, val_loss, val_acc." in p.message


def test_a_misspelt_defaults_key_that_no_layer_takes_is_refused():
    fixed = {"model": {"defaults": {"kernel_initialiser": "he_normal", "use_bias": False},
                       "layers": [{"type": "Dense", "units": 2}]}}
    [p] = check.keras_problems(fixed, [])
    assert p.path == "model.defaults.kernel_initialiser" and "Did you mean 'kernel_initializer'?" in p.message


def test_a_defaults_key_reaching_the_layers_inside_a_block_is_fine():
    fixed = {"model": {"defaults": {"kernel_regularizer": {"type": "L2", "l2": 1e-4}},
                       "layers": [{"type": "residual", "filters": 4}]}}
    assert check.keras_problems(fixed, []) == []


@pytest.mark.parametrize("name", ["crossentropy", "ce"])
def test_metric_names_keras_3_no_longer_compiles_are_refused(name):
    p = one_error(resolve.metric, name, "train.metrics[0]")
    assert p.path == "train.metrics[0]" and f"Unknown metric '{name}'" in p.message


@pytest.mark.parametrize("fixed, path", [
    ({"model": {"layers": [{"type": "repeat", "times": 2, "layers": [3]}]}}, "model.layers[0].layers[0]"),
    ({"model": {"layers": [{"type": "repeat", "times": 2, "layers": 7}]}}, "model.layers[0].layers"),
])
def test_found_by_fuzzing_a_repeat_of_non_layers_is_a_problem_not_a_traceback(fixed, path):
    [p] = check.keras_problems(fixed, [])
    assert p.path == path and "Expected a" in p.message


def test_found_by_fuzzing_augment_true_is_left_to_the_schema():
    assert check.keras_problems({"data": {"augment": True}, "model": {"layers": []}}, []) == []


def test_a_huge_value_is_shown_cut_in_messages():
    from dlrecipe.errors import shown
    text = shown(list(range(5000)))
    assert len(text) < 200 and "5,000 items" in text
