"""RandAugment, MixUp, CutMix and random erasing: the ops, their labels, their pipeline."""

from __future__ import annotations

import dataclasses

import keras
import keras_cv
import numpy as np
import pytest
import tensorflow as tf

import kimnet.data
import kimnet.export
from kimnet import experiment
from kimnet.data import augment
from kimnet.errors import InputError
from kimnet.training import train

NEW_OPS = ["randaugment", "mixup", "cutmix", "erasing=1"]  # erasing at its default may skip all


def _images(channels: int, count: int = 8, size: int = 32) -> np.ndarray:
    """Images that differ from each other (so mixing changes them) with asymmetric content."""
    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 80, (count, size, size, channels)).astype(np.float32)
    batch[:, 4:10, 2:20, :] = 255.0
    batch[:, 14:24, 8:20, :] += 20.0 * np.arange(count)[:, None, None, None]
    return np.clip(batch, 0, 255)


def _one_hot(count: int = 8, classes: int = 10) -> tf.Tensor:
    return tf.one_hot(np.arange(count) % classes, classes)


def _run(spec: str, images: np.ndarray, labels=None, seed: int = 3, global_seed: int = 0):
    keras.utils.set_random_seed(global_seed)
    layer = augment.build(spec, images.shape[1], seed=seed)
    out = layer(images, training=True) if labels is None else layer(images, labels, training=True)
    return tuple(np.asarray(t) for t in out) if labels is not None else np.asarray(out)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("spec", NEW_OPS)
def test_new_ops_keep_shape_dtype_range_and_change_images(spec, channels):
    images = _images(channels)
    out, labels = _run(spec, images, _one_hot())
    assert out.shape == images.shape and out.dtype == np.float32
    assert labels.shape == (8, 10) and labels.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(out, images), f"{spec} left every image unchanged"
    # Without labels (the run's preview of augmented images) the images still change.
    assert not np.allclose(_run(spec, images), images)


@pytest.mark.parametrize("spec", NEW_OPS)
def test_new_ops_leave_images_and_labels_alone_at_inference(spec):
    images, labels = _images(3), _one_hot()
    layer = augment.build(spec, 32, seed=3)
    out_images, out_labels = layer(images, labels, training=False)
    np.testing.assert_array_equal(np.asarray(out_images), images)
    np.testing.assert_array_equal(np.asarray(out_labels), np.asarray(labels))


@pytest.mark.parametrize("spec", NEW_OPS)
def test_same_seeds_same_output_other_seed_other_output(spec):
    # KerasCV 0.9 draws part of these ops' randomness without the layer's seed
    # (RandAugment's magnitudes, MixUp's and CutMix's weights, CutMix's box centre), so
    # a run is reproducible through TF's global seed, which training sets from
    # runtime.seed, together with the layer seed.
    images, labels = _images(3), _one_hot()
    first, second = _run(spec, images, labels), _run(spec, images, labels)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _run(spec, images, labels, seed=4, global_seed=1)
    assert not np.array_equal(first[0], other[0])


def test_only_the_mixing_ops_change_labels():
    images, labels = _images(3), _one_hot()
    for spec in ("randaugment", "erasing=1", "flip_h,crop"):
        np.testing.assert_array_equal(_run(spec, images, labels)[1], np.asarray(labels))
    assert not augment.build("flip_h,randaugment,erasing", 32).mixes_labels
    assert augment.build("flip_h,mixup", 32).mixes_labels


def _flat_images(count: int = 8, size: int = 32) -> np.ndarray:
    """Image i is the constant 20 * (i + 1): every pixel tells which image it came from."""
    values = 20.0 * (np.arange(count) + 1)
    return np.broadcast_to(values[:, None, None, None], (count, size, size, 1)).astype(np.float32)


