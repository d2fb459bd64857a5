"""GroupedConv2D computes what keras.layers.Conv2D(groups=...) computes, with its weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kimnet.models.grouped_conv import GroupedConv2D


def twin_layers(channels: int, **config):
    """A GroupedConv2D and a Conv2D of the same config, sharing random weights."""
    grouped = GroupedConv2D(**config)
    reference = keras.layers.Conv2D(**config)
    grouped.build((None, 9, 9, channels))
    reference.build((None, 9, 9, channels))
    rng = np.random.default_rng(0)
    reference.set_weights([rng.normal(size=w.shape).astype("float32") for w in grouped.weights])
    grouped.set_weights(reference.get_weights())
    return grouped, reference


@pytest.mark.parametrize(
    "channels, config",
    [
        (32, {"filters": 64, "kernel_size": 3, "groups": 8, "padding": "same"}),
        (64, {"filters": 64, "kernel_size": 3, "groups": 32, "strides": 2}),
        (12, {"filters": 6, "kernel_size": (3, 1), "groups": 3, "use_bias": False}),
        (8, {"filters": 8, "kernel_size": 3, "groups": 2, "dilation_rate": 2}),
    ],
)
def test_outputs_and_gradients_equal_keras_grouped_conv(channels, config):
    grouped, reference = twin_layers(channels, **config)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 9, 9, channels)), tf.float32)
    results = []
    for layer in (grouped, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype=y.dtype))
        results.append((y, *tape.gradient(loss, [x, layer.kernel])))
    for ours, theirs in zip(results[0], results[1], strict=True):
        # float32 sums of up to 32x3x3 products: rounding grows with the largest value (the
        # kernel gradient reaches ~760), so the absolute tolerance follows the scale.
        scale = float(np.abs(theirs.numpy()).max())
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6 * scale)
    assert grouped.kernel.shape == reference.kernel.shape
    assert grouped.count_params() == reference.count_params()


def test_a_model_with_it_saves_and_loads(tmp_path):
    inputs = keras.Input((8, 8, 16))
    outputs = GroupedConv2D(32, 3, groups=4, padding="same", name="grouped")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(1, 8, 8, 16)).astype("float32")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.get_layer("grouped"), GroupedConv2D)
    assert loaded.get_layer("grouped").groups == 4
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
