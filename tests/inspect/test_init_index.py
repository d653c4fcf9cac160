"""``dlrecipe inspect-init``'s ``#`` column is the layer's index in the recipe's model.layers."""

from __future__ import annotations

import json
import re

LAYERS = [{"type": "Conv2D", "filters": 2, "kernel_size": 3, "activation": "relu"},
          {"type": "repeat", "times": 2, "layers": [
              {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
              {"type": "BatchNormalization"}]},
          {"type": "Flatten"},
          {"type": "Dense", "units": 3, "activation": "softmax"}]


def test_the_number_column_is_the_recipe_index_with_repeat_copies(cli, write_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # narrow: no recipe-path column, so # alone must say which layer
    recipe = write_recipe(model={"layers": LAYERS})
    out = tmp_path / "init.json"
    result = cli("inspect-init", recipe, "--batch", "16", "--out", out)
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()
            if re.match(r"^\s+(-|\d+(\.\d+)?( \(\d+/\d+\))?)\s+[a-z_0-9]+\s", line)]
    shown = [(" ".join(r[:2]) if r[1].startswith("(") else r[0]) for r in rows]
    # The rescaling dlrecipe adds is no recipe layer; the repeat's layers are 1.0 and 1.1, in each copy.
    assert shown == ["-", "0", "1.0 (1/2)", "1.1 (1/2)", "1.0 (2/2)", "1.1 (2/2)", "2", "3"]
    assert "#: the layer's index in the recipe's model.layers" in result.stdout
    layers = json.loads(out.read_text())["layers"]
    assert [entry["recipe_index"] for entry in layers] == [None, "0", "1.0 (1/2)", "1.1 (1/2)", "1.0 (2/2)",
                                                           "1.1 (2/2)", "2", "3"]
    assert [entry["index"] for entry in layers] == list(range(8))  # the position in the built model stays
