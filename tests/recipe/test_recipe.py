"""Tests of recipe loading without Keras: safe YAML, schema, extends, --set, search spaces.

This file must not import keras or tensorflow (structural errors are found before
TensorFlow is imported); ``test_no_tensorflow_import`` checks it in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dlrecipe.errors import Problem, RecipeError
from dlrecipe.io import dump_yaml
from dlrecipe.recipe.loader import inspect_recipe, load_recipe, parse_set_path

# --------------------------------------------------------------------------- helpers

MINIMAL = """\
data:
  source: npz
  path: d.npz
model:
  layers:
    - {type: Conv2D, filters: 8, kernel_size: 3}
    - {type: Dense, units: 2}
train:
  epochs: 3
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, sets: list[str] | tuple[str, ...] = ()) -> list[Problem]:
    found = inspect_recipe(path, list(sets))
    assert found.loaded is None, "expected the recipe to be refused"
    assert found.problems
    return found.problems


def only(problems: list[Problem], path: str) -> Problem:
    hits = [p for p in problems if p.path == path]
    assert len(hits) == 1, f"expected one problem at {path!r}, got: {[str(p) for p in problems]}"
    return hits[0]


def line_of(problem: Problem) -> tuple[Path, int]:
    assert problem.where is not None, f"no line for: {problem}"
    file, line = problem.where.rsplit(":", 1)
    return Path(file).resolve(), int(line)


def assert_at(problem: Problem, file: Path, line: int) -> None:
    assert line_of(problem) == (file.resolve(), line), str(problem)


# --------------------------------------------------------------------------- safe YAML


def test_python_tag_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    path = write(tmp_path, "evil.yaml", f"""\
        name: evil
        seed: !!python/object/apply:os.system ["touch {marker}"]
        data: {{source: npz}}
        """)
    [p] = problems_of(path)
    assert not marker.exists()
    assert "python/object/apply:os.system" in p.message
    assert "safe loading" in p.message
    assert_at(p, path, 2)


@pytest.mark.parametrize("text, line, words", [
    ("name: x\ndata:\n  source: npz\n path: x\nmodel: {}\n", 4, "expected <block end>"),
    ("name: x\nmodel:\n  layers:\n    - {type: Dense, units: 3\n    - {type: Dense}\ntrain: {}\n", 5, "expected ','"),
    ("name: x\n\tseed: 2\n", 2, "'\\t'"),
])
def test_broken_yaml_names_the_line(tmp_path, text, line, words):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    [p] = problems_of(path)
    assert p.message.startswith("Broken YAML")
    assert words in p.message
    assert_at(p, path, line)


def test_duplicate_keys_are_an_error_with_both_lines(tmp_path):
    path = write(tmp_path, "dup.yaml", """\
        data: {source: npz}
        model:
          layers:
            - {type: Dense, units: 3}
        train:
          epochs: 3
          batch_size: 8
          epochs: 4
        """)
    [p] = problems_of(path)
    assert p.path == "train.epochs"
    assert "Duplicate key 'epochs'" in p.message and "first at line 6" in p.message
    assert_at(p, path, 8)


def test_duplicate_key_inside_a_flow_mapping_of_a_list(tmp_path):
    path = write(tmp_path, "dup.yaml", """\
        data: {source: npz}
        model:
          layers:
            - {type: Dense, units: 3}
            - {type: Dense, units: 3, units: 4}
        """)
    [p] = problems_of(path)
    assert p.path == "model.layers[1].units"
    assert "Duplicate key 'units'" in p.message
    assert_at(p, path, 5)


@pytest.mark.parametrize("text, word", [("", "empty"), ("# only a comment\n", "empty"), ("- 1\n- 2\n", "list")])
def test_empty_or_non_mapping_file(tmp_path, text, word):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    [p] = problems_of(path)
    assert f"The recipe is {word}" in p.message
    assert "expected a mapping" in p.message
    assert p.where == str(path)


