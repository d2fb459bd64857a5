"""Training runs: flag validation, the pipeline script's errors, one real end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kimnet.export
from kimnet import experiment
from kimnet.models.batch_norm import BatchNormalization
from kimnet.training import callbacks, train
from kimnet.training.callbacks import (
    EpochStats,
    PreciseBatchNorm,
    recalibrate_batchnorm,
    training_forward,
)
from kimnet.training.optim import learning_rate_schedule


def test_learning_rate_warms_up_then_decays_to_zero():
    schedule = learning_rate_schedule(0.1, epochs=4, warmup_epochs=1, steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert values[0] == 0.0 and values[1] == pytest.approx(0.05)
    assert values[2] == pytest.approx(0.1) and 0 < values[3] < 0.1
    assert values[4] == pytest.approx(0.0, abs=1e-7)


def test_throughput_leaves_out_each_epochs_first_step_and_its_evaluation(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    stats = EpochStats(batch_size=8)
    # Epoch 1 starts at 0 s: the first step ends at 10 s (tracing), two more take 1 s
    # each. Epoch 2 starts at 100 s: 2 s, then 1 s steps. After each epoch's last step,
    # 30 s of precise-BN recalibration and validation must not count as training.
    for epoch, (start, step_ends) in enumerate(
        ((0.0, (10, 11, 12)), (100.0, (102, 103, 104, 105)))
    ):
        now[0] = start
        stats.on_epoch_begin(epoch)
        for step, end in enumerate(step_ends):
            now[0] = float(end)
            stats.on_train_batch_end(step)
        now[0] += 30.0
        stats.on_test_begin()
        stats.on_epoch_end(epoch)
    assert stats.first_step_seconds == [10.0, 2.0]
    assert stats.images == 56 and stats.train_seconds == 17.0
    assert stats.steady_images == 40 and stats.steady_seconds == 5.0
    assert stats.steady_images_per_second == 8.0
    assert stats.images_per_second == pytest.approx(56 / 17)


def test_throughput_of_single_step_epochs_is_unknown():
    stats = EpochStats(batch_size=8)
    stats.on_epoch_begin(0)
    stats.on_train_batch_end(0)
    stats.on_epoch_end(0)
    assert stats.steady_images_per_second is None


def test_precise_batchnorm_averages_batch_statistics():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.999)(inputs))
    batches = [np.full((4, 3), value, np.float32) + np.arange(4)[:, None] for value in (0, 10)]
    dataset = tf.data.Dataset.from_tensor_slices((np.concatenate(batches), np.zeros(8)))
    assert recalibrate_batchnorm(model, dataset.batch(4), batches=5) == 2
    bn = model.layers[-1]
    np.testing.assert_allclose(bn.moving_mean.numpy(), [6.5] * 3, atol=1e-5)  # mean of 1.5, 11.5
    np.testing.assert_allclose(bn.moving_variance.numpy(), [1.25] * 3, atol=1e-5)
    assert bn.momentum == 0.999  # restored


def test_precise_batchnorm_on_the_fused_layer_averages_biased_batch_variances():
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, BatchNormalization(momentum=0.999)(inputs))
    images = np.random.default_rng(0).normal(size=(3, 4, 2, 2, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images.reshape(12, 2, 2, 3), np.zeros(12)))
    assert recalibrate_batchnorm(model, dataset.batch(4), batches=3) == 3
    bn = model.layers[-1]
    axes = (1, 2, 3)  # per batch: over its images, rows and columns
    np.testing.assert_allclose(bn.moving_mean.numpy(), images.mean(axes).mean(0), atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), images.var(axes).mean(0), atol=1e-5)
    assert bn.momentum == 0.999


def test_precise_batchnorm_interrupted_leaves_the_statistics_as_they_were():
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, BatchNormalization()(inputs))
    bn = model.layers[-1]
    bn.moving_mean.assign([1.0, 2.0, 3.0])
    forward = training_forward(model)
    calls = []

    def interrupted_forward(images):
        calls.append(forward(images))
        if len(calls) == 2:
            raise KeyboardInterrupt

    images = np.random.default_rng(1).normal(size=(8, 2, 2, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(8))).batch(2)
    with pytest.raises(KeyboardInterrupt):
        recalibrate_batchnorm(model, dataset, batches=4, forward=interrupted_forward)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), [1.0, 1.0, 1.0])
    assert bn.momentum == 0.99


def test_precise_batchnorm_traces_the_forward_pass_once_per_model():
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, BatchNormalization()(inputs))
    images = np.ones((8, 2, 2, 3), np.float32)
    callback = PreciseBatchNorm(tf.data.Dataset.from_tensor_slices((images, images)).batch(4), 2)
    callback.set_model(model)
    for _ in range(3):
        callback.on_train_batch_begin(0)
        callback.on_test_begin()
    assert callback._forward[1].experimental_get_tracing_count() == 1


def test_precise_batchnorm_traces_again_when_a_phase_unfreezes_a_layer():
    inputs = keras.Input((2, 2, 3))
    frozen = BatchNormalization(name="frozen")
    model = keras.Model(inputs, BatchNormalization()(frozen(inputs)))
    frozen.trainable = False
    images = np.random.default_rng(2).normal(3.0, 2.0, size=(8, 2, 2, 3)).astype(np.float32)
    callback = PreciseBatchNorm(tf.data.Dataset.from_tensor_slices((images, images)).batch(4), 2)
    callback.set_model(model)
    callback.on_test_begin()
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), [0.0, 0.0, 0.0])  # left alone
    frozen.trainable = True  # the next transfer phase
    callback.on_train_batch_begin(0)
    callback.on_test_begin()
    batches = images.reshape(2, 4, 2, 2, 3)
    np.testing.assert_allclose(
        frozen.moving_mean.numpy(), batches.mean((1, 2, 3)).mean(0), atol=1e-5
    )


def test_precise_batchnorm_recalibrates_only_after_training_steps():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    bn = model.layers[-1]
    dataset = tf.data.Dataset.from_tensor_slices((np.ones((8, 3), np.float32), np.zeros(8)))
    callback = PreciseBatchNorm(dataset.batch(4), batches=2)
    callback.set_model(model)
    callback.on_test_begin()  # validation: recalibrates
    np.testing.assert_allclose(bn.moving_mean.numpy(), [1.0] * 3)
    bn.moving_mean.assign([5.0] * 3)  # a marker: a second recalibration would undo it
    callback.recalibrate(model)  # the final test, no step since: reused
    np.testing.assert_allclose(bn.moving_mean.numpy(), [5.0] * 3)
    callback.on_train_batch_begin(0)  # a training step changes the weights
    callback.recalibrate(model)
    np.testing.assert_allclose(bn.moving_mean.numpy(), [1.0] * 3)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """A real, short Fashion-MNIST run: 2 epochs of 80 batches of 64 images."""
    root = tmp_path_factory.mktemp("train")
    config = experiment.validate(
        {
            "model": {"args": "alpha=0.35"},
            "data": {"batch_size": 64},
            "schedule": {"epochs": 2, "steps_per_epoch": 80},
            "evaluate": {"max_batches": 5},
            "runtime": {"workdir": str(root / "runs"), "run_name": "e2e"},
            "export": {"dir": str(root / "saved")},
        }
    )
    return config, train(config)


@pytest.mark.slow  # shares a real 2-epoch training run
def test_run_directory_contents(quick_run):
    config, result = quick_run
    run = result.run_dir
    assert json.loads((run / "config.json").read_text())["model"]["args"] == "alpha=0.35"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "test_top1",
        "test_top5",
        "parameters",
        "epochs",
        "wall_time_seconds",
        "train_images_per_second",
    ):
        assert key in metrics
    assert metrics["epochs"] == 2 and metrics["train_images_per_second"] > 0
    # Throughput after each epoch's first step (tracing, shuffle-buffer fill) is higher.
    assert metrics["steady_images_per_second"] > metrics["train_images_per_second"]
    assert 0 < metrics["first_step_seconds"] < metrics["wall_time_seconds"]
    assert (run / "checkpoints" / "last.weights.h5").exists()
    assert (run / "checkpoints" / "best.weights.h5").exists()
    tags = set()
    for event_file in (run / "tensorboard").rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_loss", "epoch_top1", "epoch_top5", "epoch_learning_rate"} <= tags
    assert "augmented_train_images" in tags
    assert {"evaluation/confusion_matrix", "evaluation/mistakes"} <= tags
    for name in ("report.md", "report.json", "confusion_matrix.png", "mistakes.png"):
        assert (run / "report-test" / name).is_file(), name
    report = json.loads((run / "report-test" / "report.json").read_text())
    assert report["top1"] == pytest.approx(metrics["test_top1"], abs=1e-4)  # rounded to 4
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "history.csv").read_text().startswith("epoch,")


@pytest.mark.slow  # shares a real 2-epoch training run
def test_exported_model_classifies_real_images_like_the_run_reported(quick_run, fmnist):
    config, result = quick_run
    # The run evaluated the first QUICK_EVAL_BATCHES batches of the test split.
    test = list(fmnist.test.take(5 * config.data.batch_size).as_numpy_iterator())
    images = np.stack([x for x, _ in test])
    labels = np.array([y for _, y in test])
    classifier = kimnet.export.load(result.export_dir)
    predicted = classifier.predict(images)["top5_indices"][:, 0]
    accuracy = float(np.mean(predicted == labels))
    # Measured 0.49-0.60 after 60 steps per epoch; chance is 0.1.
    assert accuracy > 0.4, f"accuracy {accuracy} after a short run; chance is 0.1"
    assert accuracy == pytest.approx(result.metrics.test_top1, abs=1.5 / len(labels))
    assert classifier.class_names == list(fmnist.info.class_names)


@pytest.mark.slow  # shares a real 2-epoch training run
def test_second_run_with_the_same_name_is_refused(quick_run):
    config, _ = quick_run
    with pytest.raises(FileExistsError, match="holds a finished run"):
        train(config)
    export_version = experiment.with_overrides(
        config, {"runtime.overwrite": True, "export.version": 1}
    )
    with pytest.raises(FileExistsError, match="already exists"):
        train(export_version)
    assert kimnet.export.versions(Path(config.export.dir) / "e2e") == [1]
