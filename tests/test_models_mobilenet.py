"""MobileNet V1 and MobileNetV3 Small/Large against keras.applications."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

import kimnet.models.mobilenet  # noqa: F401  (registers its builders)
import kimnet.models.mobilenet_v3  # noqa: F401
from kimnet.models import get, stage_names, stage_output
from kimnet.models import weights as weights_lib

NAMES = ("mobilenet", "mobilenetv3_small", "mobilenetv3_large")
# The V3 variants share every code path but the block table (checked against Keras
# for both), so the slower-to-build Large runs the behaviour tests only with -m slow.
NAMES_FAST = (
    "mobilenet",
    "mobilenetv3_small",
    pytest.param("mobilenetv3_large", marks=pytest.mark.slow),
)

# Parameter counts (1000 classes, include_top=True) measured with keras.applications
# 3.15; the heads are convolutional, so they do not depend on the input size. The
# default configurations' counts are the metadata table's.
PARAMS = {
    **{(name, ()): get(name).params for name in NAMES},
    ("mobilenet", (("alpha", 0.25),)): 475_544,
    ("mobilenet", (("alpha", 0.5), ("depth_multiplier", 2))): 2_159_672,
    ("mobilenetv3_small", (("alpha", 0.75),)): 2_051_552,
    ("mobilenetv3_large", (("minimalistic", True),)): 3_948_688,
    ("mobilenetv3_large", (("alpha", 1.25),)): 8_286_760,
}

# Names Keras generates for layers it does not name (they differ between sessions).
_AUTO_NAMED = re.compile(
    r"^(input_layer|activation|re_lu|global_average_pooling2d|dropout|flatten|rescaling)(_\d+)?$"
)


def _keras_application(name: str, **kwargs) -> keras.Model:
    if name == "mobilenet":
        if "dropout_rate" in kwargs:
            kwargs["dropout"] = kwargs.pop("dropout_rate")
        return keras.applications.MobileNet(**kwargs)
    if name == "mobilenetv3_small":
        return keras.applications.MobileNetV3Small(**kwargs)
    return keras.applications.MobileNetV3Large(**kwargs)


def _randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random weights everywhere, BN statistics included, so a wrong wiring shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            if "variance" in w.path:
                values.append(rng.uniform(0.5, 1.5, size=w.shape))
            else:
                values.append(rng.normal(0.0, 0.3, size=w.shape))
        layer.set_weights([v.astype("float32") for v in values])
    return model


def _images(name: str, size: int, n: int = 2, seed: int = 1) -> np.ndarray:
    """Random images in the range each model expects: [0, 255] for V3, [-1, 1] for V1."""
    rng = np.random.default_rng(seed)
    low, high = (0.0, 255.0) if name.startswith("mobilenetv3") else (-1.0, 1.0)
    return rng.uniform(low, high, size=(n, size, size, 3)).astype("float32")


@pytest.fixture
def policy():
    """Sets a global dtype policy for one test and always restores float32."""

    def set_policy(name: str) -> None:
        keras.mixed_precision.set_global_policy(name)

    try:
        yield set_policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


# Variants compared layer by layer with keras.applications (the others only by count).
EQUIVALENCE = [
    ("mobilenet", {}),
    ("mobilenet", {"alpha": 0.5, "depth_multiplier": 2}),
    ("mobilenetv3_small", {}),
    ("mobilenetv3_large", {}),
    ("mobilenetv3_small", {"minimalistic": True, "alpha": 0.75}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [key for key in sorted(PARAMS) if (key[0], dict(key[1])) not in EQUIVALENCE],
)
def test_parameter_count(name, kwargs):
    model = get(name)(input_shape=(32, 32, 3), **dict(kwargs))
    assert model.count_params() == PARAMS[(name, kwargs)]


@pytest.mark.parametrize(("name", "kwargs"), EQUIVALENCE)
def test_same_layers_and_function_as_keras_applications(name, kwargs):
    size = 48
    reference = _keras_application(
        name, weights=None, input_shape=(size, size, 3), classifier_activation=None, **kwargs
    )
    model = get(name)(input_shape=(size, size, 3), classifier_activation=None, **kwargs)

    assert model.count_params() == reference.count_params()
    expected_params = PARAMS.get((name, tuple(sorted(kwargs.items()))))
    assert expected_params in (None, model.count_params())
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert weighted == {layer.name for layer in reference.layers if layer.weights}
    named = {layer.name for layer in reference.layers if not _AUTO_NAMED.match(layer.name)}
    assert named <= {layer.name for layer in model.layers}

    _randomize(reference)
    assert weights_lib.copy_by_name(reference, model) == len(weighted)
    images = _images(name, size)
    expected = keras.ops.convert_to_numpy(reference(images, training=False))
    actual = keras.ops.convert_to_numpy(model(images, training=False))
    assert actual.shape == (2, 1000)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("mobilenet", {"stem": 32, "stage1": 32, "stage2": 16, "stage3": 8, "stage4": 4}),
        ("mobilenetv3_small", {"stem": 32, "stage1": 16, "stage2": 8, "stage3": 4}),
        ("mobilenetv3_large", {"stem": 32, "stage1": 32, "stage2": 16, "stage3": 8}),
    ],
)
def test_stage_map_follows_resolution(name, sizes):
    model = get(name)(input_shape=(64, 64, 3), include_top=False)
    stages = stage_names(model)
    assert stages[0] == "stem" and stages[-1] == "head"
    assert stages[1:-1] == [f"stage{i}" for i in range(1, len(stages) - 1)]
    for stage, side in sizes.items():
        assert stage_output(model, stage).shape[1:3] == (side, side)
    last = stages[-2]
    assert stage_output(model, last).shape[1:3] == (2, 2)  # /32
    assert stage_output(model, last) is model.output  # the last stage ends the backbone
    assert len(stages) == (6 if name == "mobilenetv3_small" else 7)


@pytest.mark.parametrize("name", NAMES_FAST)
def test_small_input_keeps_resolution(name):
    normal = get(name)(input_shape=(32, 32, 3), include_top=False)
    assert normal.output.shape[1:3] == (1, 1)
    # V3 pads like 'same' (28 -> 28 (stem) -> 14 -> 7 -> 4 -> 2); V1 pads only the
    # bottom/right, like Keras Applications, so odd sizes round down (use 32 px).
    side = 32 if name == "mobilenet" else 28
    small = get(name)(input_shape=(side, side, 3), include_top=False, small_input=True)
    assert small.output.shape[1:3] == (2, 2)
    stem = small.get_layer("conv1" if name == "mobilenet" else "conv")
    assert stem.strides == (1, 1) and stem.output.shape[1:3] == (side, side)
    # Same layer names and weight shapes: weights move between the two.
    copied = weights_lib.copy_by_name(normal, small)
    assert copied == sum(1 for layer in small.layers if layer.weights)


@pytest.mark.parametrize("name", NAMES)
def test_too_small_input_raises(name):
    with pytest.raises(ValueError, match="at least 32x32.*small_input=True"):
        get(name)(input_shape=(31, 31, 3))
    with pytest.raises(ValueError, match="at least 16x16"):
        get(name)(input_shape=(15, 15, 3), small_input=True)


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("mobilenet", 1e-3),
        ("mobilenetv3_small", 0.2),
        pytest.param("mobilenetv3_large", 0.2, marks=pytest.mark.slow),
    ],
)
def test_dropout_rate_and_heads(name, default):
    assert get(name).build_function().__kwdefaults__["dropout_rate"] == pytest.approx(default)
    logits = get(name)(
        input_shape=(32, 32, 3), classes=7, classifier_activation=None, dropout_rate=0.35
    )
    assert logits.get_layer("dropout").rate == pytest.approx(0.35)
    if name == "mobilenet":
        model = get(name)(input_shape=(32, 32, 3), dropout_rate=0.0)
        assert "dropout" not in {layer.name for layer in model.layers}
    out = keras.ops.convert_to_numpy(logits(_images(name, 32), training=False))
    assert out.shape == (2, 7)
    assert not np.allclose(out.sum(axis=1), 1.0)
    pooling = "max" if name == "mobilenet" else "avg"
    pooled = get(name)(input_shape=(64, 64, 3), include_top=False, pooling=pooling)
    assert pooled.output.shape == (None, pooled.get_layer(f"{pooling}_pool").input.shape[-1])
    with pytest.raises(ValueError, match="pooling"):
        get(name)(input_shape=(64, 64, 3), include_top=False, pooling="sum")


def test_v3_rescales_raw_pixels_itself():
    assert get("mobilenetv3_small").normalization == "raw"
    assert get("mobilenetv3_large").normalization == "raw"
    assert get("mobilenet").normalization == "tf"
    model = get("mobilenetv3_small")(input_shape=(32, 32, 3), include_top=False)
    rescaling = model.get_layer("rescaling")
    out = keras.ops.convert_to_numpy(rescaling(np.array([[0.0, 127.5, 255.0]])))
    np.testing.assert_allclose(out, [[-1.0, 0.0, 1.0]], atol=1e-6)


@pytest.mark.parametrize(
    ("name", "dtype_policy"),
    [
        ("mobilenet", "mixed_float16"),
        ("mobilenet", "mixed_bfloat16"),
        ("mobilenetv3_small", "mixed_bfloat16"),
        ("mobilenetv3_large", "mixed_float16"),
    ],
)
def test_mixed_precision_outputs_float32(name, dtype_policy, policy):
    policy(dtype_policy)
    model = get(name)(input_shape=(32, 32, 3), classes=5, small_input=True)
    compute = dtype_policy.removeprefix("mixed_")
    first_conv = "conv1" if name == "mobilenet" else "conv"
    assert model.get_layer(first_conv).compute_dtype == compute
    assert model.output.dtype == "float32"
    out = model(_images(name, 32), training=False)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    out = keras.ops.convert_to_numpy(out)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "name",
    NAMES_FAST,
)
def test_weights_round_trip_through_file(name, tmp_path):
    path = str(tmp_path / f"{name}.weights.h5")
    model = _randomize(get(name)(input_shape=(32, 32, 3), classes=4, classifier_activation=None))
    model.save_weights(path)
    loaded = get(name)(input_shape=(32, 32, 3), classes=4, classifier_activation=None, weights=path)
    images = _images(name, 32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images, training=False)),
        keras.ops.convert_to_numpy(model(images, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )
    if name == "mobilenet":
        with pytest.raises(ValueError, match="does not fit"):
            get(name)(input_shape=(32, 32, 3), classes=4, weights=path, alpha=0.5)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("mobilenet", {"small_input": True}, "small_input=False"),
        ("mobilenet", {"alpha": 0.3}, "alpha"),
        ("mobilenet", {"depth_multiplier": 2}, "depth_multiplier"),
        ("mobilenetv3_small", {"alpha": 0.5}, "alpha"),
        ("mobilenetv3_large", {"small_input": True}, "small_input=False"),
        ("mobilenetv3_large", {"classes": 10}, "classes=1000"),
    ],
)
def test_imagenet_argument_checks(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get(name)(weights="imagenet", **kwargs)


@pytest.mark.parametrize(
    ("name", "application", "kwargs", "include_top"),
    [
        ("mobilenet", "MobileNet", {"alpha": 0.25}, True),
        ("mobilenetv3_small", "MobileNetV3Small", {"alpha": 0.75}, False),
        ("mobilenetv3_large", "MobileNetV3Large", {"minimalistic": True}, True),
    ],
)
def test_imagenet_weights_come_from_keras_applications(
    name, application, kwargs, include_top, monkeypatch
):
    """weights='imagenet' builds the matching application and copies it by name.

    The download is replaced by random weights (the tests run offline); what is
    checked is that the reference gets valid, matching arguments and that every
    weight arrives.
    """
    real = getattr(keras.applications, application)
    calls = []
    built = []

    def offline(**arguments):
        calls.append(arguments)
        built.append(_randomize(real(**{**arguments, "weights": None}), seed=3))
        return built[-1]

    monkeypatch.setattr(keras.applications, application, offline)
    model = get(name)(
        input_shape=(64, 64, 3), weights="imagenet", include_top=include_top, **kwargs
    )
    assert len(calls) == 1 and calls[0]["weights"] == "imagenet"
    for key, value in kwargs.items():
        assert calls[0][key] == value
    by_name = {layer.name: layer for layer in built[0].layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        for mine, theirs in zip(layer.weights, by_name[layer.name].weights, strict=True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs)
            )


def test_input_tensor_and_name():
    tensor = keras.Input(shape=(40, 40, 3))
    model = get("mobilenet")(input_tensor=tensor, classes=3, name="tiny")
    assert model.name == "tiny"
    assert model.input_shape == (None, 40, 40, 3)
    assert get("mobilenet")(input_shape=(32, 32, 3), alpha=0.5).name == "mobilenet_0.50_32"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kwargs"), [(name, kwargs) for name, kwargs in sorted(PARAMS) if not kwargs]
)
def test_parameter_count_matches_keras_applications_at_224(name, kwargs):
    reference = _keras_application(name, weights=None, input_shape=(224, 224, 3))
    model = get(name)()
    assert model.count_params() == reference.count_params() == PARAMS[(name, kwargs)]
    images = _images(name, 224, n=1)
    _randomize(reference)
    weights_lib.copy_by_name(reference, model)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images, training=False)),
        keras.ops.convert_to_numpy(reference(images, training=False)),
        atol=1e-5,
    )
