"""Load a recipe: safe YAML, ``extends:``, ``--set`` overrides, search spaces, schema.

Example:
    >>> loaded = load_recipe(Path("recipes/quickstart.yaml"), ["train.epochs=2"])
    >>> loaded.recipe.train.epochs
    2

Nothing here imports TensorFlow: structural errors are reported within a second.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from dlrecipe.errors import Problems, RecipeError, is_within, join_path, shown, sort_problems, suggest
from dlrecipe.io import dump_yaml
from dlrecipe.recipe import spaces as sp
from dlrecipe.recipe.schema import SECTIONS, Recipe, check_typed_items
from dlrecipe.recipe.yamlio import load_yaml, looks_numeric, parse_yaml

PATH_KEYS = ("path", "test_path", "data_dir")  # data keys holding file paths, relative to their recipe


@dataclass(frozen=True)
class LoadedRecipe:
    """A recipe ready to use.

    Attributes:
        raw: the merged document with overrides applied and search spaces still in it.
        recipe: the validated recipe, each search space replaced by its value.
        spaces: the search spaces by dotted path.
        lines: ``file:line`` of every dotted path.
        values: the value chosen for each space (defaults unless tuning).
        resume_rate: on ``train --resume`` with ``--set train.learning_rate=X``: X, the rate the restored
            optimizer goes on with (before ``scale_learning_rate``); None keeps the checkpoint's rate.
    """

    raw: dict[str, Any]
    recipe: Recipe
    spaces: dict[str, sp.Space]
    lines: dict[str, str]
    values: dict[str, Any]
    resume_rate: float | None = None

    def with_values(self, values: dict[str, Any]) -> "LoadedRecipe":
        """The same recipe with other values for its search spaces (one tuner trial)."""
        return _validate(self.raw, self.lines, self.spaces, {**self.values, **values})

    def resolved(self) -> dict[str, Any]:
        """The fully resolved recipe as plain data: defaults filled in, spaces fixed."""
        return self.recipe.model_dump(mode="json", exclude_none=True)

    def fixed_raw(self) -> dict[str, Any]:
        """The user's recipe with every search space replaced by its value (for best.yaml)."""
        tidy = {p: self.spaces[p].tidy(v) for p, v in self.values.items()}
        return sp.substitute(self.raw, tidy)


@dataclass
class Inspection:
    """What loading found, valid or not: ``validate`` goes on to Keras checks with ``fixed``."""

    fixed: dict[str, Any] | None  # the document with spaces at their defaults (None if unreadable)
    lines: dict[str, str]
    problems: list
    loaded: LoadedRecipe | None


