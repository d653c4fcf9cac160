"""Exports that load anywhere: a .keras of standard Keras layers, ONNX, TF Serving's versions, bad requests."""

from __future__ import annotations

import importlib.util
import json
import os
import site
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import recipe_dict, tiny_arrays, write_yaml

# A block, one of dlrecipe's augmentation layers, a Keras augmentation layer and dlrecipe's epoch schedule:
# everything that made the old .keras export fail without dlrecipe.
MODEL = [{"type": "conv_bn_act", "filters": 4}, {"type": "Flatten"},
         {"type": "Dense", "units": 3, "activation": "softmax"}]
AUGMENT = [{"type": "RandomFlip", "mode": "horizontal"}, {"type": "gaussian_noise", "stddev": 0.01}]
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}


def invoke(*args):
    from dlrecipe.cli.main import app
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("portable")
    arrays = tiny_arrays()
    np.savez(folder / "tiny.npz", **arrays)
    recipe = recipe_dict(folder / "tiny.npz", model={"layers": MODEL},
                         data={"augment": AUGMENT},
                         train={"epochs": 1, "learning_rate": {"schedule": "cosine", "initial": 0.01}})
    result = invoke("train", write_yaml(folder / "tiny.yaml", recipe), "--out", folder / "runs")
    assert result.exit_code == 0, result.stderr
    run_dir = next((folder / "runs" / "tiny").iterdir())
    result = invoke("export", run_dir, "--format", "saved_model", "--format", "keras")
    assert result.exit_code == 0, result.stderr
    from dlrecipe.runs import load_model
    x = arrays["x_test"]
    expected = load_model(run_dir / "model.keras").predict(x.astype("float32"), verbose=0)
    np.save(folder / "x.npy", x)
    return {"dir": run_dir, "folder": folder, "x": x, "expected": expected}