def test_missing_file(tmp_path):
    [p] = problems_of(tmp_path / "nope.yaml")
    assert p.path == str(tmp_path / "nope.yaml")
    assert "File not found" in p.message


# --------------------------------------------------------------------------- schema


def test_every_problem_of_a_file_at_once_sorted_by_line(tmp_path):
    # Sections in an order unlike the schema's, so that sorting by line matters.
    path = write(tmp_path, "five.yaml", """\
        export:
          formats: [kerass]
        train:
          epochs: -1
        runtime:
          strategy: mirored
        data:
          source: npz
          normalise: rescale
        model:
          layers:
            - {type: Dense, units: 3}
            - {units: 3}
        """)
    problems = problems_of(path)
    assert [p.path for p in problems] == ["export.formats[0]", "train.epochs", "runtime.strategy",
                                         "data.normalise", "model.layers[1]"]
    assert [line_of(p)[1] for p in problems] == [2, 4, 6, 9, 13]
    assert "Did you mean 'keras'?" in problems[0].message
    assert "greater than 0" in problems[1].message
    assert "Did you mean 'mirrored'?" in problems[2].message
    assert "Did you mean 'normalize'?" in problems[3].message
    assert "needs 'type:'" in problems[4].message
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert len(info.value.problems) == 5


def test_unknown_key_suggests_and_lists_allowed_keys(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  batchsize: 4\n")
    p = only(problems_of(path), "train.batchsize")
    assert "Unknown key 'batchsize'. Did you mean 'batch_size'?" in p.message
    assert "Allowed here: epochs, batch_size, loss, metrics, optimizer, learning_rate, callbacks" in p.message
    assert_at(p, path, 10)


def test_unknown_top_level_key_and_nested_learning_rate_key(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  learning_rate: {schedule: cosine, initial: 0.1, inital: 3}\n"
                 "trian: {}\n")
    problems = problems_of(path)
    top = only(problems, "trian")
    assert "Did you mean 'train'?" in top.message and "Allowed here: name, seed, data, model" in top.message
    assert_at(top, path, 11)
    lr = only(problems, "train.learning_rate.inital")
    assert "Did you mean 'initial'?" in lr.message and "warmup_epochs" in lr.message
    assert_at(lr, path, 10)


@pytest.mark.parametrize("line, expected", [
    ("  epochs: '5'", "Received: epochs='5'. Expected: input should be a valid integer"),
    ("  epochs: true", "Received: epochs=True. Expected: input should be a valid integer"),
    ("  epochs: 2.5", "Received: epochs=2.5"),
    ("  epochs: -3", "Received: epochs=-3. Expected: input should be greater than 0"),
    ("  epochs: 0", "greater than 0"),
])
def test_wrong_type_or_range_for_epochs(tmp_path, line, expected):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("  epochs: 3", line))
    [p] = problems_of(path)
    assert p.path == "train.epochs"
    assert expected in p.message
    assert_at(p, path, 9)


def test_bool_is_not_an_int_for_seed(tmp_path):
    path = write(tmp_path, "r.yaml", "seed: true\n" + MINIMAL)
    [p] = problems_of(path)
    assert p.path == "seed" and "valid integer" in p.message
    assert_at(p, path, 1)


def test_string_is_not_a_bool(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "export:\n  include_preprocessing: 'yes'\n")
    [p] = problems_of(path)
    assert p.path == "export.include_preprocessing" and "valid boolean" in p.message
    assert_at(p, path, 11)


def test_literal_field_suggests_the_close_name(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("source: npz", "source: npzz"))
    [p] = problems_of(path)
    assert p.path == "data.source"
    assert "Received: source='npzz'" in p.message
    assert "'fashion_mnist', 'npz', 'csv', 'image_dir' or 'tfds'" in p.message
    assert "Did you mean 'npz'?" in p.message
    assert_at(p, path, 2)


