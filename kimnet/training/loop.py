"""One training run: data -> model -> fit -> test -> SavedModel, all in a run directory.

:func:`train` reads an experiment config (:mod:`kimnet.experiment`) and runs it as
a sequence of named steps. ``runs/<run name>/`` receives ``config.json`` (the
resolved experiment, which reruns it), ``tensorboard/``, ``checkpoints/`` (last and
best weights), ``trainable.json`` when the run transfers, and ``metrics.json``; the
classifier is exported to ``<export.dir>/<run name>/<version>/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import ml_collections
import tensorflow as tf

from kimnet import data, experiment, export, models
from kimnet.training import callbacks as cb
from kimnet.training.optim import learning_rate_schedule, make_optimizer
from kimnet.transfer import finetune, subsets

# Weight of each auxiliary classifier's loss (GoogLeNet), as in Szegedy et al.
AUX_LOSS_WEIGHT = 0.3


@dataclasses.dataclass
class Metrics:
    """What a run measured; ``metrics.json`` is this object."""

    model: str
    dataset: str
    class_names: list[str]
    test_top1: float
    test_top5: float
    validation_top1: float
    parameters: int
    trainable_parameters: int
    epochs: int
    steps_per_epoch: int
    image_size: int
    wall_time_seconds: float
    train_images_per_second: float
    steady_images_per_second: float | None
    first_step_seconds: float | None
    export_dir: str | None
    phases: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    loaded: dict[str, Any] | None = None

    @property
    def trainable_parameters_per_phase(self) -> list[int]:
        return [sum(row["trainable"] for row in phase["stages"]) for phase in self.phases]


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    export_dir: Path | None  # None when export.enabled is false
    metrics: Metrics
    model: keras.Model


@dataclasses.dataclass
class Batches:
    """The run's tf.data pipelines, with targets shaped for the model's outputs."""

    train: tf.data.Dataset
    train_plain: tf.data.Dataset  # un-augmented, for batch-norm re-estimation
    validation: tf.data.Dataset
    test: tf.data.Dataset
    steps_per_epoch: int


def train(config: ml_collections.ConfigDict, *, splits: data.Splits | None = None) -> RunResult:
    """Runs the experiment ``config``; ``splits``: already loaded data (studies)."""
    config = finetune.resolve(experiment.validate(config))
    run_dir, export_root = check_destinations(config)
    with _dtype_policy(config.runtime.precision):
        keras.utils.set_random_seed(config.runtime.seed)
        splits = load_data(config, splits)
        strategy = make_strategy(config.runtime.strategy)
        with strategy.scope():
            model, loaded = build_model(config, splits.info)
        phases = finetune.phases(config, model)
        batches = make_batches(config, splits, model)
        prepare_run_dir(run_dir, config)
        cb.write_image_grid(str(run_dir / "tensorboard" / "train"), _sample(config, splits))
        start = time.perf_counter()
        stats, history, phase_records = fit(model, config, phases, batches, strategy, run_dir)
        wall = time.perf_counter() - start
        test = evaluate(model, batches, config)
        model.save_weights(str(run_dir / "checkpoints" / "last.weights.h5"))
        version_dir = export_model(model, config, splits.info, export_root)
    metrics = Metrics(
        model=config.model.name,
        dataset=splits.info.name,
        class_names=list(splits.info.class_names),
        test_top1=_metric(test, "top1"),
        test_top5=_metric(test, "top5"),
        validation_top1=float(_metric(history, "val_top1")),
        parameters=model.count_params(),
        trainable_parameters=sum(int(tf.size(w)) for w in model.trainable_weights),
        epochs=config.schedule.epochs,
        steps_per_epoch=batches.steps_per_epoch,
        image_size=config.data.image_size,
        wall_time_seconds=round(wall, 2),
        train_images_per_second=round(stats.images_per_second, 1),
        steady_images_per_second=_rounded(stats.steady_images_per_second),
        first_step_seconds=_rounded(next(iter(stats.first_step_seconds), None)),
        export_dir=str(version_dir) if version_dir else None,
        phases=phase_records,
        loaded=loaded.to_dict() if loaded else None,
    )
    write_results(run_dir, metrics)
    return RunResult(run_dir=run_dir, export_dir=version_dir, metrics=metrics, model=model)


@contextlib.contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def check_destinations(config: ml_collections.ConfigDict) -> tuple[Path, Path]:
    """The run directory and export root; refuses what would replace earlier work."""
    name = experiment.run_name(config)
    run_dir = Path(config.runtime.workdir) / name
    if run_dir.exists() and not config.runtime.overwrite:
        raise FileExistsError(
            f"Run directory '{run_dir}' already exists. Set another config.runtime.run_name, "
            f"or config.runtime.overwrite=true to replace it (SavedModels are kept either way)."
        )
    export_root = Path(config.export.dir) / name
    version = config.export.version
    if config.export.enabled and version is not None and (export_root / str(version)).exists():
        raise FileExistsError(
            f"'{export_root / str(version)}' already exists; pick another config.export.version "
            f"or leave it unset to take the next free one."
        )
    return run_dir, export_root


def load_data(config: ml_collections.ConfigDict, splits: data.Splits | None) -> data.Splits:
    """The dataset's raw splits, restricted to the configured classes and sizes."""
    d = config.data
    if splits is None:
        splits = data.load(d.name, data_dir=d.data_dir, seed=config.runtime.seed)
    return subsets.subset(
        splits,
        classes=subsets.parse_classes(d.classes),
        train_examples=d.train_examples,
        validation_examples=d.validation_examples,
        test_examples=d.test_examples,
    )


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default``: one device; ``mirrored``: data parallel over all local GPUs."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def build_model(
    config: ml_collections.ConfigDict, info: data.DatasetInfo
) -> tuple[keras.Model, Any]:
    """The configured model for ``info``'s classes, filled from the transfer source if any."""
    size = config.data.image_size
    model = models.get(config.model.name)(
        input_shape=(size, size, 3),
        classes=info.num_classes,
        dropout_rate=config.model.dropout,
        **finetune.builder_args(config),
    )
    loaded = finetune.load_source(model, config, info.class_names)
    if config.transfer.features_from:
        model = finetune.cut_after(
            model, config.transfer.features_from, info.num_classes, config.model.dropout
        )
    return model, loaded


