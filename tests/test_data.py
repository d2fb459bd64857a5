"""Data sources and input pipelines, on real Fashion-MNIST and on folders tests write."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kimnet.data
from kimnet.data import fashion_mnist, pipeline
from kimnet.transfer.subsets import subset


def test_fashion_mnist_matches_tfds_definition(fmnist):
    reference = tfds.builder("fashion_mnist").info  # TFDS's own builder definition
    assert fmnist.info.class_names == tuple(reference.features["label"].names)
    assert fmnist.info.num_examples == {"train": 54000, "validation": 6000, "test": 10000}
    assert fmnist.info.image_shape == (28, 28, 1)
    image, label = next(iter(fmnist.test))
    assert image.dtype == tf.uint8 and image.shape == (28, 28, 1)
    assert label.dtype == tf.int64


def test_offline_prepare_writes_a_dataset_tfds_loads(tmp_path):
    # A tiny stand-in for the IDX directory: the first 20/10 examples of the real files.
    import gzip

    src = fashion_mnist.local_dir()
    idx = tmp_path / "idx"
    idx.mkdir()
    for name in fashion_mnist.FILES:
        with gzip.open(src / name) as f:
            raw = f.read()
        header = 16 if "images" in name else 8
        count = 20 if name.startswith("train") else 10
        item = 784 if "images" in name else 1
        body = raw[header : header + count * item]
        head = bytearray(raw[:header])
        head[4:8] = count.to_bytes(4, "big")
        with gzip.open(idx / name, "wb") as f:
            f.write(bytes(head) + body)
    # TFDS's builder checks the example counts of the full dataset; patch them for the stub.
    from tensorflow_datasets.image_classification import mnist

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "_TRAIN_EXAMPLES", 20)
        mp.setattr(mnist, "_TEST_EXAMPLES", 10)
        fashion_mnist.prepare(str(tmp_path / "tfds"), idx_dir=idx)
    ds = tfds.load("fashion_mnist", split="train", data_dir=str(tmp_path / "tfds"))
    first = next(iter(ds))
    assert first["image"].shape == (28, 28, 1)
    assert (
        tfds.builder("fashion_mnist", data_dir=str(tmp_path / "tfds"))
        .info.splits["test"]
        .num_examples
        == 10
    )


def test_validation_carve_is_deterministic(fmnist):
    again = kimnet.data.load("fashion_mnist")
    a = np.stack([x for x, _ in tfds.as_numpy(fmnist.validation.take(5))])
    b = np.stack([x for x, _ in tfds.as_numpy(again.validation.take(5))])
    np.testing.assert_array_equal(a, b)


def test_folder_dataset(image_folder):
    splits = kimnet.data.load(f"folder:{image_folder}")
    assert splits.info.class_names == ("cats", "dogs", "owls")
    counts = splits.info.num_examples
    assert counts["validation"] == 3 and counts["test"] == 3 and counts["train"] == 12
    labels = sorted(int(y) for _, y in splits.train)
    assert labels == [0] * 4 + [1] * 4 + [2] * 4
    for image, label in splits.test:
        assert image.dtype == tf.uint8 and image.shape == (20, 24, 3)
        # Solid colours per class: the decoded pixels say which class the file came from.
        assert abs(float(tf.reduce_mean(tf.cast(image, tf.float32))) - (60 * int(label) + 24.5)) < 3


def test_folder_with_split_subfolders(tmp_path, write_image_folder):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "test", per_class=2)
    splits = kimnet.data.load(f"folder:{tmp_path}")
    assert splits.info.num_examples["test"] == 6
    assert splits.info.num_examples["train"] + splits.info.num_examples["validation"] == 18


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: root.mkdir(), "No images"),
        (lambda root: (root / "only").mkdir(parents=True), "No images"),
        (None, "single class"),
        ("corrupt", "cannot be decoded"),
    ],
)
def test_folder_errors(tmp_path, setup, message, write_image_folder):
    root = tmp_path / "data"
    if setup is None:
        write_image_folder(root, classes=("cats",))
    elif setup == "corrupt":
        write_image_folder(root)
        (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    else:
        setup(root)
    with pytest.raises(ValueError, match=message):
        kimnet.data.load(f"folder:{root}")


def test_unknown_dataset_and_missing_folder():
    with pytest.raises(ValueError, match="Unknown dataset 'fashion_mnistt'"):
        kimnet.data.load("fashion_mnistt")
    with pytest.raises(ValueError, match="does not exist"):
        kimnet.data.load("folder:/nonexistent/kimnet")


@pytest.mark.parametrize(
    "normalization, low, high", [("tf", -1.0, 1.0), ("raw", 0.0, 255.0), ("torch", -2.2, 2.7)]
)
def test_pipeline_batches(fmnist, normalization, low, high):
    pipes = kimnet.data.make(fmnist, image_size=32, batch_size=16, normalization=normalization)
    images, labels = next(iter(pipes["test"]))
    assert images.shape == (16, 32, 32, 3) and images.dtype == tf.float32
    assert labels.shape == (16,)
    values = images.numpy()
    assert values.min() >= low - 1e-4 and values.max() <= high + 1e-4
    assert values.max() - values.min() > 0.5 * (high - low)  # really spans the range
    # Gray becomes RGB by repeating the channel.
    if normalization != "torch":  # torch normalises each channel differently
        np.testing.assert_array_equal(values[..., 0], values[..., 2])


def test_pipeline_rejects_bad_sizes(fmnist):
    with pytest.raises(ValueError, match="batch_size"):
        kimnet.data.make(fmnist, image_size=32, batch_size=0, normalization="tf")
    with pytest.raises(ValueError, match="image_size"):
        kimnet.data.make(fmnist, image_size=2, batch_size=8, normalization="tf")


def test_pipeline_length_comes_from_the_dataset_info():
    # A filtered source (as class subsets are) has unknown cardinality; the pipeline
    # takes the count from DatasetInfo, so Keras knows where each pass ends.
    images = np.zeros((30, 4, 4, 1), np.uint8)
    labels = np.arange(30, dtype=np.int64) % 3
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).filter(lambda x, y: y < 2)
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    counts = {"train": 20, "validation": 20, "test": 20}
    info = kimnet.data.DatasetInfo("toy", ("a", "b"), counts, (4, 4, 1))
    batches = kimnet.data.make(
        kimnet.data.Splits(ds, ds, ds, info), image_size=8, batch_size=8, normalization="raw"
    )
    assert [int(batches[s].cardinality()) for s in ("train", "test")] == [3, 3]
    assert sum(int(y.shape[0]) for _, y in batches["test"]) == 20


def test_train_pipeline_shuffles_and_eval_does_not(fmnist):
    pipes = kimnet.data.make(fmnist, image_size=28, batch_size=64, normalization="raw", seed=1)
    first_eval = next(iter(pipes["test"]))[1].numpy()
    second_eval = next(iter(pipes["test"]))[1].numpy()
    np.testing.assert_array_equal(first_eval, second_eval)
    plain = next(iter(pipes["train_plain"]))[1].numpy()
    shuffled = next(iter(pipes["train"]))[1].numpy()
    assert not np.array_equal(plain, shuffled)


def test_resizing_once_gives_the_same_batches_as_resizing_every_epoch(fmnist, monkeypatch):
    splits = subset(fmnist, train_examples=256, validation_examples=64, test_examples=64)

    def batches(split):
        pipes = kimnet.data.make(splits, image_size=56, batch_size=32, normalization="caffe")
        return [images.numpy() for images, _ in pipes[split]]

    once = {split: batches(split) for split in ("train_plain", "test")}
    monkeypatch.setattr(pipeline, "CACHE_MEMORY_SHARE", 0.0)  # nothing fits: every epoch
    for split, expected in once.items():
        got = batches(split)
        assert len(got) == len(expected) and got[0].shape == (32, 56, 56, 3)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("share, resizes", [(pipeline.CACHE_MEMORY_SHARE, 1), (0.0, 2)])
def test_each_image_is_resized_once_when_the_resized_splits_fit_in_memory(
    fmnist, monkeypatch, share, resizes
):
    monkeypatch.setattr(pipeline, "CACHE_MEMORY_SHARE", share)
    calls = tf.Variable(0, dtype=tf.int64)
    real_resize = pipeline.resize

    def counted_resize(images, image_size, channels=3):
        calls.assign_add(1)
        return real_resize(images, image_size, channels)

    monkeypatch.setattr(pipeline, "resize", counted_resize)
    splits = subset(fmnist, train_examples=96, validation_examples=32, test_examples=32)
    train = kimnet.data.make(splits, image_size=32, batch_size=32, normalization="tf")["train"]
    for _ in range(2):  # two epochs
        assert sum(int(y.shape[0]) for _, y in train) == 96
    assert int(calls.numpy()) == 96 * resizes


def test_resized_cache_is_sized_for_every_pipeline_and_keeps_grayscale_one_channel():
    counts = {"train": 1000, "validation": 100, "test": 200}
    gray = kimnet.data.DatasetInfo("toy", ("a", "b"), counts, (28, 28, 1))
    rgb = kimnet.data.DatasetInfo("toy", ("a", "b"), counts, (None, None, 3))
    # train and train_plain each cache the training split; float32 pixels.
    assert pipeline._resized_cache_bytes(gray, 56, channels=3) == 2300 * 56 * 56 * 1 * 4
    assert pipeline._resized_cache_bytes(rgb, 56, channels=3) == 2300 * 56 * 56 * 3 * 4