def test_layer_and_callback_items_need_a_type(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "  callbacks:\n    - {patience: 3}\n")
    [p] = problems_of(path)
    assert p.path == "train.callbacks[0]"
    assert "needs 'type:' naming a Keras callback" in p.message
    assert_at(p, path, 11)


def test_bad_name_pattern(tmp_path):
    path = write(tmp_path, "r.yaml", "name: bad name\n" + MINIMAL)
    [p] = problems_of(path)
    assert p.path == "name" and "it names the run folder" in p.message
    assert_at(p, path, 1)


# --------------------------------------------------------------------------- name and resolved()


def test_name_defaults_to_the_file_stem(tmp_path):
    loaded = load_recipe(write(tmp_path, "my-recipe.v2.yaml", MINIMAL))
    assert loaded.recipe.name == "my-recipe.v2"
    loaded = load_recipe(write(tmp_path, "other.yaml", "name: given\n" + MINIMAL))
    assert loaded.recipe.name == "given"


def test_resolved_fills_defaults_and_round_trips(tmp_path):
    loaded = load_recipe(write(tmp_path, "r.yaml", MINIMAL.replace("units: 2", "units: {choice: [2, 4]}")))
    out = loaded.resolved()
    assert out["name"] == "r" and out["seed"] == 42
    assert out["data"]["path"] == str((tmp_path / "d.npz").resolve())
    assert out["data"]["validation_split"] == 0.1 and out["data"]["normalize"] == "none"
    assert "test_split" not in out["data"]  # None values are left out
    assert out["model"]["layers"][1] == {"type": "Dense", "units": 2}  # the space at its default
    assert out["train"] == {"epochs": 3, "batch_size": 32, "optimizer": "adam", "callbacks": [], "ensemble": 1,
                            "cross_validation": 0, "steps_per_execution": 1}
    assert out["tune"]["tuner"] == "random" and out["tune"]["objective"] == "val_loss"
    assert out["runtime"] == {"strategy": "auto", "mixed_precision": False, "jit_compile": "auto",
                              "deterministic": False, "scale_learning_rate": False}
    assert out["export"] == {"formats": ["saved_model"], "include_preprocessing": True}
    # Training the resolved recipe again gives the same recipe (nothing hidden).
    again = load_recipe(write(tmp_path / "run", "recipe.yaml", dump_yaml(out)))
    assert again.resolved() == out
    assert again.spaces == {}


# --------------------------------------------------------------------------- extends


def test_extends_deep_merges_mappings_and_replaces_lists(tmp_path):
    write(tmp_path, "base/sub/base.yaml", """\
        seed: 7
        data:
          source: npz
          path: ../d.npz
          validation_split: 0.2
        model:
          layers:
            - {type: Dense, units: 5}
            - {type: Dense, units: 3}
        train:
          epochs: 4
          metrics: [accuracy, mse]
          optimizer: {type: SGD, momentum: 0.9}
        """)
    child = write(tmp_path, "child/c.yaml", """\
        extends: ../base/sub/base.yaml
        data:
          normalize: rescale
        model:
          layers:
            - {type: Dense, units: 2}
        train:
          metrics: [accuracy]
          batch_size: 8
          optimizer: {nesterov: true}
        """)
    loaded = load_recipe(child)
    r = loaded.recipe
    assert r.seed == 7 and r.name == "c"
    assert (r.data.source, r.data.validation_split, r.data.normalize) == ("npz", 0.2, "rescale")
    assert r.model.layers == [{"type": "Dense", "units": 2}]  # lists replace
    assert r.train.metrics == ["accuracy"]
    assert (r.train.epochs, r.train.batch_size) == (4, 8)
    assert r.train.optimizer == {"type": "SGD", "momentum": 0.9, "nesterov": True}  # mappings merge
    # The data path of the base is relative to the base file, in another folder.
    assert r.data.path == str((tmp_path / "base" / "d.npz").resolve())
    assert "extends" not in loaded.raw
    # Lines: the child's win; inherited values keep the base's.
    base = tmp_path / "base/sub/base.yaml"
    assert line_of(Problem("", "", loaded.lines["data.normalize"])) == (child.resolve(), 3)
    assert line_of(Problem("", "", loaded.lines["train.optimizer"])) == (child.resolve(), 10)
    assert line_of(Problem("", "", loaded.lines["model.layers[0]"])) == (child.resolve(), 6)
    assert line_of(Problem("", "", loaded.lines["train.epochs"])) == (base.resolve(), 11)
    assert line_of(Problem("", "", loaded.lines["train.optimizer.momentum"])) == (base.resolve(), 13)


