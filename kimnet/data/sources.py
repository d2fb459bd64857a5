"""Where images come from: a TFDS dataset by name, a class-per-folder directory, or
TFRecord shards written by :mod:`kimnet.data.tfrecord`.

:func:`load` returns raw ``(image uint8 [H, W, C], label int64)`` datasets for
train, validation and test plus a :class:`DatasetInfo`. Preprocessing and
augmentation are applied afterwards (``kimnet.data.pipeline``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging as absl_logging

from kimnet.data import checks, fashion_mnist, names, tfrecord
from kimnet.data.splits import SPLITS, DatasetInfo, Splits
from kimnet.errors import InputError

FOLDER_PREFIX = names.FOLDER_PREFIX
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def load(
    name: str = "fashion_mnist",
    *,
    data_dir: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    skip_bad_images: bool = False,
    skipped_list: str | os.PathLike | None = None,
) -> Splits:
    """Loads a dataset as raw train / validation / test splits.

    Args:
        name: A TFDS dataset name (``fashion_mnist``, ``cifar10``, ...),
            ``folder:/path`` for a directory with one sub-folder of images per class, or
            ``tfrecord:/path`` for shards written by ``python -m kimnet.data tfrecord``.
        data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).
        validation_fraction: Share of the training examples held out for validation
            when the dataset has no validation split. The hold-out is deterministic.
        test_fraction: For folders without a ``test/`` sub-folder: share held out for test.
        seed: Seed of the deterministic folder split.
        skip_bad_images: Folders only. Every image is decoded up front as training
            decodes it; by default an image that fails raises :class:`InputError`
            naming it. With ``True`` such images are left out, counted in one printed
            line, and listed (``path<TAB>reason``) in ``skipped_list``.
        skipped_list: Where that list goes (default:
            ``~/.cache/kimnet/skipped_images/<folder>-<hash>.txt``).
    """
    if not 0 < validation_fraction < 1:
        raise InputError(f"validation_fraction must be in (0, 1), got {validation_fraction}.")
    if name.startswith(FOLDER_PREFIX):
        return _load_folder(
            name,
            validation_fraction,
            test_fraction,
            seed,
            skip_bad_images=skip_bad_images,
            skipped_list=skipped_list,
        )
    if name.startswith(tfrecord.PREFIX):
        return tfrecord.load(name, seed=seed)
    return _load_tfds(name, data_dir, validation_fraction)


def prepare_tfds(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared TFDS builder for ``name``, preparing it first when needed.

    ``fashion_mnist`` is prepared from the local IDX files when they are on disk
    (identical data, no network); every other dataset is downloaded by TFDS. A
    mistyped name, a bare path, or a dataset that needs a download on a machine
    without network raises :class:`InputError` at once.
    """
    names.check_not_a_path(name)
    names.check_tfds_name(name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as error:
        raise InputError(
            f"TFDS cannot make a builder for '{name}': {error}".split("\n")[0]
        ) from error
    if _is_prepared(builder):
        return builder
    if name == fashion_mnist.NAME and fashion_mnist.local_dir() is not None:
        return fashion_mnist.prepare(data_dir)
    if not names.can_download():
        raise names.not_prepared_offline(name, data_dir)
    try:
        builder.download_and_prepare()
    except Exception as error:  # TFDS raises many kinds; all mean the same to the user.
        hint = (
            " Install the offline copy with `apt-get install dataset-fashion-mnist`."
            if name == fashion_mnist.NAME
            else ""
        )
        raise RuntimeError(f"Could not download TFDS dataset '{name}': {error}.{hint}") from error
    return builder


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    # TFDS warns "Variant folder ... has no dataset_info.json" for every dataset that is
    # simply not prepared yet; kimnet says what to do instead.
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        return builder.is_prepared()
    finally:
        absl_logging.set_verbosity(verbosity)


def _load_tfds(name: str, data_dir: str | None, validation_fraction: float) -> Splits:
    builder = prepare_tfds(name, data_dir)
    info = builder.info
    keys = info.supervised_keys
    if not keys or "label" not in info.features or not hasattr(info.features["label"], "names"):
        raise InputError(f"TFDS dataset '{name}' is not an image classification dataset.")
    splits = info.splits
    if "test" not in splits:
        raise InputError(f"TFDS dataset '{name}' has no test split (it has {list(splits)}).")
    percent = round(validation_fraction * 100)
    if "validation" in splits:
        split_names = {"train": "train", "validation": "validation", "test": "test"}
    else:
        split_names = {
            "train": f"train[:{100 - percent}%]",
            "validation": f"train[{100 - percent}%:]",
            "test": "test",
        }
    datasets = {
        split: builder.as_dataset(split=spec, as_supervised=True, shuffle_files=split == "train")
        for split, spec in split_names.items()
    }
    image_shape = tuple(info.features[keys[0]].shape)
    return Splits(
        **datasets,
        info=DatasetInfo(
            name=name,
            class_names=tuple(info.features[keys[1]].names),
            num_examples={split: splits[spec].num_examples for split, spec in split_names.items()},
            image_shape=image_shape,
        ),
    )


def _list_classes(root: Path) -> dict[str, list[Path]]:
    classes = {}
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(
            p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            classes[class_dir.name] = files
    return classes


def _drop_bad_images(
    files: dict[str, list[tuple[Path, int]]],
    root: Path,
    *,
    skip: bool,
    skipped_list: str | os.PathLike | None,
) -> dict[str, list[tuple[Path, int]]]:
    """Decodes every file as training will; fails naming bad ones, or drops and lists them."""
    paths = [p for split in SPLITS for p, _ in files[split]]
    bad = checks.undecodable_images(paths, label=f" of {FOLDER_PREFIX}{root}")
    if not bad:
        return files
    summary = checks.describe_bad(bad, len(paths), f"{FOLDER_PREFIX}{root}")
    if not skip:
        raise InputError(
            f"{summary}. Remove or replace them, or set config.data.skip_bad_images=true "
            f"(skip_bad_images=True in code) to train without them."
        )
    listed = checks.write_skipped_list(
        bad, Path(skipped_list) if skipped_list else checks.skipped_list_path(root)
    )
    print(f"Skipping {len(bad)} of {len(paths)} images that cannot be decoded (list: {listed}).")
    return {split: [(p, y) for p, y in files[split] if str(p) not in bad] for split in SPLITS}


def _load_folder(
    name: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    skip_bad_images: bool,
    skipped_list: str | os.PathLike | None,
) -> Splits:
    root = Path(name[len(FOLDER_PREFIX) :]).expanduser()
    if not root.is_dir():
        raise InputError(f"Dataset folder '{root}' does not exist.")
    has_splits = (root / "train").is_dir()
    per_split = (
        {s: _list_classes(root / s) for s in SPLITS if (root / s).is_dir()}
        if has_splits
        else {"train": _list_classes(root)}
    )
    class_names = tuple(per_split["train"])
    if not class_names:
        raise InputError(
            f"No images ({', '.join(IMAGE_SUFFIXES)}) in class sub-folders of '{root}'. "
            f"Put each class's images in a folder named after the class: {root}/<class>/*.png."
        )
    if len(class_names) < 2:
        raise InputError(
            f"'{root}' has a single class ('{class_names[0]}'); a classifier needs at least two "
            f"class sub-folders."
        )
    for split, classes in per_split.items():
        extra = set(classes) - set(class_names)
        if extra:
            raise InputError(
                f"Classes {sorted(extra)} of '{root / split}' are not in the train split."
            )

    # Hold out validation (and test) per class, so every class appears in each split.
    files: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    rng = random.Random(seed)
    for label, class_name in enumerate(class_names):
        train = list(per_split["train"][class_name])
        rng.shuffle(train)
        carve = {"validation": validation_fraction, "test": test_fraction}
        for split in ("validation", "test"):
            if split in per_split:
                files[split] += [(p, label) for p in per_split[split].get(class_name, [])]
                continue
            count = max(1, round(len(train) * carve[split])) if len(train) > 2 else 0
            files[split] += [(p, label) for p in train[:count]]
            train = train[count:]
        files["train"] += [(p, label) for p in train]
    for split in SPLITS:
        if not files[split]:
            raise InputError(f"Folder '{root}' leaves the {split} split empty; add more images.")
    files = _drop_bad_images(files, root, skip=skip_bad_images, skipped_list=skipped_list)
    for split in SPLITS:
        if not files[split]:
            raise InputError(f"Folder '{root}' has no decodable {split} images left.")

    def dataset(split: str) -> tf.data.Dataset:
        paths = [str(p) for p, _ in files[split]]
        labels = [label for _, label in files[split]]
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
        return ds.map(lambda p, y: (checks.decode(p), y), num_parallel_calls=tf.data.AUTOTUNE)

    return Splits(
        **{split: dataset(split) for split in SPLITS},
        info=DatasetInfo(
            name=name,
            class_names=class_names,
            num_examples={split: len(files[split]) for split in SPLITS},
            image_shape=(None, None, 3),
        ),
    )
