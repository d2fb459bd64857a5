"""One training run: data -> model -> fit -> test -> SavedModel, all in a run directory.

:func:`train` reads an experiment config (:mod:`kimnet.experiment`) and runs it as
a sequence of named steps. ``runs/<run name>/`` receives ``config.json`` (the
resolved experiment, which reruns it), ``tensorboard/``, ``checkpoints/`` (last and
best weights), ``trainable.json`` when the run transfers, and ``metrics.json``; the
classifier is exported to ``<export.dir>/<run name>/<version>/``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import ml_collections
import tensorflow as tf

from kimnet import console, data, evaluation, experiment, export, fileio, models
from kimnet.errors import InputError, TrainingDiverged, TrainingStopped, format_bytes
from kimnet.training import callbacks as cb
from kimnet.training import distribute, precision, state
from kimnet.training.optim import learning_rate_schedule, make_optimizer
from kimnet.transfer import finetune, subsets

# Settings a resumed run may change: they do not change what it trains.
RESUME_MAY_CHANGE = ("runtime.overwrite", "runtime.progress", "runtime.tensorboard_every")
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
    validation_top1: float | None  # None when a resumed run had no epoch left to train
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
    resumed_from_epoch: int | None = None
    precision: str | None = None  # the dtype policy used (runtime.precision may say auto)
    status: str = "finished"
    # Top-1 on un-augmented training images in evaluation mode (see train_top1()).
    train_top1: float | None = None
    workers: int = 1  # processes that trained it (runtime.strategy=multi_worker)

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
    """Runs the experiment ``config``; ``splits``: already loaded data (studies).

    An interrupted run with the same name and experiment is resumed from its last
    checkpoint. Raises :class:`~kimnet.errors.TrainingDiverged` on a NaN loss and
    :class:`~kimnet.errors.TrainingStopped` after SIGINT/SIGTERM (state saved).
    """
    config = finetune.resolve(experiment.validate(config))
    # First: the multi-worker strategy sets up the runtime's collectives, before any op.
    strategy = distribute.make_strategy(config.runtime.strategy)
    who = distribute.worker(strategy)
    if who.count > 1:
        print(f"Training as the {who} (tf.distribute, TF_CONFIG).", flush=True)
    run_dir, export_root = check_destinations(config)
    fresh = bool(config.runtime.overwrite)
    with distribute.own_destinations(who, run_dir, export_root, fresh=fresh) as (
        run_dir,
        export_root,
    ):
        return _train_in(config, splits, strategy, who.count, run_dir, export_root)


def _train_in(
    config: ml_collections.ConfigDict,
    splits: data.Splits | None,
    strategy: tf.distribute.Strategy,
    workers: int,
    run_dir: Path,
    export_root: Path,
) -> RunResult:
    """:func:`train` once the strategy and this process's destinations are known."""
    with _dtype_policy(config.runtime.precision) as policy:
        keras.utils.set_random_seed(config.runtime.seed)
        splits = load_data(config, splits)
        with strategy.scope():
            model, loaded = build_model(config, splits.info)
        check_batch_size(config, model, splits.info)
        phases = finetune.phases(config, model)
        batches = make_batches(config, splits, model, workers)
        with state.run_lock(run_dir), state.stop_requests() as stop:
            resumed = prepare_run_dir(run_dir, config)
            if resumed is None:
                images, labels = _sample(config, splits)
                cb.write_image_grid(str(run_dir / "tensorboard" / "train"), images, labels)
            start = time.perf_counter()
            progress = fit(model, config, phases, batches, strategy, run_dir, resumed, stop)
            wall = time.perf_counter() - start
            end_early(progress.checkpointer, config, run_dir)
            progress.precise_bn.recalibrate(model)
            distribute.check_same_weights(strategy, model.get_weights())
            test = evaluate(model, config, splits.info, batches, run_dir)
            top1_on_train = train_top1(model, batches)
            # The last checkpoint holds the statistics the test used, like the export.
            with fileio.atomic_path(run_dir / "checkpoints" / state.LAST) as tmp:
                model.save_weights(str(tmp))
            version_dir = export_model(model, config, splits.info, export_root)
            metrics = _metrics(config, splits.info, model, batches, progress, test, wall)
            metrics.export_dir = str(version_dir) if version_dir else None
            metrics.loaded = loaded.to_dict() if loaded else None
            metrics.resumed_from_epoch = resumed.epoch if resumed else None
            metrics.precision = policy.policy
            metrics.train_top1 = top1_on_train
            metrics.workers = workers
            write_results(run_dir, metrics)
    return RunResult(run_dir=run_dir, export_dir=version_dir, metrics=metrics, model=model)


