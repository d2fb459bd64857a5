"""TFRecord shards: written from real Fashion-MNIST and image folders, read back exactly."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import kimnet.data
from kimnet import experiment
from kimnet.data import tfrecord
from kimnet.data.__main__ import main as data_main
from kimnet.data.splits import SPLITS, Splits
from kimnet.errors import InputError
from kimnet.training import train

SUBSET = {"train": 250, "validation": 40, "test": 60}


def fmnist_subset(fmnist: Splits) -> Splits:
    """The first few hundred Fashion-MNIST examples of each split."""
    info = dataclasses.replace(fmnist.info, num_examples=dict(SUBSET))
    return Splits(**{s: getattr(fmnist, s).take(n) for s, n in SUBSET.items()}, info=info)


def examples(dataset: tf.data.Dataset) -> list[tuple[int, bytes]]:
    return [(int(label), image.tobytes()) for image, label in dataset.as_numpy_iterator()]


def test_fashion_mnist_round_trip(fmnist, tmp_path):
    source = fmnist_subset(fmnist)
    out = tmp_path / "shards"
    counts = tfrecord.write(source, out, examples_per_shard=100)
    assert counts == SUBSET
    assert sorted(p.name for p in out.glob("train-*")) == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
    ]
    loaded = kimnet.data.load(f"tfrecord:{out}")
    assert loaded.info.class_names == fmnist.info.class_names
    assert loaded.info.num_examples == SUBSET
    assert loaded.info.image_shape == (28, 28, 1)
    assert loaded.train.element_spec[0].shape == (28, 28, 1)
    # Validation and test keep their order; the training shards are read in shuffled
    # order, so compare the training split as a multiset. PNG is lossless: same bytes.
    for split in ("validation", "test"):
        assert examples(getattr(loaded, split)) == examples(getattr(source, split))
    assert sorted(examples(loaded.train)) == sorted(examples(source.train))


def test_training_shard_order_is_reshuffled_each_epoch(fmnist, tmp_path):
    tfrecord.write(fmnist_subset(fmnist), tmp_path / "shards", examples_per_shard=25)
    train = kimnet.data.load(f"tfrecord:{tmp_path / 'shards'}", seed=3).train
    first, second = (np.stack([label for _, label in train.as_numpy_iterator()]) for _ in "ab")
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def test_image_folder_round_trip_keeps_varying_sizes(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "images", per_class=10)
    source = kimnet.data.load(f"folder:{root}")
    assert data_main(["tfrecord", f"folder:{root}", str(tmp_path / "shards")]) == 0
    loaded = kimnet.data.load(f"tfrecord:{tmp_path / 'shards'}")
    assert loaded.info.image_shape == (None, None, 3)
    assert loaded.info.class_names == ("cats", "dogs", "owls")
    for split in SPLITS:
        assert sorted(examples(getattr(loaded, split))) == sorted(examples(getattr(source, split)))
    meta = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert meta["source"] == f"folder:{root}"


def test_write_refuses_an_existing_folder(fmnist, tmp_path, capsys):
    out = tmp_path / "shards"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="already exists"):
        tfrecord.write(fmnist_subset(fmnist), out)
    assert data_main(["tfrecord", "fashion_mnist", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_interrupted_write_leaves_nothing_behind(fmnist, tmp_path):
    def images_then_failure():
        yield np.zeros((28, 28, 1), np.uint8), 0
        raise OSError("disk went away")

    broken = tf.data.Dataset.from_generator(
        images_then_failure,
        output_signature=(
            tf.TensorSpec((28, 28, 1), tf.uint8),
            tf.TensorSpec((), tf.int64),
        ),
    )
    splits = dataclasses.replace(fmnist_subset(fmnist), test=broken)
    with pytest.raises(Exception, match="disk went away"):
        tfrecord.write(splits, tmp_path / "shards")
    assert list(tmp_path.iterdir()) == []  # no shard folder, no hidden staging folder


def _write_records(path: Path, labels: list[int]) -> None:
    png = tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for label in labels:
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    }
                )
            )
            writer.write(example.SerializeToString())


def _shards_made_elsewhere(root: Path, train_labels: list[int]) -> Path:
    root.mkdir()
    for split in SPLITS:
        _write_records(root / f"{split}-00000-of-00001.tfrecord", train_labels)
    metadata = {
        "class_names": ["a", "b", "c"],
        "num_examples": {split: len(train_labels) for split in SPLITS},
        "image_shape": [4, 4, 3],
    }
    (root / "dataset.json").write_text(json.dumps(metadata))
    return root


def test_shards_made_elsewhere_read_with_a_dataset_json(tmp_path):
    root = _shards_made_elsewhere(tmp_path / "shards", [0, 2, 1])
    loaded = kimnet.data.load(f"tfrecord:{root}")
    assert [label for label, _ in examples(loaded.test)] == [0, 2, 1]


def test_a_count_that_does_not_match_the_shards_fails(tmp_path):
    root = _shards_made_elsewhere(tmp_path / "shards", [0, 1, 2])
    metadata = json.loads((root / "dataset.json").read_text())
    metadata["num_examples"]["test"] = 5
    (root / "dataset.json").write_text(json.dumps(metadata))
    # Found when the folder is loaded, before any training, naming split and shards.
    with pytest.raises(InputError, match="The test shards of .* hold 3 records where dataset"):
        kimnet.data.load(f"tfrecord:{root}")


def test_label_outside_the_classes_is_named(tmp_path):
    root = _shards_made_elsewhere(tmp_path / "shards", [0, 7])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not below the 3 classes"):
        examples(kimnet.data.load(f"tfrecord:{root}").test)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: (root / "dataset.json").unlink(), "has no dataset.json"),
        (lambda root: (root / "dataset.json").write_text("{"), "does not describe a shard"),
        (
            lambda root: (root / "dataset.json").write_text(
                json.dumps({"class_names": ["a", "b"], "num_examples": {}, "image_shape": []})
            ),
            "num_examples for train, validation, test",
        ),
        (
            lambda root: (root / "dataset.json").write_text(
                json.dumps(
                    {
                        "class_names": ["a", "b"],
                        "num_examples": {"train": 1, "validation": 1, "test": 1},
                        "image_shape": [4, 4, 2],
                    }
                )
            ),
            "1, 3 or 4 channels",
        ),
        (
            lambda root: (root / "validation-00000-of-00001.tfrecord").unlink(),
            "has no validation shards",
        ),
    ],
)
def test_bad_shard_folders_are_named(tmp_path, damage, message):
    root = _shards_made_elsewhere(tmp_path / "shards", [0, 1])
    damage(root)
    with pytest.raises(InputError, match=message):
        kimnet.data.load(f"tfrecord:{root}")


def test_missing_folder():
    with pytest.raises(InputError, match="does not exist"):
        kimnet.data.load("tfrecord:/no/such/shards")


def test_training_reads_shards(fmnist, tmp_path):
    tfrecord.write(fmnist_subset(fmnist), tmp_path / "shards", examples_per_shard=100)
    config = experiment.validate(
        {
            "model": {"name": "mobilenetv3_small"},
            "data": {"name": f"tfrecord:{tmp_path / 'shards'}", "batch_size": 16},
            "schedule": {"epochs": 1, "steps_per_epoch": 3},
            "evaluate": {"max_batches": 5},
            "export": {"enabled": False},
            "runtime": {"workdir": str(tmp_path / "runs")},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras' "ran out of data"
        result = train(config)
    assert result.run_dir.name == "shards-mobilenetv3_small"
    assert result.metrics.dataset == f"tfrecord:{tmp_path / 'shards'}"
    assert 0.0 <= result.metrics.test_top1 <= 1.0
