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


def _stand_in_trainer(seen, top1=0.8125, train_top1=0.95):
    """A study trainer that records its configs and returns a tiny real model's result,
    with test top-1 ``top1 + 0.01 * seed`` and train top-1 ``train_top1``."""
    from pathlib import Path

    from kimnet import experiment
    from kimnet.training import Metrics, RunResult

    def trainer(config, splits=None):
        seen.append(config)
        inputs = keras.Input((4, 4, 3))
        outputs = keras.layers.Dense(10)(keras.layers.Conv2D(2, 3, padding="same")(inputs))
        run_dir = Path(config.runtime.workdir) / config.runtime.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(experiment.to_json(config))
        metrics = Metrics(
            model=config.model.name,
            dataset="fashion_mnist",
            class_names=list("abcdefghij"),
            test_top1=top1 + 0.01 * config.runtime.seed,
            test_top5=0.99,
            validation_top1=0.8,
            parameters=76,
            trainable_parameters=76,
            epochs=1,
            steps_per_epoch=config.schedule.steps_per_epoch or 10,
            image_size=32,
            wall_time_seconds=56.7,
            train_images_per_second=123.4,
            steady_images_per_second=234.5,
            first_step_seconds=8.9,
            export_dir=None,
            train_top1=train_top1,
        )
        return RunResult(run_dir, None, metrics, keras.Model(inputs, outputs))

    return trainer


@pytest.fixture
def stand_in_trainer():
    """``stand_in_trainer(seen, top1=..., train_top1=...)`` -> a study trainer."""
    return _stand_in_trainer
