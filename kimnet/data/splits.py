"""What a dataset source returns: raw splits and what kimnet needs to know about them."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the rest of kimnet needs to know about a dataset.

    Attributes:
        name: The dataset argument it was loaded from (``fashion_mnist``, ``folder:/x``).
        class_names: Class names in label order.
        num_examples: Examples per split (``train``, ``validation``, ``test``).
        image_shape: ``(height, width, channels)``; ``None`` sides vary per image.
    """

    name: str
    class_names: tuple[str, ...]
    num_examples: dict[str, int]
    image_shape: tuple[int | None, int | None, int]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def decoded_bytes(self, split: str) -> int | None:
        """Memory the decoded split needs, or ``None`` when image sizes vary."""
        height, width, channels = self.image_shape
        if height is None or width is None:
            return None
        return self.num_examples[split] * height * width * channels


@dataclasses.dataclass
class Splits:
    """Raw train / validation / test datasets and their :class:`DatasetInfo`."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    info: DatasetInfo
