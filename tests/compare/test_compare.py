"""``dlrecipe compare``: rows per run or seed group, the recipe paths that differ, mean ± std, files, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, TINY_MODEL
from fake_runs import fake_group, fake_run
from PIL import Image


def _layers(filters: int) -> dict:
    return {"layers": [{**TINY_MODEL[0], "filters": filters}, *TINY_MODEL[1:]]}


def test_compare_shows_exactly_the_recipe_path_that_differs_and_sorts_by_val_loss(cli, tiny_npz, tmp_path):
    a = fake_run(tmp_path / "runs/tiny/20240101-000001", tiny_npz, model=_layers(4), offset=0.3)
    b = fake_run(tmp_path / "runs/tiny/20240101-000002", tiny_npz, model=_layers(8))
    out = tmp_path / "cmp"
    result = cli("compare", a, b, "--json", "--out", out)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [row["differs"] for row in data["rows"]] == [{"model.layers[0].filters": 8}, {"model.layers[0].filters": 4}]
    assert [row["runs"] for row in data["rows"]] == [[str(b)], [str(a)]]  # b has the lower val_loss
    assert data["objective"] == {"name": "val_loss", "direction": "min", "sorted_by": "best_val_loss"}
    metrics = data["rows"][0]["metrics"]
    assert {"best_val_loss", "val_loss", "val_accuracy", "test_accuracy", "test_loss"} <= set(metrics)
    assert metrics["val_accuracy"]["n"] == 1 and metrics["val_accuracy"]["std"] is None
    assert json.loads((out / "compare.json").read_text()) == data  # --json prints what compare.json holds
    for name in ("loss", "accuracy", "learning_rate"):
        with Image.open(out / f"curves_{name}.png") as image:
            image.load()
            assert image.size[0] > 200


def test_a_seed_group_is_one_row_with_mean_and_std_and_runs_name_resolves_to_the_newest(cli, tiny_npz, tmp_path):
    fake_run(tmp_path / "runs/tiny/20240101-000001", tiny_npz)
    group = fake_group(tmp_path / "runs/tiny/20240102-000000", tiny_npz, seeds=(1, 2))
    single = fake_run(tmp_path / "runs/other/20240101-000000", tiny_npz, seed=7, offset=0.1)
    result = cli("compare", tmp_path / "runs/tiny", single, "--json", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.stderr
    rows = {row["label"]: row for row in json.loads(result.stdout)["rows"]}
    grouped = rows["tiny/20240102-000000"]
    assert grouped["group"] == str(group)
    assert grouped["runs"] == [str(group / "seed-1"), str(group / "seed-2")]
    assert grouped["differs"] == {"seed": [1, 2]} and rows["other/20240101-000000"]["differs"] == {"seed": 7}
    val = grouped["metrics"]["val_loss"]
    assert val["n"] == 2 and val["std"] is not None and val["std"] > 0
    table = cli("compare", group, single, "--out", tmp_path / "cmp2")
    assert table.exit_code == 0 and "±" in table.stdout and "seed" in table.stdout


def test_compare_imports_no_tensorflow(tiny_npz, tmp_path):
    runs_ = [fake_run(tmp_path / f"runs/tiny/2024010{i}-000000", tiny_npz, offset=i / 10) for i in range(3)]
    code = ("import sys\nfrom dlrecipe.cli.main import app\n"
            "try:\n    app(sys.argv[1:], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print('LOADED', [m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code, "compare", *map(str, runs_), "--out", str(tmp_path / "cmp")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout and (tmp_path / "cmp" / "compare.json").is_file()


@pytest.mark.parametrize("case", ["not_a_run", "mixed_tasks", "unreadable_history", "empty_history"])
def test_bad_input_exits_2_names_the_path_and_writes_nothing(cli, tiny_npz, tmp_path, case):
    good = fake_run(tmp_path / "runs/tiny/20240101-000000", tiny_npz)
    if case == "not_a_run":
        bad = tmp_path / "empty"
        bad.mkdir()
        expected = "Not a run folder"
    elif case == "mixed_tasks":
        bad = fake_run(tmp_path / "runs/reg/20240101-000000", tiny_npz, task="regression")
        expected = "task is regression"
    else:
        bad = fake_run(tmp_path / "runs/tiny/20240101-000009", tiny_npz)
        (bad / "history.csv").write_text("loss,val_loss\n0.3,0.4\n" if case == "unreadable_history" else "epoch,loss\n")
        expected = "Expected a CSV whose first column is 'epoch'" if case == "unreadable_history" else "no finished epoch"
    out = tmp_path / "cmp"
    result = cli("compare", good, bad, "--out", out)
    assert result.exit_code == 2
    assert expected in result.stderr and str(bad) in result.stderr
    assert "nothing was written" in result.stderr
    assert not out.exists()
