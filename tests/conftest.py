"""Shared fixtures: real Fashion-MNIST, small image folders, quiet TensorFlow."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """Tests that switch the dtype policy never leak it into other tests."""
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def fmnist():
    """Fashion-MNIST through kimnet.data (prepared offline from the Debian IDX files)."""
    import kimnet.data

    return kimnet.data.load("fashion_mnist")


def _write_image_folder(root, classes=("cats", "dogs", "owls"), per_class=6, size=(20, 24)):
    """A class-per-folder dataset with PNG, JPEG, BMP and GIF files of solid colours."""
    formats = ("png", "jpg", "bmp", "gif")
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((*size, 3), 60 * label + 20, np.uint8)
            pixels += rng.integers(0, 10, pixels.shape, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"img{i}.{formats[i % len(formats)]}")
    return root


@pytest.fixture
def write_image_folder():
    """``write_image_folder(root, classes=..., per_class=..., size=...)`` -> root."""
    return _write_image_folder


@pytest.fixture
def image_folder(tmp_path):
    return _write_image_folder(tmp_path / "images")
