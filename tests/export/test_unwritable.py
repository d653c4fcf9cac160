"""A run folder (or --out) that cannot be written: exit 2 naming the folder, no traceback, nothing done."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import only_run


def _blocks(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


@contextlib.contextmanager
def unwritable(folder: Path, monkeypatch):
    """``folder`` made unwritable: chmod 0500 for a user, ``chattr +i`` for root (whom modes do not stop); where
    neither holds (no chattr, a file system without it), creating an entry in it fails as it then would."""
    folder = Path(folder).resolve()
    undo = None
    if os.geteuid() != 0:
        folder.chmod(0o500)
        undo = ["chmod", "755", str(folder)]
    elif shutil.which("chattr") and not subprocess.run(["chattr", "+i", str(folder)], capture_output=True,
                                                       check=False).returncode:
        undo = ["chattr", "-i", str(folder)]
    try:
        if not _blocks(folder):
            real_open, real_mkdir = os.open, os.mkdir

            def denied(path) -> bool:
                return Path(path).resolve().parent == folder

            def fake_open(path, *args, **kwargs):
                if denied(path) and not os.path.exists(path):
                    raise PermissionError(13, "Permission denied", str(path))
                return real_open(path, *args, **kwargs)

            def fake_mkdir(path, *args, **kwargs):
                if denied(path):
                    raise PermissionError(13, "Permission denied", str(path))
                return real_mkdir(path, *args, **kwargs)
            monkeypatch.setattr(os, "open", fake_open)
            monkeypatch.setattr(os, "mkdir", fake_mkdir)
        yield folder
    finally:
        monkeypatch.undo()
        if undo is not None:
            subprocess.run(undo, check=True)


@pytest.fixture
def finished_run(cli, write_recipe, tmp_path) -> Path:
    out = tmp_path / "runs"
    assert cli("train", write_recipe(train={"epochs": 1}), "--out", out).exit_code == 0
    return only_run(out)


def refused(result, folder: Path) -> str:
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and "PermissionError" not in result.stderr
    assert str(folder) in message.replace(" ", "") or str(folder) in message, message
    return message


def test_export_evaluate_and_resume_refuse_a_run_folder_that_cannot_be_written(cli, finished_run, monkeypatch):
    before = sorted(p.name for p in finished_run.iterdir())
    with unwritable(finished_run, monkeypatch):
        assert "Cannot write" in refused(cli("export", finished_run, "--format", "keras"), finished_run)
        assert "Cannot write" in refused(cli("evaluate", finished_run), finished_run)
        assert "Cannot write" in refused(cli("train", "--resume", finished_run, "--set", "train.epochs=2"),
                                         finished_run)
    assert sorted(p.name for p in finished_run.iterdir()) == before  # nothing written


def test_export_refuses_an_export_folder_that_cannot_be_written(cli, finished_run, monkeypatch):
    (finished_run / "export").mkdir()
    with unwritable(finished_run / "export", monkeypatch):
        message = refused(cli("export", finished_run, "--format", "keras"), finished_run / "export")
    assert "chattr -i" in message
    assert list((finished_run / "export").iterdir()) == []


def test_train_refuses_an_out_folder_that_cannot_be_written(cli, write_recipe, tmp_path, monkeypatch):
    out = tmp_path / "locked"
    out.mkdir()
    with unwritable(out, monkeypatch):
        result = cli("train", write_recipe(), "--out", out)
    assert result.exit_code == 2 and "--out" in result.stderr and "not writable" in result.stderr, result.stderr
    assert list(out.iterdir()) == []
