"""What a study measures besides test top-1: train top-1 on plain training batches and the
exported SavedModel's latency and throughput."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kimnet.training import loop


def _identity_classifier(classes: int = 3) -> keras.Model:
    """Predicts the class of each input's largest value."""
    inputs = keras.Input((classes,))
    outputs = keras.layers.Softmax()(
        keras.layers.Dense(classes, kernel_initializer="identity")(inputs)
    )
    model = keras.Model(inputs, outputs)
    model.compile(
        loss="categorical_crossentropy", metrics=[keras.metrics.CategoricalAccuracy(name="top1")]
    )
    return model


def _batches(train_labels: list[int], test_batches: int) -> loop.Batches:
    images = np.eye(3, dtype=np.float32)[[0, 1, 2, 0] * (len(train_labels) // 4)]
    train = tf.data.Dataset.from_tensor_slices((images, np.array(train_labels))).batch(4)
    test = tf.data.Dataset.from_tensor_slices((images[:4], np.eye(3)[[0, 1, 2, 0]]))
    test = test.batch(4).repeat(test_batches)
    return loop.Batches(train, train, test, test, steps_per_epoch=1)


def test_train_top1_reads_as_many_plain_training_batches_as_the_test_pass():
    # Batch 1: 3 of 4 right, batch 2: 4 of 4, batches 3-4: all wrong.
    labels = [0, 1, 2, 1] + [0, 1, 2, 0] + [1, 2, 0, 1] * 2
    model = _identity_classifier()
    assert loop.train_top1(model, _batches(labels, test_batches=2)) == pytest.approx(7 / 8)
    assert loop.train_top1(model, _batches(labels, test_batches=1)) == pytest.approx(3 / 4)
    # More test batches than training ones: every training batch, once.
    assert loop.train_top1(model, _batches(labels, test_batches=9)) == pytest.approx(7 / 16)
