"""Atomic writes keep the umask's mode: a teammate or a serving container can read a run (dlrecipe.io)."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import only_run

from dlrecipe.io import atomic_path, write_json, write_text


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)
    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_an_atomic_write_gets_the_mode_open_would_give(tmp_path, umask, mask, expected):
    umask(mask)
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "b.json", {"a": 1})
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"\0")
    assert [mode(tmp_path / n) for n in ("a.txt", "b.json", "c.bin")] == [expected] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.bin"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_every_file_of_a_trained_and_evaluated_run_is_readable_by_others(cli, write_recipe, tmp_path, umask):
    umask(0o022)
    out = tmp_path / "runs"
    result = cli("train", write_recipe(), "--out", out, "--evaluate")
    assert result.exit_code == 0, result.output
    run = only_run(out)
    files = [p for p in run.rglob("*") if p.is_file() and "tensorboard" not in p.parts]
    names = {p.relative_to(run).as_posix() for p in files}
    assert {"recipe.yaml", "history.csv", "model.keras", "metrics.json", "plots/curves.png",
            "checkpoints/last.keras", "checkpoints/state.json"} <= names
    assert {p.relative_to(run).as_posix(): oct(mode(p)) for p in files if mode(p) != 0o644} == {}
