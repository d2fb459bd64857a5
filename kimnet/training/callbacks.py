"""Keras callbacks of a kimnet run: precise batch norm, learning rate, throughput, images."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf


def _all_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer``'s layers, descending into nested models."""
    found = []
    for child in getattr(layer, "layers", []):
        found.append(child)
        found.extend(_all_layers(child))
    return found


def trainable_batchnorms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Batch-norm layers that update statistics in training (frozen ones run in inference)."""
    return [
        layer
        for layer in _all_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def training_forward(model: keras.Model) -> Callable[[Any], Any]:
    """``model`` called in training mode as one compiled graph.

    An eager call dispatches every layer's ops from Python, which costs more than the
    forward pass itself on small images (docs/performance.md, "Precise batch norm").
    Keras' own compiled functions do not fit: the training step also updates the
    weights, and evaluation runs batch norm in inference mode.
    """
    return tf.function(lambda images: model(images, training=True), reduce_retracing=True)


def recalibrate_batchnorm(
    model: keras.Model,
    dataset: tf.data.Dataset,
    batches: int,
    forward: Callable[[Any], Any] | None = None,
) -> int:
    """Re-estimates batch-norm moving statistics as their average over ``batches`` batches.

    With Keras' default momentum (0.99, or 0.999 in MobileNets) the moving
    statistics still remember their initial values after a few hundred steps,
    so a short run evaluates far worse than it trains. Averaging the batch
    statistics of the current weights ("precise BN") removes that gap; the
    weights are unchanged. ``forward``: :func:`training_forward` of ``model``, reused
    between calls so it is traced once. Returns the number of batches used; on an
    error the statistics are left as they were.
    """
    layers = trainable_batchnorms(model)
    if not layers or batches <= 0:
        return 0
    forward = forward or training_forward(model)
    momenta = [layer.momentum for layer in layers]
    before = [_statistics(layer) for layer in layers]
    totals = [(np.zeros_like(mean), np.zeros_like(variance)) for mean, variance in before]
    seen = 0
    try:
        # Momentum 0 (read when the graph is traced): each forward pass leaves exactly
        # its batch's statistics in the moving ones, which are summed here.
        for layer in layers:
            layer.momentum = 0.0
        for images, _ in dataset.take(batches):
            forward(images)
            seen += 1
            for (mean_total, variance_total), layer in zip(totals, layers, strict=True):
                mean, variance = _statistics(layer)
                mean_total += mean
                variance_total += variance
    except BaseException:
        _assign_statistics(layers, before)
        raise
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    if not seen:
        return 0
    _assign_statistics(layers, [(mean / seen, variance / seen) for mean, variance in totals])
    return seen


def _statistics(layer: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """The layer's moving mean and variance as float64 arrays, so that summing many
    batches adds no rounding of its own."""
    return tuple(
        keras.ops.convert_to_numpy(variable).astype(np.float64)
        for variable in (layer.moving_mean, layer.moving_variance)
    )


def _assign_statistics(layers: list, statistics: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for layer, (mean, variance) in zip(layers, statistics, strict=True):
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recalibrates batch-norm statistics before every evaluation (validation and test).

    The statistics depend only on the weights and the (unshuffled) batches, so an
    evaluation with no training step since the last recalibration reuses it.
    """

    def __init__(self, dataset: tf.data.Dataset, batches: int):
        super().__init__()
        self.dataset = dataset
        self.batches = batches
        self.calibrated = False
        # The traced forward pass and what it was traced for: the model and its
        # trainable batch-norm layers (a frozen layer is traced in inference mode, so a
        # transfer phase that unfreezes layers needs a new trace).
        self._forward: tuple[tuple, Callable[[Any], Any]] | None = None

    def on_train_batch_begin(self, batch, logs=None):
        self.calibrated = False

    def on_test_begin(self, logs=None):
        self.recalibrate(self.model)

    def recalibrate(self, model: keras.Model) -> None:
        """Re-estimates ``model``'s statistics unless no step has changed them since."""
        if not self.calibrated:
            traced_for = (model, *trainable_batchnorms(model))
            if self._forward is None or not _same_objects(self._forward[0], traced_for):
                self._forward = (traced_for, training_forward(model))
            recalibrate_batchnorm(model, self.dataset, self.batches, self._forward[1])
            self.calibrated = True


def _same_objects(these: tuple, those: tuple) -> bool:
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


