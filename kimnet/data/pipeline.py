"""From raw splits to batches a model trains on: resize, channels, augment, normalise.

Order of a training pipeline: resize -> cache -> shuffle -> batch -> match channels
-> augment (batched) -> normalise -> prefetch, when the resized images of every split fit
in memory; otherwise cache the decoded images (when they fit) -> shuffle -> resize and
match channels -> batch -> augment -> normalise -> prefetch. Evaluation pipelines skip
shuffling and augmentation. The same :func:`resize` and :func:`normalize` run inside
exported models.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from kimnet.data.augment import Augmenter
from kimnet.data.sources import DatasetInfo, Splits
from kimnet.errors import InputError

# Cache images in memory (resized, else decoded) when they take at most this share of RAM.
CACHE_MEMORY_SHARE = 0.25


def resize(images: tf.Tensor, image_size: int, channels: int = 3) -> tf.Tensor:
    """uint8/float images ``[..., H, W, C]`` -> float32 ``[..., size, size, channels]`` in [0, 255].

    Grayscale becomes RGB by repeating the channel when the model expects 3
    channels; RGB becomes grayscale when it expects 1.
    """
    images = match_channels(tf.cast(images, tf.float32), channels)
    images = tf.image.resize(images, (image_size, image_size), antialias=True)
    return tf.clip_by_value(images, 0.0, 255.0)


def match_channels(images: tf.Tensor, channels: int) -> tf.Tensor:
    """Float images ``[..., C]`` -> ``[..., channels]``: grayscale repeated to RGB, RGB
    (or RGBA without its alpha) averaged to grayscale."""
    image_channels = images.shape[-1]
    if image_channels == 1 and channels == 3:
        images = tf.image.grayscale_to_rgb(images)
    elif image_channels == 3 and channels == 1:
        images = tf.image.rgb_to_grayscale(images)
    elif image_channels == 4:
        images = images[..., : min(channels, 3)]
        if channels == 1:
            images = tf.image.rgb_to_grayscale(images)
    return images


def normalize(images: tf.Tensor, normalization: str) -> tf.Tensor:
    """Float images in [0, 255] -> the input range a model family expects.

    ``normalization`` is a :data:`kimnet.models.registry.NORMALIZATIONS` mode; the
    ``tf``, ``torch`` and ``caffe`` modes are Keras Applications' own
    ``imagenet_utils.preprocess_input``; ``raw`` leaves pixels unchanged.
    """
    if normalization == "raw":
        return images
    return keras.applications.imagenet_utils.preprocess_input(
        images, data_format="channels_last", mode=normalization
    )


def _fits_in_memory(num_bytes: int | None) -> bool:
    if num_bytes is None:
        return False
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return num_bytes <= CACHE_MEMORY_SHARE * physical


def _cached_channels(info: DatasetInfo, channels: int) -> int:
    """Channels of the resized images a cache holds: a grayscale source keeps its one
    channel (a third of the memory) and is repeated to RGB per batch, which gives the
    same values because resizing treats each channel alike."""
    return 1 if info.image_shape[-1] == 1 else channels


def _resized_cache_bytes(info: DatasetInfo, image_size: int, channels: int) -> int:
    """Memory of every pipeline's cache of resized float32 images (the training split
    twice: ``train`` and ``train_plain`` each keep one)."""
    per_image = image_size * image_size * _cached_channels(info, channels) * 4
    examples = info.num_examples
    return per_image * (2 * examples["train"] + examples["validation"] + examples["test"])


def _augment(augmenter: Augmenter, num_classes: int):
    """The map over training batches: images only, or with one-hot labels to mix."""
    if not augmenter.mixes_labels:
        return lambda x, y: (augmenter(x, training=True), y)
    return lambda x, y: augmenter(x, tf.one_hot(y, num_classes), training=True)


def make(
    splits: Splits,
    *,
    image_size: int,
    batch_size: int,
    normalization: str,
    channels: int = 3,
    augmenter: Augmenter | None = None,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
) -> dict[str, tf.data.Dataset]:
    """Batched ``train``, ``validation`` and ``test`` datasets (plus ``train_plain``).

    ``train`` is shuffled (reshuffled each epoch) and augmented by ``augmenter``;
    ``train_plain`` is the same images without shuffling or augmentation, for
    re-estimating batch-norm statistics. Images are ``float32 [batch, size, size,
    channels]`` after ``normalization``; labels are ``int64 [batch]``, except that
    ``train`` labels are one-hot ``float32 [batch, classes]`` (mixed, so soft) when
    ``augmenter.mixes_labels``.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}.")
    if image_size < 8:
        raise InputError(f"image_size must be at least 8 pixels, got {image_size}.")
    autotune = tf.data.AUTOTUNE
    # Resizing once instead of every epoch leaves the CPU to the training step
    # (docs/performance.md, "The input pipeline").
    resize_once = _fits_in_memory(_resized_cache_bytes(splits.info, image_size, channels))
    cached_channels = _cached_channels(splits.info, channels) if resize_once else channels

    def resized(images, labels):
        return resize(images, image_size, cached_channels), labels

    def prepare(split: str, *, train: bool) -> tf.data.Dataset:
        # The source's count as the length: Keras then knows when a pass ends (no "ran out
        # of data" warning after filtered or interleaved sources), and a count that does
        # not match the data fails at the end of the first pass instead of skewing epochs.
        ds = getattr(splits, split).apply(
            tf.data.experimental.assert_cardinality(splits.info.num_examples[split])
        )
        if resize_once:
            ds = ds.map(resized, num_parallel_calls=autotune).cache()
        elif _fits_in_memory(splits.info.decoded_bytes(split)):
            ds = ds.cache()
        if train:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if not resize_once:
            ds = ds.map(resized, num_parallel_calls=autotune)
        ds = ds.batch(batch_size, num_parallel_calls=autotune)
        if cached_channels != channels:
            ds = ds.map(lambda x, y: (match_channels(x, channels), y), num_parallel_calls=autotune)
        if train and augmenter is not None:
            ds = ds.map(_augment(augmenter, splits.info.num_classes), num_parallel_calls=autotune)
        ds = ds.map(lambda x, y: (normalize(x, normalization), y), num_parallel_calls=autotune)
        return ds.prefetch(autotune)

    return {
        "train": prepare("train", train=True),
        "train_plain": prepare("train", train=False),
        "validation": prepare("validation", train=False),
        "test": prepare("test", train=False),
    }
