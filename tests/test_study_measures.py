"""What a study measures besides test top-1: train top-1 on plain training batches and the
exported SavedModel's latency and throughput."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kimnet import export, speed
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


def test_median_seconds_warms_up_then_takes_the_median(monkeypatch):
    calls = []
    times = iter([0.0, 0.5, 1.0, 1.1, 2.0, 2.3])  # three calls: 0.5, 0.1, 0.3 s

    def call():
        calls.append(1)

    monkeypatch.setattr(speed.time, "perf_counter", lambda: next(times))
    assert speed.median_seconds(call, warmup=2, repeats=3) == pytest.approx(0.3)
    assert len(calls) == 5


def test_savedmodel_speed_of_a_small_export(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    version = export.export(model, tmp_path, class_names=["a", "b", "c"], normalization="tf")
    measured = speed.savedmodel_speed(
        version, (8, 8, 1), batch=16, latency_repeats=5, throughput_repeats=3
    )
    assert measured.batch == 16
    assert 0 < measured.latency_ms < 10_000 and measured.images_per_second > 0
