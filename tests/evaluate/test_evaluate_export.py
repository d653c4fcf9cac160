"""evaluate/ and export/ on a tiny hand-built run folder (seconds, CPU)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from dlrecipe.errors import RecipeError  # noqa: E402
from dlrecipe.evaluate import metrics as ev  # noqa: E402
from dlrecipe.evaluate import reports, summary  # noqa: E402
from dlrecipe.export import exporter as ex  # noqa: E402
from dlrecipe.export import served, verify  # noqa: E402

SHAPE = (8, 8, 1)
NAMES = ["cat", "dog", "bird"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_model() -> keras.Model:
    inputs = keras.Input(SHAPE, dtype="float32", name="image")
    x = keras.layers.Rescaling(1 / 255, name="preprocessing_rescale")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run folder: model.keras, preprocessing.json, history.csv, recipe.yaml; plus test arrays."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(96, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, 3, size=96)
    model = tiny_model()
    model.fit(x.astype("float32"), y, epochs=1, batch_size=32, verbose=0)
    run_dir = tmp_path_factory.mktemp("run")
    model.save(run_dir / "model.keras")
    (run_dir / "recipe.yaml").write_text("name: tiny\n")
    (run_dir / "preprocessing.json").write_text(json.dumps({
        "input_shape": list(SHAPE), "input_dtype": "uint8", "task": "classification",
        "class_names": NAMES, "normalization": {}}))
    (run_dir / "history.csv").write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss,learning_rate\n"
        "1,0.30,1.20,0.33,1.15,0.001\n"
        "2,0.40,1.05,0.35,1.10,0.0005\n")
    return {"dir": run_dir, "model": model, "x": x, "y": y}


def strict_json(path: Path):
    """Parse JSON, failing on NaN/Infinity (which Python's json writes by default)."""
    def refuse(name):
        raise ValueError(f"{name} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


# --------------------------------------------------------------------------- evaluate


def test_classification_report_by_hand():
    # rows true / cols predicted: [[1, 1, 0], [0, 2, 0], [2, 0, 0]]
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 0]
    report = reports.classification_report(y_true, y_pred, ["a", "b", "c"])
    assert report["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [2, 0, 0]]}
    a, b, c = (report["per_class"][k] for k in "abc")
    assert a["precision"] == pytest.approx(1 / 3) and a["recall"] == pytest.approx(1 / 2)
    assert a["f1"] == pytest.approx(0.4) and a["support"] == 2
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0 and b["f1"] == pytest.approx(0.8)
    assert c == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}  # never predicted: 0.0, not NaN
    assert report["accuracy"] == 0.5
    assert report["macro_f1"] == pytest.approx((0.4 + 0.8 + 0.0) / 3)


def test_classification_report_rejects_labels_beyond_names():
    with pytest.raises(RecipeError, match="class names"):
        reports.classification_report([0, 3], [0, 1], ["a", "b"])


def test_regression_report_by_hand():
    report = reports.regression_report([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert report["mae"] == pytest.approx(0.5)
    assert report["rmse"] == pytest.approx(1.0)
    assert report["r2"] == pytest.approx(1 - 4 / 5)
    constant = reports.regression_report([2.0, 2.0], [2.0, 3.0])
    assert constant["r2"] == 0.0 and not math.isnan(constant["r2"])


def test_evaluate_classification(run):
    model, x, y = run["model"], run["x"], run["y"]
    metrics = ev.evaluate(model, x, y, task="classification", class_names=NAMES, batch_size=32)
    predicted = np.argmax(model.predict(x.astype("float32"), verbose=0), axis=1)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == y), abs=1e-12)
    keras_accuracy = model.evaluate(x.astype("float32"), y, verbose=0, return_dict=True)["accuracy"]
    assert abs(metrics["accuracy"] - keras_accuracy) <= 1e-6
    assert metrics["n_test"] == len(x) and "loss" in metrics and metrics["task"] == "classification"
    assert list(metrics["per_class"]) == NAMES
    assert sum(map(sum, metrics["confusion_matrix"]["matrix"])) == len(x)
    assert sum(row["support"] for row in metrics["per_class"].values()) == len(x)
    json.dumps(metrics, allow_nan=False)


def test_write_report_and_summary(run, tmp_path):
    metrics = ev.evaluate(run["model"], run["x"], run["y"], task="classification", class_names=NAMES,
                          batch_size=32)
    metrics["loss"] = float("nan")  # a diverged run must still give valid JSON
    for name in ("recipe.yaml", "history.csv", "preprocessing.json"):
        (tmp_path / name).write_bytes((run["dir"] / name).read_bytes())
    written = ev.write_report(tmp_path, metrics)
    assert written == [tmp_path / "metrics.json", tmp_path / "plots/curves.png",
                       tmp_path / "plots/confusion_matrix.png"]
    for png in written[1:]:
        assert png.read_bytes()[:8] == PNG_MAGIC
    saved = strict_json(tmp_path / "metrics.json")
    assert saved["loss"] is None and saved["per_class"]["dog"]["support"] == metrics["per_class"]["dog"]["support"]
    assert not [p for p in tmp_path.rglob("*.tmp")]

    from rich.console import Console
    console = Console(record=True, width=120)
    summary.print_summary(saved, console)
    text = console.export_text()
    assert "accuracy" in text and "bird" in text and "n/a" in text


def test_write_report_regression_without_history(tmp_path):
    metrics = {"task": "regression", "n_test": 2, "loss": 0.5, "mae": 0.5, "rmse": 0.7, "r2": 0.1}
    assert ev.write_report(tmp_path, metrics) == [tmp_path / "metrics.json"]


# --------------------------------------------------------------------------- export


def export_tiny(run, formats, **overrides):
    kwargs = dict(formats=formats, include_preprocessing=True, class_names=NAMES, input_shape=SHAPE,
                  input_dtype="uint8", x_check=run["x"])
    kwargs.update(overrides)
    return ex.export(run["dir"], run["model"], **kwargs)


@pytest.fixture(scope="module")
def exported(run):
    """One export of every supported format (built once: TFLite conversion takes seconds)."""
    return export_tiny(run, ["saved_model", "keras", "tflite"])


def test_export_writes_verified_formats(run, exported):
    export_dir = run["dir"] / "export"
    assert exported == {"saved_model": export_dir / "saved_model" / "1", "keras": export_dir / "model.keras",
                        "tflite": export_dir / "model.tflite"}  # TF Serving's layout: saved_model/<version>/
    report = strict_json(export_dir / "verification.json")
    assert set(report["max_abs_diff"]) == {"saved_model", "keras", "tflite"}
    assert all(d <= 1e-4 for d in report["max_abs_diff"].values())
    assert report["signature"]["input"] == {"name": "inputs", "shape": [None, 8, 8, 1], "dtype": "uint8"}
    assert not [p.name for p in export_dir.iterdir() if p.name.startswith(".")]  # no staging left
    from dlrecipe.export.portable import foreign_objects
    assert foreign_objects(export_dir / "model.keras") == []  # standard Keras only, no optimizer


def test_saved_model_serves_raw_uint8(run, exported):
    serve = tf.saved_model.load(str(exported["saved_model"])).signatures["serving_default"]
    out = serve(inputs=tf.constant(run["x"][:10]))
    expected = run["model"].predict(run["x"][:10].astype("float32"), verbose=0)
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    ids = out["class_id"].numpy()
    assert out["class_id"].dtype == tf.int64 and list(ids) == list(np.argmax(expected, axis=1))
    assert [n.decode() for n in out["class_name"].numpy()] == [NAMES[i] for i in ids]


def test_saved_model_serves_without_dlrecipe(run, exported, tmp_path):
    np.save(tmp_path / "x.npy", run["x"][:16])
    code = textwrap.dedent(f"""
        import sys
        sys.modules["dlrecipe"] = None  # importing dlrecipe now fails
        sys.modules["keras"] = None     # and so does Keras: plain TensorFlow only
        import numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(exported["saved_model"])!r}).signatures["serving_default"]
        out = serve(inputs=tf.constant(np.load({str(tmp_path / "x.npy")!r})))
        np.save({str(tmp_path / "p.npy")!r}, out["probabilities"].numpy())
        print(",".join(n.decode() for n in out["class_name"].numpy()))
    """)
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = run["model"].predict(run["x"][:16].astype("float32"), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-5)
    assert done.stdout.strip().splitlines()[-1].split(",") == [NAMES[i] for i in np.argmax(expected, axis=1)]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_round_trip(run, exported):
    runner = tf.lite.Interpreter(model_path=str(exported["tflite"])).get_signature_runner("serving_default")
    out = runner(inputs=run["x"][:5])
    expected = run["model"].predict(run["x"][:5].astype("float32"), verbose=0)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    assert [n.decode() for n in out["class_name"]] == [NAMES[i] for i in np.argmax(expected, axis=1)]


def test_keras_export_loads_in_safe_mode(run, exported):
    model = keras.saving.load_model(str(exported["keras"]), safe_mode=True)
    np.testing.assert_allclose(model.predict(run["x"][:5].astype("float32"), verbose=0),
                               run["model"].predict(run["x"][:5].astype("float32"), verbose=0), atol=1e-6)


def test_onnx_without_its_extra_and_unknown_formats_are_refused(run, monkeypatch):
    from dlrecipe.export import onnx_file
    monkeypatch.setattr(onnx_file, "NEEDS", ("onnx", "tf2onnx_not_installed"))
    with pytest.raises(RecipeError, match=r"pip install -e '\.\[onnx\]'") as e:
        export_tiny(run, ["saved_model", "onnx"])
    assert e.value.problems[0].path == "export.formats"
    with pytest.raises(RecipeError, match="Did you mean 'tflite'"):
        export_tiny(run, ["tflte"])


def test_class_names_must_fit_the_model(run):
    with pytest.raises(RecipeError) as e:
        export_tiny(run, ["keras"], class_names=["a", "b"])
    assert e.value.problems[0].path == "export.class_names"


def test_export_without_preprocessing(run, tmp_path):
    for name in ("recipe.yaml", "preprocessing.json", "model.keras"):
        (tmp_path / name).write_bytes((run["dir"] / name).read_bytes())
    paths = ex.export(tmp_path, run["model"], formats=["saved_model", "keras"], include_preprocessing=False,
                      class_names=NAMES, input_shape=SHAPE, input_dtype="uint8", x_check=run["x"])
    report = strict_json(tmp_path / "export/verification.json")
    assert report["signature"]["input"]["dtype"] == "float32" and report["include_preprocessing"] is False
    serve = tf.saved_model.load(str(paths["saved_model"])).signatures["serving_default"]
    preprocessed = run["x"][:8].astype("float32") / 255
    expected = run["model"].predict(run["x"][:8].astype("float32"), verbose=0)
    np.testing.assert_allclose(serve(inputs=tf.constant(preprocessed))["probabilities"].numpy(), expected,
                               atol=1e-5)
    core = keras.saving.load_model(str(paths["keras"]), safe_mode=True)
    assert not [layer.name for layer in core.layers if layer.name.startswith("preprocessing_")]
    np.testing.assert_allclose(core.predict(preprocessed, verbose=0), expected, atol=1e-5)


def test_without_preprocessing_refuses_a_graph_that_reads_the_raw_input():
    inputs = keras.Input((4,))
    scaled = keras.layers.Rescaling(2.0, name="preprocessing_scale")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([scaled, inputs]))
    with pytest.raises(RecipeError, match="include_preprocessing: true") as e:
        served.split_preprocessing(keras.Model(inputs, outputs))
    assert e.value.problems[0].path == "export.include_preprocessing"