def test_extends_errors_point_to_the_file_that_has_them(tmp_path):
    base = write(tmp_path, "base.yaml", """\
        data:
          source: npz
        model:
          layers: [{type: Dense, units: 2}]
        train:
          epochs: 0
        """)
    child = write(tmp_path, "child.yaml", """\
        extends: base.yaml
        train:
          batch_size: -1
        """)
    problems = problems_of(child)
    assert_at(only(problems, "train.epochs"), base, 6)
    assert_at(only(problems, "train.batch_size"), child, 3)


def test_extends_data_paths_relative_to_each_file(tmp_path):
    write(tmp_path, "lib/base.yaml", """\
        data: {source: csv, path: train.csv, test_path: test.csv, label: y}
        model: {layers: [{type: Dense, units: 1}]}
        """)
    child = write(tmp_path, "exp/child.yaml", "extends: ../lib/base.yaml\ndata: {test_path: mine.csv}\n")
    r = load_recipe(child).recipe
    assert r.data.path == str((tmp_path / "lib/train.csv").resolve())
    assert r.data.test_path == str((tmp_path / "exp/mine.csv").resolve())


def test_extends_cycle_is_reported(tmp_path):
    a = write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "seed: 1\nextends: a.yaml\n")
    [p] = problems_of(a)
    assert p.path == "extends"
    assert "cycle" in p.message and "a.yaml -> " in p.message and "b.yaml -> " in p.message


def test_extends_self_is_a_cycle(tmp_path):
    s = write(tmp_path, "s.yaml", "extends: s.yaml\n" + MINIMAL)
    [p] = problems_of(s)
    assert p.path == "extends" and "cycle" in p.message


def test_extends_cycle_names_the_line(tmp_path):
    a = write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    b = write(tmp_path, "b.yaml", "seed: 1\nextends: a.yaml\n")
    [p] = problems_of(a)
    assert_at(p, b, 2)


def test_extends_missing_base(tmp_path):
    path = write(tmp_path, "m.yaml", "name: m\nextends: nothere.yaml\n")
    [p] = problems_of(path)
    assert p.path == "extends"
    assert "nothere.yaml" in p.message and "does not exist" in p.message and "relative to the recipe" in p.message
    assert_at(p, path, 2)


def test_extends_must_be_a_file_name(tmp_path):
    path = write(tmp_path, "m.yaml", "extends: [a.yaml]\n")
    [p] = problems_of(path)
    assert p.path == "extends" and "Expected a file name" in p.message
    assert_at(p, path, 1)


def test_extends_broken_base_names_the_base_line(tmp_path):
    base = write(tmp_path, "base.yaml", "data:\n  source: npz\n path: x\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\n")
    [p] = problems_of(child)
    assert "Broken YAML" in p.message
    assert_at(p, base, 3)


# --------------------------------------------------------------------------- --set


