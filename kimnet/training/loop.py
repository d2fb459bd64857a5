"""One training run: data -> model -> fit -> test -> SavedModel, all in a run directory.

``runs/<run name>/`` receives ``config.json``, ``tensorboard/`` (loss, top-1,
top-5, learning rate and images/s per epoch, a grid of augmented images),
``checkpoints/`` (last and best weights) and ``metrics.json``. The classifier is
exported to ``savedmodels/<run name>/<version>/``.

:class:`TrainHooks` lets another pipeline (fine-tuning, ``kimnet.transfer``) change
where the data and the model come from and split the run into phases, each
recompiled with its own optimizer after deciding which layers train, while the
run directory, TensorBoard curves, checkpoints and export stay the same.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from kimnet import data, export, models
from kimnet.errors import InputError
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
    export_dir: Path | None  # None when the config says export=False
    metrics: dict[str, Any]
    model: keras.Model


@dataclasses.dataclass
class Phase:
    """A stretch of epochs compiled once: what trains, and with which optimizer.

    Attributes:
        name: Shown in the logs (``phases`` in metrics.json).
        epochs: Epochs of this phase; the epochs of a run's phases add up to ``config.epochs``.
        setup: Called with the model and the run directory before the phase compiles
            (e.g. to set ``layer.trainable``).
        make_optimizer: ``(model, steps_per_epoch) -> optimizer``; default: the config's.
    """

    name: str
    epochs: int
    setup: Callable[[keras.Model, Path], None] | None = None
    make_optimizer: Callable[[keras.Model, int], keras.optimizers.Optimizer] | None = None


@dataclasses.dataclass
class TrainHooks:
    """Extension points of :func:`train`; ``None`` keeps the default behaviour.

    Attributes:
        load_data: ``config -> data.Splits`` instead of ``data.load(config.dataset)``.
        build_model: ``(config, num_classes) -> (model, spec)`` instead of :func:`build_model`.
        phases: ``(config, model) -> [Phase, ...]`` instead of one phase of ``config.epochs``.
        extra_config: Written into config.json under ``"hooks"``.
    """

    load_data: Callable[[TrainConfig], data.Splits] | None = None
    build_model: Callable[[TrainConfig, int], tuple[keras.Model, models.ModelSpec]] | None = None
    phases: Callable[[TrainConfig, keras.Model], list[Phase]] | None = None
    extra_config: dict[str, Any] | None = None


class PhaseLog(keras.callbacks.Callback):
    """Adds the 1-based ``phase`` index to each epoch's logs (a TensorBoard curve)."""

    def __init__(self):
        super().__init__()
        self.phase = 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = float(self.phase)


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


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


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


def train(config: TrainConfig, hooks: TrainHooks | None = None) -> RunResult:
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
        return _train(config, export_root, hooks or TrainHooks())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _train(config: TrainConfig, export_root: Path, hooks: TrainHooks) -> RunResult:
    if hooks.load_data is not None:
        splits = hooks.load_data(config)
    else:
        splits = data.load(config.dataset, data_dir=config.data_dir, seed=config.seed)
    info = splits.info
    augmenter = data.augment.build(config.augment, config.image_size, seed=config.seed)
    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model, spec = (hooks.build_model or build_model)(config, info.num_classes)
    phases = hooks.phases(config, model) if hooks.phases else [Phase("train", config.epochs)]
    if sum(phase.epochs for phase in phases) != config.epochs:
        raise InputError(
            f"The phases last {sum(p.epochs for p in phases)} epochs but epochs={config.epochs}."
        )
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
    config_out = config.to_dict()
    if hooks.extra_config:
        config_out["hooks"] = hooks.extra_config
    (run_dir / "config.json").write_text(json.dumps(config_out, indent=2))
    log_dir = run_dir / "tensorboard"
    cb.write_image_grid(
        str(log_dir / "train"),
        data.sample_images(splits, image_size=config.image_size, augmenter=augmenter),
    )

    def compile_for(phase: Phase) -> None:
        with strategy.scope():
            top_k = min(5, info.num_classes)
            metrics = [
                keras.metrics.CategoricalAccuracy(name="top1"),
                keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top5"),
            ]
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
            optimizer = (
                phase.make_optimizer(model, steps_per_epoch)
                if phase.make_optimizer
                else make_optimizer(config, steps_per_epoch)
            )
            model.compile(
                optimizer=optimizer,
                loss=[loss] * outputs if outputs > 1 else loss,
                loss_weights=[1.0] + [AUX_LOSS_WEIGHT] * (outputs - 1) if outputs > 1 else None,
                metrics=[metrics] + [[]] * (outputs - 1) if outputs > 1 else metrics,
            )

    val_key = "val_top1" if outputs == 1 else "val_predictions_top1"
    stats = cb.EpochStats(config.batch_size)
    phase_log = PhaseLog()
    callbacks = [
        cb.PreciseBatchNorm(pipelines["train_plain"], config.bn_recalibration_batches),
        stats,
        *([phase_log] if len(phases) > 1 else []),
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
    done = 0
    for index, phase in enumerate(phases, start=1):
        if phase.setup is not None:
            phase.setup(model, run_dir)
        compile_for(phase)
        if len(phases) > 1:
            logging.info(
                "Phase %d/%d '%s': %d epochs.", index, len(phases), phase.name, phase.epochs
            )
        phase_log.phase = index
        history = model.fit(
            train_ds,
            initial_epoch=done,
            epochs=done + phase.epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=2,
        )
        done += phase.epochs
    wall = time.perf_counter() - start
    test = model.evaluate(test_ds, callbacks=callbacks[:1], return_dict=True, verbose=0)
    # The last checkpoint must hold the statistics the test used, like the export.
    model.save_weights(str(run_dir / "checkpoints" / "last.weights.h5"))

    version_dir = None
    if config.export:
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
        "steady_images_per_second": _rounded(stats.steady_images_per_second),
        "first_step_seconds": _rounded(next(iter(stats.first_step_seconds), None)),
        "export_dir": str(version_dir) if version_dir else None,
    }
    if len(phases) > 1:
        metrics_out["phases"] = [{"name": p.name, "epochs": p.epochs} for p in phases]
    (run_dir / "metrics.json").write_text(json.dumps(metrics_out, indent=2))
    return RunResult(run_dir=run_dir, export_dir=version_dir, metrics=metrics_out, model=model)
