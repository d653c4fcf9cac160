"""What the plain install (pip install -e ., no extras) lacks is named with its install command, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_keras_backend_jax_without_jax_names_the_extra(tmp_path, write_recipe):
    fake = tmp_path / "no-jax" / "jax"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'jax'\", name='jax')\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join(
        [str(tmp_path / "no-jax"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "dlrecipe", "train", str(write_recipe()), "--out",
                           str(tmp_path / "runs"), "--workers", "2"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "error: KERAS_BACKEND" in proc.stderr and "pip install -e '.[jax]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
