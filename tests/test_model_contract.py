"""The Keras Applications contract, checked for every registered model.

Like Keras' ``applications_test.py`` and timm's ``test_models.py``: every name in
``kimnet.models.names()`` builds at its minimum size without its top and with each
pooling, accepts ``input_tensor``, honours ``classes``, round-trips through a
``.keras`` file, keeps its stage map (covering every layer once) through save/load
and ``clone_model``, predicts in float32 under ``mixed_bfloat16``, and has the
parameter count its metadata table row states. Seven small members run in the
default suite; the rest run with ``-m slow``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kimnet.models
from kimnet.models import common, stages

# Two small members in the default suite (a residual network and MobileNetV3's SE with
# hard swish); every other name runs with -m slow, which CI runs too.
FAST = {"resnet18", "mobilenetv3_small"}
# Flatten heads: the parameter count depends on the input size.
SIZE_DEPENDENT = {"alexnet", "vgg"}


def every_model(fast: set[str]) -> list:
    return [
        name if name in fast else pytest.param(name, marks=pytest.mark.slow)
        for name in kimnet.models.names()
    ]


def images(size: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def stage_layer_names(model: keras.Model, inputs: bool = True) -> dict[str, list[str]]:
    """Stage -> its layers' names; ``inputs=False`` leaves out the input layers."""
    return {
        stage: [
            layer.name
            for layer in group
            if inputs or not isinstance(layer, keras.layers.InputLayer)
        ]
        for stage, group in stages.stages(model).items()
    }


@pytest.mark.parametrize("name", every_model(FAST))
def test_headless_at_min_size_with_each_pooling(name):
    spec = kimnet.models.get(name)
    shape = (spec.min_size, spec.min_size, 3)
    feature_map = spec(include_top=False, input_shape=shape).output
    assert len(feature_map.shape) == 4 and min(feature_map.shape[1:3]) >= 1
    for pooling in ("avg", "max"):
        pooled = spec(include_top=False, pooling=pooling, input_shape=shape)
        assert pooled.output.shape == (None, feature_map.shape[-1])


@pytest.mark.parametrize("name", every_model(FAST))
def test_input_tensor_classes_save_load_and_stage_map(name, tmp_path):
    spec = kimnet.models.get(name)
    size = spec.min_size
    inputs = keras.Input((size, size, 3))
    model = spec(input_tensor=inputs, classes=7)
    assert model.inputs[0] is inputs
    assert model.output.shape == (None, 7)
    x = images(size)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, rtol=1e-5)

    grouped = stage_layer_names(model)
    covered = [layer for group in grouped.values() for layer in group]
    assert sorted(covered) == sorted(layer.name for layer in model.layers)
    assert len(set(covered)) == len(covered)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    assert stage_layer_names(loaded) == grouped
    # clone_model makes new input layers, with other names.
    clone = keras.models.clone_model(model)
    assert stage_layer_names(clone, inputs=False) == stage_layer_names(model, inputs=False)


@pytest.mark.parametrize("name", every_model(FAST))
def test_mixed_bfloat16_predicts_float32(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        spec = kimnet.models.get(name)
        model = spec(input_shape=(spec.min_size, spec.min_size, 3), classes=3)
        predictions = model(images(spec.min_size), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(predictions.dtype) == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(predictions)).all()


# Global-pooling families have size-free counts, so they are checked at the minimum size.
@pytest.mark.parametrize("name", every_model(FAST))
def test_table_parameter_counts_match_a_built_model(name):
    spec = kimnet.models.get(name)
    size = spec.default_size if spec.family in SIZE_DEPENDENT else spec.min_size
    model = spec(input_shape=(size, size, 3))
    assert common.count_params(model) == (spec.params, spec.trainable_params)


def test_weights_saved_from_a_plain_functional_model_still_load(tmp_path):
    # Files written before builders returned StagedModel (plain keras.Model graphs).
    model = kimnet.models.get("mobilenetv2")(input_shape=(32, 32, 3), classes=4, alpha=0.35)
    plain = keras.Model(model.inputs, model.outputs)
    path = tmp_path / "plain.weights.h5"
    plain.save_weights(path)
    fresh = kimnet.models.get("mobilenetv2")(input_shape=(32, 32, 3), classes=4, alpha=0.35)
    fresh.load_weights(path)
    x = images(32)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
