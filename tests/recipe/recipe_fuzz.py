"""Mutations of the shipped recipes, and what `dlrecipe validate` must do with them (tests and bench/fuzz.py).

A mutation deletes, renames, retypes or duplicates a value somewhere in a recipe, nests it wrongly, or puts an
out-of-range number, unicode or a huge list there. ``validate`` must then end with exit 0, or with exit 2 and
every message naming a recipe path or a file line; never a traceback, never a file written.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
ODD_VALUES = [None, True, -1, 0, 2**31, 10**30, -1e308, float("inf"), float("nan"), 1e-320, "", "ünïcödé ✓",
              "x" * 300, [], {}, [1, [2, [3]]], {"type": "Dense"}, {"choice": []}, "relu", "Dense", 3.5, "1e-3"]


def load(path: Path) -> dict:
    """A shipped recipe as data, its relative paths (data, extends) made absolute so it validates anywhere."""
    doc = yaml.safe_load(path.read_text())
    data = doc.get("data") or {}
    for key in ("path", "test_path", "data_dir"):
        if isinstance(data.get(key), str):
            data[key] = str((path.parent / data[key]).resolve())
    if isinstance(doc.get("extends"), str):
        doc["extends"] = str((path.parent / doc["extends"]).resolve())
    doc.setdefault("name", path.stem)
    return doc


def _slots(node: Any, trail: tuple = ()) -> list[tuple]:
    out = [trail]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _slots(v, (*trail, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _slots(v, (*trail, i))
    return out


def _parent(doc: Any, trail: tuple) -> tuple[Any, Any]:
    node = doc
    for key in trail[:-1]:
        node = node[key]
    return node, trail[-1]


def mutate(doc: dict, rnd: random.Random, times: int = 1) -> dict:
    """``doc`` with ``times`` random mutations (the random generator decides everything)."""
    for _ in range(times):
        slots = [s for s in _slots(doc) if s]
        if not slots:
            break
        parent, key = _parent(doc, rnd.choice(slots))
        op = rnd.choice(["delete", "rename", "retype", "duplicate", "nest", "huge_list", "number"])
        value = parent[key]
        if op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[f"{key}{rnd.choice(['s', '_', 'x', 'ë'])}"] = parent.pop(key)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, value)
        elif op == "nest":
            parent[key] = rnd.choice([[value], {"type": value}, {"value": value}])
        elif op == "huge_list":
            parent[key] = [value] * rnd.choice([100, 5000])
        elif op == "number":
            parent[key] = rnd.choice([-(10**rnd.randint(1, 25)), 10**rnd.randint(1, 25), rnd.uniform(-1e9, 1e9)])
        else:
            parent[key] = rnd.choice(ODD_VALUES)
    return doc


ERROR_LINE = re.compile(r"^error: (?P<head>\S+?)(?: \((?P<where>[^()]*:\d+|--set [^()]*)\))?: \S")
# A recipe path (model.layers[3].filters), a file with its line, or a file.
WHERE = re.compile(r"^(?:[^\W\d][\w]*(?:\.[^\W\d]\w*|\.\w+|\[\d+\])*|\(top level\)|\S+\.(?:yaml|yml)(?::\d+)?|/\S+)$")


def check_outcome(exit_code: int, stderr: str) -> list[str]:
    """What is wrong with ``validate``'s answer (empty when it is right): only exit 0 or 2, no traceback, every
    error naming where."""
    wrong = []
    if exit_code not in (0, 2):
        wrong.append(f"exit code {exit_code}")
    if "Traceback" in stderr:
        wrong.append("a traceback")
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    if exit_code == 2 and not errors:
        wrong.append("exit 2 without an error line")
    for line in errors:
        m = ERROR_LINE.match(line)
        if not m or not WHERE.match(m.group("head")):
            wrong.append(f"an error naming no recipe path: {line[:160]}")
    return wrong


def error_kind(line: str) -> str:
    """A message's kind for counting: its words without paths, numbers and quoted values."""
    text = line.split(": ", 2)[-1]
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\S*[/\\]\S*|[-+]?\d[\d.e+-]*", "_", text)
    return " ".join(text.split()[:8])
