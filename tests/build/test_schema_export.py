"""``dlrecipe schema``: the JSON Schema validates every shipped recipe, refuses broken ones, and stays in sync."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import ROOT, recipe_dict, write_yaml

# every shipped recipe; an experiment's predict.yaml is bench/experiments.py's spec, not a recipe
SHIPPED = sorted([*(ROOT / "recipes").rglob("*.yaml"),
                  *(p for p in (ROOT / "experiments").rglob("*.yaml") if p.name != "predict.yaml")])
HEADER = "# yaml-language-server: $schema="


@pytest.fixture(scope="module")
def schema() -> dict:
    from dlrecipe.api.tools import schema as make
    return make()


@pytest.fixture(scope="module")
def validator(schema):
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator, data) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e.absolute_path), e.message) for e in validator.iter_errors(data)]


def test_the_shipped_schema_is_what_dlrecipe_schema_writes(schema):
    shipped = (ROOT / "recipe.schema.json").read_text(encoding="utf-8")
    assert json.loads(shipped) == schema, "recipe.schema.json is stale: run `dlrecipe schema --out recipe.schema.json`"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_recipe_has_the_header_and_validates(validator, path: Path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(HEADER), f"{path}: the first line should be {HEADER}<relative path>"
    target = (path.parent / first[len(HEADER):].strip()).resolve()
    assert target == ROOT / "recipe.schema.json", target
    assert errors(validator, yaml.safe_load(path.read_text())) == []


def test_at_least_the_known_recipes_are_checked():
    assert len(SHIPPED) >= 14


def test_type_enums_come_from_the_registries(schema):
    defs = schema["$defs"]
    layer = defs["Layer"]["properties"]["type"]
    assert {"Dense", "Conv2D", "residual", "conv_bn_act", "repeat"} <= set(layer["enum"])
    dense = layer["enumDescriptions"][layer["enum"].index("Dense")]
    assert dense.startswith("Just your regular densely-connected")  # the first docstring line
    assert "fancy_pca" in defs["Augmentation"]["properties"]["type"]["enum"]
    assert "ModelCheckpoint" not in defs["Callback"]["properties"]["type"]["enum"]  # dlrecipe manages it
    assert "EarlyStopping" in defs["Callback"]["properties"]["type"]["enum"]


BROKEN = [
    ("unknown top-level key", lambda r: r.update(trian={}), ""),
    ("unknown train key", lambda r: r["train"].update(epoch=3), "train"),
    ("wrong layer type", lambda r: r["model"]["layers"][0].update(type="Conv2d"), "model.layers.0.type"),
    ("wrong callback type", lambda r: r["train"].update(callbacks=[{"type": "EarlyStoping"}]), "train.callbacks.0.type"),
    ("wrong optimizer", lambda r: r["train"].update(optimizer="adamm"), "train.optimizer"),
    ("wrong initializer", lambda r: r["model"]["layers"][0].update(kernel_initializer="he_normall"),
     "model.layers.0.kernel_initializer"),
    ("bad search space", lambda r: r["train"].update(epochs={"int": [1, 5], "stepp": 1}), "train.epochs"),
    ("no model", lambda r: r.pop("model"), ""),
]


@pytest.mark.parametrize("what,mutate,where", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_recipe_fails(validator, tmp_path, what, mutate, where):
    recipe = recipe_dict(tmp_path / "x.npz")
    assert errors(validator, recipe) == []
    broken = copy.deepcopy(recipe)
    mutate(broken)
    found = errors(validator, broken)
    assert found and found[0][0] == where, found


def test_spaces_and_extends_are_accepted(validator, tmp_path):
    recipe = recipe_dict(tmp_path / "x.npz")
    recipe["train"]["learning_rate"] = {"float": [1.0e-4, 1.0e-1], "sampling": "log"}
    recipe["model"]["layers"][0]["activation"] = {"choice": ["relu", "tanh"]}
    recipe["tune"] = {"max_trials": {"choice": [2, 4]}}
    assert errors(validator, recipe) == []
    fragment = {"extends": "base.yaml", "model": {"defaults": {"kernel_initializer": "glorot_uniform"}}}
    assert errors(validator, fragment) == []
    assert errors(validator, {"model": fragment["model"]})  # without extends, data and layers are required


@pytest.mark.slow
def test_schema_command_prints_or_writes(tmp_path):
    import subprocess
    import sys
    exe = str(Path(sys.executable).parent / "dlrecipe")
    printed = subprocess.run([exe, "schema"], capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["title"] == "dlrecipe recipe"
    out = tmp_path / "recipe.schema.json"
    wrote = subprocess.run([exe, "schema", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert wrote.returncode == 0 and json.loads(out.read_text()) == json.loads(printed.stdout)
    bad = subprocess.run([exe, "schema", "--out", str(tmp_path / "no" / "s.json")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and not (tmp_path / "no").exists()


def test_a_recipe_written_by_a_test_validates(validator, tiny_npz, tmp_path):
    path = write_yaml(tmp_path / "r.yaml", recipe_dict(tiny_npz))
    assert errors(validator, yaml.safe_load(path.read_text())) == []
