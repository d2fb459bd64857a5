"""Export of trained classifiers as SavedModels that TF Serving serves as they are.

Layout: ``<base>/<model name>/<integer version>/`` (TF Serving's). Each version
is written into a hidden staging folder beside it (``.kimnet-partial-<pid>-...``)
and renamed into place when complete, so a crash never leaves a half-written
version that a server would load. Concurrent exports to one model folder each
claim their own version: the rename onto a version another process completed
first fails, and the export takes the next number. Staging left by killed
processes is removed by a later export once it is older than
:data:`kimnet.fileio.STALE_AFTER_S` and its pid is not alive. A full disk raises
:class:`kimnet.errors.DiskFullError` and leaves earlier versions as they were.

Signatures (``saved_model_cli show --all --dir <version dir>`` lists them):
  ``serving_default``: ``images`` uint8 ``[batch, height, width, channels]``, any
      size, 1, 3 or 4 channels; resizing, channel handling and normalisation
      happen inside.
  ``serving_bytes``: ``image_bytes`` string ``[batch]`` of encoded PNG/JPEG/BMP/GIF.
Both return ``probabilities`` float32 ``[batch, classes]``, ``top5_indices``
int32, ``top5_scores`` float32 and ``top5_names`` string, each ``[batch, k]``
with ``k = min(5, classes)``.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kimnet import fileio
from kimnet.data.pipeline import normalize
from kimnet.errors import DiskFullError, InputError

DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
IMAGES_INPUT = "images"  # the serving_default input
METADATA_FILE = "assets.extra/kimnet.json"
_VERSION = re.compile(r"^\d+$")


def versions(model_dir: str | os.PathLike) -> list[int]:
    """Integer-named version folders under ``model_dir``, ascending, complete or still being
    written, so a new export never takes a number in use. The server's scan is the same one
    (:func:`kimnet.serving.models.version_dirs`), which serves only complete versions."""
    from kimnet.serving.models import version_dirs

    return list(version_dirs(model_dir, complete=False))


def _to_model_channels(images: tf.Tensor, channels: int) -> tf.Tensor:
    """float images with 1, 3 or 4 channels (known only at run time) -> ``channels``."""
    have = tf.shape(images)[-1]
    rgb = tf.cond(
        tf.equal(have, 1),
        lambda: tf.repeat(images[..., :1], 3, axis=-1),
        lambda: images[..., :3],
    )
    if channels == 1:
        return tf.image.rgb_to_grayscale(rgb)
    return rgb


def _serving_functions(
    model: keras.Model, class_names: list[str], image_size: int, normalization: str
):
    height, width, channels = model.input_shape[1:]
    height, width = height or image_size, width or image_size
    names = tf.constant(class_names)
    k = min(5, len(class_names))

    def classify(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        x = normalize(pixels, normalization)
        probabilities = tf.cast(model(x, training=False), tf.float32)
        scores, indices = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "top5_indices": indices,
            "top5_scores": scores,
            "top5_names": tf.gather(names, indices),
        }

    def from_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = _to_model_channels(tf.cast(images, tf.float32), channels)
        x = tf.image.resize(x, (height, width), antialias=True)
        return classify(tf.clip_by_value(x, 0.0, 255.0))

    def decode_one(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width), antialias=True)
        image.set_shape((height, width, 3))
        return image

    def from_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.map_fn(decode_one, image_bytes, fn_output_signature=tf.float32)
        x = _to_model_channels(x, channels)
        return classify(tf.clip_by_value(x, 0.0, 255.0))

    return from_images, from_bytes


def inference_model(model: keras.Model) -> keras.Model:
    """The model without training-only outputs (e.g. GoogLeNet's auxiliary heads)."""
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.outputs[0], name=model.name)