def _one_hot(num_classes: int, outputs: int):
    def convert(images, labels):
        target = tf.one_hot(labels, num_classes)
        return images, target if outputs == 1 else (target,) * outputs

    return convert


def make_batches(
    config: ml_collections.ConfigDict, splits: data.Splits, model: keras.Model
) -> Batches:
    """Augmented, shuffled training batches and plain evaluation batches, as one-hot targets."""
    info, d = splits.info, config.data
    pipelines = data.make(
        splits,
        image_size=d.image_size,
        batch_size=d.batch_size,
        normalization=models.get(config.model.name).normalization,
        augmenter=_augmenter(config),
        seed=config.runtime.seed,
    )
    steps = math.ceil(info.num_examples["train"] / d.batch_size)
    steps = min(steps, config.schedule.steps_per_epoch or steps)
    to_targets = _one_hot(info.num_classes, len(model.outputs))

    def evaluation(split: str) -> tf.data.Dataset:
        ds = pipelines[split]
        if config.evaluate.max_batches:
            ds = ds.take(config.evaluate.max_batches)
        return ds.map(to_targets)

    return Batches(
        train=pipelines["train"].take(steps).map(to_targets).repeat(),
        train_plain=pipelines["train_plain"],
        validation=evaluation("validation"),
        test=evaluation("test"),
        steps_per_epoch=steps,
    )


def _augmenter(config: ml_collections.ConfigDict):
    return data.augment.build(config.augment.ops, config.data.image_size, seed=config.runtime.seed)


def _sample(config: ml_collections.ConfigDict, splits: data.Splits) -> tf.Tensor:
    return data.sample_images(
        splits, image_size=config.data.image_size, augmenter=_augmenter(config)
    )


def prepare_run_dir(run_dir: Path, config: ml_collections.ConfigDict) -> None:
    """A fresh run directory holding the resolved experiment as ``config.json``."""
    if run_dir.exists():
        shutil.rmtree(run_dir)  # check_destinations allowed it: overwrite is set
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / experiment.CONFIG_FILE).write_text(experiment.to_json(config))


def compile_for_phase(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    phase: finetune.Phase,
    steps_per_epoch: int,
) -> None:
    """Compiles ``model`` with the phase's optimiser; GoogLeNet's auxiliary heads weigh 0.3."""
    outputs = len(model.outputs)
    top_k = min(5, int(model.outputs[0].shape[-1]))
    metrics = [
        keras.metrics.CategoricalAccuracy(name="top1"),
        keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top5"),
    ]
    warmup = config.schedule.warmup_epochs
    if phase.epochs != config.schedule.epochs:  # a phase of several warms up within itself
        warmup = min(warmup, phase.epochs / 2)
    schedule = learning_rate_schedule(phase.learning_rate, phase.epochs, warmup, steps_per_epoch)
    factor = config.transfer.discriminative_lr
    multipliers = finetune.stage_lr_multipliers(model, factor) if factor != 1 else None
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.optim.label_smoothing)
    model.compile(
        optimizer=make_optimizer(config.optim, schedule, multipliers),
        loss=[loss] * outputs if outputs > 1 else loss,
        loss_weights=[1.0] + [AUX_LOSS_WEIGHT] * (outputs - 1) if outputs > 1 else None,
        metrics=[metrics] + [[]] * (outputs - 1) if outputs > 1 else metrics,
    )


