"""Augmentation ops composed by name."""

from __future__ import annotations

import numpy as np
import pytest

from kimnet.data import augment


@pytest.fixture(scope="module")
def images():
    # Asymmetric content (a bright bar at the top-left) so flips, crops, rotations
    # and shifts all visibly change the images; a grey level that differs between
    # images, so that mixing two images changes them too.
    batch = np.zeros((8, 32, 32, 3), np.float32)
    batch[:, 4:10, 2:20, :] = 255.0
    batch[:, 20:28, 24:30, 1] = 128.0
    batch[:, 12:18, 12:18, 2] = 30.0 * np.arange(8)[:, None, None]
    return batch


# Ops whose default may leave a small batch unchanged by chance, at a strength that cannot.
SURELY = {"erasing": "erasing=1"}


@pytest.mark.parametrize("name", sorted(augment.OPS))
def test_each_op_keeps_shape_dtype_range_and_changes_images(name, images):
    layer = augment.build(SURELY.get(name, name), 32, seed=3)
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images), f"{name} left every image unchanged"


@pytest.mark.parametrize("name", sorted(augment.OPS))
def test_ops_leave_images_alone_at_inference(name, images):
    layer = augment.build(name, 32, seed=3)
    np.testing.assert_allclose(np.asarray(layer(images, training=False)), images, atol=1e-4)


def test_parse_defaults_and_strengths():
    assert augment.parse("flip_h,rotate=30,noise") == [
        ("flip_h", 0.0),
        ("rotate", 30.0),
        ("noise", augment.OPS["noise"].default),
    ]
    assert augment.parse("none") == [] and augment.parse("") == []
    assert augment.build("none", 32) is None


def test_strength_changes_the_effect(images):
    weak = np.asarray(augment.build("translate=0.02", 32, seed=1)(images, training=True))
    strong = np.asarray(augment.build("translate=0.4", 32, seed=1)(images, training=True))
    assert np.abs(strong - images).mean() > np.abs(weak - images).mean()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("flip,rotate", "Unknown augmentation 'flip'.*Known augmentations: flip_h"),
        ("rotate=abc", "not a number"),
        ("crop=-2", "crop must be between 0 and 256"),
        ("crop=1e9", "crop must be between 0 and 256"),
        ("rotate=400", "rotate must be between 0 and 180"),
        ("zoom=1.5", "zoom must be between 0 and 0.9"),
        ("resized_crop=0", None),
    ],
)
def test_bad_specs(spec, message):
    if message is None:  # the edge of a range is valid
        assert augment.parse(spec) == [(spec.split("=")[0], 0.0)]
        return
    with pytest.raises(ValueError, match=message):
        augment.parse(spec)


def test_noise_strength_is_a_fraction():
    with pytest.raises(ValueError, match="noise must be between 0 and 1.*fraction"):
        augment.build("noise=10", 32)