def test_failed_verification_keeps_the_previous_export(run, exported, monkeypatch):
    marker = exported["saved_model"] / "saved_model.pb"
    before = marker.read_bytes()
    monkeypatch.setattr(verify, "TOLERANCE", -1.0)  # every comparison now fails
    with pytest.raises(RecipeError, match="failed verification"):
        export_tiny(run, ["saved_model"])
    assert marker.read_bytes() == before
    assert not [p.name for p in (run["dir"] / "export").iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in (run["dir"] / "export" / "saved_model").iterdir()) == ["1"]  # no version 2


def test_regression_evaluate_and_export(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Normalization(mean=1.0, variance=4.0,
                                                                             name="preprocessing_norm"),
                              keras.layers.Dense(2)])
    model.compile(loss="mse", metrics=["mae"])
    x = np.random.default_rng(1).normal(size=(40, 4))
    y = np.random.default_rng(2).normal(size=(40, 2))
    metrics = ev.evaluate(model, x, y, task="regression", class_names=None, batch_size=16)
    predictions = model.predict(x.astype("float32"), verbose=0)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(predictions - y)), rel=1e-5)
    assert {"loss", "rmse", "r2"} <= set(metrics) and "per_class" not in metrics
    (tmp_path / "recipe.yaml").write_text("name: reg\n")
    (tmp_path / "preprocessing.json").write_text(json.dumps({"task": "regression"}))
    paths = ex.export(tmp_path, model, formats=["saved_model"], include_preprocessing=False, class_names=None,
                      input_shape=(4,), input_dtype="float64", x_check=x)  # task read from preprocessing.json
    out = tf.saved_model.load(str(paths["saved_model"])).signatures["serving_default"](
        inputs=tf.constant(((x - 1.0) / 2.0).astype("float32")))
    assert list(out) == ["predictions"]
    np.testing.assert_allclose(out["predictions"].numpy(), predictions, atol=1e-5)


def test_cli_export_prints_the_max_abs_difference_of_verification_json(cli, write_recipe, tmp_path):
    out = tmp_path / "runs"
    result = cli("train", write_recipe(train={"epochs": 1}), "--out", out)
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(out)
    result = cli("export", run_dir, "--format", "saved_model", "--format", "tflite")
    assert result.exit_code == 0, result.stderr
    diffs = strict_json(run_dir / "export" / "verification.json")["max_abs_diff"]
    printed = dict(re.findall(r"^(\w+): .* \(verified, max abs difference (\S+)\)$", result.stdout, re.M))
    assert printed == {fmt: f"{diff:.2e}" for fmt, diff in diffs.items()}
    assert set(printed) == {"saved_model", "tflite"}
    assert diffs["tflite"] > 0  # TFLite's kernels round otherwise: a real difference, not the 0.0 of a missing key
