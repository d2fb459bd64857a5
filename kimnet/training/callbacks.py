"""Keras callbacks of a kimnet run: precise batch norm, learning rate, throughput, images."""

from __future__ import annotations

import math
import time

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


def recalibrate_batchnorm(model: keras.Model, dataset: tf.data.Dataset, batches: int) -> int:
    """Re-estimates batch-norm moving statistics as their average over ``batches`` batches.

    With Keras' default momentum (0.99, or 0.999 in MobileNets) the moving
    statistics still remember their initial values after a few hundred steps,
    so a short run evaluates far worse than it trains. Averaging the batch
    statistics of the current weights ("precise BN") removes that gap; the
    weights are unchanged. Returns the number of batches used.
    """
    layers = trainable_batchnorms(model)
    if not layers or batches <= 0:
        return 0
    momenta = [layer.momentum for layer in layers]
    seen = 0
    try:
        for seen, (images, _) in enumerate(dataset.take(batches), start=1):
            for layer in layers:
                layer.momentum = 1.0 - 1.0 / seen  # running mean over the batches so far
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return seen


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

    def on_train_batch_begin(self, batch, logs=None):
        self.calibrated = False

    def on_test_begin(self, logs=None):
        self.recalibrate(self.model)

    def recalibrate(self, model: keras.Model) -> None:
        """Re-estimates ``model``'s statistics unless no step has changed them since."""
        if not self.calibrated:
            recalibrate_batchnorm(model, self.dataset, self.batches)
            self.calibrated = True


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
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._first_step_end, self._steps = time.perf_counter(), None, 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        if self._steps == 1:
            self._first_step_end = time.perf_counter()
            self.first_step_seconds.append(self._first_step_end - self._start)

    def _close_epoch_timer(self):
        if self._start is not None:
            end = time.perf_counter()
            self._epoch_seconds = end - self._start
            if self._first_step_end is not None and self._steps > 1:
                self.steady_seconds += end - self._first_step_end
                self.steady_images += (self._steps - 1) * self.batch_size
            self._start = None

    def on_test_begin(self, logs=None):
        self._close_epoch_timer()

    def on_epoch_end(self, epoch, logs=None):
        self._close_epoch_timer()
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