def without_dlrecipe(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python that cannot import dlrecipe: -I (no PYTHONPATH, no cwd) and -S (no .pth
    files, so the venv's editable install is not on the path), with only site-packages added back."""
    prelude = textwrap.dedent(f"""
        import sys
        sys.path += {site.getsitepackages()!r}
        try:
            import dlrecipe
        except ImportError:
            pass
        else:
            raise SystemExit("dlrecipe is importable: " + dlrecipe.__file__)
    """)
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=CLEAN_ENV)


def test_keras_export_loads_and_predicts_without_dlrecipe(run):
    path = run["dir"] / "export" / "model.keras"
    done = without_dlrecipe(f"""
        import numpy as np, keras
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        assert getattr(model, "optimizer", None) is None, model.optimizer
        np.save({str(run["folder"] / "keras_p.npy")!r}, model.predict(np.load({str(run["folder"] / "x.npy")!r})
                .astype("float32"), verbose=0))
        print(sorted({{type(layer).__module__.split(".")[0] for layer in model.layers}}))
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['keras']"
    diff = np.max(np.abs(np.load(run["folder"] / "keras_p.npy") - run["expected"]))
    assert diff <= 1e-5, diff


def test_the_run_model_itself_needs_dlrecipe(run):
    """The check above can fail: the training model.keras (blocks, optimizer) does not load without dlrecipe."""
    done = without_dlrecipe(f"""
        import keras
        keras.saving.load_model({str(run["dir"] / "model.keras")!r}, safe_mode=True)
    """)
    assert done.returncode != 0 and "Could not locate class" in done.stderr, done.stderr[-2000:]


def test_wrong_request_shape_raises_instead_of_aborting(run):
    saved = run["dir"] / "export" / "saved_model" / "1"
    done = without_dlrecipe(f"""
        import numpy as np, tensorflow as tf
        serve = tf.saved_model.load({str(saved)!r}).signatures["serving_default"]
        for shape in ([2, 8, 8, 3], [2, 8, 8], [2, 9, 8, 1]):
            try:
                serve(inputs=tf.zeros(shape, tf.uint8))
            except tf.errors.InvalidArgumentError as e:
                print("InvalidArgumentError", "expected shape [?,8,8,1]" in str(e))
        print(serve(inputs=tf.zeros([2, 8, 8, 1], tf.uint8))["class_id"].shape)
    """)
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])  # not 134 (abort)
    assert done.stdout.strip().splitlines()[-4:] == ["InvalidArgumentError True"] * 3 + ["(2,)"]


def test_saved_model_versions_and_verification_keeps_every_format(run):
    export_dir = run["dir"] / "export"
    result = invoke("export", run["dir"], "--format", "tflite")
    assert result.exit_code == 0, result.stderr
    report = json.loads((export_dir / "verification.json").read_text())
    assert {"saved_model", "keras", "tflite"} <= set(report["max_abs_diff"])
    assert report["formats"]["saved_model"]["path"] == "saved_model/1"
    assert report["formats"]["tflite"]["path"] == "model.tflite"
    mode = stat.S_IMODE((export_dir / "verification.json").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # the usual permissions, not mkstemp's 0600
    assert sorted(p.name for p in (export_dir / "saved_model").iterdir()) == ["1"]  # tflite alone: no new version
    result = invoke("export", run["dir"], "--format", "saved_model")
    assert result.exit_code == 0 and "saved_model/2 (verified" in result.stdout, result.stdout
    assert sorted(p.name for p in (export_dir / "saved_model").iterdir()) == ["1", "2"]
    assert json.loads((export_dir / "saved_model/2/assets.extra/dlrecipe.json").read_text())["class_names"] == \
        ["left", "middle", "right"]
    assert set(json.loads((export_dir / "verification.json").read_text())["max_abs_diff"]) >= {"keras", "tflite"}


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tf2onnx") is None,
                    reason="needs the onnx extra: pip install -e '.[onnx]'")
def test_onnx_export_matches_the_model_with_preprocessing_in_onnxruntime(run):
    result = invoke("export", run["dir"], "--format", "onnx")
    assert result.exit_code == 0, result.stderr
    path = run["dir"] / "export" / "model.onnx"
    done = without_dlrecipe(f"""
        import sys
        sys.modules["tensorflow"] = sys.modules["keras"] = None  # onnxruntime alone
        import numpy as np, onnxruntime as ort
        s = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        x = np.load({str(run["folder"] / "x.npy")!r}).astype("float32")  # raw pixels: preprocessing is inside
        np.save({str(run["folder"] / "onnx_p.npy")!r}, s.run(None, {{s.get_inputs()[0].name: x}})[0])
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    diff = np.max(np.abs(np.load(run["folder"] / "onnx_p.npy") - run["expected"]))
    assert diff <= 1e-4, diff


def test_onnx_without_its_extra_exits_2_naming_the_install(run, monkeypatch):
    from dlrecipe.export import onnx_file
    monkeypatch.setattr(onnx_file, "NEEDS", ("onnx", "tf2onnx_is_not_installed"))
    before = sorted(p.name for p in (run["dir"] / "export").iterdir())
    result = invoke("export", run["dir"], "--format", "onnx")
    assert result.exit_code == 2 and "pip install -e '.[onnx]'" in result.stderr, result.stderr
    assert sorted(p.name for p in (run["dir"] / "export").iterdir()) == before


def test_portable_model_expands_every_block_and_drops_augmentation():
    import keras

    from dlrecipe.export.portable import portable_model
    from dlrecipe.layers.registry import ConvBNAct, FancyPCA, GlobalContrastNormalization, Resnext
    inputs = keras.Input((8, 8, 3))
    x = FancyPCA(name="aug_pca")(inputs)
    x = GlobalContrastNormalization(name="preprocessing_gcn")(x)
    x = ConvBNAct(8, name="stem")(x)
    x = Resnext(16, cardinality=4, name="rx")(x)  # a grouped convolution inside a block
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    portable = portable_model(model)
    assert {type(layer).__module__.split(".")[0] for layer in portable.layers} == {"keras"}
    assert not [layer for layer in portable.layers if "pca" in layer.name]
    np.testing.assert_allclose(portable.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
