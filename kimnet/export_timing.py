"""Inference speed of an exported SavedModel, as a server would call it.

:func:`measure_savedmodel` loads a version directory with ``tf.saved_model.load``
and times its ``serving_default`` signature (:mod:`kimnet.export`) on random uint8
images, so decoding and the HTTP layer stay out of the figure while the in-graph
resize and normalisation are in it. Batch 1 gives the latency of one image,
larger batches the throughput.
"""

from __future__ import annotations

import functools
import os
import statistics
import time

import numpy as np
import tensorflow as tf

from kimnet.errors import InputError
from kimnet.export import DEFAULT_SIGNATURE, IMAGES_INPUT


def measure_savedmodel(
    path: str | os.PathLike,
    *,
    image_size: int,
    channels: int,
    batch_sizes: tuple[int, ...] = (1, 64),
    repeats: int = 20,
    warmup: int = 3,
) -> dict[int, dict[str, float]]:
    """Times ``repeats`` calls of the serving signature per batch size, after ``warmup``.

    Args:
        path: A SavedModel version directory written by :func:`kimnet.export.export`.
        image_size: Height and width of the uint8 images sent (the signature resizes).
        channels: Their channels (1, 3 or 4), e.g. 1 for Fashion-MNIST as served.
        batch_sizes: Images per call, each timed on its own.
        repeats: Timed calls per batch size; the median is reported.
        warmup: Untimed calls first (the first call traces the function).

    Returns:
        ``{batch: {"median_ms_per_call", "median_ms_per_image", "images_per_second",
        "min_ms_per_call", "max_ms_per_call"}}``; ``images_per_second`` is
        ``batch / median call time``.
    """
    _check(image_size, channels, batch_sizes, repeats, warmup)
    serve = tf.saved_model.load(str(path)).signatures[DEFAULT_SIGNATURE]
    rng = np.random.default_rng(0)
    results = {}
    for batch in batch_sizes:
        shape = (batch, image_size, image_size, channels)
        images = tf.constant(rng.integers(0, 256, shape, dtype=np.uint8))
        seconds = _call_times(functools.partial(serve, **{IMAGES_INPUT: images}), warmup, repeats)
        median = statistics.median(seconds)
        results[batch] = {
            "median_ms_per_call": 1e3 * median,
            "median_ms_per_image": 1e3 * median / batch,
            "images_per_second": batch / median,
            "min_ms_per_call": 1e3 * min(seconds),
            "max_ms_per_call": 1e3 * max(seconds),
        }
    return results


def _call_times(call, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = call()
        # Reading a result back waits for the computation (eager ops may return early).
        outputs["probabilities"].numpy()
        seconds.append(time.perf_counter() - start)
    return seconds


def _check(
    image_size: int, channels: int, batch_sizes: tuple[int, ...], repeats: int, warmup: int
) -> None:
    if image_size < 1:
        raise InputError(f"image_size must be at least 1, got {image_size}.")
    if channels not in (1, 3, 4):
        raise InputError(f"channels must be 1, 3 or 4 (what the signature takes), got {channels}.")
    if not batch_sizes or min(batch_sizes) < 1:
        raise InputError(f"batch_sizes must be positive integers, got {batch_sizes!r}.")
    if repeats < 1 or warmup < 0:
        raise InputError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}.")
