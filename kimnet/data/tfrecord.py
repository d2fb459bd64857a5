"""TFRecord shards: write any kimnet dataset as shards, and read them back for training.

A shard folder holds ``dataset.json`` (class names, examples per split, image shape)
and ``<split>-<index>-of-<count>.tfrecord`` files of ``tf.train.Example`` records with
two features: ``image``, the encoded image (PNG from :func:`write`; JPEG also reads),
and ``label``, the 0-based class index (int64). ``python -m kimnet.data tfrecord
SOURCE OUT`` writes one from a TFDS dataset or an image folder, and
``--dataset=tfrecord:OUT`` trains on it. Shards written by other tools read the same
way once they use these two feature names and have a ``dataset.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import tensorflow as tf

from kimnet import fileio
from kimnet.data import checks
from kimnet.data.splits import SPLITS, DatasetInfo, Splits
from kimnet.errors import DiskFullError, InputError

PREFIX = "tfrecord:"
METADATA = "dataset.json"
FORMAT = "kimnet-tfrecord"
DEFAULT_EXAMPLES_PER_SHARD = 10_000
_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def shard_name(split: str, index: int, count: int) -> str:
    """``train-00001-of-00006.tfrecord``: the usual ``-NNNNN-of-NNNNN`` shard numbering."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def write(
    splits: Splits,
    out_dir: str | Path,
    *,
    examples_per_shard: int = DEFAULT_EXAMPLES_PER_SHARD,
) -> dict[str, int]:
    """Writes the train, validation and test splits as PNG-encoded TFRecord shards.

    Args:
        splits: Raw splits, e.g. from :func:`kimnet.data.load`.
        out_dir: The shard folder to create; it must not exist yet.
        examples_per_shard: Upper bound on the records of one shard file.

    Returns the number of examples written per split. Everything is written into a
    hidden staging folder beside ``out_dir`` (named with this process's pid) that is
    renamed into place at the end; an exception or ``KeyboardInterrupt`` removes it,
    and staging left by a killed writer is removed by a later write once it is older
    than :data:`kimnet.fileio.STALE_AFTER_S`. A full disk raises
    :class:`~kimnet.errors.DiskFullError` with an estimate of the space needed.
    """
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists():
        raise InputError(f"'{out_dir}' already exists; choose a new folder or delete it first.")
    if examples_per_shard < 1:
        raise InputError(f"examples_per_shard must be at least 1, got {examples_per_shard}.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fileio.remove_stale(out_dir.parent)
    staging = fileio.staging_path(out_dir)
    staging.mkdir()
    written = {split: 0 for split in SPLITS}
    try:
        shard_counts: dict[str, int] = {}
        for split in SPLITS:
            shards = max(1, math.ceil(splits.info.num_examples[split] / examples_per_shard))
            per_shard = _write_split(
                getattr(splits, split), staging, split, shards, examples_per_shard, written
            )
            shard_counts.update(per_shard)
        _write_metadata(staging, splits.info, written, shard_counts)
        os.rename(staging, out_dir)
        fileio.fsync_dir(out_dir.parent)
    except BaseException as error:
        disk_full = fileio.is_disk_full(error) and not isinstance(error, DiskFullError)
        needed = _space_needed(staging, written, splits.info) if disk_full else None
        fileio.remove_quietly(staging)
        if disk_full:
            raise DiskFullError(out_dir, needed, fileio.free_bytes(out_dir.parent)) from error
        raise
    return written


def _write_metadata(
    folder: Path, info: DatasetInfo, counts: dict[str, int], shard_counts: dict[str, int]
) -> None:
    fileio.write_json_atomic(
        folder / METADATA,
        {
            "format": FORMAT,
            "source": info.name,  # the dataset argument it was loaded from
            "class_names": list(info.class_names),
            "num_examples": dict(counts),
            "image_shape": list(info.image_shape),
            "shards": shard_counts,  # records per shard file, checked when read
        },
    )


def _space_needed(staging: Path, written: dict[str, int], info: DatasetInfo) -> int | None:
    """All shards' size, extrapolated from the bytes per example written so far."""
    done = sum(written.values())
    if not done:
        return None
    total = sum(info.num_examples.values())
    return int(fileio.tree_bytes(staging) / done * max(total, done))


def _write_split(
    dataset: tf.data.Dataset,
    folder: Path,
    split: str,
    shards: int,
    examples_per_shard: int,
    written: dict[str, int],
) -> dict[str, int]:
    """Writes one split's shards; counts into ``written[split]``; returns records per shard."""
    encoded = dataset.map(
        lambda image, label: (tf.io.encode_png(image), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)
    names = [shard_name(split, index, shards) for index in range(shards)]
    writers = [tf.io.TFRecordWriter(str(folder / name)) for name in names]
    per_shard = dict.fromkeys(names, 0)
    try:
        for png, label in encoded.as_numpy_iterator():
            # Consecutive examples fill one shard after another; a source that has more
            # examples than its info says puts the surplus in the last shard.
            index = min(written[split] // examples_per_shard, shards - 1)
            writers[index].write(_example(png, label))
            per_shard[names[index]] += 1
            written[split] += 1
        for writer in writers:
            writer.flush()  # a full disk shows here, not in a close that cannot report it
    finally:
        for writer in writers:
            writer.close()
    return per_shard


def _example(png: bytes, label: int) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
        )
    ).SerializeToString()


def read_metadata(root: Path) -> DatasetInfo:
    """The :class:`DatasetInfo` stored in ``root/dataset.json``, validated."""
    path = root / METADATA
    if not path.is_file():
        raise InputError(
            f"'{root}' has no {METADATA}. Write shards with `python -m kimnet.data tfrecord "
            f"SOURCE {root}`, or add a {METADATA} with class_names, num_examples and "
            f"image_shape to shards made elsewhere."
        )
    try:
        meta = json.loads(path.read_text())
        class_names = tuple(str(name) for name in meta["class_names"])
        num_examples = {split: int(meta["num_examples"][split]) for split in SPLITS}
        shape = tuple(None if side is None else int(side) for side in meta["image_shape"])
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f"'{path}' does not describe a shard folder ({type(error).__name__}: {error}); it "
            f"needs class_names, num_examples for {', '.join(SPLITS)}, and image_shape."
        ) from error
    if len(shape) != 3 or shape[2] not in (1, 3, 4):
        raise InputError(
            f"'{path}': image_shape must be [height, width, channels] with 1, 3 or 4 "
            f"channels (null for sizes that vary), got {meta['image_shape']}."
        )
    if len(class_names) < 2:
        raise InputError(f"'{path}' lists {len(class_names)} class; a classifier needs two.")
    return DatasetInfo(
        name=f"{PREFIX}{root}",
        class_names=class_names,
        num_examples=num_examples,
        image_shape=shape,
    )


