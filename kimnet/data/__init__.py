"""Input pipelines: sources (TFDS, folders, TFRecord shards), preprocessing, augmentation."""

from kimnet.data import augment, tfrecord
from kimnet.data.pipeline import make, normalize, resize
from kimnet.data.sources import DatasetInfo, Splits, load, prepare_tfds

__all__ = [
    "DatasetInfo",
    "Splits",
    "augment",
    "load",
    "make",
    "normalize",
    "prepare_tfds",
    "resize",
    "tfrecord",
]
