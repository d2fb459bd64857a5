"""One training run: data -> model -> fit -> test -> SavedModel, all in a run directory.

``runs/<run name>/`` receives ``config.json``, ``tensorboard/`` (loss, top-1,
top-5, learning rate and images/s per epoch, a grid of augmented images),
``checkpoints/`` (last and best weights) and ``metrics.json``. The classifier is
exported to ``savedmodels/<run name>/<version>/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from kimnet import data, export, models
from kimnet.training import callbacks as cb
from kimnet.training.config import TrainConfig
from kimnet.training.optim import make_optimizer

# Weight of each auxiliary classifier's loss (GoogLeNet), as in Szegedy et al.
AUX_LOSS_WEIGHT = 0.3
QUICK_TRAIN_BATCHES = 20
QUICK_EVAL_BATCHES = 5


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    export_dir: Path
    metrics: dict[str, Any]
    model: keras.Model


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default``: one device; ``mirrored``: data parallel over all local GPUs."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def build_model(config: TrainConfig, num_classes: int) -> tuple[keras.Model, models.ModelSpec]:
    spec = models.get(config.model)
    kwargs = dict(config.model_args)
    if config.use_small_input():
        kwargs.setdefault("small_input", True)
    model = spec(
        input_shape=(config.image_size, config.image_size, 3),
        classes=num_classes,
        dropout_rate=config.dropout,
        **kwargs,
    )
    return model, spec


def _one_hot(num_classes: int, outputs: int):
    def convert(images, labels):
        target = tf.one_hot(labels, num_classes)
        return images, target if outputs == 1 else (target,) * outputs

    return convert


def _metric(logs: dict[str, float], name: str) -> float:
    """A metric from Keras logs; multi-output models prefix it with the output name."""
    if name in logs:
        return float(logs[name])
    return float(logs[f"predictions_{name}"])


def _prepare_run_dir(config: TrainConfig) -> Path:
    run_dir = Path(config.workdir) / config.resolved_run_name()
    if run_dir.exists():
        if not config.overwrite:
            raise FileExistsError(
                f"Run directory '{run_dir}' already exists. Pass another --run_name, or "
                f"--overwrite to replace it (exported SavedModels are kept either way)."
            )
        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True)
    return run_dir


def train(config: TrainConfig) -> RunResult:
    """Runs the experiment ``config`` describes and returns where everything went."""
    config.validate()
    export_root = Path(config.export_dir) / config.resolved_run_name()
    if config.export_version is not None and (export_root / str(config.export_version)).exists():
        raise FileExistsError(
            f"'{export_root / str(config.export_version)}' already exists; pick another "
            f"--export_version or omit it to take the next free one."
        )
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        return _train(config, export_root)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _train(config: TrainConfig, export_root: Path) -> RunResult:
    splits = data.load(config.dataset, data_dir=config.data_dir, seed=config.seed)
    info = splits.info
    augmenter = data.augment.build(config.augment, config.image_size, seed=config.seed)
    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model, spec = build_model(config, info.num_classes)
    pipelines = data.make(
        splits,
        image_size=config.image_size,
        batch_size=config.batch_size,
        normalization=spec.normalization,
        augmenter=augmenter,
        seed=config.seed,
    )
    steps_per_epoch = math.ceil(info.num_examples["train"] / config.batch_size)
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    elif config.quick:
        steps_per_epoch = min(steps_per_epoch, QUICK_TRAIN_BATCHES)
    if config.quick:
        for split in ("validation", "test"):
            pipelines[split] = pipelines[split].take(QUICK_EVAL_BATCHES)
    outputs = len(model.outputs)
    to_targets = _one_hot(info.num_classes, outputs)
    train_ds = pipelines["train"].take(steps_per_epoch).map(to_targets).repeat()
    val_ds = pipelines["validation"].map(to_targets)
    test_ds = pipelines["test"].map(to_targets)

    run_dir = _prepare_run_dir(config)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log_dir = run_dir / "tensorboard"
    cb.write_image_grid(
        str(log_dir / "train"),
        data.sample_images(splits, image_size=config.image_size, augmenter=augmenter),
    )

    with strategy.scope():
        top_k = min(5, info.num_classes)
        metrics = [
            keras.metrics.CategoricalAccuracy(name="top1"),
            keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top5"),
        ]
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch),
            loss=[loss] * outputs if outputs > 1 else loss,
            loss_weights=[1.0] + [AUX_LOSS_WEIGHT] * (outputs - 1) if outputs > 1 else None,
            metrics=[metrics] + [[]] * (outputs - 1) if outputs > 1 else metrics,
        )
    val_key = "val_top1" if outputs == 1 else "val_predictions_top1"
    stats = cb.EpochStats(config.batch_size)
    callbacks = [
        cb.PreciseBatchNorm(pipelines["train_plain"], config.bn_recalibration_batches),
        stats,
        keras.callbacks.TensorBoard(str(log_dir), update_freq="epoch"),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / "last.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / "best.weights.h5"),
            save_weights_only=True,
            save_best_only=True,
            monitor=val_key,
            mode="max",
        ),
    ]
    logging.info(
        "Training %s (%s parameters) on %s: %d train / %d validation images, %d steps/epoch.",
        config.model,
        f"{model.count_params():,}",
        info.name,
        info.num_examples["train"],
        info.num_examples["validation"],
        steps_per_epoch,
    )
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_ds,
        callbacks=callbacks,
        verbose=2,
    )
    wall = time.perf_counter() - start
    test = model.evaluate(test_ds, callbacks=callbacks[:1], return_dict=True, verbose=0)
    # The last checkpoint must hold the statistics the test used, like the export.
    model.save_weights(str(run_dir / "checkpoints" / "last.weights.h5"))

    version_dir = export.export(
        model,
        export_root,
        class_names=info.class_names,
        normalization=spec.normalization,
        version=config.export_version,
        metadata={"model": config.model, "run": config.resolved_run_name()},
    )
    metrics_out = {
        "model": config.model,
        "dataset": info.name,
        "test_top1": _metric(test, "top1"),
        "test_top5": _metric(test, "top5"),
        "validation_top1": float(history.history[val_key][-1]),
        "parameters": model.count_params(),
        "trainable_parameters": sum(int(tf.size(w)) for w in model.trainable_weights),
        "epochs": config.epochs,
        "steps_per_epoch": steps_per_epoch,
        "image_size": config.image_size,
        "wall_time_seconds": round(wall, 2),
        "train_images_per_second": round(stats.images_per_second, 1),
        "export_dir": str(version_dir),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    return RunResult(run_dir=run_dir, export_dir=version_dir, metrics=metrics_out, model=model)
