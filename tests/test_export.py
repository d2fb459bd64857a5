"""SavedModel export: signatures, equality with the in-memory model, atomic versions."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import kimnet.data
import kimnet.export
import kimnet.fileio
import kimnet.models

CLASSES = [f"class{i}" for i in range(10)]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return kimnet.models.get("mobilenetv2")(
        input_shape=(32, 32, 3), classes=10, small_input=True, alpha=0.35
    )


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("saved")
    path = kimnet.export.export(model, base / "tiny", class_names=CLASSES, normalization="tf")
    return path


def _reference(model, images_uint8):
    x = kimnet.data.resize(images_uint8, 32)
    return np.asarray(model(kimnet.data.normalize(x, "tf"), training=False))


def test_layout_and_metadata(exported):
    assert exported.name == "1" and (exported / "saved_model.pb").exists()
    loaded = kimnet.export.load(exported)
    assert loaded.class_names == CLASSES
    assert loaded.metadata["normalization"] == "tf" and loaded.metadata["image_size"] == 32


def test_reload_matches_in_memory_model(model, exported, fmnist):
    images = np.stack([x for x, _ in fmnist.test.take(16).as_numpy_iterator()])  # 28x28x1 uint8
    out = kimnet.export.load(exported).predict(images)
    np.testing.assert_allclose(out["probabilities"], _reference(model, images), atol=1e-5)
    top = np.argsort(-out["probabilities"], axis=1)[:, :5]
    np.testing.assert_array_equal(out["top5_indices"], top)
    np.testing.assert_allclose(
        out["top5_scores"], np.take_along_axis(out["probabilities"], top, 1), atol=1e-7
    )
    assert out["top5_names"][0, 0] == CLASSES[top[0, 0]]


def test_any_size_and_channel_count(model, exported):
    loaded = kimnet.export.load(exported)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 50, 40, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        loaded.predict(rgb)["probabilities"], _reference(model, rgb), atol=1e-5
    )
    rgba = np.concatenate([rgb, np.full((2, 50, 40, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_allclose(
        loaded.predict(rgba)["probabilities"], loaded.predict(rgb)["probabilities"], atol=1e-6
    )
    gray = rng.integers(0, 256, (2, 30, 30), dtype=np.uint8)
    assert loaded.predict(gray)["probabilities"].shape == (2, 10)
    with pytest.raises(ValueError, match="uint8"):
        loaded.predict(rgb.astype(np.float32))


def test_bytes_signature_matches_pixel_signature(exported):
    loaded = kimnet.export.load(exported)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    np.testing.assert_allclose(
        loaded.predict_bytes(encoded)["probabilities"],
        loaded.predict(images)["probabilities"],
        atol=1e-5,
    )
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.predict_bytes([b"not an image"])


def test_signatures_visible_to_tensorflow(exported):
    loaded = tf.saved_model.load(str(exported))
    assert set(loaded.signatures) == {"serving_default", "serving_bytes"}
    inputs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert inputs["images"].dtype == tf.uint8 and inputs["images"].shape.rank == 4


def test_versions_increment_and_never_overwrite(model, exported):
    model_dir = exported.parent
    second = kimnet.export.export(model, model_dir, class_names=CLASSES, normalization="tf")
    assert second.name == "2" and kimnet.export.versions(model_dir) == [1, 2]
    before = (second / "saved_model.pb").read_bytes()
    with pytest.raises(FileExistsError, match="Version 2 already exists"):
        kimnet.export.export(model, model_dir, class_names=CLASSES, normalization="tf", version=2)
    assert (second / "saved_model.pb").read_bytes() == before


@pytest.mark.parametrize("interruption", [RuntimeError("crash"), KeyboardInterrupt()])
def test_crash_during_export_leaves_no_version(model, tmp_path, monkeypatch, interruption):
    # Fails after the SavedModel files are written, before the metadata: a crash midway.
    def crash(*args, **kwargs):
        raise interruption

    monkeypatch.setattr(kimnet.fileio, "write_json_atomic", crash)
    with pytest.raises(type(interruption)):
        kimnet.export.export(model, tmp_path / "m", class_names=CLASSES, normalization="tf")
    assert list((tmp_path / "m").iterdir()) == []
    assert kimnet.export.versions(tmp_path / "m") == []


def test_class_names_must_match_outputs(model, tmp_path):
    with pytest.raises(ValueError, match="3 class names for a model with 10 outputs"):
        kimnet.export.export(model, tmp_path / "m", class_names=["a", "b", "c"], normalization="tf")
