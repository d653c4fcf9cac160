"""Blocks dlrecipe adds to Keras (residual, inception, dense_block, ...), one module per family.

Each block is a Keras layer registered for saving (``dlrecipe>Residual``, ...) that creates its
sub-layers in ``build()`` from the rank of its channels-last input (3-D: ``Conv1D``, 4-D: ``Conv2D``,
5-D: ``Conv3D``), named after the block (``res1_conv1``, ...), so a model of blocks saves to ``.keras``
and loads back with ``safe_mode=True``. ``base`` holds what all blocks share; recipes reach them by
lower_snake_case name through ``dlrecipe.build.blocks``.

Example:
    >>> model = keras.Sequential([keras.Input((32, 32, 16)), Residual(64, strides=2)])  # Conv2Ds inside
"""