def test_mixup_labels_are_the_mix_of_the_two_images():
    images, labels = _flat_images(), _one_hot()
    out, mixed = _run("mixup=1", images, labels)  # alpha 1: weights spread over (0, 1)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    assert all(np.count_nonzero(row > 1e-6) <= 2 for row in mixed)
    # Each pixel is the labels' mix of the two images' values.
    values = 20.0 * (np.arange(10) + 1)
    np.testing.assert_allclose(out[:, 0, 0, 0], mixed @ values, rtol=1e-4)
    assert np.any((mixed > 0.05) & (mixed < 0.95)), "no image was mixed"


def test_cutmix_labels_follow_the_pixels_each_image_gives():
    images, labels = _flat_images(), _one_hot()
    out, mixed = _run("cutmix=1", images, labels)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    for i in range(8):
        sources = (np.round(out[i, ..., 0] / 20.0) - 1).astype(int)
        classes, counts = np.unique(sources, return_counts=True)
        assert len(classes) <= 2 and i in classes
        expected = np.zeros(10)
        expected[classes] = counts / counts.sum()
        np.testing.assert_allclose(mixed[i], expected, atol=1e-6)
    assert np.any((mixed > 0.05) & (mixed < 0.95)), "no box was pasted"


def test_randaugment_keeps_grey_images_grey():
    # Why running it on a repeated grey channel and keeping one channel is exact.
    keras.utils.set_random_seed(0)
    # 10 ops on each of 8 images: every op of the policy runs (all but surely).
    layer = keras_cv.layers.RandAugment((0, 255), augmentations_per_image=10, magnitude=1.0)
    out = np.asarray(layer(np.repeat(_images(1), 3, axis=-1), training=True))
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_randaugment_magnitude_strengthens_the_change():
    images = _images(3)
    weak = _run("randaugment=2:1", images)
    strong = _run("randaugment=2:10", images)
    assert np.abs(strong - images).mean() > np.abs(weak - images).mean()


def test_erasing_probability_and_area():
    images = _images(3)
    np.testing.assert_array_equal(_run("erasing=0", images), images)
    # A quarter of the area: a 16x16 square of 32x32 images, less where the border clips it.
    out = _run("erasing=1:0.25:0.25", images)
    grey = np.all(out == 127.5, axis=-1) & ~np.all(images == 127.5, axis=-1)
    shares = grey.mean(axis=(1, 2))
    assert np.all(shares > 0) and np.all(shares <= 0.25)
    np.testing.assert_array_equal(out[~grey], images[~grey])


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("randaugment", (2.0, 9.0)),
        ("randaugment=3", (3.0, 9.0)),
        ("randaugment=1:0", (1.0, 0.0)),
        ("mixup", 0.2),
        ("cutmix=0.5", 0.5),
        ("erasing", (0.25, 0.02, 0.33)),
        ("erasing=0.5", (0.5, 0.02, 0.33)),
        ("erasing=0.5:0.1:0.4", (0.5, 0.1, 0.4)),
    ],
)
def test_parse_strengths_of_several_numbers(spec, expected):
    assert augment.parse(spec) == [(spec.partition("=")[0], expected)]


def test_new_ops_compose_with_the_others():
    spec = "flip_h,crop,randaugment=2:9,mixup=0.2"
    assert [name for name, _ in augment.parse(spec)] == ["flip_h", "crop", "randaugment", "mixup"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mixup=-1", r"alpha of mixup must be between 0.01 and 10"),
        ("cutmix=0", r"alpha of cutmix must be between 0.01 and 10"),
        ("randaugment=2:99", r"magnitude of randaugment must be between 0 and 10"),
        ("randaugment=0:5", r"ops of randaugment must be a whole number between 1 and 10"),
        ("randaugment=2.5", r"ops of randaugment must be a whole number"),
        ("randaugment=1:2:3", r"randaugment takes at most 2 number"),
        ("randaugment=a:9", r"'a' is not a number"),
        ("randaugment=2:", r"'' is not a number"),
        ("erasing=1.5", r"probability of erasing must be between 0 and 1"),
        ("erasing=0.5:0.4:0.1", r"min_area must not exceed max_area"),
        ("flip_h,mixups", r"Unknown augmentation 'mixups'. Did you mean 'mixup'"),
    ],
)
def test_bad_strengths_name_the_valid_ranges_in_one_line(spec, message):
    with pytest.raises(InputError, match=message) as error:
        augment.parse(spec)
    text = str(error.value)
    assert "\n" not in text
    assert "randaugment=ops:magnitude (ops 1..10, magnitude 0..10)" in text
    assert "mixup=0.01..10" in text and "crop=0..256" in text


