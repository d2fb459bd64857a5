"""Input pipelines: sources (TFDS, folders), preprocessing and augmentation."""

from kimnet.data import augment
from kimnet.data.pipeline import make, normalize, resize, sample_images
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
    "sample_images",
]