def load_recipe(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedRecipe:
    """Load, merge, override and validate the recipe at ``path``.

    Raises:
        RecipeError: with every problem found, each with its dotted path and line.
    """
    found = inspect_recipe(path, overrides)
    if found.loaded is None:
        raise RecipeError(found.problems)
    return found.loaded


def inspect_recipe(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Inspection:
    """Like ``load_recipe``, but returns the problems with whatever could be read."""
    path = Path(path)
    try:
        raw, lines = _load_with_extends(path, [])
        if not isinstance(raw, dict):
            raise RecipeError.one("", f"The recipe is {'empty' if raw is None else type(raw).__name__}; expected a "
                                  "mapping with the sections data, model, train (see recipes/quickstart.yaml).", str(path))
        if "name" not in raw:
            raw = {"name": path.stem, **raw}
        for item in overrides:
            _apply_set(raw, lines, item)
        if overrides:
            _absolutize_paths(raw, Path.cwd(), only_from_set=lines)  # --set paths are relative to the shell's folder
    except RecipeError as e:
        return Inspection(None, {}, e.problems, None)
    problems = Problems(lines=lines)
    bad: set[str] = set()
    spaces = sp.find_spaces(raw, problems, bad=bad)
    fixed = sp.substitute(raw, sp.defaults(spaces))
    try:
        loaded = _validate(raw, lines, spaces, sp.defaults(spaces))
    except RecipeError as e:
        # A bad search space is reported once, by find_spaces; the schema's view of it would repeat it.
        schema = [p for p in e.problems if not any(is_within(p.path, b) for b in bad)]
        return Inspection(fixed, lines, sort_problems([*problems.items, *schema]), None)
    if problems.items:
        return Inspection(fixed, lines, sort_problems(problems.items), None)
    return Inspection(fixed, lines, [], loaded)


def _validate(raw: dict, lines: dict[str, str], spaces: dict[str, sp.Space], values: dict[str, Any]) -> LoadedRecipe:
    problems = Problems(lines=lines)
    fixed = sp.substitute(raw, values)
    model, train = fixed.get("model"), fixed.get("train")
    if isinstance(model, dict):
        check_typed_items(model.get("layers"), "model.layers", "a Keras layer or a dlrecipe block",
                          "{type: Dense, units: 10}", problems)
    if isinstance(train, dict):
        check_typed_items(train.get("callbacks"), "train.callbacks", "a Keras callback",
                          "{type: EarlyStopping, patience: 3}", problems)
    recipe = None
    try:
        recipe = Recipe.model_validate(fixed)
    except pydantic.ValidationError as e:
        for path, message in _merge_union_errors([_describe(err) for err in e.errors()]):
            problems.add(path, message)
    problems.raise_if_any()
    return LoadedRecipe(raw=raw, recipe=recipe, spaces=spaces, lines=lines, values=dict(values))


def dump_recipe(data: dict[str, Any]) -> str:
    return dump_yaml(data)


# --- extends -------------------------------------------------------------------------------


def _load_with_extends(path: Path, chain: list[Path]) -> tuple[Any, dict[str, str]]:
    resolved = path.resolve()
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        return data, lines
    _absolutize_paths(data, path.parent)
    parent = data.pop("extends", None)
    if parent is None:
        return data, lines
    if not isinstance(parent, str):
        raise RecipeError.one("extends", f"Received: extends={parent!r}. Expected a file name, e.g. base.yaml.",
                              lines.get("extends"))
    base_path = path.parent / parent
    if base_path.is_dir():
        raise RecipeError.one("extends", f"Received: extends={parent!r}, but {base_path} is a folder. Name the "
                              "recipe file to extend, e.g. base.yaml.", lines.get("extends"))
    if not base_path.is_file():
        raise RecipeError.one("extends", f"Received: extends={parent!r}, but {base_path} does not exist. The path is "
                              "relative to the recipe that extends it.", lines.get("extends"))
    if base_path.resolve() in [*chain, resolved]:
        cycle = " -> ".join(str(p) for p in [*chain, resolved, base_path.resolve()])
        raise RecipeError.one("extends", f"Recipes extend each other in a cycle: {cycle}. Remove one 'extends:'.",
                              lines.get("extends"))
    base, base_lines = _load_with_extends(base_path, [*chain, resolved])
    if not isinstance(base, dict):
        got = "empty" if base is None else f"a {type(base).__name__}, not a mapping"
        raise RecipeError.one("extends", f"{base_path} is {got}; only a recipe (a mapping of sections such as data: "
                              "and model:) can be extended.", lines.get("extends"))
    base.pop("name", None)  # a recipe's name is its own: by default its file's stem, never its base's
    replaced = _replaced_paths(data)
    kept = {k: v for k, v in base_lines.items() if not any(k.startswith(r + "[") or k.startswith(r + ".")
                                                            for r in replaced)}
    return _merge(base, data), {**kept, **lines}


def _replaced_paths(top: Any, path: str = "") -> list[str]:
    """Paths whose value in ``top`` replaces the base's whole value (anything but a plain mapping)."""
    if isinstance(top, dict) and not sp.is_space(top):
        return [p for k, v in top.items() for p in _replaced_paths(v, join_path(path, k))]
    return [path] if path else []


def _absolutize_paths(data: dict, folder: Path, only_from_set: dict[str, str] | None = None) -> None:
    # Data paths are relative to the recipe that names them (or, from --set, to the current folder),
    # so a recipe works from any folder and the resolved copy in a run folder points at the same files.
    section = data.get("data")
    if isinstance(section, dict):
        for key in PATH_KEYS:
            if only_from_set is not None and not only_from_set.get(f"data.{key}", "").startswith("--set"):
                continue
            value = section.get(key)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                section[key] = str((folder / value).resolve())
            elif isinstance(value, str):
                section[key] = str(Path(value).expanduser())


def _merge(base: dict, top: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in ``top`` replaces ``base``."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not sp.is_space(value):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- --set -------------------------------------------------------------------------------

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_set_path(text: str) -> list[str | int]:
    """``'model.layers[0].filters'`` -> ``['model', 'layers', 0, 'filters']``."""
    keys: list[str | int] = []
    for part in text.split("."):
        m = _SEGMENT.fullmatch(part)
        if not m:
            raise ValueError(part)
        keys.append(m.group(1))
        keys.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return keys


def _apply_set(raw: dict, lines: dict[str, str], item: str) -> None:
    usage = "Expected --set PATH=VALUE, e.g. --set train.epochs=5 or --set model.layers[0].filters=64."
    if "=" not in item:
        raise RecipeError.one("--set", f"Received: {shown(item)}. {usage}")
    text, value_text = item.split("=", 1)
    try:
        keys = parse_set_path(text.strip())
    except ValueError:
        raise RecipeError.one("--set", f"Received the path {text!r}, which is not a dotted recipe path. {usage}") from None
    try:
        value, _ = parse_yaml(value_text, "--set") if value_text.strip() else ("", {})
    except RecipeError as e:
        raise RecipeError.one(f"--set {text}", f"The value {value_text!r} is not valid YAML: {e.problems[0].message}") from None
    node: Any = raw
    walked = ""
    for key, nxt in zip(keys, keys[1:] + [None]):
        here = join_path(walked, key)
        last = nxt is None
        if isinstance(key, int):
            if not isinstance(node, list):
                raise RecipeError.one(f"--set {text}", f"{walked or 'the recipe'} is not a list, so it has no item "
                                      f"[{key}].")
            if key >= len(node):
                raise RecipeError.one(f"--set {text}", f"{here} does not exist: {walked} has {len(node)} item(s), "
                                      f"indices 0 to {len(node) - 1}.")
        elif not isinstance(node, dict):
            raise RecipeError.one(f"--set {text}", f"{walked} is not a mapping, so it has no key '{key}'.")
        if last:
            node[key] = value
        else:
            if isinstance(key, str) and key not in node:
                node[key] = [] if isinstance(nxt, int) else {}
                lines[here] = f"--set {text}"
            node = node[key]
        walked = here
    lines[walked] = f"--set {text}"


# --- pydantic errors -> recipe problems ------------------------------------------------------


def _merge_union_errors(described: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One problem per path: a value that fits no member of a union gets one message naming them all."""
    by_path: dict[str, list[str]] = {}
    for path, message in described:
        by_path.setdefault(path, [])
        if message not in by_path[path]:
            by_path[path].append(message)
    # A deeper problem (e.g. inside a mapping member) explains the value better than the other members.
    merged = []
    for path, messages in by_path.items():
        if any(other.startswith(path + ".") or other.startswith(path + "[") for other in by_path):
            continue
        if len(messages) == 1:
            merged.append((path, messages[0]))
            continue
        received = messages[0].split(". Expected", 1)[0]
        expected = [m.split("Expected: ", 1)[-1].rstrip(".") if "Expected: " in m else m.rstrip(".") for m in messages]
        merged.append((path, f"{received}. Expected one of: " + "; or ".join(expected) + "."))
    return merged


def _home_of(key: str, parent: list) -> str:
    """`` It belongs under 'data:' ...`` when ``key`` is a key of another section (a dedented line)."""
    from dlrecipe.recipe.schema import SECTIONS
    homes = [name for name, model in SECTIONS.items() if key in model.model_fields and [name] != parent]
    if not homes:
        return ""
    where = " or ".join(f"'{h}:'" for h in homes)
    return f" It belongs under {where}: indent it there."


def _describe(err: dict) -> tuple[str, str]:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    # pydantic adds union-member tags (e.g. 'str', 'dict[str,any]', 'LearningRate') to the location.
    loc = [p for p in loc if not (isinstance(p, str) and p in _UNION_TAGS)]
    path = ""
    for part in loc:
        path = join_path(path, part)
    kind, received = err["type"], err.get("input")
    field = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = suggest(str(field), allowed) or _home_of(str(field), loc[:-1])
        return path, f"Unknown key '{field}'.{hint} Allowed here: {', '.join(allowed)}."
    if kind == "missing":
        return path, f"Missing required key '{field}'."
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        names = re.findall(r"'([^']*)'", expected)
        return path, f"Received: {field}={shown(received)}. Expected {expected}.{suggest(str(received), names)}"
    if kind == "value_error":
        return path, f"{err['msg'].removeprefix('Value error, ')}."
    if kind == "string_pattern_mismatch":
        return path, (f"Received: {field}={shown(received)}. Expected letters, digits, '_', '.' or '-', "
                      "starting with a letter or digit (it names the run folder).")
    hint = ""
    if isinstance(received, str) and looks_numeric(received):
        hint = (f" YAML 1.1 reads {received} as text: write it with a decimal point and a signed exponent, "
                f"e.g. {_yaml_float(received)}.")
    return path, f"Received: {field}={shown(received)}. Expected: {err['msg'].lower()}.{hint}"


def _yaml_float(text: str) -> str:
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}" if exponent else mantissa


_UNION_TAGS = {"str", "int", "float", "bool", "dict[str,any]", "LearningRate", "Objective", "list[str]",
               "list[union[str,dict[str,any]]]", "literal['auto']", "literal[false,'mixed_float16','mixed_bfloat16']",
               "constrained-float", "none"}


def _allowed_keys(loc: list) -> list[str]:
    from dlrecipe.recipe.schema import EarlyStop, LearningRate, Objective
    if not loc:
        return list(Recipe.model_fields)
    section = SECTIONS.get(loc[0])
    if section is None:
        return []
    if len(loc) == 1:
        return list(section.model_fields)
    nested = {("train", "learning_rate"): LearningRate, ("tune", "objective"): Objective,
              ("tune", "early_stopping"): EarlyStop}.get(tuple(loc[:2]))
    return list(nested.model_fields) if nested else []
