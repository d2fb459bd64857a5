"""Fine-tuning runs: a pretrained source, a freezing strategy or schedule, one call.

:func:`finetune` is :func:`kimnet.training.train` with hooks: the data can be a
class/size subset, the model is built, loaded from the source (a new head when
the class count differs) and optionally cut after a stage (``features_from``),
and training is split into phases that each set what is trainable, print and
record it (``trainable.json`` in the run directory), and recompile with their
own learning rate (optionally discriminative: earlier stages learn more slowly).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras
from absl import logging

from kimnet import data, models
from kimnet.errors import InputError
from kimnet.models.stages import HEAD, set_stages, stage_names, stage_output
from kimnet.models.stages import stages as stage_map
from kimnet.training import loop
from kimnet.training.config import TrainConfig
from kimnet.training.optim import learning_rate_schedule, make_optimizer
from kimnet.transfer import freezing, schedule, sources, subsets


@dataclasses.dataclass
class TransferConfig:
    """How a run transfers: the source, what trains when, and the target subset.

    Attributes:
        weights: ``"imagenet"`` or the path of a ``.weights.h5`` file.
        init_from: A kimnet run directory (``runs/<name>``) whose final weights are loaded.
        freeze: Freezing strategy for the whole run (:mod:`kimnet.transfer.freezing`);
            ``None``: ``none``, or ``backbone`` with ``features_from``. Exclusive with
            ``schedule``.
        schedule: Gradual unfreezing phases (:mod:`kimnet.transfer.schedule`); sets the epochs.
        unfreeze_lr_scale: Learning-rate factor of phases in which backbone stages train.
        discriminative_lr: Each stage below the head learns this factor more slowly than
            the next one (head x1, last stage x f, the one before x f^2, ...); 1 is off.
        features_from: Cut the backbone after this stage and train a head on its features.
        new_head: Initialise the head afresh even when the source's fits (a new task with
            the same class count); it always is when the class count differs.
        classes: Keep only these class indices of the dataset (relabelled in order).
        train_examples / validation_examples / test_examples: Keep the first N of a split.
    """

    weights: str | None = None
    init_from: str | None = None
    freeze: str | None = None
    schedule: str | None = None
    unfreeze_lr_scale: float = 0.1
    discriminative_lr: float = 1.0
    features_from: str | None = None
    new_head: bool = False
    classes: list[int] | None = None
    train_examples: int | None = None
    validation_examples: int | None = None
    test_examples: int | None = None

    def validate(self) -> None:
        if self.weights and self.init_from:
            raise InputError("Pass either --weights or --init_from, not both.")
        if self.freeze and self.schedule:
            raise InputError(
                "Pass either --freeze (one phase) or --schedule (phases), not both; a schedule "
                "says what trains in each phase."
            )
        if not 0 < self.discriminative_lr <= 1:
            raise InputError(f"discriminative_lr must be in (0, 1], got {self.discriminative_lr}.")
        if not self.unfreeze_lr_scale > 0:
            raise InputError(f"unfreeze_lr_scale must be positive, got {self.unfreeze_lr_scale}.")


class _ScaledLearningRate:
    """Optimizer mixin: per-variable learning-rate multipliers (discriminative rates)."""

    _lr_multipliers: dict = {}

    def set_lr_multipliers(self, pairs) -> None:
        self._lr_multipliers = {self._var_key(v): float(m) for v, m in pairs if m != 1.0}

    def update_step(self, gradient, variable, learning_rate):
        scale = self._lr_multipliers.get(self._var_key(variable))
        if scale is not None:
            learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)


class ScaledAdamW(_ScaledLearningRate, keras.optimizers.AdamW):
    pass


class ScaledSGD(_ScaledLearningRate, keras.optimizers.SGD):
    pass


def stage_lr_multipliers(model: keras.Model, factor: float) -> dict[str, float]:
    """``{stage: factor ** (stages between it and the head)}``; the head gets 1."""
    names = stage_names(model)
    return {stage: factor ** (len(names) - 1 - i) for i, stage in enumerate(names)}


def _discriminative_optimizer(
    config: TrainConfig, model: keras.Model, steps_per_epoch: int, factor: float
) -> keras.optimizers.Optimizer:
    schedule_ = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "sgd":
        optimizer = ScaledSGD(
            schedule_, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay
        )
    else:
        optimizer = ScaledAdamW(schedule_, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    multipliers = stage_lr_multipliers(model, factor)
    optimizer.set_lr_multipliers(
        (variable, multipliers[stage])
        for stage, layers in stage_map(model).items()
        for layer in layers
        for variable in layer.trainable_weights
    )
    return optimizer


def cut_after(model: keras.Model, stage: str, num_classes: int, dropout: float) -> keras.Model:
    """A model of ``model``'s layers up to ``stage`` and a new pooled classifier head.

    The stem and stages up to ``stage`` keep their (pretrained) weights and the
    stage map; the head is global average pooling, dropout and ``predictions``.
    """
    names = stage_names(model)[:-1]
    if stage not in names:
        raise InputError(
            f"--features_from: {model.name} has no stage '{stage}'. Its stages: {', '.join(names)}."
        )
    x = stage_output(model, stage)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="predictions"
    )(x)
    cut = keras.Model(model.inputs, outputs, name=f"{model.name}_to_{stage}")
    kept = names[: names.index(stage) + 1]
    grouped = stage_map(model)
    set_stages(cut, [(s, grouped[s][-1].name) for s in kept])
    return cut


class FinetuneHooks(loop.TrainHooks):
    """The :class:`kimnet.training.loop.TrainHooks` of a fine-tuning run."""

    def __init__(self, transfer: TransferConfig, splits: data.Splits | None = None):
        self.transfer = transfer
        self._splits = splits
        self.load_report: sources.LoadReport | None = None
        self.phase_reports: list[dict[str, Any]] = []
        super().__init__(
            load_data=self._load_data,
            build_model=self._build_model,
            phases=self._phases,
            extra_config={"transfer": dataclasses.asdict(transfer)},
        )

    def _load_data(self, config: TrainConfig) -> data.Splits:
        t = self.transfer
        splits = self._splits or data.load(
            config.dataset, data_dir=config.data_dir, seed=config.seed
        )
        return subsets.subset(
            splits,
            classes=t.classes,
            train_examples=t.train_examples,
            validation_examples=t.validation_examples,
            test_examples=t.test_examples,
        )

    def _build_model(self, config: TrainConfig, num_classes: int):
        t = self.transfer
        model, spec = loop.build_model(config, num_classes)
        if t.init_from:
            self.load_report = sources.load_run(model, t.init_from, new_head=t.new_head)
        elif t.weights == "imagenet":
            kwargs = dict(config.model_args)
            if config.use_small_input():
                kwargs.setdefault("small_input", True)

            def reference():
                return spec(
                    include_top=False,
                    weights="imagenet",
                    input_shape=(config.image_size, config.image_size, 3),
                    **kwargs,
                )

            self.load_report = sources.load_imagenet(model, spec, reference)
        elif t.weights:
            self.load_report = sources.load_file(model, t.weights, new_head=t.new_head)
        if self.load_report is not None:
            print(self.load_report.summary(), flush=True)
            self.extra_config["loaded"] = self.load_report.to_dict()
        if t.features_from:
            model = cut_after(model, t.features_from, num_classes, config.dropout)
        # Bad strategy or schedule names fail here, before the run directory exists.
        self._specs = self._phase_specs(config, model)
        return model, spec

    def _phase_specs(self, config: TrainConfig, model: keras.Model) -> list[schedule.PhaseSpec]:
        t = self.transfer
        if t.schedule:
            return schedule.parse(t.schedule, stage_names(model))
        strategy = t.freeze or ("backbone" if t.features_from else "none")
        freezing.frozen_stages(model, strategy)  # validates the name
        return [schedule.PhaseSpec(strategy, config.epochs, config.learning_rate)]

    def _phases(self, config: TrainConfig, model: keras.Model) -> list[loop.Phase]:
        t = self.transfer
        phases = []
        for index, spec in enumerate(self._specs, start=1):
            if t.schedule:
                trains_backbone = spec.first_trainable != HEAD
                lr = spec.learning_rate or config.learning_rate * (
                    t.unfreeze_lr_scale if trains_backbone else 1.0
                )
            else:
                lr = config.learning_rate
            phases.append(
                loop.Phase(
                    name=spec.name,
                    epochs=spec.epochs,
                    setup=self._setup(index, spec, lr),
                    make_optimizer=self._optimizer(config, spec.epochs, lr),
                )
            )
        return phases

    def _setup(self, index: int, spec: schedule.PhaseSpec, lr: float):
        def setup(model: keras.Model, run_dir: Path) -> None:
            if self.transfer.schedule:
                freezing.set_trainable_from(model, spec.first_trainable)
            else:
                freezing.apply(model, spec.first_trainable)
            report = freezing.trainable_report(model)
            title = f"Phase {index} '{spec.name}': {spec.epochs} epochs at learning rate {lr:g}" + (
                f" (x{self.transfer.discriminative_lr:g} per stage below the head)"
                if self.transfer.discriminative_lr != 1
                else ""
            )
            print(freezing.format_report(report, title), flush=True)
            logging.info("%s", title)
            self.phase_reports.append(
                {
                    "phase": index,
                    "name": spec.name,
                    "epochs": spec.epochs,
                    "learning_rate": lr,
                    "stages": [dataclasses.asdict(row) for row in report],
                }
            )
            (run_dir / "trainable.json").write_text(json.dumps(self.phase_reports, indent=2))

        return setup

    def _optimizer(self, config: TrainConfig, epochs: int, lr: float):
        phase_config = dataclasses.replace(
            config,
            epochs=epochs,
            learning_rate=lr,
            warmup_epochs=min(config.warmup_epochs, epochs / 2),
        )
        factor = self.transfer.discriminative_lr

        def make(model: keras.Model, steps_per_epoch: int) -> keras.optimizers.Optimizer:
            if factor == 1:
                return make_optimizer(phase_config, steps_per_epoch)
            return _discriminative_optimizer(phase_config, model, steps_per_epoch, factor)

        return make


def prepare(config: TrainConfig, transfer: TransferConfig) -> TrainConfig:
    """Checks the settings that need no model, and resolves those a source run decides.

    With ``init_from``: the run must exist and have trained ``config.model``; its
    model arguments are used. With ``schedule``: the epochs are the phases' sum.
    """
    transfer.validate()
    models.get(config.model)
    changes: dict[str, Any] = {}
    if transfer.init_from:
        source = sources.read_run(transfer.init_from)
        changes["model_args"] = sources.check_run_architecture(
            source, transfer.init_from, config.model, config.model_args
        )
    if transfer.schedule:
        # Stage names are checked against the built model; the syntax is checked here.
        names = [f"stage{i}" for i in range(1, 100)]
        specs = schedule.parse(transfer.schedule, ["stem", *names, "head"])
        changes["epochs"] = schedule.total_epochs(specs)
    config = dataclasses.replace(config, **changes)
    config.validate()
    return config


def finetune(
    config: TrainConfig, transfer: TransferConfig, splits: data.Splits | None = None
) -> loop.RunResult:
    """Trains ``config`` from the source ``transfer`` names; ``splits``: pre-loaded data."""
    config = prepare(config, transfer)
    hooks = FinetuneHooks(transfer, splits)
    result = loop.train(config, hooks)
    result.metrics["trainable_parameters_per_phase"] = [
        sum(row["trainable"] for row in phase["stages"]) for phase in hooks.phase_reports
    ]
    if hooks.load_report is not None:
        result.metrics["loaded"] = hooks.load_report.to_dict()
    (result.run_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    return result
