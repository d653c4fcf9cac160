"""Every command as a plain Python function: what the CLI, tests and notebooks call.

Each function takes what the command line gives (paths, ``--set`` overrides, flags), does the work and
returns a result object; it prints nothing itself (``dlrecipe.console`` does) and raises ``RecipeError``
for bad input. One module per group of commands (``recipes``, ``training``, ``run_folders``, ``inspection``);
stages are imported inside the functions, so importing this module imports no TensorFlow.
See docs/commands.md.
"""