def _metrics(config, info, model, batches, progress, test, wall) -> Metrics:
    stats = progress.stats
    total, trainable = models.count_params(model)
    return Metrics(
        model=config.model.name,
        dataset=info.name,
        class_names=list(info.class_names),
        test_top1=test["top1"],
        test_top5=test["top5"],
        validation_top1=progress.history.get("val_top1", [None])[-1],
        parameters=total,
        trainable_parameters=trainable,
        epochs=config.schedule.epochs,
        steps_per_epoch=batches.steps_per_epoch,
        image_size=config.data.image_size,
        wall_time_seconds=round(wall, 2),
        train_images_per_second=round(stats.images_per_second, 1),
        steady_images_per_second=_rounded(stats.steady_images_per_second),
        first_step_seconds=_rounded(next(iter(stats.first_step_seconds), None)),
        export_dir=None,
        phases=progress.records,
    )


def end_early(checkpointer: state.Checkpointer, config, run_dir: Path) -> None:
    """Raises when training diverged (the run is marked failed) or a signal stopped it."""
    last = run_dir / "checkpoints" / state.LAST
    if checkpointer.diverged:
        message = (
            f"Training diverged: {checkpointer.diverged}. Nothing was exported; try a lower "
            f"config.optim.learning_rate (now {config.optim.learning_rate:g})."
            + (f" The last good checkpoint is {last}." if last.is_file() else "")
        )
        fileio.write_json_atomic(run_dir / "metrics.json", {"status": "failed", "error": message})
        raise TrainingDiverged(message)
    if checkpointer.stopped:
        number = checkpointer.stop.signal_number
        cause = signal.Signals(number).name if number else "another worker's stop request"
        raise TrainingStopped(
            f"Stopped by {cause} at epoch {checkpointer.epoch + 1}, step "
            f"{checkpointer.step}; the state is in {last}. Run the same command again to resume.",
            number or signal.SIGTERM,
        )


@contextlib.contextmanager
def _dtype_policy(requested: str) -> Iterator[precision.Choice]:
    choice = precision.choose(requested)
    print(choice, flush=True)
    keras.mixed_precision.set_global_policy(choice.policy)
    try:
        yield choice
    finally:
        keras.mixed_precision.set_global_policy("float32")


def check_destinations(config: ml_collections.ConfigDict) -> tuple[Path, Path]:
    """The run directory and export root; refuses what would replace or mix earlier work.

    An existing run directory is resumed when it holds an unfinished run of the same
    experiment; a finished run, or another experiment, needs ``runtime.overwrite``.
    """
    name = experiment.run_name(config)
    run_dir = Path(config.runtime.workdir) / name
    if run_dir.exists() and not config.runtime.overwrite:
        _check_resumable(run_dir, config)
    export_root = Path(config.export.dir) / name
    version = config.export.version
    if config.export.enabled and version is not None and (export_root / str(version)).exists():
        raise FileExistsError(
            f"'{export_root / str(version)}' already exists; pick another config.export.version "
            f"or leave it unset to take the next free one."
        )
    return run_dir, export_root


def _check_resumable(run_dir: Path, config: ml_collections.ConfigDict) -> None:
    results = run_dir / "metrics.json"
    if results.is_file() and json.loads(results.read_text()).get("status") != "failed":
        raise FileExistsError(
            f"Run directory '{run_dir}' holds a finished run. Set another "
            f"config.runtime.run_name, or config.runtime.overwrite=true to replace it "
            f"(SavedModels are kept either way)."
        )
    saved = run_dir / experiment.CONFIG_FILE
    if saved.is_file():
        # Fields added to the schema since take their defaults; how the run reports
        # progress may change between the two commands.
        before = dict(experiment.flatten(experiment.load(str(saved)).to_dict()))
        now = dict(experiment.flatten(config.to_dict()))
        differ = sorted(k for k in now if k not in RESUME_MAY_CHANGE and before[k] != now[k])
        if differ:
            raise InputError(
                f"Run directory '{run_dir}' holds an unfinished run of another experiment "
                f"(it differs in {', '.join(differ[:4])}); set another config.runtime.run_name, "
                f"or config.runtime.overwrite=true to start afresh."
            )


