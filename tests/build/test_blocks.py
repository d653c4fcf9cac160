"""dlrecipe blocks: output shapes, hand-counted parameters, saving, numerics and recipe errors.

Parameter counts are written out by hand in each case, with the formula in a comment:
a ConvND kxk from c_in to c_out has k^d * c_in * c_out weights (+ c_out biases when it
has a bias; a grouped conv has k^d * (c_in / groups) * c_out); a Dense has in*out + out;
a BatchNormalization has 4 * channels (gamma, beta trainable; moving mean and variance not).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlrecipe.build import resolve  # noqa: E402
from dlrecipe.build.blocks import BLOCKS  # noqa: E402
from dlrecipe.build.model import build_layer  # noqa: E402
from dlrecipe.errors import RecipeError  # noqa: E402
from dlrecipe.layers.blocks.residual import Residual  # noqa: E402

PATH = "model.layers[2]"

GOOGLENET_3A = dict(filters_1x1=64, filters_3x3_reduce=96, filters_3x3=128, filters_5x5_reduce=16, filters_5x5=32,
                    filters_pool=32)
SMALL_INCEPTION = dict(filters_1x1=2, filters_3x3_reduce=2, filters_3x3=2, filters_5x5_reduce=2, filters_5x5=2,
                       filters_pool=2)

# (id, block type, arguments, input shape without batch, output shape, parameter count by hand)
CASES = [
    ("conv_bn_act-2d-pre", "conv_bn_act", {"filters": 32}, (8, 8, 16), (None, 8, 8, 32),
     3 * 3 * 16 * 32 + 4 * 32),  # conv 3x3 16->32 without bias (BN follows) + BN(32)
    ("conv_bn_act-1d-post", "conv_bn_act", {"filters": 8, "kernel_size": 5, "strides": 2, "order": "post"},
     (10, 4), (None, 5, 8),
     5 * 4 * 8 + 8 + 4 * 8),  # conv 5 4->8 with bias (activation sits before BN) + BN(8)
    ("conv_bn_act-2d-valid-bias", "conv_bn_act",
     {"filters": 4, "padding": "valid", "use_bias": True, "activation": None}, (8, 8, 3), (None, 6, 6, 4),
     3 * 3 * 3 * 4 + 4 + 4 * 4),  # conv 3x3 3->4 + bias + BN(4)
    ("conv_bn_act-3d", "conv_bn_act", {"filters": 3}, (4, 4, 4, 2), (None, 4, 4, 4, 3),
     3 * 3 * 3 * 2 * 3 + 4 * 3),  # conv 3x3x3 2->3 no bias + BN(3)
    ("vgg_block-2d", "vgg_block", {"filters": 8}, (8, 8, 3), (None, 4, 4, 8),
     (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 8 + 8)),  # conv 3->8 + conv 8->8, with biases; pooling has none
    ("vgg_block-1d-bn", "vgg_block", {"filters": 4, "convs": 3, "batch_norm": True}, (9, 2), (None, 4, 4),
     3 * 2 * 4 + 3 * 4 * 4 + 3 * 4 * 4 + 3 * 4 * 4),  # convs 2->4, 4->4, 4->4 without bias + 3 BN(4); 9 // 2 = 4
    ("inception-2d-googlenet-3a", "inception", GOOGLENET_3A, (4, 4, 192), (None, 4, 4, 64 + 128 + 32 + 32),
     (192 * 64 + 64)  # 1x1
     + (192 * 96 + 96) + (3 * 3 * 96 * 128 + 128)  # 3x3 reduce, 3x3
     + (192 * 16 + 16) + (5 * 5 * 16 * 32 + 32)  # 5x5 reduce, 5x5
     + (192 * 32 + 32)),  # pool projection
    ("inception-1d-bn", "inception", {**SMALL_INCEPTION, "batch_norm": True}, (6, 4), (None, 6, 8),
     4 * 2 + (4 * 2 + 3 * 2 * 2) + (4 * 2 + 5 * 2 * 2) + 4 * 2  # six convs without bias
     + 6 * 4 * 2),  # six BN(2)
    ("residual-2d-identity", "residual", {"filters": 16}, (8, 8, 16), (None, 8, 8, 16),
     2 * (3 * 3 * 16 * 16 + 4 * 16)),  # two (conv 3x3 16->16 no bias + BN(16)); identity shortcut
    ("residual-2d-projection", "residual", {"filters": 32, "strides": 2}, (8, 8, 16), (None, 4, 4, 32),
     (3 * 3 * 16 * 32 + 4 * 32) + (3 * 3 * 32 * 32 + 4 * 32)  # main path
     + (16 * 32 + 4 * 32)),  # shortcut: conv 1x1 stride 2 16->32 + BN(32)
    ("residual-1d-bottleneck", "residual", {"filters": 4, "bottleneck": True}, (8, 16), (None, 8, 16),
     (16 * 4 + 4 * 4) + (3 * 4 * 4 + 4 * 4) + (4 * 16 + 4 * 16)),  # 1x1 16->4, 3 4->4, 1x1 4->16 (=4*4), BNs
    ("residual-2d-bottleneck-projection", "residual", {"filters": 4, "bottleneck": True}, (8, 8, 8),
     (None, 8, 8, 16),
     (8 * 4 + 4 * 4) + (3 * 3 * 4 * 4 + 4 * 4) + (4 * 16 + 4 * 16)  # main path
     + (8 * 16 + 4 * 16)),  # channels change 8->16: conv 1x1 + BN(16)
    ("residual-2d-v2-projection", "residual", {"filters": 16, "strides": 2, "preactivation": True}, (8, 8, 8),
     (None, 4, 4, 16),
     4 * 8  # pre-activation BN(8)
     + (3 * 3 * 8 * 16 + 4 * 16)  # conv1 no bias + BN(16)
     + (3 * 3 * 16 * 16 + 16)  # conv2 with bias, no BN after it in v2
     + (8 * 16 + 16)),  # shortcut conv 1x1 with bias, no BN
    ("residual-2d-v2-bottleneck", "residual", {"filters": 4, "bottleneck": True, "preactivation": True},
     (8, 8, 16), (None, 8, 8, 16),
     4 * 16 + (16 * 4 + 4 * 4) + (3 * 3 * 4 * 4 + 4 * 4) + (4 * 16 + 16)),  # preact BN, 1x1+BN, 3x3+BN, 1x1+bias
    ("residual-3d-projection", "residual", {"filters": 8, "strides": 2}, (4, 4, 4, 4), (None, 2, 2, 2, 8),
     (27 * 4 * 8 + 4 * 8) + (27 * 8 * 8 + 4 * 8) + (4 * 8 + 4 * 8)),  # conv 3x3x3 4->8, 8->8, shortcut 1x1x1
    ("resnext-2d-identity", "resnext", {"filters": 32, "cardinality": 4, "bottleneck_width": 2}, (8, 8, 32),
     (None, 8, 8, 32),
     (32 * 8 + 4 * 8)  # 1x1 32 -> 4*2=8 + BN(8)
     + (3 * 3 * (8 // 4) * 8 + 4 * 8)  # grouped 3x3 8->8 in 4 groups + BN(8)
     + (8 * 32 + 4 * 32)),  # 1x1 8->32 + BN(32)
    ("resnext-1d-projection", "resnext", {"filters": 16, "cardinality": 2, "bottleneck_width": 4, "strides": 2},
     (8, 8), (None, 4, 16),
     (8 * 8 + 4 * 8) + (3 * (8 // 2) * 8 + 4 * 8) + (8 * 16 + 4 * 16)  # main path, inner width 2*4=8
     + (8 * 16 + 4 * 16)),  # shortcut 1x1 stride 2 8->16 + BN(16)
    ("dense_block-2d-bottleneck", "dense_block", {"num_layers": 2, "growth_rate": 4}, (8, 8, 8),
     (None, 8, 8, 8 + 2 * 4),
     (4 * 8 + 8 * 16 + 4 * 16 + 3 * 3 * 16 * 4)  # layer 1: BN(8), 1x1 8->4*4, BN(16), 3x3 16->4
     + (4 * 12 + 12 * 16 + 4 * 16 + 3 * 3 * 16 * 4)),  # layer 2 sees 8+4=12 channels
    ("dense_block-1d-plain", "dense_block", {"num_layers": 3, "growth_rate": 2, "bottleneck": False}, (6, 4),
     (None, 6, 4 + 3 * 2),
     (4 * 4 + 3 * 4 * 2) + (4 * 6 + 3 * 6 * 2) + (4 * 8 + 3 * 8 * 2)),  # BN(c) + conv 3 c->2, c = 4, 6, 8
    ("transition-2d", "transition", {}, (8, 8, 10), (None, 4, 4, 5),
     4 * 10 + 10 * 5),  # BN(10) + conv 1x1 10->floor(10*0.5)=5 without bias
    ("transition-1d-0.3", "transition", {"compression": 0.3}, (9, 10), (None, 4, 3),
     4 * 10 + 10 * 3),  # BN(10) + conv 1 10->floor(10*0.3)=3
    ("maxout", "maxout", {"units": 4, "pieces": 3}, (6,), (None, 4),
     6 * 12 + 12),  # Dense 6 -> 4*3
    ("lrn", "lrn", {}, (4, 4, 8), (None, 4, 4, 8), 0),
    ("upsample-2d-nearest", "upsample", {}, (3, 3, 2), (None, 6, 6, 2), 0),
    ("upsample-1d-nearest-3", "upsample", {"factor": 3}, (4, 2), (None, 12, 2), 0),
    ("upsample-2d-bed_of_nails-3", "upsample", {"mode": "bed_of_nails", "factor": 3}, (3, 3, 2), (None, 9, 9, 2), 0),
    ("upsample-1d-bed_of_nails", "upsample", {"mode": "bed_of_nails"}, (4, 2), (None, 8, 2), 0),
    ("upsample-2d-subpixel", "upsample", {"mode": "subpixel", "filters": 2}, (4, 4, 3), (None, 8, 8, 2),
     3 * 3 * 3 * (2 * 2 ** 2) + 2 * 2 ** 2),  # conv 3x3 3 -> filters*factor^2 = 8, with bias
    ("upsample-1d-subpixel-3", "upsample", {"mode": "subpixel", "filters": 2, "factor": 3}, (5, 3), (None, 15, 2),
     3 * 3 * (2 * 3) + 2 * 3),  # conv 3 3 -> 2*3 = 6, with bias
    ("upsample-2d-transpose", "upsample", {"mode": "transpose", "filters": 5}, (4, 4, 3), (None, 8, 8, 5),
     2 * 2 * 3 * 5 + 5),  # transposed conv 2x2 (kernel = factor) 3->5 + bias
    ("upsample-3d-transpose", "upsample", {"mode": "transpose", "filters": 4}, (2, 2, 2, 3), (None, 4, 4, 4, 4),
     2 * 2 * 2 * 3 * 4 + 4),  # transposed conv 2x2x2 3->4 + bias
]


def make(kind, args, defaults=None):
    return BLOCKS[kind](dict(args), PATH, defaults or {})


def model_of(kind, args, shape, defaults=None):
    return keras.Sequential([keras.Input(shape), make(kind, args, defaults)])


def sub_layers(block):
    return [layer for layer in block._flatten_layers(include_self=False)]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_output_shape_and_parameter_count(case):
    _, kind, args, shape, out_shape, params = case
    model = model_of(kind, args, shape)
    assert model.output_shape == out_shape
    assert model.count_params() == params
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, *out_shape[1:])


def test_batch_norm_statistics_are_not_trainable():
    model = model_of("conv_bn_act", {"filters": 32}, (8, 8, 16))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert trainable == 3 * 3 * 16 * 32 + 2 * 32  # kernel + gamma, beta
    assert frozen == 2 * 32  # moving mean, moving variance


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_save_and_load_with_safe_mode(case, tmp_path):
    _, kind, args, shape, _, _ = case
    model = model_of(kind, args, shape)
    # Non-default values everywhere (variances positive), so a weight that did not load shows.
    rng = np.random.default_rng(1)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype("float32") for w in model.get_weights()])
    x = rng.normal(size=(2, *shape)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]


# --- structure -------------------------------------------------------------------------------------------


def test_residual_after_conv1d_is_made_of_conv1d_and_named_after_the_block():
    block = make("residual", {"filters": 8, "strides": 2, "name": "res1"})
    keras.Sequential([keras.Input((16, 3)), keras.layers.Conv1D(4, 3), block])
    convs = [layer for layer in sub_layers(block) if "conv" in layer.name]
    assert {type(layer) for layer in convs} == {keras.layers.Conv1D}
    names = {layer.name for layer in sub_layers(block)}
    assert {"res1_conv1", "res1_bn1", "res1_act1", "res1_conv2", "res1_bn2", "res1_shortcut_conv",
            "res1_shortcut_bn", "res1_out_act"} <= names


def test_resnext_uses_a_grouped_convolution():
    block = make("resnext", {"filters": 32, "cardinality": 4, "bottleneck_width": 2, "name": "rx"})
    keras.Sequential([keras.Input((8, 8, 32)), block])
    conv2 = next(layer for layer in sub_layers(block) if layer.name == "rx_conv2")
    assert conv2.groups == 4 and conv2.filters == 8


def test_conv_bn_act_order():
    pre = make("conv_bn_act", {"filters": 4, "name": "a"})
    post = make("conv_bn_act", {"filters": 4, "order": "post", "name": "b"})
    for block in (pre, post):
        keras.Sequential([keras.Input((8, 8, 3)), block])
    assert [type(layer).__name__ for layer in pre.chain] == ["Conv2D", "BatchNormalization", "Activation"]
    assert [type(layer).__name__ for layer in post.chain] == ["Conv2D", "Activation", "BatchNormalization"]


def test_blocks_train_and_update_batch_norm_statistics():
    model = keras.Sequential([keras.Input((8, 8, 3)), make("residual", {"filters": 4, "name": "r"}),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    bn = next(layer for layer in sub_layers(model.layers[0]) if layer.name == "r_bn1")
    before = keras.ops.convert_to_numpy(bn.moving_mean)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(2)
    history = model.fit(rng.normal(size=(8, 8, 8, 3)), rng.integers(0, 2, 8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(keras.ops.convert_to_numpy(bn.moving_mean), before)


# --- numerics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [{}, {"depth_radius": 2, "bias": 2.0, "alpha": 1e-3, "beta": 0.6}])
def test_lrn_matches_tensorflow(args):
    tf = pytest.importorskip("tensorflow")
    # Ours defaults to AlexNet-style alpha=1e-4, beta=0.75; TensorFlow's function to alpha=1, beta=0.5.
    full = {"depth_radius": 5, "bias": 1.0, "alpha": 1e-4, "beta": 0.75, **args}
    x = np.random.default_rng(3).normal(scale=30.0, size=(2, 3, 3, 7)).astype("float32")  # 7 < 2*5+1 channels
    ours = keras.ops.convert_to_numpy(make("lrn", args)(x))
    theirs = tf.nn.local_response_normalization(x, **full).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_maxout_is_the_max_over_pieces_of_the_dense_output():
    block = make("maxout", {"units": 4, "pieces": 3})
    x = np.random.default_rng(4).normal(size=(5, 6)).astype("float32")
    out = keras.ops.convert_to_numpy(block(x))
    dense = keras.ops.convert_to_numpy(block.dense(x))  # (5, 4 * 3): unit u owns columns u*3 .. u*3+2
    np.testing.assert_allclose(out, dense.reshape(5, 4, 3).max(axis=-1), rtol=1e-6)


def test_bed_of_nails_puts_each_value_top_left_of_a_block_of_zeros():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype="float32").reshape(1, 2, 2, 1)
    expected = np.array([[1, 0, 2, 0],
                         [0, 0, 0, 0],
                         [3, 0, 4, 0],
                         [0, 0, 0, 0]], dtype="float32").reshape(1, 4, 4, 1)
    block = make("upsample", {"mode": "bed_of_nails"})
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(block(x)), expected)
    # Spatial size unknown until run time: the shape is computed from the tensor.
    model = keras.Sequential([keras.Input((None, None, 1)), make("upsample", {"mode": "bed_of_nails"})])
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    x1 = np.array([5.0, 6.0], dtype="float32").reshape(1, 2, 1)
    out1 = keras.ops.convert_to_numpy(make("upsample", {"mode": "bed_of_nails", "factor": 3})(x1))
    np.testing.assert_array_equal(out1.ravel(), [5, 0, 0, 6, 0, 0])


def test_nearest_repeats_values():
    x = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
    out = keras.ops.convert_to_numpy(make("upsample", {})(x))
    np.testing.assert_array_equal(out, x.repeat(2, axis=1).repeat(2, axis=2))


def test_subpixel_is_conv_then_depth_to_space():
    tf = pytest.importorskip("tensorflow")
    block = make("upsample", {"mode": "subpixel", "filters": 3, "factor": 2})
    x = np.random.default_rng(5).normal(size=(2, 4, 4, 5)).astype("float32")
    out = keras.ops.convert_to_numpy(block(x))
    conv = keras.ops.convert_to_numpy(block.chain[0](x))
    np.testing.assert_allclose(out, tf.nn.depth_to_space(conv, 2).numpy(), rtol=1e-6)


# --- model.defaults --------------------------------------------------------------------------------------


def test_defaults_reach_inner_layers_and_explicit_arguments_win():
    defaults = resolve.resolve_defaults({"kernel_initializer": "he_normal",
                                         "kernel_regularizer": {"type": "L2", "l2": 1e-4},
                                         "units": 99})  # not a residual argument: ignored
    block = make("residual", {"filters": 8, "name": "r"}, defaults)
    model = keras.Sequential([keras.Input((8, 8, 8)), block])
    convs = [layer for layer in sub_layers(block) if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2
    assert all(isinstance(c.kernel_initializer, keras.initializers.HeNormal) for c in convs)
    assert all(isinstance(c.kernel_regularizer, keras.regularizers.L2) for c in convs)
    assert len(model.losses) == 2
    # Each conv gets its own copy of the initializer: same shapes, different starting kernels.
    assert not np.allclose(keras.ops.convert_to_numpy(convs[0].kernel), keras.ops.convert_to_numpy(convs[1].kernel))

    explicit = make("residual", {"filters": 8, "kernel_initializer": "zeros"}, defaults)
    keras.Sequential([keras.Input((8, 8, 8)), explicit])
    kernels = [keras.ops.convert_to_numpy(c.kernel) for c in sub_layers(explicit) if isinstance(c, keras.layers.Conv2D)]
    assert all(not k.any() for k in kernels)


def test_nested_argument_in_recipe_form_is_resolved():
    block = make("conv_bn_act", {"filters": 4, "kernel_initializer": {"type": "HeNormal", "seed": 1}})
    keras.Sequential([keras.Input((8, 8, 3)), block])
    assert isinstance(block.chain[0].kernel_initializer, keras.initializers.HeNormal)


def test_build_layer_dispatches_to_blocks():
    layer = build_layer({"type": "vgg_block", "filters": 4, "name": "vgg1"}, PATH, {})
    assert isinstance(layer, keras.layers.Layer) and layer.name == "vgg1"
    keras.Sequential([keras.Input((8, 8, 3)), layer])
    assert [s.name for s in layer.chain] == ["vgg1_conv1", "vgg1_conv2", "vgg1_pool"]


# --- errors ----------------------------------------------------------------------------------------------


def test_unknown_arguments_are_all_reported_with_path_and_suggestion():
    with pytest.raises(RecipeError) as info:
        make("residual", {"fliters": 8, "strid": 2})
    by_path = {p.path: p.message for p in info.value.problems}
    assert "Did you mean 'filters'?" in by_path[f"{PATH}.fliters"]
    assert "Did you mean 'strides'?" in by_path[f"{PATH}.strid"]
    assert "Missing required argument 'filters'" in by_path[f"{PATH}.filters"]


@pytest.mark.parametrize("kind,args,key,text", [
    ("residual", {"filters": -1}, "filters", "positive integer"),
    ("residual", {"filters": 8, "bottleneck": "yes"}, "bottleneck", "true or false"),
    ("conv_bn_act", {"filters": 8, "order": "postt"}, "order", "Did you mean 'post'?"),
    ("upsample", {"mode": "bilinear"}, "mode", "nearest, bed_of_nails, subpixel, transpose"),
    ("upsample", {"mode": "subpixel"}, "filters", "needs filters"),
    ("upsample", {"filters": 4}, "filters", "only subpixel and transpose"),
    ("transition", {"compression": 1.5}, "compression", "(0, 1]"),
    ("conv_bn_act", {"filters": 8, "activation": "rellu"}, "activation", "Did you mean 'relu'?"),
    ("conv_bn_act", {"filters": 8, "kernel_initializer": {"type": "HeNormel"}}, "kernel_initializer.type",
     "Did you mean 'HeNormal'?"),
])
def test_bad_values_name_the_path(kind, args, key, text):
    with pytest.raises(RecipeError) as info:
        make(kind, args)
    problems = {p.path: p.message for p in info.value.problems}
    assert f"{PATH}.{key}" in problems, problems
    assert text in problems[f"{PATH}.{key}"]


def test_bad_value_from_defaults_says_so():
    with pytest.raises(RecipeError, match=r"from model.defaults"):
        make("conv_bn_act", {"filters": 8}, {"padding": "full"})


def test_direct_construction_checks_arguments():
    with pytest.raises(ValueError, match="filters"):
        Residual(filters=0)


@pytest.mark.parametrize("kind,args,shape,text", [
    ("maxout", {"units": 4, "pieces": 2}, (8, 8, 3), "Flatten"),
    ("residual", {"filters": 4}, (10,), "3-D, 4-D or 5-D"),
])
def test_wrong_input_rank_is_a_clear_value_error(kind, args, shape, text):
    block = make(kind, args)  # constructible without knowing the input
    with pytest.raises(ValueError, match=text):
        keras.Sequential([keras.Input(shape), block])


def test_grouped_convolution_split_per_group_equals_the_native_one():
    from dlrecipe.layers.blocks.grouped import GroupedConv2D
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    native = keras.layers.Conv2D(4, 3, strides=2, padding="same", groups=4)
    split = GroupedConv2D(4, 3, strides=2, padding="same", groups=4)
    native.build(x.shape)
    split.build(x.shape)
    split.set_weights(native.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(split(x)), keras.ops.convert_to_numpy(native(x)),
                               atol=1e-5)
    assert split.kernel.shape == (3, 3, 2, 4)  # same weights as the native grouped layer: models stay compatible


# --- the registry ----------------------------------------------------------------------------------------


def test_the_registry_holds_every_dlrecipe_keras_object_under_its_saved_name():
    import importlib
    import pkgutil

    import dlrecipe.layers
    from dlrecipe.build.blocks import BLOCK_CLASSES
    from dlrecipe.layers import registry
    for info in pkgutil.walk_packages(dlrecipe.layers.__path__, "dlrecipe.layers."):
        importlib.import_module(info.name)
    registered = {name: obj for name, obj in keras.saving.get_custom_objects().items() if name.startswith("dlrecipe>")}
    assert set(registered.values()) == registry.ALL_OBJECTS  # nothing registered outside the registry
    for cls in registry.ALL_OBJECTS:
        assert keras.saving.get_registered_name(cls) == f"dlrecipe>{cls.__name__}"  # the names saved models hold
        assert registry.get(f"dlrecipe>{cls.__name__}") is cls and registry.get(cls.__name__) is cls
    assert set(BLOCK_CLASSES.values()) <= registry.ALL_OBJECTS
    with pytest.raises(ValueError, match="FancyPCA"):
        registry.get("dlrecipe>FancyPCB")