def export(
    model: keras.Model,
    model_dir: str | os.PathLike,
    *,
    class_names: list[str] | tuple[str, ...],
    normalization: str,
    version: int | None = None,
    metadata: dict | None = None,
) -> Path:
    """Writes ``model`` as version ``version`` (default: the next free one) of ``model_dir``.

    Args:
        model: A classifier returning class probabilities (its first output).
        model_dir: ``<base>/<model name>``; created when missing.
        class_names: Names of the classes, in output order.
        normalization: The model family's input normalisation (its registry entry).
        version: Integer version; an existing version is never overwritten.
        metadata: Extra JSON-serialisable facts stored in ``assets.extra/kimnet.json``.

    Returns:
        The path of the version directory.
    """
    model = inference_model(model)
    classes = model.output_shape[-1]
    if len(class_names) != classes:
        raise InputError(f"{len(class_names)} class names for a model with {classes} outputs.")
    model_dir = Path(model_dir)
    explicit = version is not None
    version = _first_version(model_dir, version)
    model_dir.mkdir(parents=True, exist_ok=True)
    fileio.remove_stale(model_dir)
    image_size = model.input_shape[1] or 224
    info = {
        "class_names": list(class_names),
        "image_size": image_size,
        "channels": model.input_shape[-1],
        "normalization": normalization,
        **(metadata or {}),
    }
    archive = _archive(model, list(class_names), image_size, normalization)
    staging = fileio.staging_path(model_dir / str(version))
    try:
        archive.write_out(str(staging), verbose=False)
        fileio.write_json_atomic(staging / METADATA_FILE, info)
        staging.chmod(0o755)  # a server running as another user must read it
        return _claim(staging, model_dir, version, explicit=explicit)
    except BaseException as error:
        if fileio.is_disk_full(error) and not isinstance(error, DiskFullError):
            needed = max(_estimated_size(model), fileio.tree_bytes(staging))
            fileio.remove_quietly(staging)
            free = fileio.free_bytes(model_dir)
            raise DiskFullError(model_dir / str(version), needed, free) from error
        raise
    finally:
        fileio.remove_quietly(staging)


def _first_version(model_dir: Path, version: int | None) -> int:
    """The version to try first: ``version`` if free, else the next after the newest."""
    existing = versions(model_dir)
    if version is None:
        return (existing[-1] + 1) if existing else 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"Export version must be a positive integer, got {version!r}.")
    if (model_dir / str(version)).exists():
        raise FileExistsError(
            f"Version {version} already exists in '{model_dir}'. Export as another version "
            f"(omit the version to take the next free one, {max(existing, default=0) + 1})."
        )
    return version


def _claim(staging: Path, model_dir: Path, version: int, *, explicit: bool) -> Path:
    """Renames the complete ``staging`` to the first free version from ``version`` on.

    ``rename`` onto a version another process completed first fails (its folder is
    not empty), so concurrent exports each get their own version; an explicit
    version that was taken meanwhile is an error instead.
    """
    while True:
        target = model_dir / str(version)
        try:
            os.rename(staging, target)  # atomic: the version appears complete or not at all
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if explicit:
                raise FileExistsError(
                    f"Version {version} of '{model_dir}' was exported by another process "
                    f"meanwhile; export as another version."
                ) from error
            version = max([version, *versions(model_dir)]) + 1
            continue
        fileio.fsync_dir(model_dir)
        return target


def _archive(
    model: keras.Model, class_names: list[str], image_size: int, normalization: str
) -> keras.export.ExportArchive:
    from_images, from_bytes = _serving_functions(model, class_names, image_size, normalization)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        DEFAULT_SIGNATURE,
        from_images,
        input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name=IMAGES_INPUT)],
    )
    archive.add_endpoint(
        BYTES_SIGNATURE,
        from_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    return archive


def _estimated_size(model: keras.Model) -> int:
    """The weights' bytes plus a few MiB of graph: roughly what a SavedModel takes."""
    weights = sum(int(np.prod(w.shape)) * tf.as_dtype(w.dtype).size for w in model.weights)
    return weights + 4 * 2**20


class Classifier:
    """A loaded kimnet SavedModel that classifies numpy images or encoded image bytes."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.is_dir() and not (path / "saved_model.pb").exists() and versions(path):
            path = path / str(versions(path)[-1])  # a model directory: take the latest version
        if not (path / "saved_model.pb").exists():
            raise InputError(f"'{path}' is not a SavedModel directory (no saved_model.pb).")
        self.path = path
        self._loaded = tf.saved_model.load(str(path))
        self._images = self._loaded.signatures[DEFAULT_SIGNATURE]
        self._bytes = self._loaded.signatures[BYTES_SIGNATURE]
        meta = path / METADATA_FILE
        self.metadata = json.loads(meta.read_text()) if meta.exists() else {}
        self.class_names = self.metadata.get("class_names")

    @staticmethod
    def _numpy(outputs: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
        result = {key: value.numpy() for key, value in outputs.items()}
        result["top5_names"] = result["top5_names"].astype(str)
        return result

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 images ``[batch, H, W]`` or ``[batch, H, W, C]`` -> the signature's outputs."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise InputError(f"Images must be uint8 (0-255), got {images.dtype}.")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise InputError(f"Images must be [batch, H, W(, C)], got shape {images.shape}.")
        return self._numpy(self._images(**{IMAGES_INPUT: tf.constant(images)}))

    def predict_bytes(self, encoded: list[bytes]) -> dict[str, np.ndarray]:
        """Encoded images (PNG/JPEG/...) -> the signature's outputs."""
        return self._numpy(self._bytes(image_bytes=tf.constant(list(encoded))))


def load(path: str | os.PathLike) -> Classifier:
    """Loads an exported version directory (or the latest version of a model directory)."""
    return Classifier(path)
