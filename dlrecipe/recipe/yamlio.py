"""Safe YAML loading with the line of every value.

Only PyYAML's safe loader is used: a ``!!python/...`` tag is an error, never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dlrecipe.errors import RecipeError, join_path


def load_yaml(path: Path) -> tuple[Any, dict[str, str]]:
    """Load ``path`` with the safe loader.

    Returns:
        The document and a map from dotted path to ``file:line``.

    Raises:
        RecipeError: unreadable file, broken YAML, unsafe tag or duplicate key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError.one(str(path), "File not found. Check the path (it is relative to the current folder).") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError.one(str(path), f"Cannot read the file: {e}.") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, origin: str) -> tuple[Any, dict[str, str]]:
    """Parse YAML text (see ``load_yaml``); ``origin`` names it in messages."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[str, str] = {}
        _walk(node, "", origin, lines)
        data = loader.construct_document(node)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{origin}:{mark.line + 1}" if mark else origin
        tag = getattr(e, "problem", "") or str(e)
        raise RecipeError.one("", f"Unsupported YAML: {tag}. Recipes are plain data: tags such as "
                              "'!!python/object' are refused (safe loading only); remove the tag.", where) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else origin
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError.one("", f"Broken YAML: {problem}. Fix the syntax at this line "
                              "(indentation, a missing ':' or an unclosed bracket).", where) from None
    finally:
        loader.dispose()
    return data, lines


def _walk(node: yaml.Node, path: str, origin: str, lines: dict[str, str]) -> None:
    lines.setdefault(path, f"{origin}:{node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise RecipeError.one(join_path(path, key), f"Duplicate key '{key}' (first at line {seen[key]}). "
                                      "Keep one of them.", f"{origin}:{key_node.start_mark.line + 1}")
            seen[key] = key_node.start_mark.line + 1
            child = join_path(path, key)
            lines[child] = f"{origin}:{key_node.start_mark.line + 1}"
            _walk(value_node, child, origin, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, join_path(path, i), origin, lines)
