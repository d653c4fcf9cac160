"""``python -m dlrecipe``: the same as the ``dlrecipe`` command (the launcher of --workers starts workers so)."""

from dlrecipe.cli.main import main

main()