def test_bad_strength_in_a_config_fails_before_anything_runs():
    with pytest.raises(InputError, match=r"config.augment.ops=.*magnitude of randaugment"):
        experiment.validate({"augment": {"ops": "flip_h,randaugment=2:99"}})


def test_describe_lists_every_op_with_its_default():
    lines = augment.describe().splitlines()
    assert len(lines) == len(augment.OPS)
    assert "randaugment=2:9 (ops 1..10, magnitude 0..10): RandAugment" in lines[-4]
    assert lines[-1].startswith("erasing=0.25:0.02:0.33 (probability 0..1, min_area 0..1")


def _first(batches):
    images, labels = next(iter(batches))
    return images.numpy(), labels.numpy()


def test_pipeline_mixes_training_batches_only(fmnist):
    # 64 real images per split keep the shuffle buffer and the cache small.
    splits = kimnet.data.Splits(
        *(getattr(fmnist, split).take(64) for split in ("train", "validation", "test")),
        dataclasses.replace(fmnist.info, num_examples=dict.fromkeys(fmnist.info.num_examples, 64)),
    )

    def make(spec):
        augmenter = augment.build(spec, 28, seed=1)
        return kimnet.data.make(
            splits, image_size=28, batch_size=32, normalization="raw", augmenter=augmenter, seed=1
        )

    keras.utils.set_random_seed(0)
    mixed, plain = make("flip_h,mixup=0.2"), make("none")
    images, labels = _first(mixed["train"])
    assert images.shape == (32, 28, 28, 3) and labels.shape == (32, 10)
    assert labels.dtype == np.float32
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert images.min() >= 0 and images.max() <= 255
    for split in ("train_plain", "validation", "test"):
        ours, theirs = _first(mixed[split]), _first(plain[split])
        assert ours[1].dtype == np.int64 and ours[1].shape == (32,)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
    # Ops that do not mix labels keep the integer labels.
    assert _first(make("flip_h,erasing")["train"])[1].dtype == np.int64


@pytest.mark.slow  # a real (two-step) training run: about 70 s of CPU time
def test_training_with_randaugment_and_mixup_reports_metrics_and_exports_no_augmentation(
    tmp_path, fmnist
):
    config = experiment.validate(
        {
            "augment": {"ops": "flip_h,crop,randaugment=2:9,mixup=0.2"},
            "model": {"name": "mobilenetv2", "args": "alpha=0.35"},
            "data": {"train_examples": 128, "batch_size": 32},
            "schedule": {"epochs": 1, "steps_per_epoch": 2},
            "evaluate": {"max_batches": 2},
            "runtime": {"workdir": str(tmp_path / "runs"), "run_name": "mix"},
            "export": {"dir": str(tmp_path / "saved")},
        }
    )
    result = train(config)
    metrics = result.metrics
    assert 0 <= metrics.test_top1 <= 1 and metrics.test_top1 <= metrics.test_top5 <= 1
    layers = [type(layer).__module__ for layer in result.model.layers]
    assert not any(module.startswith("keras_cv") for module in layers)
    # The export is deterministic: no random op of the augmentation went into it.
    images = np.stack([x for x, _ in fmnist.test.take(8).as_numpy_iterator()])
    classifier = kimnet.export.load(result.export_dir)
    first, second = classifier.predict(images), classifier.predict(images)
    np.testing.assert_array_equal(first["top5_indices"], second["top5_indices"])
    np.testing.assert_allclose(first["top5_scores"], second["top5_scores"], rtol=1e-6)