def make_callbacks(
    model: keras.Model, config: ml_collections.ConfigDict, batches: Batches, run_dir: Path
) -> tuple[cb.PreciseBatchNorm, cb.EpochStats, list[keras.callbacks.Callback]]:
    """Precise BN, throughput, TensorBoard and the last/best checkpoints, in that order."""
    val_key = "val_top1" if len(model.outputs) == 1 else "val_predictions_top1"
    checkpoints = run_dir / "checkpoints"
    precise_bn = cb.PreciseBatchNorm(batches.train_plain, config.evaluate.bn_recalibration_batches)
    stats = cb.EpochStats(config.data.batch_size)
    return (
        precise_bn,
        stats,
        [
            precise_bn,
            stats,  # before TensorBoard, which logs what it adds
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), update_freq="epoch"),
            keras.callbacks.ModelCheckpoint(
                str(checkpoints / "last.weights.h5"), save_weights_only=True
            ),
            keras.callbacks.ModelCheckpoint(
                str(checkpoints / "best.weights.h5"),
                save_weights_only=True,
                save_best_only=True,
                monitor=val_key,
                mode="max",
            ),
        ],
    )


def fit(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    phases: list[finetune.Phase],
    batches: Batches,
    strategy: tf.distribute.Strategy,
    run_dir: Path,
) -> tuple[cb.EpochStats, dict[str, list[float]], list[dict[str, Any]]]:
    """Trains phase after phase; returns throughput, the history and per-phase records."""
    _, stats, callbacks = make_callbacks(model, config, batches, run_dir)
    current = {"phase": 1}
    if len(phases) > 1:  # a `phase` curve in TensorBoard, logged before TensorBoard runs
        callbacks.insert(
            2,
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: logs.update(phase=float(current["phase"]))
            ),
        )
    history: dict[str, list[float]] = {}
    records: list[dict[str, Any]] = []
    done = 0
    for index, phase in enumerate(phases, start=1):
        current["phase"] = index
        if finetune.is_transfer(config):
            records.append(
                finetune.enter_phase(model, phase, index, config.transfer.discriminative_lr)
            )
            (run_dir / "trainable.json").write_text(json.dumps(records, indent=2))
        with strategy.scope():
            compile_for_phase(model, config, phase, batches.steps_per_epoch)
        result = model.fit(
            batches.train,
            initial_epoch=done,
            epochs=done + phase.epochs,
            steps_per_epoch=batches.steps_per_epoch,
            validation_data=batches.validation,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles
            verbose=2,
        )
        for key, values in result.history.items():
            history.setdefault(
                key.removeprefix("predictions_").replace("val_predictions_", "val_"), []
            ).extend(values)
        done += phase.epochs
    return stats, history, records


def evaluate(model: keras.Model, batches: Batches, config: ml_collections.ConfigDict) -> dict:
    """Test metrics, after re-estimating batch-norm statistics as every evaluation does."""
    cb.recalibrate_batchnorm(model, batches.train_plain, config.evaluate.bn_recalibration_batches)
    return model.evaluate(batches.test, return_dict=True, verbose=0)


def export_model(
    model: keras.Model, config: ml_collections.ConfigDict, info: data.DatasetInfo, root: Path
) -> Path | None:
    if not config.export.enabled:
        return None
    return export.export(
        model,
        root,
        class_names=info.class_names,
        normalization=models.get(config.model.name).normalization,
        version=config.export.version,
        metadata={"model": config.model.name, "run": experiment.run_name(config)},
    )


def write_results(run_dir: Path, metrics: Metrics) -> None:
    (run_dir / "metrics.json").write_text(json.dumps(dataclasses.asdict(metrics), indent=2))


def _metric(logs: dict, name: str) -> float:
    """A final metric from Keras logs or a history; multi-output models prefix the name."""
    for key in (name, f"predictions_{name}"):
        if key in logs:
            value = logs[key]
            return float(value[-1] if isinstance(value, list) else value)
    raise KeyError(name)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
