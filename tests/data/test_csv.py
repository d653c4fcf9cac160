"""The csv source end to end: typing, imputation, one-hot categories, training-only statistics, raw-row serving."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run, write_yaml

from dlrecipe.data import source as data
from dlrecipe.recipe.schema import DataConfig

HEADER = ["size", "colour", "weight", "kind"]
COLOURS = ["red", "green", "blue"]
KINDS = ["ant", "bee", "cat"]


def rows(n: int, seed: int = 0) -> list[list[str]]:
    """Rows whose kind follows the colour and the size: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = i % 3
        out.append([f"{k * 2.0 + rng.normal(0, 0.3):.3f}", COLOURS[k], f"{10 + rng.normal(0, 1):.2f}", KINDS[k]])
    return out


def write_csv(path: Path, body: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(body)
    return path


def recipe(tmp_path: Path, data_section: dict, name: str = "tab.yaml", units: int = 3, **extra) -> Path:
    r = {
        "name": "tab", "seed": 3,
        "data": {"source": "csv", "validation_split": 0.2, **data_section},
        "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"},
                             {"type": "Dense", "units": units, "activation": "softmax" if units > 1 else None}]},
        "train": {"epochs": 2, "batch_size": 16, "learning_rate": 0.01},
        **extra,
    }
    path = tmp_path / name
    return write_yaml(path, r)


def by_hand(spec: dict, row: dict) -> list[float]:
    """Encode one raw row from preprocessing.json's `tabular`, written out plainly."""
    out = []
    for col in spec["columns"]:
        value = row[col["name"]]
        if col["kind"] == "numeric":
            out.append(col["fill"] if value is None or math.isnan(value) else value)
        else:
            value = col["fill"] if value in ("", "NA") else value
            out += [1.0 if value == c else 0.0 for c in col["categories"]]
    return out


def test_csv_with_missing_values_and_a_category_trains_evaluates_and_serves_raw_rows(cli, tmp_path):
    body = rows(60)
    body[1][0] = ""          # a missing number
    body[4][1] = "NA"        # a missing category
    body[7][2] = "  "        # blank: missing too
    header = ["size", "body colour", "weight", "kind"]  # a name that is no identifier: the input is body_colour
    train_csv = write_csv(tmp_path / "train.csv", body, header)
    test_body = rows(15, seed=1)
    test_body[0][1] = "purple"  # a category the training file never had
    test_body[2][0] = ""
    test_csv = write_csv(tmp_path / "test.csv", test_body, header)
    path = recipe(tmp_path, {"path": str(train_csv), "test_path": str(test_csv), "label": "kind",
                             "missing": "median", "normalize": "standardize"},
                  export={"formats": ["saved_model", "tflite"]})
    out = tmp_path / "runs"
    result = cli("train", path, "--out", out, "--evaluate")
    assert result.exit_code == 0, result.stderr
    assert "'purple'" in result.stderr and "all zeros" in result.stderr  # the unseen test category is noted
    run = only_run(out)
    meta = json.loads((run / "preprocessing.json").read_text())
    spec = meta["tabular"]
    assert meta["class_names"] == KINDS and meta["input_shape"] == [5]
    assert [(c["name"], c["kind"]) for c in spec["columns"]] == [("size", "numeric"), ("body colour", "categorical"),
                                                                  ("weight", "numeric")]
    assert spec["columns"][1]["categories"] == sorted(COLOURS)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == 15 and set(metrics["per_class"]) == set(KINDS)
    result = cli("evaluate", run)  # reads test.csv again, through the stored encoding
    assert result.exit_code == 0, result.stderr
    again = json.loads((run / "metrics.json").read_text())
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert again["loss"] == pytest.approx(metrics["loss"], rel=1e-5)

    result = cli("export", run)
    assert result.exit_code == 0, result.stderr
    verification = json.loads((run / "export" / "verification.json").read_text())
    assert [i["name"] for i in verification["signature"]["inputs"]] == ["size", "body_colour", "weight"]
    assert verification["n_checked"] > 15  # the test rows, and probe rows with missing and unseen values
    assert set(verification["max_abs_diff"]) == {"saved_model", "tflite"}  # TFLite takes the raw columns too

    import tensorflow as tf

    from dlrecipe.runs import load_model
    raw = [{"size": 0.1, "body colour": "red", "weight": 10.0},
           {"size": float("nan"), "body colour": "blue", "weight": 9.0},     # missing number
           {"size": 4.2, "body colour": "", "weight": float("nan")},         # missing category and number
           {"size": 2.0, "body colour": "NA", "weight": 11.0},               # an NA token
           {"size": 2.1, "body colour": "purple", "weight": 10.5}]           # unseen category
    encoded = np.array([by_hand(spec, r) for r in raw], dtype=np.float32)
    assert encoded[4, 1:4].tolist() == [0.0, 0.0, 0.0]
    expected = load_model(run / "model.keras").predict(encoded, verbose=0)
    serve = tf.saved_model.load(str(run / "export" / "saved_model" / "1")).signatures["serving_default"]
    got = serve(size=tf.constant([r["size"] for r in raw], tf.float32),
                body_colour=tf.constant([r["body colour"] for r in raw]),
                weight=tf.constant([r["weight"] for r in raw], tf.float32))
    np.testing.assert_allclose(got["probabilities"].numpy(), expected, atol=1e-5)
    assert [n.decode() for n in got["class_name"].numpy()] == [KINDS[i] for i in expected.argmax(axis=1)]


