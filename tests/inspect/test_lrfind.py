"""``dlrecipe lr-find`` through the CLI on the tiny recipe of conftest (96 training examples, 6 steps per epoch)."""

from __future__ import annotations

import json

import pytest
from conftest import write_yaml

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_json_has_the_keys_and_a_rising_curve_and_only_the_png_is_written(cli, write_recipe, tmp_path, monkeypatch):
    recipe = write_recipe()
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    result = cli("lr-find", recipe, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert set(found) == {"suggestion", "steepest", "valley", "min_loss_lr", "curve"}
    lrs = [lr for lr, _ in found["curve"]]
    assert len(lrs) == 6  # one epoch by default
    assert lrs[0] == pytest.approx(1e-7) and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert found["suggestion"] in (found["steepest"], found["valley"])
    assert all(1e-7 <= found[k] <= 10 for k in ("steepest", "valley", "min_loss_lr"))
    assert not (tmp_path / "runs").exists()  # no run folder: only the plot, in the current folder by default
    assert _files(tmp_path) == sorted([*before, "lr-find.png"])
    assert (tmp_path / "lr-find.png").read_bytes().startswith(PNG_MAGIC)


def test_it_stops_when_the_loss_diverges_and_prints_the_set_line(cli, write_recipe, tmp_path):
    recipe = write_recipe(train={"optimizer": "sgd", "learning_rate": 0.01})
    out = tmp_path / "plots" / "find.png"
    result = cli("lr-find", recipe, "--start", "1e-3", "--end", "1e6", "--steps", "30", "--out", out)
    assert result.exit_code == 0, result.output
    assert "the loss diverged" in result.stdout
    steps = int(result.stdout.split("range test, ")[1].split(" of ")[0])
    assert 2 <= steps < 30
    line = next(l for l in result.stdout.splitlines() if l.startswith("Use it: "))
    assert f"dlrecipe train {recipe} --set train.learning_rate=" in line
    assert float(line.rsplit("=", 1)[1]) > 0
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_a_one_cycle_schedule_gets_its_max(cli, write_recipe, tmp_path):
    recipe = write_recipe(train={"learning_rate": {"schedule": "one_cycle", "initial": 0.001, "max": 0.01}})
    result = cli("lr-find", recipe, "--steps", "8", "--out", tmp_path / "oc.png")
    assert result.exit_code == 0, result.output
    assert "--set train.learning_rate.max=" in result.stdout
    assert "schedule and callbacks were left out" in result.stdout


@pytest.mark.parametrize("args,path", [
    (["--start", "1", "--end", "0.1"], "--end"),
    (["--start", "0"], "--start"),
    (["--out", "find.jpg"], "--out"),
    (["--steps", "1"], "--steps"),
])
def test_bad_flags_exit_2_and_write_nothing(cli, write_recipe, tmp_path, monkeypatch, args, path):
    recipe = write_recipe()
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    result = cli("lr-find", recipe, *args)
    assert result.exit_code == 2
    assert f"error: {path}" in result.stderr and "nothing was written" in result.stderr
    assert _files(tmp_path) == before


def test_a_recipe_that_fails_validation_exits_2_and_writes_nothing(cli, tiny_npz, tmp_path, monkeypatch):
    from conftest import recipe_dict
    recipe = write_yaml(tmp_path / "bad.yaml", recipe_dict(tiny_npz, train={"epochs": -3}))
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    result = cli("lr-find", recipe)
    assert result.exit_code == 2
    assert "train.epochs" in result.stderr
    assert _files(tmp_path) == before