def load_data(config: ml_collections.ConfigDict, splits: data.Splits | None) -> data.Splits:
    """The dataset's raw splits, restricted to the configured classes and sizes."""
    d = config.data
    if splits is None:
        splits = data.load(
            d.name, data_dir=d.data_dir, seed=config.runtime.seed, skip_bad_images=d.skip_bad_images
        )
    return subsets.subset(
        splits,
        classes=subsets.parse_classes(d.classes),
        train_examples=d.train_examples,
        validation_examples=d.validation_examples,
        test_examples=d.test_examples,
    )


# Training keeps each layer's output for the backward pass, plus its gradient and
# workspace: about three float32 copies of every activation per image.
ACTIVATION_COPIES = 3
MEMORY_SHARE = 0.8


def training_bytes(model: keras.Model, batch_size: int) -> int:
    """An estimate of the memory one training step of ``batch_size`` images needs."""
    per_image = sum(
        math.prod(int(d) for d in tensor.shape[1:] if d is not None)
        for layer in model.layers
        for tensor in keras.tree.flatten(layer.output)
    )
    weights = 4 * model.count_params() * 4  # weights, gradients and two optimizer slots
    return ACTIVATION_COPIES * 4 * per_image * batch_size + weights


def check_batch_size(
    config: ml_collections.ConfigDict, model: keras.Model, info: data.DatasetInfo
) -> None:
    """Refuses a batch larger than the training split or than memory can hold."""
    batch, images = config.data.batch_size, info.num_examples["train"]
    if batch > images:
        raise InputError(
            f"config.data.batch_size={batch} is larger than the {images} training images; "
            f"use at most {images}."
        )
    need = training_bytes(model, batch)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > MEMORY_SHARE * memory:
        fits = max(1, int(batch * MEMORY_SHARE * memory / need))
        raise InputError(
            f"config.data.batch_size={batch} needs about {format_bytes(need)} for "
            f"{config.model.name} at {config.data.image_size} px, more than this machine's "
            f"{format_bytes(memory)} of memory allows; use at most about {fits}."
        )


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
        # Mixing augmentations (mixup, cutmix) already give soft one-hot targets.
        target = labels if labels.dtype.is_floating else tf.one_hot(labels, num_classes)
        return images, target if outputs == 1 else (target,) * outputs

    return convert


def make_batches(
    config: ml_collections.ConfigDict, splits: data.Splits, model: keras.Model, workers: int = 1
) -> Batches:
    """Augmented, shuffled training batches and plain evaluation batches, as one-hot targets;
    with several ``workers``, what ``fit`` and ``evaluate`` read is shared out by batch."""
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

    shard = distribute.shard_by_data if workers > 1 else (lambda ds: ds)
    return Batches(
        train=shard(pipelines["train"].take(steps).map(to_targets).repeat()),
        # Precise BN reads it directly on every worker alike (sharding applies only where
        # Keras distributes a dataset, as evaluate does for train_top1).
        train_plain=shard(pipelines["train_plain"]),
        validation=shard(evaluation("validation")),
        test=shard(evaluation("test")),
        steps_per_epoch=steps,
    )


def _augmenter(config: ml_collections.ConfigDict):
    return data.augment.build(config.augment.ops, config.data.image_size, seed=config.runtime.seed)


def _sample(
    config: ml_collections.ConfigDict, splits: data.Splits, count: int = 16
) -> tuple[tf.Tensor, list[str]]:
    """``count`` augmented training images, drawn in turn from each class of a shuffled
    stretch of the training split, and their class names."""
    names = splits.info.class_names
    pool = splits.train.take(50_000).shuffle(2_048, seed=config.runtime.seed).take(1_024)
    by_class: dict[int, list] = {}
    for image, label in pool.as_numpy_iterator():
        by_class.setdefault(int(label), []).append(image)
    picked = []
    while len(picked) < count and any(by_class.values()):
        for label in sorted(by_class):
            if by_class[label] and len(picked) < count:
                picked.append((by_class[label].pop(0), label))
    size = config.data.image_size
    images = tf.stack([data.resize(tf.constant(image), size) for image, _ in picked])
    augmenter = _augmenter(config)
    if augmenter is not None:
        images = augmenter(images, training=True)
    return images, [names[label] for _, label in picked]