def test_imputation_categories_and_normalization_see_only_the_training_split(cli, tmp_path):
    body = rows(60)
    for i, r in enumerate(body):
        r[0] = f"{i + 0.5}"  # unique sizes identify the rows after the split
    train_csv = write_csv(tmp_path / "train.csv", body)
    cfg = DataConfig(source="csv", path=str(train_csv), label="kind", missing="mean", test_split=0.2,
                     validation_split=0.2)
    ds = data.load(cfg, 3)
    held = set(ds.x_val[:, 0].tolist()) | set(ds.x_test[:, 0].tolist())
    held_rows = [i for i, r in enumerate(body) if r[0] and float(r[0]) in held]
    assert len(held_rows) >= 20
    # The split depends on the labels and the seed only: extremes in exactly the held-out rows.
    for i in held_rows:
        body[i][0], body[i][1] = "1000000.0", "violet"
    body[next(i for i in range(60) if i not in held_rows)][0] = ""  # a training cell to fill
    write_csv(train_csv, body)
    train_sizes = [float(r[0]) for i, r in enumerate(body) if i not in held_rows and r[0]]
    train_colours = sorted({r[1] for i, r in enumerate(body) if i not in held_rows})

    path = recipe(tmp_path, {"path": str(train_csv), "label": "kind", "missing": "mean", "test_split": 0.2,
                             "normalize": "standardize"})
    out = tmp_path / "runs"
    result = cli("train", path, "--out", out)
    assert result.exit_code == 0, result.stderr
    meta = json.loads((only_run(out) / "preprocessing.json").read_text())
    size, colour = meta["tabular"]["columns"][0], meta["tabular"]["columns"][1]
    assert size["fill"] == pytest.approx(np.mean(train_sizes))  # not pulled up by the 1e6 held-out rows
    assert colour["categories"] == train_colours and "violet" not in colour["categories"]
    assert colour["fill"] in train_colours
    assert abs(meta["normalization"]["mean"][0]) < 100  # standardize's statistics: training rows only
    ds = data.load(DataConfig(source="csv", path=str(train_csv), label="kind", missing="mean", test_split=0.2,
                              validation_split=0.2), 3)
    assert (ds.x_val[:, 0] == 1e6).all() and (ds.x_test[:, 0] == 1e6).all()  # the extremes were held out
    assert (ds.x_val[:, 1:4] == 0).all()  # 'violet' encodes as an unknown category


def test_regression_from_a_float_label(cli, tmp_path):
    rng = np.random.default_rng(0)
    body = [[f"{x:.3f}", COLOURS[i % 3], f"{rng.normal():.3f}", f"{2 * x + i % 3:.3f}"]
            for i, x in enumerate(rng.normal(size=50))]
    path = recipe(tmp_path, {"path": str(write_csv(tmp_path / "r.csv", body)), "label": "kind", "test_split": 0.2},
                  units=1)
    out = tmp_path / "runs"
    result = cli("train", path, "--out", out, "--evaluate")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((only_run(out) / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["n_test"] == 10 and metrics["mae"] > 0
    assert "mean_absolute_error" in metrics


def _bad_label(tmp_path):
    return {"path": str(write_csv(tmp_path / "d.csv", rows(12))), "label": "knd"}, \
        ["data.label", "d.csv", "Did you mean 'kind'?", "Fix:"]


def _extra_test_column(tmp_path):
    test = write_csv(tmp_path / "t.csv", [r + ["x"] for r in rows(6)], HEADER + ["notes"])
    return {"path": str(write_csv(tmp_path / "d.csv", rows(12))), "label": "kind", "test_path": str(test)}, \
        ["data.test_path", "t.csv", "'notes'", "Fix: remove or rename the column in the test file"]


def _missing_unset(tmp_path):
    body = rows(12)
    body[2][2] = ""
    return {"path": str(write_csv(tmp_path / "d.csv", body)), "label": "kind"}, \
        ["data.path", "d.csv", "line 4", "'weight'", "Fix: set data.missing: drop"]


def _text_in_numeric_test_column(tmp_path):
    test_body = rows(6)
    test_body[1][0] = "big"
    test = write_csv(tmp_path / "t.csv", test_body)
    return {"path": str(write_csv(tmp_path / "d.csv", rows(12))), "label": "kind", "test_path": str(test)}, \
        ["data.test_path", "t.csv", "line 3", "'size'", "'big'", "not a number", "Fix:"]


def _unseen_test_class(tmp_path):
    test_body = rows(6)
    test_body[4][3] = "dog"
    test = write_csv(tmp_path / "t.csv", test_body)
    return {"path": str(write_csv(tmp_path / "d.csv", rows(12))), "label": "kind", "test_path": str(test)}, \
        ["data.test_path", "t.csv", "line 6", "'dog'", "Fix: remove those rows from the test file"]


def _ragged_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", rows(12))
    path.write_text(path.read_text() + "1.0,red\n")
    return {"path": str(path), "label": "kind"}, ["data.path", "d.csv", "line 14", "2 field(s)", "Fix:"]


def _unknown_feature(tmp_path):
    return {"path": str(write_csv(tmp_path / "d.csv", rows(12))), "label": "kind", "features": ["size", "color"]}, \
        ["data.features[1]", "d.csv", "Did you mean 'colour'?"]


@pytest.mark.parametrize("case", [_bad_label, _extra_test_column, _missing_unset, _text_in_numeric_test_column,
                                  _unseen_test_class, _ragged_row, _unknown_feature],
                         ids=["label-absent", "extra-test-column", "missing-unset", "text-in-numbers", "unseen-class",
                              "ragged-row", "unknown-feature"])
def test_bad_csv_data_fails_with_the_file_and_the_fix_and_writes_nothing(cli, tmp_path, case):
    section, expected = case(tmp_path)
    path = recipe(tmp_path, section)
    out = tmp_path / "runs"
    for command in (("validate", path), ("train", path, "--out", out)):
        result = cli(*command)
        assert result.exit_code == 2, result.stdout
        for text in expected:
            assert text in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr
    assert not out.exists()
