"""The one error type users see: problems with a dotted path, a YAML line and a fix.

Every user-facing failure (recipe, command line, data file, run folder) is a
``RecipeError`` holding one or more ``Problem``s. The CLI prints them all and
exits with code 2, without a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True)
class Problem:
    """One bad value.

    Attributes:
        path: dotted recipe path (``model.layers[3].filters``), or a file path.
        message: what was received, what was expected, and the fix.
        where: ``file:line`` of the value in the YAML, when known.
    """

    path: str
    message: str
    where: str | None = None

    def __str__(self) -> str:
        loc = f" ({self.where})" if self.where else ""
        head = f"{self.path}{loc}: " if self.path else (f"{self.where}: " if self.where else "")
        return f"{head}{self.message}"


class RecipeError(Exception):
    """Bad input: one or more problems, each with its path.

    Example:
        >>> raise RecipeError.one("train.epochs", "Received: epochs=-1. Expected a positive integer.")
    """

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, path: str, message: str, where: str | None = None) -> "RecipeError":
        return cls([Problem(path, message, where)])


class Stopped(Exception):
    """Work that began and could not finish (a NaN loss, Ctrl-C, a failed search); what it had is kept.

    The CLI prints ``prefix + str(error)`` and exits with ``exit_code``, without a traceback.
    """

    prefix = ""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Problems:
    """Collects problems so that all of them are reported at once."""

    items: list[Problem] = field(default_factory=list)
    lines: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.items.append(Problem(path, message, where_of(self.lines, path)))

    def extend(self, error: RecipeError) -> None:
        for p in error.problems:
            self.items.append(p if p.where else Problem(p.path, p.message, where_of(self.lines, p.path)))

    def has_under(self, prefix: str) -> bool:
        return any(is_within(p.path, prefix) for p in self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise RecipeError(sort_problems(self.items))


def sort_problems(items: Iterable[Problem]) -> list[Problem]:
    """Problems in file order; those without a line (e.g. from --set) last."""
    return sorted(items, key=_line_order)


def _line_order(p: Problem) -> tuple:
    # Problems print in file order; those without a line (e.g. from --set) come last.
    if p.where and ":" in p.where and p.where.rsplit(":", 1)[1].isdigit():
        file, line = p.where.rsplit(":", 1)
        return (0, file, int(line), p.path)
    return (1, "", 0, p.path)


def where_of(lines: dict[str, str], path: str) -> str | None:
    """The ``file:line`` of ``path``, or of its nearest parent that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            break
        path = path[:cut]
    return lines.get(path)


def suggest(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'X'?`` for the closest choice, or an empty string."""
    choices = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f" Did you mean '{close[0]}'?" if close else ""


def shown(value: object, limit: int = 120) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters (a 5,000-item list stays one line)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f", {len(value):,} items" if isinstance(value, (list, dict, str)) else ""
    return f"{text[:limit]}... ({len(text):,} characters{size})"


def is_within(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or a path under it: ``is_within('model.layers[0].units', 'model.layers')``."""
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def join_path(base: str, key: str | int) -> str:
    """``join_path('model.layers', 3) == 'model.layers[3]'``."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else str(key)


def keras_reason(e: BaseException) -> str:
    """Keras's own message of ``e``, first lines only, without its long advice.

    Example:
        >>> keras_reason(ValueError("Bad filters.\\nReceived: filters=-1\\nExpected > 0.\\nSee the docs."))
        'Bad filters. Received: filters=-1 Expected > 0.'
    """
    text = " ".join(str(e).strip().splitlines()[:3]).strip() or type(e).__name__
    return text if len(text) < 400 else text[:400] + "..."