def test_set_parses_yaml_scalars(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    r = load_recipe(path, ["train.epochs=5", "train.learning_rate=1.0e-3", "train.optimizer=sgd",
                           "runtime.deterministic=true", "export.include_preprocessing=false",
                           "name=run-2", "train.batch_size=16", "train.batch_size=64"]).recipe
    assert r.train.epochs == 5 and type(r.train.epochs) is int
    assert r.train.learning_rate == pytest.approx(1e-3) and type(r.train.learning_rate) is float
    assert r.train.optimizer == "sgd"
    assert r.runtime.deterministic is True and r.export.include_preprocessing is False
    assert r.name == "run-2"
    assert r.train.batch_size == 64  # the last --set wins


def test_set_1e_minus_3_is_a_string_in_yaml_1_1(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string: a float needs a dot, 1.0e-3.
    path = write(tmp_path, "r.yaml", MINIMAL)
    problems = problems_of(path, ["train.learning_rate=1e-3"])
    assert {p.path for p in problems} == {"train.learning_rate"}
    assert all("learning_rate='1e-3'" in p.message for p in problems)
    assert all(p.where == "--set train.learning_rate" for p in problems)


def test_set_1e_minus_3_is_one_problem_with_a_hint(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["train.learning_rate=1e-3"])
    assert "1.0e-3" in p.message


def test_set_list_index(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    loaded = load_recipe(path, ["model.layers[0].filters=64", "model.layers[1].activation=softmax"])
    assert loaded.recipe.model.layers[0] == {"type": "Conv2D", "filters": 64, "kernel_size": 3}
    assert loaded.recipe.model.layers[1] == {"type": "Dense", "units": 2, "activation": "softmax"}
    assert loaded.lines["model.layers[0].filters"] == "--set model.layers[0].filters"


def test_set_overrides_a_value_from_the_base(tmp_path):
    write(tmp_path, "base.yaml", MINIMAL)
    child = write(tmp_path, "child.yaml", "extends: base.yaml\ntrain: {batch_size: 8}\n")
    r = load_recipe(child, ["train.epochs=7", "train.batch_size=9"]).recipe
    assert (r.train.epochs, r.train.batch_size) == (7, 9)


def test_set_bool_for_int_is_refused_with_set_origin(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["train.epochs=true"])
    assert p.path == "train.epochs" and "valid integer" in p.message
    assert p.where == "--set train.epochs"


def test_set_new_key_rejected_by_schema_names_set(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["train.epochz=5"])
    assert p.path == "train.epochz"
    assert "Unknown key 'epochz'. Did you mean 'epochs'?" in p.message
    assert p.where == "--set train.epochz"
    assert "--set train.epochz" in str(p)


def test_set_new_section_rejected_by_schema_names_set(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["trian.epochs=5"])
    assert p.path == "trian" and "Did you mean 'train'?" in p.message
    assert p.where is not None and p.where.startswith("--set trian")


def test_set_index_out_of_range(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["model.layers[5].units=3"])
    assert p.path == "--set model.layers[5].units"
    assert "model.layers[5] does not exist" in p.message and "has 2 item(s), indices 0 to 1" in p.message


def test_set_into_a_scalar(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["train.epochs.x=1"])
    assert p.path == "--set train.epochs.x" and "train.epochs is not a mapping" in p.message


@pytest.mark.parametrize("item", ["model..x=1", "train.epochs[x]=1", "1abc=2", "train-x.y=1", "=5"])
def test_set_malformed_path(tmp_path, item):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, [item])
    assert p.path == "--set"
    assert "not a dotted recipe path" in p.message and "Expected --set PATH=VALUE" in p.message


def test_set_without_equals(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["train.epochs"])
    assert p.path == "--set"
    assert "Received: 'train.epochs'" in p.message and "Expected --set PATH=VALUE" in p.message


def test_set_value_that_is_broken_yaml(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(path, ["train.metrics=[accuracy"])
    assert p.path == "--set train.metrics" and "is not valid YAML" in p.message


def test_parse_set_path():
    assert parse_set_path("model.layers[0].filters") == ["model", "layers", 0, "filters"]
    assert parse_set_path("a.b[1][2].c") == ["a", "b", 1, 2, "c"]
    with pytest.raises(ValueError):
        parse_set_path("a.[0]")


# --------------------------------------------------------------------------- search spaces

SPACES = """\
data:
  source: npz
model:
  layers:
    - {type: Dense, units: {choice: [64, 128, 256]}}
    - {type: Dropout, rate: {float: [0.1, 0.5], step: 0.1}}
    - {type: {choice: [Dense, Conv1D]}, units: {int: [16, 64], step: 16}, use_bias: {boolean: true}}
    - {type: repeat, times: {int: [1, 3], default: 2}, layers: [{type: Dense, units: 4}]}
train:
  epochs: {int: [1, 5], default: 3}
  learning_rate: {float: [1.0e-4, 1.0e-1], sampling: log, default: 1.0e-2}
"""


def test_spaces_are_found_named_and_take_their_defaults(tmp_path):
    loaded = load_recipe(write(tmp_path, "s.yaml", SPACES))
    s = loaded.spaces
    assert set(s) == {"model.layers[0].units", "model.layers[1].rate", "model.layers[2].type",
                      "model.layers[2].units", "model.layers[2].use_bias", "model.layers[3].times",
                      "train.epochs", "train.learning_rate"}
    assert all(space.name == path for path, space in s.items())
    assert s["train.learning_rate"].sampling == "log"
    assert (s["model.layers[2].units"].low, s["model.layers[2].units"].high, s["model.layers[2].units"].step) == (16, 64, 16)
    # KerasTuner's rule where no default is given: first choice, low for int and float, the boolean's value.
    assert loaded.values == {"model.layers[0].units": 64, "model.layers[1].rate": 0.1, "model.layers[2].type": "Dense",
                             "model.layers[2].units": 16, "model.layers[2].use_bias": True,
                             "model.layers[3].times": 2, "train.epochs": 3, "train.learning_rate": 0.01}
    layers = loaded.recipe.model.layers
    assert layers[0] == {"type": "Dense", "units": 64}
    assert layers[2] == {"type": "Dense", "units": 16, "use_bias": True}
    assert layers[3]["times"] == 2
    assert loaded.recipe.train.epochs == 3 and loaded.recipe.train.learning_rate == 0.01
    # The raw recipe keeps the spaces.
    assert loaded.raw["model"]["layers"][0]["units"] == {"choice": [64, 128, 256]}


@pytest.mark.parametrize("space, path, words", [
    ("{int: [1, 5], default: 9}", "train.epochs.default", "default=9"),
    ("{choice: [1, 2], default: 3}", "train.epochs.default", "Expected one of [1, 2]"),
    ("{int: [1, 5], default: 2.0}", "train.epochs.default", "default=2.0"),
    ("{float: [0.0, 1.0], sampling: log}", "train.epochs.sampling", "log sampling needs low > 0; received low=0.0"),
    ("{float: [-1.0, 1.0], sampling: reverse_log}", "train.epochs.sampling", "needs low > 0"),
    ("{float: [0.1, 1.0], sampling: lg}", "train.epochs.sampling", "Did you mean 'log'?"),
    ("{choice: [1, 2], step: 1}", "train.epochs.step", "'step' applies to int and float spaces, not to choice"),
    ("{choice: [1, 2], sampling: log}", "train.epochs.sampling", "not to choice"),
    ("{choice: [1, a]}", "train.epochs.choice", "The choices must all be of one type"),
    ("{choice: []}", "train.epochs.choice", "non-empty list"),
    ("{int: [5, 1]}", "train.epochs.int", "low < high"),
    ("{int: [1.5, 5]}", "train.epochs.int", "integers"),
    ("{int: [1, 5], step: 0}", "train.epochs.step", "step=0"),
    ("{int: [1, 5], step: 1.5}", "train.epochs.step", "positive integer"),
    ("{boolean: 1}", "train.epochs.boolean", "Expected true or false"),
    ("{int: [1, 5], defualt: 2}", "train.epochs.defualt", "Did you mean 'default'?"),
    ("{int: [1, 5], choice: [1]}", "train.epochs", "exactly one of choice, int, float, boolean"),
])
def test_space_errors(tmp_path, space, path, words):
    text = MINIMAL.replace("  epochs: 3", f"  epochs: {space}")
    file = write(tmp_path, "r.yaml", text)
    p = only(problems_of(file), path)
    assert words in p.message
    assert_at(p, file, 9)


def test_space_error_in_a_flow_layer_names_its_line(tmp_path):
    file = write(tmp_path, "r.yaml", SPACES.replace("{choice: [64, 128, 256]}", "{choice: [64, 128], default: 100}"))
    [p] = problems_of(file)
    assert p.path == "model.layers[0].units.default" and "default=100" in p.message
    assert_at(p, file, 5)


def test_space_default_message_grammar(tmp_path):
    file = write(tmp_path, "r.yaml", MINIMAL.replace("  epochs: 3", "  epochs: {int: [1, 5], default: 9}"))
    [p] = problems_of(file)
    assert "Expected an integer within [1, 5]" in p.message


@pytest.mark.parametrize("choice", ["[1, 2.5]", "[true, 1]"])
def test_space_choice_types_that_kerastuner_refuses(tmp_path, choice):
    file = write(tmp_path, "r.yaml", MINIMAL.replace("units: 2", f"units: {{choice: {choice}}}"))
    p = only(problems_of(file), "model.layers[1].units.choice")
    assert "one type" in p.message


def test_space_boolean_default_must_be_a_bool(tmp_path):
    file = write(tmp_path, "r.yaml", MINIMAL.replace("units: 2", "units: 2, use_bias: {boolean: true, default: 3}"))
    only(problems_of(file), "model.layers[1].use_bias.default")


def test_space_problem_and_schema_problem_reported_together(tmp_path):
    file = write(tmp_path, "r.yaml", MINIMAL.replace("units: 2", "units: {int: [5, 1]}").replace("epochs: 3", "epochs: -1"))
    problems = problems_of(file)
    only(problems, "model.layers[1].units.int")
    only(problems, "train.epochs")


def test_with_values_substitutes_and_validates(tmp_path):
    file = write(tmp_path, "s.yaml", SPACES)
    loaded = load_recipe(file)
    trial = loaded.with_values({"model.layers[0].units": 256, "train.epochs": 5, "model.layers[2].type": "Conv1D"})
    assert trial.recipe.model.layers[0]["units"] == 256
    assert trial.recipe.model.layers[2]["type"] == "Conv1D"
    assert trial.recipe.train.epochs == 5
    assert trial.values["train.learning_rate"] == 0.01  # untouched spaces keep their values
    assert loaded.recipe.train.epochs == 3  # the original is unchanged
    with pytest.raises(RecipeError) as info:
        loaded.with_values({"train.epochs": 0})
    [p] = info.value.problems
    assert p.path == "train.epochs" and "greater than 0" in p.message
    assert_at(p, file, 10)


def test_fixed_raw_replaces_spaces_with_tidy_values(tmp_path):
    loaded = load_recipe(write(tmp_path, "s.yaml", SPACES))
    trial = loaded.with_values({"model.layers[1].rate": 0.1 + 0.2, "model.layers[3].times": 3})
    assert trial.recipe.model.layers[1]["rate"] == 0.30000000000000004
    fixed = trial.fixed_raw()
    assert fixed["model"]["layers"][1] == {"type": "Dropout", "rate": 0.3}
    assert fixed["model"]["layers"][3]["times"] == 3
    assert fixed["model"]["layers"][2] == {"type": "Dense", "units": 16, "use_bias": True}
    assert fixed["train"]["learning_rate"] == 0.01
    assert fixed["data"] == loaded.raw["data"]
    assert "default" not in dump_yaml(fixed) and "choice" not in dump_yaml(fixed)
    # best.yaml trains as it is: no spaces left, same values.
    again = load_recipe(write(tmp_path / "tune", "best.yaml", dump_yaml(fixed)))
    assert again.spaces == {}
    assert again.recipe.model.layers[1]["rate"] == 0.3


# --------------------------------------------------------------------------- no TensorFlow


def test_no_tensorflow_import(tmp_path):
    path = write(tmp_path, "broken.yaml", MINIMAL.replace("epochs: 3", "epochs: -1\n  batchsize: 3"))
    code = textwrap.dedent(f"""\
        import sys
        import dlrecipe.recipe.loader, dlrecipe.cli.main
        from dlrecipe.recipe.loader import inspect_recipe
        found = inspect_recipe({str(path)!r})
        print(sorted(p.path for p in found.problems))
        print('tensorflow' in sys.modules, 'keras' in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["['train.batchsize', 'train.epochs']", "False False"]


# --------------------------------------------------------------------------- hostile and careless input


@pytest.mark.parametrize("base_text, got", [("", "is empty"), ("- a\n- b\n", "a list, not a mapping"),
                                           ("just text\n", "a str, not a mapping")])
def test_extends_a_file_that_is_not_a_recipe(tmp_path, base_text, got):
    (tmp_path / "base.yaml").write_text(base_text)
    path = write(tmp_path, "m.yaml", "extends: base.yaml\n" + MINIMAL)
    [p] = problems_of(path)
    assert p.path == "extends" and got in p.message and "only a recipe" in p.message
    assert_at(p, path, 1)


def test_extends_a_folder_says_it_is_a_folder(tmp_path):
    (tmp_path / "base").mkdir()
    [p] = problems_of(write(tmp_path, "m.yaml", "extends: base\n" + MINIMAL))
    assert p.path == "extends" and "is a folder" in p.message


@pytest.mark.parametrize("text, where, words", [
    ("a: 1\nb: \x00\n", 2, "Unreadable character U+0000"),
    ("a: &a [*a]\n", 1, "refers to a mapping or list that contains it"),
    ("? {a: 1}\n: 2\n", 1, "A key must be a plain name"),
    ("data:\n  source npz\n  path: x\n", 2, "Broken YAML"),
])
def test_yaml_that_a_recipe_cannot_hold_is_refused_at_its_line(tmp_path, text, where, words):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    [p] = problems_of(path)
    assert words in p.message
    assert p.where == f"{path}:{where}"


def test_a_billion_laughs_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")  # 9**9 values once expanded
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    [p] = problems_of(path)
    assert "values once its aliases (*name) are expanded" in p.message


def test_aliases_within_the_budget_still_work(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL.replace("    - {type: Conv2D, filters: 8, kernel_size: 3}",
                                                    "    - &conv {type: Conv2D, filters: 8, kernel_size: 3}\n"
                                                    "    - *conv"))
    found = inspect_recipe(path)
    assert found.problems == []
    layers = found.loaded.recipe.model.layers
    assert layers[0] == layers[1] == {"type": "Conv2D", "filters": 8, "kernel_size": 3}


def test_deep_nesting_is_refused_without_a_traceback(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    [p] = problems_of(path)
    assert "nested too deeply" in p.message or "nested more than" in p.message


@pytest.mark.parametrize("override, path, words", [
    ("seed=99999999999999999999999", "seed", "less than or equal to 4294967295"),
    ("train.batch_size=100000000000000000000", "train.batch_size", "less than or equal to 2147483647"),
    ("train.epochs=1000000000000", "train.epochs", "less than or equal to 100000"),
    ("train.learning_rate=.inf", "train.learning_rate", "finite number"),
])
def test_numbers_beyond_what_the_backend_accepts_are_refused(tmp_path, override, path, words):
    recipe = write(tmp_path, "r.yaml", MINIMAL)
    [p] = problems_of(recipe, [override])
    assert p.path == path and words in p.message


def test_a_dedented_key_says_which_section_it_belongs_to(tmp_path):
    path = write(tmp_path, "r.yaml", MINIMAL + "augment: [{type: RandomFlip}]\n")
    p = only(problems_of(path), "augment")
    assert "It belongs under 'data:': indent it there." in p.message
