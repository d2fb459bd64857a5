"""MobileNetV2: the registry contract and equivalence with Keras Applications."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kimnet.models
from kimnet.models import weights as weights_lib


@pytest.fixture(scope="module")
def reference():
    return keras.applications.MobileNetV2(weights=None)


@pytest.fixture(scope="module")
def model():
    return kimnet.models.get("mobilenetv2")()


def test_parameter_count_and_layer_names_match_keras(model, reference):
    assert (
        model.count_params() == reference.count_params() == kimnet.models.get("mobilenetv2").params
    )
    ours = [layer.name for layer in model.layers if layer.weights]
    theirs = [layer.name for layer in reference.layers if layer.weights]
    assert ours == theirs


def test_same_function_as_keras_after_copying_weights(model, reference):
    copied = weights_lib.copy_by_name(reference, model)
    assert copied == len([layer for layer in model.layers if layer.weights])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(model(x), reference(x), atol=1e-5)


def test_registry_lists_and_rejects_names():
    assert "mobilenetv2" in kimnet.models.names()
    with pytest.raises(ValueError, match="Did you mean 'mobilenetv2'.*Known models:"):
        kimnet.models.get("mobilenet_v2x")


def test_small_input_keeps_a_spatial_map():
    spec = kimnet.models.get("mobilenetv2")
    small = spec(include_top=False, input_shape=(32, 32, 3), small_input=True, alpha=0.35)
    plain = spec(include_top=False, input_shape=(32, 32, 3), alpha=0.35)
    assert small.output_shape == (None, 2, 2, 1280)
    assert plain.output_shape == (None, 1, 1, 1280)
    assert small.count_params() == plain.count_params()  # same weights, other strides


def test_output_shape_pooling_and_dropout():
    spec = kimnet.models.get("mobilenetv2")
    m = spec(input_shape=(32, 32, 3), classes=10, small_input=True, alpha=0.35, dropout_rate=0.3)
    assert m.output_shape == (None, 10)
    assert "top_dropout" in [layer.name for layer in m.layers]
    probabilities = m(np.zeros((3, 32, 32, 3), "float32"))
    np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1.0, rtol=1e-5)
    pooled = spec(include_top=False, pooling="max", input_shape=(32, 32, 3), alpha=0.35)
    assert pooled.output_shape == (None, 1280)


def test_stage_map():
    m = kimnet.models.get("mobilenetv2")(input_shape=(64, 64, 3), classes=10, alpha=0.35)
    assert kimnet.models.stage_names(m) == [
        "stem",
        "stage1",
        "stage2",
        "stage3",
        "stage4",
        "stage5",
        "head",
    ]
    grouped = kimnet.models.stages(m)
    assert sum(len(v) for v in grouped.values()) == len(m.layers)
    assert [layer.name for layer in grouped["head"]] == ["avg_pool", "predictions"]
    # Stage outputs halve the resolution stage by stage: /2 ... /32.
    sides = [kimnet.models.stage_output(m, s).shape[1] for s in ("stem", "stage2", "stage5")]
    assert sides == [32, 16, 2]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_probabilities(policy):
    keras.mixed_precision.set_global_policy(policy)
    m = kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=10, small_input=True, alpha=0.35
    )
    assert m.get_layer("Conv1").compute_dtype == policy.split("_")[1]
    out = m(np.zeros((2, 32, 32, 3), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_weights_file_round_trip(tmp_path):
    spec = kimnet.models.get("mobilenetv2")
    a = spec(input_shape=(32, 32, 3), classes=10, small_input=True, alpha=0.35)
    path = tmp_path / "m.weights.h5"
    a.save_weights(path)
    b = spec(input_shape=(32, 32, 3), classes=10, small_input=True, alpha=0.35, weights=str(path))
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(a(x), b(x), atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        spec(input_shape=(32, 32, 3), classes=7, alpha=0.35, weights=str(path))


def test_imagenet_weights_through_keras_applications(tmp_path, monkeypatch):
    """weights='imagenet' goes through Keras Applications' own download/cache path;
    the test serves a weights file it made instead of the network."""
    source = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3))
    path = tmp_path / "imagenet.weights.h5"
    source.save_weights(path)
    requested = []

    def fake_get_file(fname, origin, **kwargs):
        requested.append(origin)
        return str(path)

    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", fake_get_file)
    m = kimnet.models.get("mobilenetv2")(weights="imagenet", alpha=0.35, input_shape=(96, 96, 3))
    assert requested and "mobilenet_v2" in requested[0]
    np.testing.assert_array_equal(
        m.get_layer("Conv1").get_weights()[0], source.get_layer("Conv1").get_weights()[0]
    )
    np.testing.assert_array_equal(
        m.get_layer("predictions").get_weights()[1],
        source.get_layer("predictions").get_weights()[1],
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (24, 24, 3)}, "at least 32x32"),
        ({"pooling": "median"}, "pooling must be"),
        ({"classes": 0}, "classes must be"),
        ({"weights": "imagenet", "classes": 10}, "classes=1000"),
        ({"weights": "/no/such/file.weights.h5"}, "does not exist"),
        ({"weights": "imagenet", "small_input": True}, "small_input=False"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kimnet.models.get("mobilenetv2")(**kwargs)
