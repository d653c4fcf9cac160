"""experiments/<topic>/: every recipe validates, each variant is one change from the recipe it extends, every
folder has its README and prediction, and bench/experiments.py's ordering check (on fabricated compare.json)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from dlrecipe import runs
from dlrecipe.compare.collect import flatten
from dlrecipe.recipe.loader import load_recipe, parse_set_path

EXPERIMENTS = ROOT / "experiments"
TOPICS = sorted(p.name for p in EXPERIMENTS.iterdir() if p.is_dir())
RECIPES = sorted(p for p in EXPERIMENTS.glob("*/*.yaml") if p.name != "predict.yaml")
VARIANTS = [p for p in RECIPES if "extends" in yaml.safe_load(p.read_text())]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_experiments", ROOT / "bench" / "experiments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ten_topics_are_shipped_and_the_bench_runs_them_all():
    assert len(TOPICS) == 10, TOPICS
    assert sorted(_bench().ORDER) == TOPICS
    assert len(VARIANTS) >= 20


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_experiment_recipe_validates(cli, recipe, monkeypatch):
    monkeypatch.chdir(ROOT)  # as documented: from the repository's root
    result = cli("validate", recipe.relative_to(ROOT))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "valid." in result.stdout
    assert recipe.read_text().startswith("# yaml-language-server: $schema=../../recipe.schema.json\n")


def _value(data, path: str):
    for key in parse_set_path(path):
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return KeyError
    return data


def _atomic(value) -> bool:
    """One setting: a scalar, an empty list or mapping, or a Keras object / schedule (a mapping with type)."""
    if isinstance(value, dict):
        return not value or "type" in value or "schedule" in value
    if isinstance(value, list):
        return not value
    return True


def changed_settings(base: dict, variant: dict) -> set[str]:
    """The settings two resolved recipes differ in, besides ``name``: each differing leaf (compare's diff) cut at
    its shortest prefix that is one setting in either recipe, or that one of them lacks."""
    a, b = flatten(base), flatten(variant)
    found = set()
    for leaf in (p for p in dict.fromkeys([*a, *b]) if p != "name" and a.get(p, KeyError) != b.get(p, KeyError)):
        parts = [leaf[:i] for i in range(1, len(leaf) + 1) if i == len(leaf) or leaf[i] in ".["]
        found.add(next(p for p in parts if any(_value(r, p) is KeyError or _atomic(_value(r, p))
                                               for r in (base, variant))))
    return found


@pytest.mark.parametrize("recipe", VARIANTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_variant_is_one_change_from_the_recipe_it_extends(recipe):
    parent = recipe.parent / yaml.safe_load(recipe.read_text())["extends"]
    assert parent.parent == recipe.parent and parent.is_file()
    changes = changed_settings(load_recipe(parent).resolved(), load_recipe(recipe).resolved())
    declared = (yaml.safe_load((recipe.parent / "predict.yaml").read_text()).get("changes") or {}).get(recipe.name)
    if declared:
        assert changes and changes <= set(declared), changes
    else:
        assert len(changes) == 1, changes
    names = {load_recipe(p).recipe.name for p in recipe.parent.glob("*.yaml") if p.name != "predict.yaml"}
    assert len(names) == len(list(recipe.parent.glob("*.yaml"))) - 1  # a run folder per recipe


def test_the_diff_finds_one_setting_and_refuses_two():
    base = {"name": "a", "model": {"defaults": {"kernel_initializer": "glorot_uniform"}, "layers": [
        {"type": "Dense", "units": 8}, {"type": "Dropout", "rate": 0.0}]}, "data": {"augment": []}}
    normal = {"type": "RandomNormal", "stddev": 0.01}
    assert changed_settings(base, {**base, "name": "b", "model": {**base["model"], "defaults": {
        "kernel_initializer": normal}}}) == {"model.defaults.kernel_initializer"}
    assert changed_settings(base, {**base, "data": {"augment": [{"type": "RandomFlip"}, {"type": "RandomZoom"}]}}) \
        == {"data.augment"}
    two = {**base, "model": {**base["model"], "layers": [{"type": "Dense", "units": 16}, {"type": "Dropout",
                                                                                          "rate": 0.5}]}}
    assert changed_settings(base, two) == {"model.layers[0]", "model.layers[1]"}


@pytest.mark.parametrize("topic", TOPICS)
def test_every_experiment_has_a_readme_with_its_prediction_and_a_bench_spec(topic):
    folder = EXPERIMENTS / topic
    spec = yaml.safe_load((folder / "predict.yaml").read_text())
    readme = (folder / "README.md").read_text()
    assert "**Prediction**" in readme and spec["prediction"].split(",")[0][:40] in readme.replace("\n", " ")
    assert "dlrecipe compare" in readme or spec.get("kind") in ("ensemble", "tune")
    for variant in spec["variants"]:
        assert (folder / variant).is_file()
        assert f"experiments/{topic}/{variant}" in readme  # the exact command
    labels = {Path(v).stem for v in spec["variants"]} | ({"members"} if spec.get("kind") == "ensemble" else set())
    assert spec["checks"]
    for check in spec["checks"]:
        tiers = check["ascending"]
        assert len(tiers) >= 2 and {v for tier in tiers for v in tier} <= labels, (check, labels)


def _history(folder: Path, accuracy: float, val_accuracy: float) -> str:
    folder.mkdir(parents=True)
    runs.write_history(folder / runs.HISTORY, [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0,
                                                "val_accuracy": 0.5},
                                               {"epoch": 2, "loss": 0.5, "accuracy": accuracy, "val_loss": 0.6,
                                                "val_accuracy": val_accuracy}])
    return str(folder)


def _compare_json(tmp_path: Path) -> tuple[dict, dict]:
    """compare.json of three seed groups (2 seeds each), as `dlrecipe compare --json` prints it."""
    rows, labels = [], {}
    for label, test, acc, val in (("base", 0.80, 0.99, 0.80), ("p02", 0.83, 0.95, 0.82), ("p05", 0.825, 0.90, 0.83)):
        group = tmp_path / f"dropout-{label}" / "20261203-000000"
        members = [_history(group / f"seed-{s}", acc + d, val) for s, d in ((42, 0.0), (43, 0.004))]
        rows.append({"label": f"dropout-{label}/20261203-000000", "runs": members, "group": str(group),
                     "differs": {"model.defaults.rate": {"base": 0.0, "p02": 0.2, "p05": 0.5}[label]},
                     "metrics": {"test_accuracy": {"mean": test, "std": 0.01, "n": 2}}})
        labels[str(group.resolve())] = label
    return {"objective": {"name": "val_loss", "direction": "min", "sorted_by": "best_val_loss"}, "rows": rows}, labels


def test_the_check_matches_a_predicted_ordering_and_reports_one_that_is_not(tmp_path):
    bench = _bench()
    data, labels = _compare_json(tmp_path)
    metrics = bench.metrics_from_compare(json.loads(json.dumps(data)), labels)
    assert metrics["base"]["gap_accuracy"]["mean"] == pytest.approx(0.192)  # (0.19 + 0.194) / 2, from history.csv
    assert metrics["p05"]["gap_accuracy"]["n"] == 2 and metrics["p05"]["gap_accuracy"]["std"] > 0
    gap = bench.check_order(metrics, {"metric": "gap_accuracy", "ascending": [["p05.yaml"], ["p02"], ["base"]]})
    assert gap["matched"] is True and gap["measured"] == ["p05", "p02", "base"]
    tiers = bench.check_order(metrics, {"metric": "test_accuracy", "ascending": [["base"], ["p02", "p05"]]})
    assert tiers["matched"] is True and tiers["clear"] is True  # no order within a tier
    assert bench.verdict(tiers) == "matched"
    wrong = bench.check_order(metrics, {"metric": "test_accuracy", "ascending": [["base"], ["p02"], ["p05"]]})
    assert wrong["matched"] is False and wrong["measured"] == ["base", "p05", "p02"]
    assert bench.verdict(wrong) == "NOT matched (within noise)"  # p02 - p05 = 0.005, below their std 0.01
    assert bench.check_order(metrics, {"metric": "test_loss", "ascending": [["base"], ["p05"]]})["matched"] is None
    result = {"topic": "dropout", "metrics": metrics, "seconds": 12.0, "seeds": 2,
              "checks": [{**wrong, "predicted": [["base"], ["p02"], ["p05"]]}]}
    table = bench.markdown(result)
    assert "| p02 | 0.8300 ± 0.0100 (n=2) |" in table and "**NOT matched (within noise)**" in table
    line = bench.summary([result]).splitlines()[2]
    assert "{base} < {p02} < {p05}" in line and "base 0.8000 ± 0.0100, p05 0.8250" in line and "NOT matched" in line
