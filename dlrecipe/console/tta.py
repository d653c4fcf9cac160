"""What ``evaluate --json`` prints: metrics.json alone (with ``tta`` / ``mc_dropout`` when asked for)."""

from __future__ import annotations

import json
from pathlib import Path

from typer import echo  # not dlrecipe.console's: a submodule importing its package is a cycle for the layout test


def print_metrics_json(evaluation: tuple) -> None:
    """``evaluate --json``: metrics.json's content (the file just written, NaN as null) alone on stdout."""
    echo(json.dumps(json.loads(Path(evaluation[2][0]).read_text()), indent=2))
