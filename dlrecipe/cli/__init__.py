"""The ``dlrecipe`` command: each command parses its arguments, calls one ``dlrecipe.api`` function, prints.

``app`` (``cli/app.py``) holds the shared options; ``run`` and ``inspect`` register the commands; ``main`` is
the entry point.

TensorFlow is imported inside the api functions that need it, so ``dlrecipe --help`` and the structural part
of ``validate`` stay instant. Bad input prints every problem with its path and exits with code 2.
"""
