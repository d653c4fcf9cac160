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


def looks_numeric(text: str) -> bool:
    """True for text that is a number to Python but that YAML 1.1 reads as a string (``1e-3``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


MAX_DEPTH = 100        # nesting levels of mappings and lists (a recipe needs about 10)
MAX_VALUES = 200_000   # values after aliases are expanded: bounds a "billion laughs" alias bomb


def parse_yaml(text: str, origin: str) -> tuple[Any, dict[str, str]]:
    """Parse YAML text (see ``load_yaml``); ``origin`` names it in messages."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[str, str] = {}
        _Walk(origin, lines).walk(node, "", ())
        data = loader.construct_document(node)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{origin}:{mark.line + 1}" if mark else origin
        tag = getattr(e, "problem", "") or str(e)
        raise RecipeError.one("", f"Unsupported YAML: {tag}. Recipes are plain data: tags such as "
                              "'!!python/object' are refused (safe loading only); remove the tag.", where) from None
    except yaml.reader.ReaderError as e:
        char = e.character if isinstance(e.character, str) else chr(e.character)
        line = text.count("\n", 0, e.position) + 1
        raise RecipeError.one("", f"Unreadable character U+{ord(char):04X} ({e.reason}). A recipe is plain text: "
                              "remove the character.", f"{origin}:{line}") from None
    except yaml.YAMLError as e:
        raise RecipeError.one("", f"Broken YAML: {getattr(e, 'problem', None) or e}. Fix the syntax at this line "
                              "(indentation, a missing ':' or an unclosed bracket).", _where(e, text, origin)) from None
    except RecursionError:
        raise RecipeError.one("", f"The YAML is nested too deeply (more than {MAX_DEPTH} levels of mappings and "
                              "lists). Flatten it.", origin) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def _where(e: yaml.YAMLError, text: str, origin: str) -> str:
    """The line of a syntax error: where the mistake is, not where the parser noticed it."""
    mark = getattr(e, "problem_mark", None)
    if mark is None:
        return origin
    line = mark.line
    problem = str(getattr(e, "problem", ""))
    context = getattr(e, "context_mark", None)
    if context is not None and "expected ':'" in problem:  # noticed on the line after the key without its colon
        line = context.line
    elif "mapping values are not allowed" in problem:
        # "key value" without its colon, then "key: value" on the next line: the mistake is the line before.
        rows = text.splitlines()
        before = [i for i, s in enumerate(rows[:line]) if s.strip() and not s.lstrip().startswith("#")]
        if before and ":" not in rows[before[-1]] and not rows[before[-1]].lstrip().startswith("-"):
            line = before[-1]
    return f"{origin}:{line + 1}"


class _Walk:
    """Records the line of every value by its dotted path, refusing what a recipe cannot hold."""

    def __init__(self, origin: str, lines: dict[str, str]):
        self.origin, self.lines, self.count = origin, lines, 0

    def _refuse(self, path: str, node: yaml.Node, message: str) -> RecipeError:
        return RecipeError.one(path, message, f"{self.origin}:{node.start_mark.line + 1}")

    def walk(self, node: yaml.Node, path: str, parents: tuple[int, ...]) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self._refuse(path, node, f"The YAML holds more than {MAX_VALUES:,} values once its aliases (*name) "
                               "are expanded. Write the recipe out without nested aliases.")
        if id(node) in parents:
            raise self._refuse(path, node, "An alias (*name) refers to a mapping or list that contains it. Remove "
                               "the recursive alias.")
        if len(parents) >= MAX_DEPTH:
            raise self._refuse(path, node, f"The YAML is nested more than {MAX_DEPTH} levels deep. Flatten it.")
        self.lines.setdefault(path, f"{self.origin}:{node.start_mark.line + 1}")
        inside = (*parents, id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._refuse(path or "(top level)", key_node, "A key must be a plain name, not a mapping or "
                                       "a list ('? ...' complex keys). Write 'name: value'.")
                key = key_node.value
                if key in seen:
                    raise RecipeError.one(join_path(path, key), f"Duplicate key '{key}' (first at line {seen[key]}). "
                                          "Keep one of them.", f"{self.origin}:{key_node.start_mark.line + 1}")
                seen[key] = key_node.start_mark.line + 1
                child = join_path(path, key)
                self.lines[child] = f"{self.origin}:{key_node.start_mark.line + 1}"
                self.walk(value_node, child, inside)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, join_path(path, i), inside)
