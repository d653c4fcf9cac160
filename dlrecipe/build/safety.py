"""What a recipe may name: Keras classes and plain values, never outside code or outside files.

``check`` runs for every Keras object a recipe builds (``resolve.construct``), so the rule holds in one place
for model layers, ``data.augment``, losses, metrics, callbacks and nested objects. See docs/security.md.
"""

from __future__ import annotations

import os
from typing import Any

from dlrecipe.errors import Problem, RecipeError, join_path

ALLOW_FLAG = "--allow-artifacts"
ALLOW_ENV = "DLRECIPE_ALLOW_ARTIFACTS"  # set by the flag, so that worker processes inherit the user's choice

# Refused always: their value is Python code (a function or a module object), which a recipe cannot carry;
# a string there would be a name Keras never resolves (``schedule: os.system`` is not a function).
CODE = {
    "Lambda": "it runs a Python function (function=)",
    "JaxLayer": "it runs Python functions (call_fn=, init_fn=)",
    "FlaxLayer": "it wraps a Flax module object (module=)",
    "TorchModuleWrapper": "it wraps a torch module object (module=)",
    "LearningRateScheduler": "its schedule= is a Python function; use train.learning_rate: {schedule: ...} instead",
    "LambdaCallback": "it runs Python functions (on_epoch_end=, ...)",
    "MeanMetricWrapper": "its fn= is a Python function; name a Keras metric instead (type: or a string)",
}
# Refused unless the user types --allow-artifacts: they load an artifact from a path the recipe names.
ARTIFACTS = {
    "TFSMLayer": "it loads a SavedModel from filepath= and runs its graph, which can read and write any file "
                 "(Keras's safe mode refuses it for that reason)",
}
# Arguments that Keras reads as a file path when given a string; a list of values is fine.
FILE_ARGS = {
    "StringLookup": "vocabulary",
    "IntegerLookup": "vocabulary",
    "TextVectorization": "vocabulary",
}


def artifacts_allowed() -> bool:
    """True when the user passed --allow-artifacts on this command line (or to the launcher of this worker)."""
    return os.environ.get(ALLOW_ENV) == "1"


def allow_artifacts(allowed: bool) -> None:
    """Record the command line's --allow-artifacts for this process and the processes it starts."""
    if allowed:
        os.environ[ALLOW_ENV] = "1"


def check(cls: type, args: dict[str, Any], path: str) -> None:
    """Refuse ``cls(**args)`` when it would run outside code or read an outside file.

    Raises:
        RecipeError: at ``path`` (the class) or at the file-valued argument, with the fix.

    Example:
        >>> check(keras.layers.StringLookup, {"vocabulary": "/etc/hostname"}, "model.layers[0]")
        Traceback (most recent call last):
        RecipeError: model.layers[0].vocabulary: ...
    """
    names = {klass.__name__ for klass in cls.__mro__}  # a subclass of TFSMLayer loads files too
    if cls.__name__ in CODE:  # by name: Keras's own subclasses (TopKCategoricalAccuracy) set their fn themselves
        raise RecipeError([Problem(join_path(path, "type"), f"{cls.__name__} is refused in a recipe: "
                                   f"{CODE[cls.__name__]}. A recipe names Keras classes and plain values, never code.")])
    for name, why in ARTIFACTS.items():
        if name in names and not artifacts_allowed():
            raise RecipeError([Problem(join_path(path, "type"), f"{cls.__name__} is refused in a recipe: {why}. "
                                       f"If you trust that file, pass {ALLOW_FLAG} on the command line.")])
    for name, arg in FILE_ARGS.items():
        if name in names and isinstance(args.get(arg), (str, os.PathLike)) and not artifacts_allowed():
            raise RecipeError([Problem(join_path(path, arg), f"Received: {arg}={str(args[arg])!r}, a file path: "
                                       f"{cls.__name__} would read that file. Give the values as a list (e.g. "
                                       f"{arg}: [a, b, c]), or pass {ALLOW_FLAG} on the command line if you trust "
                                       "the file.")])