def prepare_run_dir(run_dir: Path, config: ml_collections.ConfigDict) -> state.State | None:
    """The state to resume from, or a fresh run directory holding ``config.json``."""
    checkpoints = run_dir / "checkpoints"
    resumed = None if config.runtime.overwrite else state.State.read(checkpoints)
    if resumed is not None:
        print(
            f"Resuming {run_dir} after epoch {resumed.epoch}"
            + (f", step {resumed.step}" if resumed.step else "")
            + f" ({checkpoints / state.LAST}).",
            flush=True,
        )
        return resumed
    if run_dir.exists():  # overwrite, or killed before its first checkpoint
        shutil.rmtree(run_dir)
    checkpoints.mkdir(parents=True)
    fileio.write_text_atomic(run_dir / experiment.CONFIG_FILE, experiment.to_json(config))
    return None


def compile_for_phase(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    phase: finetune.Phase,
    steps_per_epoch: int,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Compiles ``model`` with the phase's optimiser (returns its learning-rate schedule);
    GoogLeNet's auxiliary heads weigh 0.3."""
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
        jit_compile={"true": True, "false": False}.get(config.runtime.jit_compile, "auto"),
    )
    return schedule


def make_callbacks(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    batches: Batches,
    run_dir: Path,
    checkpointer: state.Checkpointer,
) -> tuple[cb.EpochStats, cb.PreciseBatchNorm, list[keras.callbacks.Callback]]:
    """Precise BN, throughput, TensorBoard and the checkpointer, in that order."""
    precise_bn = cb.PreciseBatchNorm(batches.train_plain, config.evaluate.bn_recalibration_batches)
    stats = cb.EpochStats(config.data.batch_size)
    tensorboard = keras.callbacks.TensorBoard(
        str(run_dir / "tensorboard"),
        update_freq=config.runtime.tensorboard_every or "epoch",
        profile_batch=config.runtime.profile_steps or 0,
    )
    history = keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True)
    # EpochStats (and the test curve) before TensorBoard and the CSV log, which record
    # what they add.
    reporters: list[keras.callbacks.Callback] = [stats]
    if config.evaluate.test_every_epoch:
        elapsed = last_logged(run_dir / "history.csv", "elapsed_seconds")
        reporters.append(cb.TestCurve(batches.test, precise_bn, elapsed))
    return stats, precise_bn, [precise_bn, *reporters, tensorboard, history, checkpointer]


def last_logged(history_csv: Path, column: str) -> float:
    """``column`` of the last epoch in ``history_csv`` (0 without one): where a resumed
    run's running total continues from."""
    if not history_csv.is_file():
        return 0.0
    with history_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1].get(column) or 0) if rows else 0.0


@dataclasses.dataclass
class Progress:
    """What :func:`fit` leaves behind: throughput, the history, per-phase records."""

    stats: cb.EpochStats
    checkpointer: state.Checkpointer
    precise_bn: cb.PreciseBatchNorm
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, result: keras.callbacks.History) -> None:
        for key, values in result.history.items():
            key = key.replace("val_predictions_", "val_").removeprefix("predictions_")
            self.history.setdefault(key, []).extend(values)

    @property
    def ended_early(self) -> bool:
        return bool(self.checkpointer.diverged or self.checkpointer.stopped)


