"""kimnet's fused BatchNormalization computes what keras.layers.BatchNormalization does.

Every comparison runs the Keras layer and the fused one side by side on the same input
and weights. Tolerances are a few units in the last place of the dtype compared
(float32: rtol 1e-5; float16 outputs: 2**-10; bfloat16 outputs: 2**-7), and the
tests also check that the fused kernel really ran, so equality is not a fallback's.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kimnet.models.batch_norm import BatchNormalization as FusedBN
from kimnet.models.batch_norm import can_fuse

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# Relative tolerance on outputs by compute dtype: about one unit in the last place.
OUTPUT_RTOL = {"float32": 1e-5, "float16": 2.0**-10, "bfloat16": 2.0**-7}
CHANNELS = 8


def _weights(channels: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "gamma": rng.normal(1.0, 0.5, channels).astype("float32"),
        "beta": rng.normal(0.0, 0.5, channels).astype("float32"),
        "moving_mean": rng.normal(0.0, 1.0, channels).astype("float32"),
        "moving_variance": rng.uniform(0.5, 2.0, channels).astype("float32"),
    }


def _pair(shape: tuple[int, ...], **config) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    """A Keras BN and a fused BN, built for ``shape``, holding the same weights."""
    keras_bn = keras.layers.BatchNormalization(**config)
    fused_bn = FusedBN(**config)
    for layer in (keras_bn, fused_bn):
        layer.build(shape)
    values = _weights(shape[config.get("axis", -1)])
    # Renorm's extra statistics keep their initial values.
    by_name = [values.get(w.name, np.asarray(w)) for w in keras_bn.weights]
    keras_bn.set_weights(by_name)
    fused_bn.set_weights(by_name)
    return keras_bn, fused_bn


def _inputs(shape: tuple[int, ...], dtype: str = "float32", seed: int = 0) -> tf.Tensor:
    # Mean and scale away from 0/1 so a wrong mean or variance shows.
    x = np.random.default_rng(seed).normal(1.5, 3.0, shape).astype("float32")
    return tf.constant(x, dtype)


def _run(layer: keras.layers.Layer, x: tf.Tensor, training: bool) -> dict[str, np.ndarray]:
    """Output, gradients of a weighted sum w.r.t. inputs, gamma, beta; then weights."""
    # A random cotangent: with a per-channel linear loss the training-mode gradients
    # w.r.t. inputs and gamma are exactly zero, and comparing rounding noise says nothing.
    weights = tf.constant(np.random.default_rng(7).normal(size=x.shape), "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    sources = [x] + [v for v in (layer.gamma, layer.beta) if v is not None]
    grads = tape.gradient(loss, sources)
    out = {"y": y, "dx": grads[0]}
    if layer.gamma is not None:
        out["dgamma"] = grads[1]
    if layer.beta is not None:
        out["dbeta"] = grads[-1]
    for w in layer.weights:
        out[w.name] = w
    return {k: np.asarray(tf.cast(v, "float32")) for k, v in out.items()}


def _close(actual: dict, expected: dict, rtol: float, atol: float) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        # atol scaled by the tensor's magnitude: gradients summed over a batch are large.
        scale = max(1.0, float(np.abs(expected[key]).max()))
        np.testing.assert_allclose(
            actual[key], expected[key], rtol=rtol, atol=atol * scale, err_msg=key
        )


def _fused_ops(layer: keras.layers.Layer, x: tf.Tensor, training: bool) -> set[str]:
    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(x).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("policy", POLICIES + ("float16", "bfloat16"))
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "shape",
    [(4, 6, 5, CHANNELS), (3, 1, 7, CHANNELS), (1, 1, 1, CHANNELS)],
    ids=["4x6x5", "3x1x7", "n=1"],
)
def test_matches_keras_outputs_gradients_and_moving_statistics(policy, training, shape):
    keras.mixed_precision.set_global_policy(policy)
    keras_bn, fused_bn = _pair(shape, momentum=0.9, epsilon=1e-3)
    x = _inputs(shape, keras_bn.compute_dtype)
    assert can_fuse(fused_bn, x)
    expected = _run(keras_bn, x, training)
    actual = _run(fused_bn, x, training)
    # Moving statistics are float32 except in the pure float16/bfloat16 policies, where
    # both layers round the same float32 update to the variable dtype (found equal).
    _close(
        {k: actual[k] for k in ("moving_mean", "moving_variance")},
        {k: expected[k] for k in ("moving_mean", "moving_variance")},
        1e-6,
        1e-6,
    )
    _close(actual, expected, OUTPUT_RTOL[keras_bn.compute_dtype], 1e-5)
    if training:
        # The update really happened (a no-op would also "match" in inference).
        assert not np.allclose(actual["moving_mean"], _weights(CHANNELS)["moving_mean"])


@pytest.mark.parametrize("center,scale", [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("training", [True, False])
def test_center_and_scale_off(center, scale, training):
    shape = (4, 5, 5, CHANNELS)
    keras_bn, fused_bn = _pair(shape, center=center, scale=scale, epsilon=1e-5)
    assert [w.name for w in fused_bn.weights] == [w.name for w in keras_bn.weights]
    x = _inputs(shape)
    _close(_run(fused_bn, x, training), _run(keras_bn, x, training), 1e-5, 1e-5)


def test_frozen_layer_runs_in_inference_mode_and_keeps_its_statistics():
    shape = (4, 5, 5, CHANNELS)
    keras_bn, fused_bn = _pair(shape)
    keras_bn.trainable = fused_bn.trainable = False
    x = _inputs(shape)
    expected = _run(keras_bn, x, training=True)
    actual = _run(fused_bn, x, training=True)
    _close(actual, expected, 1e-5, 1e-5)
    np.testing.assert_array_equal(actual["moving_mean"], _weights(CHANNELS)["moving_mean"])
    inference = np.asarray(fused_bn(x, training=False))
    np.testing.assert_allclose(actual["y"], inference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("training", [True, False])
def test_fused_kernel_runs_inside_tf_function(policy, training):
    keras.mixed_precision.set_global_policy(policy)
    shape = (4, 5, 5, CHANNELS)
    keras_bn, fused_bn = _pair(shape, momentum=0.8)
    x = _inputs(shape, keras_bn.compute_dtype)
    ops = _fused_ops(fused_bn, x, training)
    assert "FusedBatchNormV3" in ops
    # Keras' unfused moments (the ops the profile blamed) are gone.
    assert not {"SquaredDifference", "Mean"} & ops
    assert "FusedBatchNormV3" not in _fused_ops(keras_bn, x, training)
    expected = tf.function(lambda t: keras_bn(t, training=training))(x)
    actual = tf.function(lambda t: fused_bn(t, training=training))(x)
    np.testing.assert_allclose(
        np.asarray(tf.cast(actual, "float32")),
        np.asarray(tf.cast(expected, "float32")),
        rtol=OUTPUT_RTOL[keras_bn.compute_dtype],
        atol=1e-5,
    )
    for a, b in zip(fused_bn.weights, keras_bn.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "case",
    ["rank2", "rank3", "axis1", "float64", "mask", "renorm", "synchronized"],
)
def test_unsupported_cases_fall_back_to_keras(case):
    shape = {"rank2": (6, CHANNELS), "rank3": (3, 5, CHANNELS)}.get(case, (3, 4, 4, CHANNELS))
    config = {
        "axis1": {"axis": 1},
        "renorm": {"renorm": True},
        "synchronized": {"synchronized": True},
    }.get(case, {})
    dtype = "float64" if case == "float64" else "float32"
    if case == "float64":
        config["dtype"] = "float64"
    keras_bn, fused_bn = _pair(shape, **config)
    x = _inputs(shape, dtype)
    mask = tf.constant(np.arange(np.prod(shape[:-1])).reshape(shape[:-1]) % 3 > 0)
    kwargs = {"mask": mask} if case == "mask" else {}
    assert not can_fuse(fused_bn, x, kwargs.get("mask"))
    graph = (
        tf.function(lambda t: fused_bn(t, training=True, **kwargs)).get_concrete_function(x).graph
    )
    assert "FusedBatchNormV3" not in {op.type for op in graph.get_operations()}
    expected = keras_bn(x, training=True, **kwargs)
    actual = fused_bn(x, training=True, **kwargs)
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-6, atol=1e-6)


def _twin_models(policy: str = "float32") -> tuple[keras.Model, keras.Model]:
    """Conv -> BN -> ReLU -> GAP -> Dense, once per BN class, same weights."""
    keras.mixed_precision.set_global_policy(policy)

    def build(bn_class: type) -> keras.Model:
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(CHANNELS, 3, name="conv")(inputs)
        x = bn_class(momentum=0.5, name="bn")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(3, dtype="float32", name="head")(x)
        return keras.Model(inputs, outputs)

    keras.utils.set_random_seed(0)
    reference, fused = build(keras.layers.BatchNormalization), build(FusedBN)
    fused.set_weights(reference.get_weights())
    return reference, fused


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.normal(0.5, 2.0, (16, 8, 8, 3)).astype("float32"), rng.normal(size=(16, 3))


@pytest.mark.parametrize("policy", POLICIES)
def test_fit_trains_and_predict_infers_like_keras(policy):
    """training=None: fit uses batch statistics and updates them; predict does not."""
    reference, fused = _twin_models(policy)
    x, y = _data()
    for model in (reference, fused):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    rtol = {"float32": 1e-5, "mixed_float16": 2e-3, "mixed_bfloat16": 2e-2}[policy]
    before = [np.asarray(w) for w in _twin_models(policy)[0].weights]
    for a, b in zip(fused.weights, reference.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), rtol=rtol, atol=rtol, err_msg=a.path
        )
    # fit moved the moving statistics (momentum 0.5, 4 steps): the check above is not vacuous.
    moving = [w for w in fused.weights if "moving" in w.path]
    assert all(
        not np.allclose(np.asarray(w), s)
        for w, s in zip(
            moving,
            [s for w, s in zip(fused.weights, before, strict=True) if "moving" in w.path],
            strict=True,
        )
    )
    np.testing.assert_allclose(
        fused.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=rtol, atol=rtol
    )


@pytest.mark.parametrize(
    "strategy",
    [tf.distribute.get_strategy, lambda: tf.distribute.OneDeviceStrategy("/cpu:0")],
    ids=["default", "one_device"],
)
def test_under_distribution_strategy(strategy):
    with strategy().scope():
        reference, fused = _twin_models()
        for model in (reference, fused):
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = _data()
    for model in (reference, fused):
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(fused.weights, reference.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_config_and_weight_names_match_keras():
    keras_bn, fused_bn = _pair(
        (2, 3, 3, CHANNELS), momentum=0.97, epsilon=1e-4, center=False, name="bn"
    )
    assert fused_bn.get_config() == keras_bn.get_config()
    assert [w.path for w in fused_bn.weights] == [w.path for w in keras_bn.weights]
    assert [w.name for w in fused_bn.weights] == ["gamma", "moving_mean", "moving_variance"]
    clone = FusedBN.from_config(fused_bn.get_config())
    assert type(clone) is FusedBN and clone.get_config() == fused_bn.get_config()
    # Default names are Keras' too, so auto-named models keep their layer names.
    assert FusedBN().name.startswith("batch_normalization")


def test_keras_weight_files_load_both_ways(tmp_path):
    reference, fused = _twin_models()
    x, _ = _data()
    for w in reference.weights:  # make every weight differ from a fresh model's
        w.assign(np.asarray(w) + np.random.default_rng(5).uniform(0.1, 0.2, w.shape))
    reference.save_weights(tmp_path / "keras.weights.h5")
    fresh_fused = _twin_models()[1]
    fresh_fused.load_weights(tmp_path / "keras.weights.h5")
    for a, b in zip(fresh_fused.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    fresh_fused.save_weights(tmp_path / "fused.weights.h5")
    fresh_reference = _twin_models()[0]
    fresh_reference.load_weights(tmp_path / "fused.weights.h5")
    for a, b in zip(fresh_reference.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(
        fresh_fused.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_legacy_h5_weights_load(tmp_path):
    """Keras Applications publish legacy (order-based) .h5 weight files."""
    reference, _ = _twin_models()
    for w in reference.weights:
        w.assign(np.asarray(w) + 0.25)
    reference.save(tmp_path / "legacy.h5")
    fused = _twin_models()[1]
    fused.load_weights(tmp_path / "legacy.h5")
    for a, b in zip(fused.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_keras_file_round_trip(tmp_path):
    _, fused = _twin_models()
    x, _ = _data()
    fused.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("bn")) is FusedBN
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), fused.predict(x, verbose=0))


def test_savedmodel_export(tmp_path):
    _, fused = _twin_models()
    x, _ = _data()
    serve = tf.function(
        lambda images: fused(images, training=False),
        input_signature=[tf.TensorSpec((None, 8, 8, 3), tf.float32)],
    )
    module = tf.Module()
    module.model, module.serve = fused, serve
    tf.saved_model.save(module, os.fspath(tmp_path / "saved"), signatures={"serve": serve})
    loaded = tf.saved_model.load(os.fspath(tmp_path / "saved"))
    graph_ops = {
        node.op
        for fn in loaded.signatures["serve"].graph.as_graph_def().library.function
        for node in fn.node_def
    }
    assert "FusedBatchNormV3" in graph_ops
    np.testing.assert_allclose(
        loaded.signatures["serve"](images=tf.constant(x))["output_0"].numpy(),
        fused.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_other_backends_take_the_keras_path(monkeypatch):
    # No JAX/torch here; the backend check is the only thing that differs for them.
    _, fused_bn = _pair((2, 3, 3, CHANNELS))
    x = _inputs((2, 3, 3, CHANNELS))
    assert can_fuse(fused_bn, x)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert not can_fuse(fused_bn, x)
    assert "FusedBatchNormV3" not in _fused_ops(fused_bn, x, training=True)
