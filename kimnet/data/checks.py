"""Up-front checks that find bad data before training, and name it.

Folder datasets: :func:`undecodable_images` decodes every file with the decoder
training uses (``tf.io.decode_image``, 3 channels, first frame), in parallel through
``tf.data``, so a truncated JPEG or a TIFF named ``.png`` is found by path before the
first step. TFRecord shards: :func:`check_shards` walks each shard's record framing
(a shard cut short is named, with the byte where it ends) and counts its records;
``tf.data`` then reads every record once to verify its CRC.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from kimnet import fileio
from kimnet.errors import InputError

PROGRESS_FROM = 5_000
"""Folders with at least this many images print a progress line while checked."""
PROGRESS_EVERY_S = 5.0
_BATCH = 1024
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_RECORD_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_RECORD_FOOTER = 4  # uint32 masked CRC of the data


def decode(path: tf.Tensor) -> tf.Tensor:
    """The one image decoder of folder datasets: uint8 ``[H, W, 3]``, first frame of a GIF."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def undecodable_images(paths: Sequence[str | Path], *, label: str = "") -> dict[str, str]:
    """``{path: reason}`` for the files that :func:`decode` cannot decode.

    All files are decoded in parallel; those that fail are dropped by
    ``ignore_errors`` and decoded once more, one by one, for the reason. The paths
    that decoded come back in batches: one Python step per file would cost more than
    the decoding of a small image.
    """
    paths = [str(p) for p in paths]
    if not paths:
        return {}
    decoded = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(_decoded_size, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .ignore_errors()
        .filter(_decoded)  # uses the size, so the decoding cannot be optimised away
        .map(_path_only)
        .batch(_BATCH)
    )
    good: set[str] = set()
    progress = _Progress(len(paths), label) if len(paths) >= PROGRESS_FROM else None
    for batch in decoded.as_numpy_iterator():
        good.update(path.decode() for path in batch)
        if progress:
            progress.update(len(good))
    if progress:
        progress.done(len(paths))
    failed = {path: _decode_error(path) for path in paths if path not in good}
    return {path: reason for path, reason in failed.items() if reason is not None}


@tf.autograph.experimental.do_not_convert
def _decoded_size(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return path, tf.size(decode(path))


@tf.autograph.experimental.do_not_convert
def _decoded(path: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return size >= 0


@tf.autograph.experimental.do_not_convert
def _path_only(path: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return path


def _decode_error(path: str) -> str | None:
    """Why ``path`` does not decode, or ``None`` if it does now (a passing read error)."""
    try:
        decode(tf.constant(path))
    except (tf.errors.OpError, ValueError) as error:
        return tf_reason(error)
    return None


def tf_reason(error: Exception) -> str:
    """A TensorFlow error's own words, without its op and function-node decorations."""
    message = getattr(error, "message", None) or str(error)
    message = _FUNCTION_NODE.sub("", message.split("\n")[0])
    return message.split(" [Op:")[0].strip().rstrip(".")


class _Progress:
    """A line on stderr every few seconds: ``Checking 60000 images of X: 12000 done``."""

    def __init__(self, total: int, label: str):
        self.total, self.label = total, label
        self.start = self.last = time.monotonic()
        print(f"Checking {total} images{label} by decoding each ...", file=sys.stderr, flush=True)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"  {done}/{self.total} decoded", file=sys.stderr, flush=True)

    def done(self, total: int) -> None:
        took = time.monotonic() - self.start
        print(f"  {total} images checked in {took:.1f} s", file=sys.stderr, flush=True)


def describe_bad(bad: dict[str, str], total: int, where: str, *, limit: int = 3) -> str:
    """One line naming the first few bad files and how many there are in all."""
    shown = "; ".join(f"{path} ({reason})" for path, reason in list(bad.items())[:limit])
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} of {total} images in {where} cannot be decoded: {shown}{more}"


def skipped_list_path(root: Path) -> Path:
    """Where the list of skipped images of ``root`` goes: kimnet's cache folder."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kimnet"
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return cache / "skipped_images" / f"{root.name or 'root'}-{digest}.txt"


def write_skipped_list(bad: dict[str, str], path: Path) -> Path:
    """Writes ``path<TAB>reason`` lines, atomically; returns ``path``."""
    lines = "".join(f"{p}\t{reason}\n" for p, reason in sorted(bad.items()))
    return fileio.write_text_atomic(path, lines)


def shard_records(path: Path) -> int:
    """Records in one TFRecord file by its framing; raises when the file is cut short."""
    size = path.stat().st_size
    count, offset = 0, 0
    with open(path, "rb") as file:
        while offset < size:
            header = file.read(_RECORD_HEADER)
            if len(header) < _RECORD_HEADER:
                raise _cut(path, offset, size, count)
            (length,) = struct.unpack("<Q", header[:8])
            offset += _RECORD_HEADER + length + _RECORD_FOOTER
            if offset > size:
                raise _cut(path, offset, size, count)
            file.seek(offset)
            count += 1
    return count


def _cut(path: Path, needed: int, size: int, count: int) -> InputError:
    return InputError(
        f"TFRecord shard '{path}' is cut short: its record {count + 1} ends at byte {needed} "
        f"but the file has {size} bytes. Copy or write the shard again."
    )


def verify_crcs(path: Path) -> None:
    """Reads every record of one shard through TensorFlow, which checks each CRC.

    Records come back in large batches: the per-record cost of a Python step (or of
    ``Dataset.reduce``) would be several times the reading itself.
    """
    records = tf.data.TFRecordDataset(str(path), buffer_size=8 << 20).batch(8192)
    try:
        for _ in records:
            pass
    except tf.errors.DataLossError as error:
        reason = tf_reason(error)
        raise InputError(
            f"TFRecord shard '{path}' is corrupt ({reason}). Copy or write the shard again."
        ) from error


def check_shards(
    files: Sequence[Path], expected: int, split: str, *, shard_counts: dict[str, int] | None = None
) -> None:
    """Checks the shards of one split: framing, per-shard and total counts, CRCs.

    ``expected`` is the split's count in ``dataset.json``; ``shard_counts`` (written
    by :func:`kimnet.data.tfrecord.write`) the count of each shard, by file name.
    """
    total = 0
    for path in files:
        count = shard_records(path)
        want = (shard_counts or {}).get(path.name)
        if want is not None and count != want:
            raise InputError(
                f"TFRecord shard '{path}' holds {count} records where dataset.json says {want}. "
                f"Copy or write the shard again."
            )
        total += count
    if total != expected:
        raise InputError(
            f"The {split} shards of '{files[0].parent}' hold {total} records where dataset.json "
            f"says {expected} ({', '.join(p.name for p in files)}). Write the shards again."
        )
    for path in files:
        verify_crcs(path)