def fit(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    phases: list[finetune.Phase],
    batches: Batches,
    strategy: tf.distribute.Strategy,
    run_dir: Path,
    resumed: state.State | None,
    stop: state.StopRequest,
) -> Progress:
    """Trains phase after phase from where ``resumed`` left off, until done or stopped."""
    checkpoints = run_dir / "checkpoints"
    val_key = "val_top1" if len(model.outputs) == 1 else "val_predictions_top1"
    begin = resumed or state.State()
    agree = distribute.agreement(strategy)
    checkpointer = state.Checkpointer(checkpoints, val_key, stop, begin, agree)
    stats, precise_bn, callbacks = make_callbacks(model, config, batches, run_dir, checkpointer)
    progress = Progress(stats, checkpointer, precise_bn, records=_earlier_records(run_dir, resumed))
    current = {"phase": 1}
    if len(phases) > 1:  # a `phase` curve in TensorBoard, logged before TensorBoard runs
        callbacks.insert(
            2,
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: logs.update(phase=float(current["phase"]))
            ),
        )
    if resumed is not None and resumed.epoch >= sum(phase.epochs for phase in phases):
        model.load_weights(str(checkpoints / state.LAST))  # killed after training: test, export
        return progress
    done = 0
    for index, phase in enumerate(phases, start=1):
        start, end, done = done, done + phase.epochs, done + phase.epochs
        if end <= begin.epoch:
            continue  # finished before the interruption
        first = max(start, begin.epoch)
        at_phase_start = resumed is not None and first == start and not begin.step
        if at_phase_start:  # before compiling: the weights only, the phase's optimizer is new
            model.load_weights(str(checkpoints / state.LAST))
        current["phase"] = index
        if finetune.is_transfer(config):
            record = finetune.enter_phase(model, phase, index, config.transfer.discriminative_lr)
            earlier = [r for r in progress.records if r["phase"] < index]  # not a resumed one
            progress.records = [*earlier, record]
            fileio.write_json_atomic(run_dir / "trainable.json", progress.records)
        with strategy.scope():  # the optimizer's variables are the strategy's too
            stats.schedule = compile_for_phase(model, config, phase, batches.steps_per_epoch)
            if resumed is not None and not at_phase_start:
                state.restore(model, checkpoints)  # within a phase: its optimizer's state too
        resumed = None
        verbose = console.progress_verbosity(config.runtime.progress)
        _fit_epochs(model, batches, callbacks, progress, first, end, begin.step, verbose)
        begin = state.State()
        if progress.ended_early:
            break
    return progress


def _fit_epochs(
    model, batches, callbacks, progress, first: int, end: int, skip: int, verbose: int
) -> None:
    """Epochs ``first`` .. ``end - 1``; the first without its ``skip`` steps already done."""
    common = dict(
        validation_data=batches.validation, callbacks=callbacks, shuffle=False, verbose=verbose
    )
    if skip and first < end:
        progress.add(
            model.fit(
                batches.train,
                initial_epoch=first,
                epochs=first + 1,
                steps_per_epoch=batches.steps_per_epoch - skip,
                **common,
            )
        )
        first += 1
        if progress.ended_early:
            return
    if first < end:
        progress.add(
            model.fit(
                batches.train,
                initial_epoch=first,
                epochs=end,
                steps_per_epoch=batches.steps_per_epoch,
                **common,
            )
        )


def _earlier_records(run_dir: Path, resumed: state.State | None) -> list[dict[str, Any]]:
    path = run_dir / "trainable.json"
    if resumed is None or not path.is_file():
        return []
    return json.loads(path.read_text())


def train_top1(model: keras.Model, batches: Batches) -> float:
    """Top-1 on the plain (un-augmented, unshuffled) training batches in evaluation mode,
    on as many batches as the test pass (so at most ``evaluate.max_batches``): the
    training side of the generalisation gap, at the cost of a second test pass."""
    count = int(batches.test.cardinality())
    plain = batches.train_plain.take(count) if count > 0 else batches.train_plain
    outputs = _one_hot(int(model.outputs[0].shape[-1]), len(model.outputs))
    return cb.metric(model.evaluate(plain.map(outputs), return_dict=True, verbose=0), "top1")


def evaluate(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    info: data.DatasetInfo,
    batches: Batches,
    run_dir: Path,
) -> dict[str, Any]:
    """The test split's report in one pass: ``report-test/`` (per-class scores, confusion
    matrix, worst mistakes), the same in TensorBoard, and ``curves.png`` from
    ``history.csv``. Batch-norm statistics must be recalibrated, as for every evaluation."""
    report = evaluation.evaluate_model(
        model,
        batches.test,
        class_names=list(info.class_names),
        normalization=models.get(config.model.name).normalization,
        out_dir=run_dir / "report-test",
        log_dir=run_dir / "tensorboard" / "test",
        step=config.schedule.epochs - 1,  # the epoch index of Keras' own curves
        metadata={"model": config.model.name, "dataset": info.name, "split": "test"},
    )
    if (run_dir / "history.csv").is_file():
        evaluation.plot_curves(run_dir / "history.csv", run_dir / "curves.png")
    return report


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
    fileio.write_json_atomic(run_dir / "metrics.json", dataclasses.asdict(metrics))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
