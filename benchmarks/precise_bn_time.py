"""Time of one precise-BN recalibration: eager forward passes against kimnet's compiled one.

    python benchmarks/precise_bn_time.py [--batches=20] [--rounds=3]

Before every evaluation kimnet re-estimates batch-norm statistics over
``evaluate.bn_recalibration_batches`` (20) training batches of 128
(``kimnet.training.callbacks.recalibrate_batchnorm``). This times that on MobileNetV2
(28 px, small-input stem) and ResNet-18 (56 px, ImageNet stem) two ways, in alternating
rounds on the same model and cached batches: eager calls of the model in training mode,
as kimnet ran it until 2026-12-08, and kimnet's compiled forward pass, traced once
(its tracing is reported apart). It also prints how far the two results differ.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from kimnet import models
from kimnet.training.callbacks import (
    recalibrate_batchnorm,
    trainable_batchnorms,
    training_forward,
)

CASES = (("mobilenetv2", 28, True), ("resnet18", 56, False))


def eager_recalibration(model, dataset: tf.data.Dataset, batches: int) -> None:
    """The earlier implementation: a running mean through the layers' momentum."""
    layers = trainable_batchnorms(model)
    momenta = [layer.momentum for layer in layers]
    for seen, (images, _) in enumerate(dataset.take(batches), start=1):
        for layer in layers:
            layer.momentum = 1.0 - 1.0 / seen
        model(images, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def variances(model) -> list[np.ndarray]:
    return [layer.moving_variance.numpy().copy() for layer in trainable_batchnorms(model)]


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def measure(name: str, size: int, small_input: bool, batches: int, rounds: int) -> str:
    """One model's line: eager and compiled seconds, median (range), and the tracing."""
    model = models.get(name)(
        input_shape=(size, size, 3), classes=10, weights=None, small_input=small_input
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batches * 128, size, size, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images))))
    dataset = dataset.batch(128).cache()
    for _ in dataset:  # fills the cache
        pass
    forward = training_forward(model)
    trace = timed(recalibrate_batchnorm, model, dataset, 1, forward)
    eager, compiled, differences = [], [], []
    for _ in range(rounds):
        eager.append(timed(eager_recalibration, model, dataset, batches))
        reference = variances(model)
        compiled.append(timed(recalibrate_batchnorm, model, dataset, batches, forward))
        differences += [
            float(np.max(np.abs(new - old) / (np.abs(old) + 1e-6)))
            for new, old in zip(variances(model), reference, strict=True)
        ]
    return (
        f"{name} {size} px, {batches} batches of 128: eager {_median_range(eager)} s, "
        f"compiled {_median_range(compiled)} s, first trace and batch {trace:.2f} s; "
        f"largest relative difference in the moving variances {max(differences):.1e}"
    )


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for case in CASES:
        print(measure(*case, args.batches, args.rounds), flush=True)


if __name__ == "__main__":
    main()
