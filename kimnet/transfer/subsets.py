"""Class and size subsets of a dataset: a source task and a small target task.

``subset(splits, classes=[5, 6, 7, 8, 9], train_examples=500)`` keeps the images
of those classes (relabelled 0..4 in the given order) and the first 500 of them
in the training split. Splitting one dataset's classes into disjoint groups gives
a source task and a different target task without any download.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow as tf

from kimnet.data import Splits
from kimnet.data.splits import SPLITS
from kimnet.errors import InputError


def parse_classes(text: str | None) -> list[int] | None:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"5,7,9"`` -> [5, 7, 9]; empty -> None (all)."""
    if not text:
        return None
    classes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise InputError(f"--classes '{text}': write class indices like 0-4 or 5,7,9.")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise InputError(f"--classes '{text}': range '{part}' runs backwards.")
        classes.extend(range(low, high + 1))
    if len(set(classes)) != len(classes):
        raise InputError(f"--classes '{text}' lists a class twice.")
    return classes


def _relabel(lookup: tf.Tensor):
    def relabel(image, label):
        return image, tf.gather(lookup, label)

    return relabel


def _kept(image, label):
    return label >= 0


_COUNTS: dict[tuple, int] = {}


def _count(ds: tf.data.Dataset, key: tuple) -> int:
    """Examples in ``ds`` (one pass, remembered in this process under ``key``)."""
    if key not in _COUNTS:
        _COUNTS[key] = int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())
    return _COUNTS[key]


def in_memory(splits: Splits) -> Splits:
    """``splits`` decoded once into memory (fixed-size images only, e.g. Fashion-MNIST).

    Studies that train many short runs on subsets of one dataset then filter and
    shuffle tensors instead of decoding the files again in every run.
    """
    if splits.info.decoded_bytes("train") is None:
        raise InputError(f"{splits.info.name} has images of varying sizes; load it from files.")
    datasets = {}
    for split in SPLITS:
        images, labels = [], []
        for x, y in getattr(splits, split).batch(4096).as_numpy_iterator():
            images.append(x)
            labels.append(y)
        datasets[split] = tf.data.Dataset.from_tensor_slices(
            (np.concatenate(images), np.concatenate(labels).astype(np.int64))
        )
    return Splits(**datasets, info=splits.info)


def subset(
    splits: Splits,
    *,
    classes: list[int] | None = None,
    train_examples: int | None = None,
    validation_examples: int | None = None,
    test_examples: int | None = None,
) -> Splits:
    """``splits`` restricted to ``classes`` (relabelled 0..n-1) and to the first N examples."""
    info = splits.info
    names = info.class_names
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < len(names)]
        if bad or len(classes) < 2:
            raise InputError(
                f"--classes must name at least two of the {len(names)} classes 0..{len(names) - 1} "
                f"of {info.name}; got {classes}."
            )
    limits = {"train": train_examples, "validation": validation_examples, "test": test_examples}
    for split, limit in limits.items():
        if limit is not None and limit < 1:
            raise InputError(f"{split}_examples must be at least 1, got {limit}.")
    if classes is None and all(v is None for v in limits.values()):
        return splits
    datasets, counts = {}, {}
    if classes is not None:
        table = np.full(len(names), -1, np.int64)
        table[classes] = np.arange(len(classes))
        lookup = tf.constant(table)
    for split in SPLITS:
        ds = getattr(splits, split)
        if classes is not None:
            ds = ds.map(_relabel(lookup)).filter(_kept)
        if limits[split] is not None:
            ds = ds.take(limits[split])
        datasets[split] = ds
        counts[split] = (
            _count(ds, (id(getattr(splits, split)), tuple(classes), limits[split]))
            if classes is not None
            else min(limits[split] or info.num_examples[split], info.num_examples[split])
        )
        if counts[split] == 0:
            raise InputError(f"The {split} split is empty after selecting classes {classes}.")
    new_info = dataclasses.replace(
        info,
        class_names=tuple(names[c] for c in classes) if classes is not None else names,
        num_examples=counts,
    )
    return Splits(**datasets, info=new_info)
