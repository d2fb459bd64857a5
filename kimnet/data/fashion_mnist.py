"""Fashion-MNIST for TFDS without a download, from the original IDX files on disk.

Debian's ``dataset-fashion-mnist`` package installs the original IDX files in
``/usr/share/datasets/fashion-mnist``. :func:`prepare` runs TFDS's own
``fashion_mnist`` builder with those files standing in for its downloads, so the
prepared dataset (name, version, features, splits, class names) is the one
``tfds.load("fashion_mnist")`` expects, and any TFDS code reads it unchanged.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification.mnist import FashionMNIST

NAME = "fashion_mnist"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
# Overrides where the IDX files are looked for.
ENV_DIR = "KIMNET_FASHION_MNIST_DIR"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def local_dir() -> Path | None:
    """The directory holding all four IDX files, or ``None`` when there is none."""
    directory = Path(os.environ.get(ENV_DIR, DEBIAN_DIR))
    if all((directory / name).is_file() for name in FILES):
        return directory
    return None


class _LocalDownloads:
    """Answers the builder's download request with the local files, extracted by TFDS."""

    def __init__(self, dl_manager: tfds.download.DownloadManager, directory: Path):
        self._dl_manager = dl_manager
        self._directory = directory

    def download_and_extract(self, urls: dict[str, str]) -> dict[str, object]:
        local = {key: self._directory / posixpath.basename(url) for key, url in urls.items()}
        return self._dl_manager.extract(local)


class _LocalFashionMNIST(FashionMNIST, skip_registration=True):
    """TFDS's ``fashion_mnist`` builder reading the IDX files from a local directory."""

    name = NAME

    def __init__(self, *, idx_dir: Path, **kwargs):
        self._idx_dir = idx_dir
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        return super()._split_generators(_LocalDownloads(dl_manager, self._idx_dir))


def prepare(data_dir: str | None = None, idx_dir: Path | None = None) -> tfds.core.DatasetBuilder:
    """Prepares ``fashion_mnist`` in ``data_dir`` from local IDX files; returns TFDS's builder.

    Does nothing when the dataset is already prepared there.
    """
    idx_dir = idx_dir or local_dir()
    if idx_dir is None:
        raise FileNotFoundError(
            f"The Fashion-MNIST IDX files are not in {DEBIAN_DIR} (or ${ENV_DIR}). Install "
            f"them with `apt-get install dataset-fashion-mnist`, or let TFDS download them."
        )
    builder = tfds.builder(NAME, data_dir=data_dir)
    if not builder.is_prepared():
        _LocalFashionMNIST(idx_dir=idx_dir, data_dir=data_dir).download_and_prepare()
        builder = tfds.builder(NAME, data_dir=data_dir)
    return builder