def _shard_counts(root: Path) -> dict[str, int] | None:
    """Records per shard file from ``dataset.json`` (absent from older shard folders)."""
    shards = json.loads((root / METADATA).read_text()).get("shards")
    if not isinstance(shards, dict):
        return None
    return {str(name): int(count) for name, count in shards.items()}


def load(name: str, *, seed: int = 0) -> Splits:
    """Reads a shard folder given as ``tfrecord:/path`` into raw splits.

    Every shard is checked first (:func:`kimnet.data.checks.check_shards`): a shard cut
    short, with a record count other than ``dataset.json``'s, or with a bad CRC raises
    :class:`InputError` naming it. The training split reads its shards in an order
    reshuffled every epoch (seeded by ``seed``); validation and test read them in name
    order. ``kimnet.data.make`` holds each split to the count in ``dataset.json``.
    """
    root = Path(name[len(PREFIX) :]).expanduser()
    if not root.is_dir():
        raise InputError(f"TFRecord folder '{root}' does not exist.")
    info = read_metadata(root)
    files = {split: sorted(str(p) for p in root.glob(f"{split}-*.tfrecord")) for split in SPLITS}
    for split, names in files.items():
        if not names:
            raise InputError(
                f"'{root}' has no {split} shards ({split}-*.tfrecord); every shard folder "
                f"needs {', '.join(SPLITS)}."
            )
    shard_counts = _shard_counts(root)
    for split, names in files.items():
        checks.check_shards(
            [Path(n) for n in names],
            info.num_examples[split],
            split,
            shard_counts=shard_counts,
        )
    height, width, channels = info.image_shape

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(record, _FEATURES)
        image = tf.io.decode_image(example["image"], channels=channels, expand_animations=False)
        image.set_shape((height, width, channels))
        label = example["label"]
        with tf.control_dependencies(
            [
                tf.debugging.assert_less(
                    label,
                    tf.constant(info.num_classes, tf.int64),
                    message=f"A label in {root} is not below the {info.num_classes} classes",
                ),
                tf.debugging.assert_non_negative(label, message=f"A label in {root} is negative"),
            ]
        ):
            return image, tf.identity(label)

    def dataset(split: str) -> tf.data.Dataset:
        shards = tf.data.Dataset.from_tensor_slices(files[split])
        if split == "train":
            shards = shards.shuffle(len(files[split]), seed=seed, reshuffle_each_iteration=True)
        records = shards.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files[split]), 4),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    return Splits(**{split: dataset(split) for split in SPLITS}, info=info)
