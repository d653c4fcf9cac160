"""dlrecipe's own Keras objects: blocks, augmentation and preprocessing layers, the epoch schedule.

They import nothing of dlrecipe but ``errors``; ``layers.registry`` collects them all
(``ALL_OBJECTS``, ``get``), and importing it registers them for safe-mode loading.
"""
