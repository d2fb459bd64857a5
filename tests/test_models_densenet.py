"""DenseNet-121/169/201 against keras.applications.DenseNet121/169/201."""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import kimnet.models.densenet  # noqa: F401  (registers the builders)
from kimnet.models import registry, weights
from kimnet.models.stages import stage_names, stage_output, stages

NAMES = ["densenet121", "densenet169", "densenet201"]
KERAS_APPS = {
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
}
# Keras Applications' counts, kept in the metadata table: total, and trainable (total
# minus the BN moving statistics).
KERAS_TOTAL = {name: registry.get(name).params for name in NAMES}
TRAINABLE = {name: registry.get(name).trainable_params for name in NAMES}
# The two padding layers Keras leaves unnamed (auto names depend on what was built before).
PADS = {"conv1_pad", "pool1_pad"}


def trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def build(name: str, size: int = 32, **kwargs) -> keras.Model:
    return registry.get(name)(input_shape=(size, size, 3), **kwargs)


def images(size: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(-2, 2, (batch, size, size, 3)).astype("float32")


@functools.cache
def logits_model(name: str) -> keras.Model:
    """A 32 px build with the default head and logits output, shared across tests."""
    return build(name, classifier_activation=None)


@pytest.fixture
def policy():
    """Yields a setter for the global dtype policy and always resets it to float32."""
    try:
        yield keras.mixed_precision.set_global_policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _assert_matches_keras(name: str, size: int, model: keras.Model | None = None, **kwargs):
    application = getattr(keras.applications, KERAS_APPS[name])
    reference = application(weights=None, input_shape=(size, size, 3), **kwargs)
    model = model or build(name, size, **kwargs)
    ours = [layer.name for layer in model.layers[1:]]
    theirs = [layer.name for layer in reference.layers[1:]]
    assert len(ours) == len(theirs)
    for mine, keras_name in zip(ours, theirs, strict=True):
        if mine in PADS:
            assert keras_name.startswith("zero_padding2d")
        else:
            assert mine == keras_name
    assert model.count_params() == reference.count_params()
    assert trainable(model) == trainable(reference)
    assert weights.copy_by_name(reference, model) > 0
    x = images(size)
    expected = np.asarray(reference(x))
    np.testing.assert_allclose(
        np.asarray(model(x)), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )


def test_registry_metadata():
    for name in NAMES:
        spec = registry.get(name)
        assert (spec.family, spec.imagenet, spec.normalization) == ("densenet", True, "torch")
        assert (spec.default_size, spec.min_size) == (224, 32)


def test_densenet121_matches_keras_small():
    model = logits_model("densenet121")
    _assert_matches_keras("densenet121", 32, model, classifier_activation=None)
    assert model.count_params() == KERAS_TOTAL["densenet121"]
    assert trainable(model) == TRAINABLE["densenet121"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_matches_keras_224(name):
    _assert_matches_keras(name, 224, classifier_activation=None)
    model = build(name, 224)
    assert model.count_params() == KERAS_TOTAL[name]
    assert trainable(model) == TRAINABLE[name]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_headless_matches_keras(pooling):
    _assert_matches_keras("densenet121", 64, include_top=False, pooling=pooling)


@pytest.mark.parametrize("name", ["densenet169", "densenet201"])
def test_parameter_counts_small_input_size(name):
    model = build(name)
    assert model.count_params() == KERAS_TOTAL[name]
    assert trainable(model) == TRAINABLE[name]


def test_imagenet_weights_come_from_keras_applications(monkeypatch):
    """weights='imagenet' builds the Keras reference with the same arguments, copies by name."""
    calls = []
    source = logits_model("densenet121")  # stands in for the downloaded reference

    def fake(**kwargs):
        calls.append(kwargs)
        return source

    monkeypatch.setattr(keras.applications, "DenseNet121", fake)
    model = build("densenet121", 32, include_top=False, pooling="max", weights="imagenet")
    assert len(calls) == 1 and calls[0]["weights"] == "imagenet"
    assert (calls[0]["pooling"], calls[0]["input_shape"]) == ("max", (32, 32, 3))
    for name in ("conv1_conv", "conv3_block5_2_conv", "bn"):
        for mine, theirs in zip(
            model.get_layer(name).weights, source.get_layer(name).weights, strict=True
        ):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_stage_map_and_shapes():
    model = logits_model("densenet121")
    names = stage_names(model)
    assert names == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    shapes = [tuple(stage_output(model, s).shape[1:]) for s in names[:-1]]
    # 64 + 6*32 = 256 -> 128; 128 + 12*32 = 512 -> 256; 256 + 24*32 = 1024 -> 512; 512 + 16*32.
    assert shapes == [(8, 8, 64), (4, 4, 128), (2, 2, 256), (1, 1, 512), (1, 1, 1024)]
    grouped = stages(model)
    assert grouped["stem"][-1].name == "pool1"
    assert grouped["stage1"][0].name == "conv2_block1_0_bn"
    assert grouped["stage1"][-1].name == "pool2_pool"
    assert grouped["stage4"][-1].name == "relu"
    assert [layer.name for layer in grouped["head"]] == ["avg_pool", "predictions"]


def test_small_input_and_dropout():
    model = build("densenet121", 28, small_input=True, classes=3, dropout_rate=0.25)
    assert model.get_layer("top_dropout").rate == pytest.approx(0.25)
    assert "top_dropout" not in [layer.name for layer in logits_model("densenet121").layers]
    conv = model.get_layer("conv1_conv")
    assert (conv.kernel_size, conv.strides) == ((3, 3), (1, 1))
    names = [layer.name for layer in model.layers]
    assert "pool1" not in names and "conv1_pad" not in names
    assert tuple(stage_output(model, "stage4").shape[1:]) == (3, 3, 1024)  # 28 -> 14 -> 7 -> 3
    assert stages(model)["stem"][-1].name == "conv1_relu"


def test_too_small_input_raises():
    with pytest.raises(ValueError, match=r"at least 32x32.*small_input=True"):
        build("densenet121", 28)


def test_imagenet_argument_errors():
    with pytest.raises(ValueError, match="small_input=False"):
        registry.get("densenet121")(weights="imagenet", small_input=True)
    with pytest.raises(ValueError, match="classes=1000"):
        registry.get("densenet121")(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="fixes"):
        registry.get("densenet121")(depth=169)


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy, dtype_policy):
    policy(dtype_policy)
    model = build("densenet121", classes=5, small_input=True)
    assert model.get_layer("conv2_block1_1_conv").compute_dtype == dtype_policy.split("_")[1]
    y = np.asarray(model(images(32)))
    assert model.output.dtype == "float32" and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_mixed_precision_every_model(policy, dtype_policy, name):
    policy(dtype_policy)
    y = np.asarray(build(name, classes=5)(images(32)))
    assert y.dtype == np.float32 and np.all(np.isfinite(y))


def test_weights_round_trip(tmp_path):
    model = logits_model("densenet121")
    path = str(tmp_path / "densenet121.weights.h5")
    model.save_weights(path)
    restored = build("densenet121", classifier_activation=None, weights=path)
    x = images(32)
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(model(x)))
