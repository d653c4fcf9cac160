"""``dlrecipe diagnose``: the verdict rules on synthetic curves, the CLI on run folders, the shipped regime recipes.

The synthetic curves go straight into ``diagnose_history``; run folders for the CLI tests are written by hand
(recipe.yaml, history.csv, preprocessing.json), so only the tests marked slow and the one that trains import
TensorFlow.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, only_run

from dlrecipe import runs
from dlrecipe.inspect.curves import diagnose_history
from dlrecipe.inspect.diagnose import overall
from dlrecipe.inspect.fixes import would_stop, yaml_number
from dlrecipe.io import write_json, write_yaml
from dlrecipe.recipe.loader import load_recipe

REGIMES = ROOT / "recipes" / "diagnose"
OVERFIT = REGIMES / "overfitting.yaml"
KEYS = {"verdict", "confidence", "onset_epoch", "evidence", "suggestions"}


def rows_of(loss, val=None, lr=None) -> list[dict]:
    rows = []
    for i, value in enumerate(loss):
        row = {"epoch": i + 1, "loss": float(value)}
        if val is not None:
            row["val_loss"] = float(val[i])
        row["learning_rate"] = float(lr[i]) if lr is not None else 0.001
        rows.append(row)
    return rows


def recipe_of(path: Path = OVERFIT) -> dict:
    return load_recipe(path).resolved()


def judge(loss, val=None, lr=None, recipe=None, n_classes=10, **context):
    return diagnose_history(rows_of(loss, val, lr), recipe if recipe is not None else recipe_of(),
                            n_classes=n_classes, context={"run": "runs/x/1", "image": True, **context})


def sets_of(suggestions: list[str]) -> list[str]:
    """The PATH=VALUE of every --set in the suggestions (each a shell fragment with a # comment)."""
    out = []
    for s in suggestions:
        words = shlex.split(s, comments=True)
        if "--resume" in words:
            continue
        out += [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    return out


E = np.arange(1, 31, dtype=float)


# --- the rules on synthetic curves ---------------------------------------------------------------------


def test_a_nan_row_is_diverging_from_its_epoch():
    loss = [1.2, 0.9, 0.8, math.nan, 0.7]
    d = judge(loss, [1.3, 1.0, 0.9, 0.95, 0.9])
    assert d.verdict == "diverging" and d.onset_epoch == 4
    assert d.evidence["nonfinite_epoch"] == 4
    assert "train.learning_rate=0.0001" in " ".join(d.suggestions)  # the recipe's 0.001, 10x lower


def test_a_loss_worse_than_guessing_is_diverging():
    loss = [140.0, 2.41, 2.42, 2.49, 2.43, 2.43, 2.43, 2.41]
    val = [4.6, 4.4, 4.7, 4.5, 4.55, 4.33, 4.39, 4.52]
    d = judge(loss, val)
    assert d.verdict == "diverging" and d.confidence >= 0.8
    assert d.evidence["chance_loss"] == pytest.approx(math.log(10), abs=1e-3)
    assert "2.303" in d.evidence["why"]


def test_a_rising_training_loss_is_diverging_unless_the_schedule_raised_the_rate():
    loss = [1.0, 0.8, 0.7, 0.9, 1.4, 2.0, 3.1]
    d = judge(loss, [1.1, 0.9, 0.8, 1.0, 1.5, 2.1, 3.3], recipe=recipe_of(REGIMES / "healthy.yaml"), n_classes=None)
    assert d.verdict == "diverging" and d.onset_epoch == 4
    assert any("train.learning_rate.initial=0.0002" in s for s in d.suggestions)  # its cosine schedule's initial
    cyclic = [0.001, 0.001, 0.001, 0.004, 0.008, 0.01, 0.01]
    d = judge(loss, [1.1, 0.9, 0.8, 1.0, 1.5, 2.1, 3.3], lr=cyclic, n_classes=None)
    assert d.verdict == "unclear" and d.evidence["lr_rose"]


def test_a_blip_of_a_near_zero_training_loss_or_a_loss_stuck_at_chance_is_not_diverging():
    _, val = overfitting_curves()
    loss = 1.5 * np.exp(-E / 3)
    loss[-4:] = [0.0005, 0.002, 0.006, 0.012]  # 24x its minimum and above its noise, but far below the start
    assert judge(loss, val).verdict == "overfitting"
    stuck = math.log(10) + np.array([0.0, 0.001, -0.001, 0.002, 0.001, 0.003])
    d = judge(stuck, stuck + 0.002)
    assert d.verdict == "underfitting" and d.evidence["loss_vs_chance"] >= 1


def overfitting_curves(seed: int = 0, sigma: float = 0.0):
    rng = np.random.default_rng(seed)
    loss = 1.5 * np.exp(-E / 6) + 0.01
    val = 0.45 + 0.6 * np.exp(-E / 3) + np.where(E > 10, 0.012 * (E - 10), 0.0) + rng.normal(0, sigma, E.size)
    return loss, val


def test_overfitting_names_its_onset_and_the_recipes_own_fixes():
    loss, val = overfitting_curves()
    d = judge(loss, val)
    assert d.verdict == "overfitting" and 9 <= d.onset_epoch <= 12, d.evidence
    assert d.best_epoch == d.onset_epoch
    assert d.evidence["val_rise"] > d.evidence["rise_margin"] and d.evidence["gap_end"] > d.evidence["gap_at_onset"]
    text = "\n".join(d.suggestions)
    assert "model.layers[2].rate=0.5" in text  # the recipe's own Dropout (rate 0.0)
    assert "model.layers[1].units=256" in text  # its widest hidden Dense, halved
    stop, best = would_stop(list(val), 5)
    assert f"stopped after epoch {stop + 1} and kept epoch {best + 1}" in text
    assert "RandomTranslation" in text and "kernel_regularizer" in text


def test_a_noisy_but_healthy_curve_is_never_called_overfitting():
    for seed in range(25):
        rng = np.random.default_rng(seed)
        loss = 0.30 + 0.5 * np.exp(-E / 4) + rng.normal(0, 0.005, E.size)
        val = 0.36 + 0.4 * np.exp(-E / 4) + rng.normal(0, 0.03, E.size)
        d = judge(loss, val)
        assert d.verdict in ("healthy", "unclear"), (seed, d.line())


def test_the_same_noise_on_a_real_rise_is_overfitting():
    found = [judge(*overfitting_curves(seed, sigma=0.03)).verdict for seed in range(10)]
    assert found.count("overfitting") >= 8, found


def test_underfitting_needs_a_high_flat_loss_close_to_validation_and_a_chance_reference():
    loss = 1.3 + 0.6 * np.exp(-E[:15] / 2)
    val = loss + 0.02
    d = judge(loss, val, recipe=recipe_of(REGIMES / "underfitting.yaml"))
    assert d.verdict == "underfitting", d.line()
    assert d.evidence["loss_vs_chance"] > 0.5
    assert "model.layers[1].units=64" in "\n".join(d.suggestions)  # its 1-unit bottleneck
    mse = recipe_of(REGIMES / "underfitting.yaml")
    mse["train"]["loss"] = "mean_squared_error"
    assert judge(loss, val, recipe=mse).verdict == "healthy"  # no reference for a regression loss: no alarm


def test_still_improving_suggests_resuming_for_more_epochs():
    loss = 2.0 * 0.85 ** E[:6]
    val = 1.8 * 0.88 ** E[:6]
    d = judge(loss, val)
    assert d.verdict == "still_improving" and d.confidence >= 0.8
    assert d.suggestions == [("--resume runs/x/1 --set train.epochs=12  # 6 more epochs; the losses were still "
                              "falling at epoch 6")]


def test_a_converged_run_with_a_small_gap_is_healthy():
    loss = 0.30 + 0.9 * np.exp(-E[:20] / 2.5)
    val = 0.34 + 0.8 * np.exp(-E[:20] / 2.5)
    d = judge(loss, val)
    assert d.verdict == "healthy" and d.suggestions == []
    assert d.evidence["gap_last_rel"] < 0.35


def test_too_few_epochs_or_no_validation_is_unclear_with_the_way_out():
    d = judge([1.0, 0.9], [1.1, 1.0])
    assert d.verdict == "unclear" and d.confidence == 0
    no_val = recipe_of()
    no_val["data"]["validation_split"] = 0.0
    d = judge([0.5, 0.45, 0.44, 0.44, 0.44], recipe=no_val)
    assert d.verdict == "unclear"
    assert any("data.validation_split=0.1" in s for s in d.suggestions)


def test_overall_takes_any_diverging_member_else_the_majority():
    good = [judge(0.30 + 0.9 * np.exp(-E[:20] / 2.5), 0.34 + 0.8 * np.exp(-E[:20] / 2.5)) for _ in range(2)]
    bad = judge([1.0, 0.9, math.nan], [1.0, 0.9, 0.9])
    for i, d in enumerate((*good, bad), 1):
        d.label = f"member {i}"
    assert overall([*good, bad]).verdict == "diverging"
    both = overall(good)
    assert both.verdict == "healthy" and both.evidence["verdicts"] == {"healthy": 2}
    assert [m["label"] for m in both.as_json()["members"]] == ["member 1", "member 2"]


def test_suggested_sets_apply_to_the_recipe(cli):
    """Every --set of the overfitting and diverging fixes loads, and builds in Keras (validate)."""
    loss, val = overfitting_curves()
    sets = sets_of(judge(loss, val).suggestions)
    sets += sets_of(judge([1.0, math.nan], [1.0, 1.0], optimizer_class="Adam").suggestions)
    assert len(sets) >= 6, sets
    assert load_recipe(OVERFIT, sets).recipe.model.defaults["kernel_regularizer"]["l2"] == 1.0e-4
    args = [a for s in sets for a in ("--set", s) if not s.startswith("train.learning_rate")]
    result = cli("validate", OVERFIT, *args)
    assert result.exit_code == 0, result.stderr


def test_yaml_numbers_read_back_as_floats():
    for x in (5.0, 0.5, 0.0001, 1e-5, 3e-7, 0.03, 12.5):
        assert load_recipe(OVERFIT, [f"train.learning_rate={yaml_number(x)}"]).recipe.train.learning_rate == \
            pytest.approx(x, rel=1e-2)


# --- the command on run folders ------------------------------------------------------------------------


def fake_run(root: Path, rows: list[dict] | None, recipe: Path = OVERFIT) -> Path:
    run = root / "runs" / "diagnose-overfitting" / "20260101-000000"
    run.mkdir(parents=True)
    write_yaml(run / runs.RECIPE, load_recipe(recipe).resolved())
    write_json(run / runs.PREPROCESSING, {"input_shape": [28, 28, 1], "task": "classification",
                                          "class_names": [str(i) for i in range(10)]})
    if rows is not None:
        runs.write_history(run / runs.HISTORY, rows)
    return run


def test_diagnose_json_keys_and_the_plot(cli, tmp_path):
    run = fake_run(tmp_path, rows_of(*overfitting_curves()))
    result = cli("diagnose", run.parent, "--json")  # runs/<name>: its newest run
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert KEYS <= set(found) and found["verdict"] == "overfitting"
    assert 0 < found["confidence"] <= 1 and isinstance(found["onset_epoch"], int)
    assert {"val_rise", "gap_end", "loss_rel_slope", "k", "why"} <= set(found["evidence"])
    png = run / "plots" / "diagnosis.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = cli("diagnose", run)
    assert result.exit_code == 0 and result.stdout.startswith("overfitting from epoch")
    assert "model.layers[2].rate=0.5" in result.stdout and f"Wrote {png}" in result.stdout


def test_diagnose_an_ensemble_and_a_cross_validation_per_member_and_overall(cli, tmp_path):
    run = fake_run(tmp_path, None)
    good = rows_of(0.30 + 0.9 * np.exp(-E[:20] / 2.5), 0.34 + 0.8 * np.exp(-E[:20] / 2.5))
    for i, rows in enumerate((good, rows_of(*overfitting_curves()), rows_of(*overfitting_curves(1, 0.01))), 1):
        runs.write_history(run / "folds" / str(i) / runs.HISTORY, rows)
    result = cli("diagnose", run, "--json")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["verdict"] == "overfitting" and found["evidence"]["verdicts"] == {"healthy": 1, "overfitting": 2}
    assert [(m["label"], m["verdict"]) for m in found["members"]] == [
        ("fold 1", "healthy"), ("fold 2", "overfitting"), ("fold 3", "overfitting")]
    assert all(KEYS <= set(m) for m in found["members"])


@pytest.mark.parametrize("case", ["not_a_run", "missing", "no_history", "empty_history", "bad_header"])
def test_bad_input_exits_2_with_the_path_and_writes_nothing(cli, tmp_path, case):
    if case == "not_a_run":
        target = tmp_path / "somewhere"
        target.mkdir()
    elif case == "missing":
        target = tmp_path / "nope"
    else:
        target = fake_run(tmp_path, None)
        history = target / runs.HISTORY
        if case == "empty_history":
            history.write_text("epoch,loss,learning_rate\n")
        elif case == "bad_header":
            history.write_text("loss,val_loss\n0.5,0.6\n")
    before = sorted(tmp_path.rglob("*"))
    result = cli("diagnose", target)
    assert result.exit_code == 2
    assert str(target) in result.stderr and "nothing was written" in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_diagnose_imports_no_tensorflow(tmp_path):
    run = fake_run(tmp_path, rows_of(*overfitting_curves()))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlrecipe", "diagnose", str(run), "--json"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "matplotlib" in imported and not imported & {"tensorflow", "keras", "jax"}
    assert json.loads(out.stdout)["verdict"] == "overfitting"


def test_train_prints_the_one_line_verdict(cli, write_recipe, tmp_path):
    result = cli("train", write_recipe(train={"epochs": 2}), "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("Diagnosis: ")]
    assert len(line) == 1 and "unclear" in line[0] and "only 2 epoch(s)" in line[0]
    assert not (only_run(tmp_path / "runs") / "plots" / "diagnosis.png").exists()


# --- the shipped regime recipes, trained -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["diverging", "overfitting", "underfitting", "still_improving", "healthy"])
def test_each_regime_recipe_gets_its_verdict(cli, tmp_path, regime):
    recipe = REGIMES / f"{regime}.yaml"
    result = cli("train", recipe, "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert f"Diagnosis: {regime.replace('_', ' ')}" in result.stdout
    result = cli("diagnose", only_run(tmp_path / "runs"), "--json")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["verdict"] == regime, found["evidence"]
    sets = sets_of(found["suggestions"])
    assert (regime == "healthy") == (found["suggestions"] == [])
    if sets:
        result = cli("validate", recipe, *[a for s in sets for a in ("--set", s)])
        assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("path", sorted(REGIMES.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_regime_recipe_loads_and_finds_the_shipped_sample(path):
    recipe = load_recipe(path).recipe
    assert recipe.name == f"diagnose-{path.stem}" and Path(recipe.data.path).is_file()
    assert Path(recipe.data.path).name == "fashion_mnist_sample.npz"