class EpochStats(keras.callbacks.Callback):
    """Adds ``learning_rate`` and training ``images_per_second`` to each epoch's logs.

    Must come before the TensorBoard callback so both reach the curves.
    """

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size
        # The phase's learning-rate schedule, set when it compiles (None: a constant rate).
        self.schedule: keras.optimizers.schedules.LearningRateSchedule | None = None
        self.train_seconds = 0.0
        self.images = 0
        # The same without each epoch's first step, which holds graph building (first
        # epoch) and the shuffle-buffer fill: the throughput a long run settles at.
        self.steady_seconds = 0.0
        self.steady_images = 0
        self.first_step_seconds: list[float] = []
        self._start = None
        self._first_step_end = None
        self._last_step_end = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._first_step_end = self._last_step_end = None
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        # The epoch's training time ends with its last step, not at the first
        # on_test_begin: callbacks ahead of this one (precise BN) work there first.
        self._last_step_end = time.perf_counter()
        self._steps += 1
        if self._steps == 1:
            self._first_step_end = self._last_step_end
            self.first_step_seconds.append(self._first_step_end - self._start)

    def on_epoch_end(self, epoch, logs=None):
        end = self._last_step_end or time.perf_counter()
        self._epoch_seconds = end - self._start
        if self._steps > 1:
            self.steady_seconds += end - self._first_step_end
            self.steady_images += (self._steps - 1) * self.batch_size
        images = self._steps * self.batch_size
        self.images += images
        self.train_seconds += self._epoch_seconds
        if logs is not None:
            logs["images_per_second"] = images / max(self._epoch_seconds, 1e-9)
            logs["learning_rate"] = self.last_learning_rate()

    def last_learning_rate(self) -> float:
        """The rate the epoch's last step used (the optimizer's own is the next step's)."""
        optimizer = self.model.optimizer
        rate = optimizer.learning_rate
        if self.schedule is not None:
            step = max(int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
            rate = self.schedule(step)
        return float(keras.ops.convert_to_numpy(rate))

    @property
    def images_per_second(self) -> float:
        """Training images over the whole training time."""
        return self.images / max(self.train_seconds, 1e-9)

    @property
    def steady_images_per_second(self) -> float | None:
        """Training images per second after each epoch's first step; None when no
        epoch ran more than one step."""
        if not self.steady_images:
            return None
        return self.steady_images / max(self.steady_seconds, 1e-9)


def metric(logs: dict, name: str) -> float:
    """A metric from Keras logs; multi-output models prefix the main output's name."""
    for key in (name, f"predictions_{name}"):
        if key in logs:
            return float(logs[key])
    raise KeyError(name)


class TestCurve(keras.callbacks.Callback):
    """Adds the test split's ``test_top1``/``test_top5`` and ``elapsed_seconds`` (training
    and validation time since the run began, without these test passes) to each epoch's
    logs: accuracy against time. Must come after validation's batch-norm recalibration
    and before TensorBoard and the CSV log. Only reports: checkpoints are chosen on
    validation, never on this."""

    def __init__(self, dataset: tf.data.Dataset, precise_bn: PreciseBatchNorm, elapsed: float):
        super().__init__()
        self.dataset = dataset
        self.precise_bn = precise_bn
        self.elapsed = elapsed  # from the epochs before a resume
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._start is not None:
            self.elapsed += time.perf_counter() - self._start
        self.precise_bn.recalibrate(self.model)
        results = self.model.evaluate(self.dataset, verbose=0, return_dict=True)
        if logs is not None:
            logs["test_top1"] = metric(results, "top1")
            logs["test_top5"] = metric(results, "top5")
            logs["elapsed_seconds"] = self.elapsed


def write_image_grid(
    log_dir: str,
    images: tf.Tensor,
    labels: list[str],
    name: str = "augmented_train_images",
) -> None:
    """Writes training images ([0, 255] floats), each titled with its class name, to
    TensorBoard's Images tab, once."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pixels = np.clip(keras.ops.convert_to_numpy(images), 0, 255).astype(np.uint8)
    columns = math.ceil(len(pixels) ** 0.5)
    rows = math.ceil(len(pixels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows))
    for axis in np.ravel(axes):
        axis.axis("off")
    for axis, image, label in zip(np.ravel(axes), pixels, labels, strict=False):
        axis.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        axis.set_title(label, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    grid = tf.image.decode_png(buffer.getvalue(), channels=3)[None]
    with tf.summary.create_file_writer(log_dir).as_default():
        tf.summary.image(name, grid, step=0)
