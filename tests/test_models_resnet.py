"""ResNet (18-152), the squeeze-and-excitation block and SENet."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import kimnet.models.resnet  # noqa: F401  (registers the builders)
import kimnet.models.senet  # noqa: F401
from kimnet.models import registry, se, weights
from kimnet.models.grouped_conv import GroupedConv2D
from kimnet.models.stages import stage_names, stage_output, stages

RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
SENETS = ["se_resnet50", "se_resnet101", "se_resnext50", "senet154"]
KERAS_APPS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}

# The metadata table's counts. Keras Applications' totals (model.count_params()); trainable
# parameters: torchvision (resnet18/34), Cadene's pretrainedmodels (SENet) and Keras
# Applications' trainable weights (resnet50-152: total minus the BN moving statistics).
KERAS_TOTAL = {name: registry.get(name).params for name in KERAS_APPS}
TRAINABLE = {name: registry.get(name).trainable_params for name in RESNETS + SENETS}
FAST_COUNTS = ["resnet18", "resnet34", "resnet50", "se_resnet50", "se_resnet101", "se_resnext50"]
LARGE_COUNTS = ["resnet101", "resnet152", "senet154"]


def trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def build(name: str, size: int = 32, **kwargs) -> keras.Model:
    return registry.get(name)(input_shape=(size, size, 3), **kwargs)


def images(size: int, scale: float = 1.0, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-scale, scale, (batch, size, size, 3)).astype("float32")


@functools.cache
def logits_model(name: str) -> keras.Model:
    """A 32 px build with the default head and logits output, shared across tests."""
    return build(name, classifier_activation=None)


@pytest.fixture(scope="module")
def resnet18() -> keras.Model:
    return build("resnet18", classes=10)


@pytest.fixture
def policy():
    """Yields a setter for the global dtype policy and always resets it to float32."""
    try:
        yield keras.mixed_precision.set_global_policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ----------------------------------------------------------------------------- registry


def test_registry_metadata():
    for name in RESNETS:
        spec = registry.get(name)
        assert spec.family == "resnet"
        assert spec.imagenet == (name in KERAS_APPS)
        assert spec.normalization == ("caffe" if name in KERAS_APPS else "torch")
        assert (spec.default_size, spec.min_size) == (224, 32)
    for name in SENETS:
        spec = registry.get(name)
        assert (spec.family, spec.imagenet, spec.normalization) == ("senet", False, "torch")


# ----------------------------------------------------------------------------- counts


@pytest.mark.parametrize("name", FAST_COUNTS)
def test_trainable_parameter_counts(name):
    assert trainable(logits_model(name)) == TRAINABLE[name]


# Building is cheap (about 2 s for SENet-154 at 32 px), so every count runs in CI.
@pytest.mark.parametrize("name", LARGE_COUNTS)
def test_trainable_parameter_counts_large(name):
    model = build(name)
    assert trainable(model) == TRAINABLE[name]
    if name in KERAS_TOTAL:  # with the batch-norm moving statistics
        assert model.count_params() == KERAS_TOTAL[name]


# ----------------------------------------------------------------------------- Keras equality


def _assert_matches_keras(name: str, size: int, model: keras.Model | None = None, **kwargs) -> None:
    application = getattr(keras.applications, KERAS_APPS[name])
    reference = application(weights=None, input_shape=(size, size, 3), **kwargs)
    model = model or build(name, size, **kwargs)
    assert [layer.name for layer in model.layers[1:]] == [
        layer.name for layer in reference.layers[1:]
    ]
    assert model.count_params() == reference.count_params()
    assert trainable(model) == trainable(reference)
    assert weights.copy_by_name(reference, model) > 0
    x = images(size, scale=120.0)  # caffe-normalised pixel range
    expected = np.asarray(reference(x))
    np.testing.assert_allclose(
        np.asarray(model(x)), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )


def test_resnet50_matches_keras_small():
    model = logits_model("resnet50")
    _assert_matches_keras("resnet50", 32, model, classifier_activation=None)
    assert model.count_params() == KERAS_TOTAL["resnet50"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KERAS_APPS))
def test_matches_keras_224(name):
    _assert_matches_keras(name, 224, classifier_activation=None)
    assert build(name, 224).count_params() == KERAS_TOTAL[name]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_resnet50_headless_matches_keras(pooling):
    _assert_matches_keras("resnet50", 64, include_top=False, pooling=pooling)


def test_imagenet_weights_come_from_keras_applications(monkeypatch):
    """weights='imagenet' builds the Keras reference with the same arguments and copies it."""
    calls, built = [], []
    original = keras.applications.ResNet50

    def fake(**kwargs):
        calls.append(kwargs)
        built.append(original(**{**kwargs, "weights": None}))
        return built[-1]

    monkeypatch.setattr(keras.applications, "ResNet50", fake)
    model = build("resnet50", 32, include_top=False, pooling="avg", weights="imagenet")
    assert len(calls) == 1 and calls[0]["weights"] == "imagenet"
    assert (calls[0]["pooling"], calls[0]["input_shape"]) == ("avg", (32, 32, 3))
    # The model computes what the reference does: its weights were copied across.
    x = images(32, 120.0)
    np.testing.assert_allclose(model(x), built[0](x), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- structure


def test_stage_map_and_shapes(resnet18):
    assert stage_names(resnet18) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    shapes = [tuple(stage_output(resnet18, s).shape[1:]) for s in stage_names(resnet18)[:-1]]
    assert shapes == [(8, 8, 64), (8, 8, 64), (4, 4, 128), (2, 2, 256), (1, 1, 512)]
    grouped = stages(resnet18)
    assert grouped["stem"][-1].name == "pool1_pool"
    assert [layer.name for layer in grouped["head"]] == ["avg_pool", "predictions"]
    assert grouped["stage4"][-1].name == "conv5_block2_out"


def test_bottleneck_stride_placement():
    keras_style = logits_model("resnet50")
    assert keras_style.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert keras_style.get_layer("conv3_block1_2_conv").strides == (1, 1)
    assert keras_style.get_layer("conv3_block1_1_conv").use_bias
    assert keras_style.get_layer("conv3_block1_1_bn").epsilon == pytest.approx(1.001e-5)
    resnext = logits_model("se_resnext50")
    assert resnext.get_layer("conv3_block1_1_conv").strides == (1, 1)
    mid = resnext.get_layer("conv3_block1_2_conv")
    assert (mid.strides, mid.groups, mid.filters, mid.use_bias) == ((2, 2), 32, 256, False)
    assert isinstance(mid, GroupedConv2D)  # TensorFlow's grouped Conv2D is slow on CPU
    assert resnext.get_layer("conv3_block1_se_reduce").filters == 512 // 16
    assert resnext.get_layer("conv3_block1_se_reduce").use_bias


def test_torch_layout_of_basic_blocks(resnet18):
    conv = resnet18.get_layer("conv3_block1_1_conv")
    assert (conv.kernel_size, conv.strides, conv.use_bias) == ((3, 3), (2, 2), False)
    assert resnet18.get_layer("conv3_block1_1_pad").padding == ((1, 1), (1, 1))
    assert resnet18.get_layer("conv3_block1_0_conv").kernel_size == (1, 1)
    with pytest.raises(ValueError):
        resnet18.get_layer("conv2_block1_0_conv")  # identity shortcut: 64 -> 64, stride 1


def test_small_input():
    model = build("resnet18", 28, small_input=True, include_top=False)
    conv = model.get_layer("conv1_conv")
    assert (conv.kernel_size, conv.strides) == ((3, 3), (1, 1))
    assert "pool1_pool" not in [layer.name for layer in model.layers]
    assert tuple(model.output.shape[1:]) == (4, 4, 512)  # 28 -> 28 -> 14 -> 7 -> 4
    assert stages(model)["stem"][-1].name == "conv1_relu"
    # Without it, a 28 px input is refused.
    with pytest.raises(ValueError, match="at least 32x32"):
        build("resnet18", 28)


@pytest.mark.parametrize("name", ["resnet18", "se_resnet50"])
def test_too_small_input_raises(name):
    with pytest.raises(ValueError, match="small_input=True"):
        build(name, 16)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "se_resnet50", "senet154"])
def test_imagenet_weights_unavailable(name):
    with pytest.raises(ValueError, match="No ImageNet weights"):
        registry.get(name)(weights="imagenet")


@pytest.mark.parametrize("kwargs", [{"small_input": True}, {"se_ratio": 0.25}])
def test_imagenet_needs_reference_architecture(kwargs):
    with pytest.raises(ValueError, match="weights='imagenet' needs"):
        registry.get("resnet50")(weights="imagenet", **kwargs)


def test_fixed_depth_cannot_be_overridden():
    with pytest.raises(ValueError, match="fixes"):
        registry.get("resnet50")(depth=18)


def test_dropout():
    model = build("resnet18", classes=3, dropout_rate=0.3)
    assert model.get_layer("top_dropout").rate == pytest.approx(0.3)
    assert "top_dropout" not in [layer.name for layer in logits_model("se_resnet50").layers]


@pytest.mark.slow
def test_senet154_reference_details():
    model = build("senet154", 64)
    assert model.get_layer("top_dropout").rate == pytest.approx(0.2)
    assert [model.get_layer(f"conv1_{i}_conv").filters for i in (1, 2, 3)] == [64, 64, 128]
    assert model.get_layer("conv3_block1_0_conv").kernel_size == (3, 3)
    assert model.get_layer("conv2_block1_0_conv").kernel_size == (1, 1)
    assert model.get_layer("conv2_block1_2_conv").groups == 64
    assert "top_dropout" not in [layer.name for layer in build("senet154", dropout_rate=0).layers]


# ----------------------------------------------------------------------------- squeeze-excite


def test_squeeze_excite_block():
    inputs = keras.Input((4, 4, 32))
    model = keras.Model(inputs, se.squeeze_excite(inputs, 0.25, "blk_se"))
    names = [layer.name for layer in model.layers[1:]]
    assert names == ["blk_se_squeeze", "blk_se_reduce", "blk_se_expand", "blk_se_excite"]
    assert model.get_layer("blk_se_reduce").filters == 8
    assert model.get_layer("blk_se_expand").filters == 32
    x = np.random.default_rng(1).uniform(1, 2, (3, 4, 4, 32)).astype("float32")
    y = np.asarray(model(x))
    assert y.shape == x.shape
    gate = y / x  # per channel, constant over space, in (0, 1)
    assert np.all(gate > 0) and np.all(gate < 1)
    np.testing.assert_allclose(gate, gate[:, :1, :1, :].repeat(4, 1).repeat(4, 2), rtol=1e-5)
    assert se.se_filters(256, 1 / 16) == 16
    assert se.se_filters(48, 1 / 3) == 16
    assert se.se_filters(8, 0.01) == 1
    with pytest.raises(ValueError):
        se.se_filters(8, 0)


def test_se_ratio_adds_se_to_every_block(resnet18):
    model = build("resnet18", classes=10, se_ratio=0.25)
    se_layers = [layer.name for layer in model.layers if layer.name.endswith("_se_excite")]
    assert len(se_layers) == 8  # 2 blocks x 4 stages
    # Each block adds two biased 1x1 convs: c*(c/4) + c/4 + (c/4)*c + c.
    extra = sum(2 * c * (c // 4) + c // 4 + c for c in (64, 128, 256, 512) for _ in range(2))
    assert trainable(model) - trainable(resnet18) == extra
    assert model.name == "se_resnet18"


# ----------------------------------------------------------------------------- precision, files


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, dtype_policy):
    policy(dtype_policy)
    model = build("resnet18", classes=5, se_ratio=0.25)
    assert model.get_layer("conv2_block1_1_conv").compute_dtype == dtype_policy.split("_")[1]
    y = np.asarray(model(images(32)))
    assert model.output.dtype == "float32" and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", RESNETS + SENETS)
def test_mixed_precision_every_model(policy, dtype_policy, name):
    policy(dtype_policy)
    y = np.asarray(build(name, classes=5)(images(32)))
    assert y.dtype == np.float32 and np.all(np.isfinite(y))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras lists the layers that do not fit
def test_weights_round_trip(tmp_path, resnet18):
    path = str(tmp_path / "resnet18.weights.h5")
    resnet18.save_weights(path)
    restored = build("resnet18", classes=10, weights=path)
    x = images(32)
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(resnet18(x)))
    with pytest.raises(ValueError, match="does not fit"):
        build("resnet34", classes=10, weights=path)
