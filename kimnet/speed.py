"""Inference speed of an exported SavedModel: latency at batch 1, throughput at batch N.

Both call the ``serving_default`` signature in this process (no server) with random
uint8 images of one shape, after a few warm-up calls, and take the median of timed
repeats, so one slow call on a shared machine does not decide the figure::

    speed = savedmodel_speed("savedmodels/fmnist-resnet18/1", (32, 32, 3))
    speed.latency_ms, speed.images_per_second
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

WARMUP_CALLS = 3
LATENCY_REPEATS = 30
THROUGHPUT_BATCH = 64
THROUGHPUT_REPEATS = 7


@dataclasses.dataclass(frozen=True)
class Speed:
    latency_ms: float  # median time of one batch-1 call, in milliseconds
    images_per_second: float  # batch size / median time of one batch call
    batch: int


def median_seconds(call: Callable[[], object], *, warmup: int, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``call`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def savedmodel_speed(
    path: str | os.PathLike,
    image_shape: Sequence[int],
    *,
    batch: int = THROUGHPUT_BATCH,
    warmup: int = WARMUP_CALLS,
    latency_repeats: int = LATENCY_REPEATS,
    throughput_repeats: int = THROUGHPUT_REPEATS,
) -> Speed:
    """Latency per image at batch 1 and images/s at ``batch`` of the SavedModel at ``path``
    (a version directory), on uint8 images of ``image_shape`` ``(height, width, channels)``."""
    import tensorflow as tf

    from kimnet.export import DEFAULT_SIGNATURE

    signature = tf.saved_model.load(str(path)).signatures[DEFAULT_SIGNATURE]
    rng = np.random.default_rng(0)

    def caller(size: int) -> Callable[[], object]:
        images = tf.constant(rng.integers(0, 256, (size, *image_shape), dtype=np.uint8))
        return lambda: [value.numpy() for value in signature(images=images).values()]

    single = median_seconds(caller(1), warmup=warmup, repeats=latency_repeats)
    many = median_seconds(caller(batch), warmup=warmup, repeats=throughput_repeats)
    return Speed(latency_ms=1000 * single, images_per_second=batch / many, batch=batch)
