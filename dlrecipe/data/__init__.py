"""The data stage: the recipe's ``data:`` section read into arrays, or streamed from disk.

``data.source`` chooses the source (``peek``, ``load``, ``count_train_examples``); ``data.pipeline``
feeds ``model.fit``; ``data.preprocess`` fits the normalization. This ``__init__`` imports nothing, so
that importing any submodule stays cheap and free of cycles. See docs/data.md.
"""
