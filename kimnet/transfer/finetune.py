"""Transfer learning as steps of a run, read from the experiment's ``transfer`` section.

:func:`kimnet.training.train` calls these in order when a run transfers:
:func:`load_source` fills the built model from its source (a kimnet run, a
``.weights.h5`` file or ImageNet; a new head when the classes differ),
:func:`cut_after` optionally keeps only the stages up to ``features_from``, and
:func:`phases` splits the run into phases (one with ``freeze``, several with a
gradual-unfreezing ``schedule``), each of which :func:`enter_phase` sets up and
reports (``trainable.json``) before it is compiled with its own learning rate.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras
import ml_collections

from kimnet import experiment, models
from kimnet.errors import InputError
from kimnet.models.common import classifier_head
from kimnet.models.stages import HEAD, StagedModel, stage_names, stage_output
from kimnet.models.stages import stages as stage_map
from kimnet.transfer import freezing, pretrained, unfreezing


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of epochs compiled once: what trains and at which peak learning rate.

    ``first_trainable`` is a stage name or ``all`` for gradual unfreezing, and a
    freezing strategy (:mod:`kimnet.transfer.freezing`) otherwise.
    """

    name: str
    epochs: int
    learning_rate: float
    first_trainable: str = "none"
    gradual: bool = False


def is_transfer(config: ml_collections.ConfigDict) -> bool:
    """Whether the run has a source, freezes, unfreezes gradually or cuts the backbone."""
    t = config.transfer
    return bool(t.init_from or t.weights or t.freeze or t.schedule or t.features_from)


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The settings a transfer decides before anything is built: with ``init_from``, the
    source run's model and arguments; with ``schedule``, the epochs of its phases."""
    t = config.transfer
    changes: dict[str, Any] = {}
    if t.init_from:
        source = source_run(t.init_from)
        default_model = experiment.SCHEMA["model"]["name"].default
        if config.model.name not in (source.model.name, default_model):
            raise InputError(
                f"config.model.name={config.model.name!r}, but the source run "
                f"'{t.init_from}' trained {source.model.name}; leave the model unset to "
                f"fine-tune the source's."
            )
        changes["model.name"] = source.model.name
        changes["model.args"] = source.model.args
        changes["model.small_input"] = "true" if experiment.uses_small_input(source) else "false"
    if t.schedule:
        # The syntax is checked here; stage names once the model is built.
        any_stage = ["stem", *(f"stage{i}" for i in range(1, 100)), HEAD]
        changes["schedule.epochs"] = unfreezing.total_epochs(
            unfreezing.parse(t.schedule, any_stage)
        )
    return experiment.with_overrides(config, changes) if changes else config


def source_run(run_dir: str) -> ml_collections.ConfigDict:
    """The experiment of the finished kimnet run ``run_dir``."""
    path = Path(run_dir).expanduser()
    if not (path / experiment.CONFIG_FILE).is_file():
        raise InputError(
            f"config.transfer.init_from='{run_dir}' is not a kimnet run directory (no "
            f"{experiment.CONFIG_FILE})."
        )
    if not (path / pretrained.RUN_WEIGHTS).is_file():
        raise InputError(
            f"config.transfer.init_from='{run_dir}' has no final weights "
            f"({pretrained.RUN_WEIGHTS}); did the run finish?"
        )
    return experiment.load(str(path))


def _source_class_names(run_dir: str) -> list[str] | None:
    results = Path(run_dir).expanduser() / "metrics.json"
    if not results.is_file():
        return None
    return json.loads(results.read_text()).get("class_names")


def load_source(
    model: keras.Model,
    config: ml_collections.ConfigDict,
    class_names: tuple[str, ...],
) -> pretrained.LoadReport | None:
    """Loads the weights ``config.transfer`` names into ``model``; prints what it did."""
    t = config.transfer
    spec = models.get(config.model.name)
    if t.init_from:
        trained_on = _source_class_names(t.init_from)
        new_head = t.new_head or (trained_on is not None and trained_on != list(class_names))
        if new_head and not t.new_head:
            print(
                "The source run was trained on other classes; its classifier is replaced by a "
                "new head.",
                flush=True,
            )
        report = pretrained.load_run(model, t.init_from, new_head=new_head)
    elif t.weights == "imagenet":

        def reference() -> keras.Model:
            size = config.data.image_size
            return spec(
                include_top=False,
                weights="imagenet",
                input_shape=(size, size, 3),
                **builder_args(config),
            )

        report = pretrained.load_imagenet(model, spec, reference)
    elif t.weights:
        report = pretrained.load_file(model, t.weights, new_head=t.new_head)
    else:
        return None
    print(report.summary(), flush=True)
    return report


def builder_args(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The builder's extra arguments: ``model.args`` plus the small-input stem choice."""
    kwargs = experiment.model_args(config)
    if experiment.uses_small_input(config):
        kwargs.setdefault("small_input", True)
    return kwargs


def cut_after(model: keras.Model, stage: str, num_classes: int, dropout: float) -> keras.Model:
    """A model of ``model``'s layers up to ``stage`` and a new pooled classifier head.

    The stem and stages up to ``stage`` keep their (pretrained) weights and the
    stage map; the head is global average pooling, dropout and ``predictions``.
    """
    names = stage_names(model)[:-1]
    if stage not in names:
        raise InputError(
            f"config.transfer.features_from='{stage}': {model.name} has no such stage. Its "
            f"stages: {', '.join(names)}."
        )
    kept = names[: names.index(stage) + 1]
    grouped = stage_map(model)
    outputs = classifier_head(stage_output(model, stage), classes=num_classes, dropout_rate=dropout)
    return StagedModel(
        model.inputs,
        outputs,
        name=f"{model.name}_to_{stage}",
        stage_ends=[(s, grouped[s][-1].name) for s in kept],
    )


def phases(config: ml_collections.ConfigDict, model: keras.Model) -> list[Phase]:
    """The run's phases; bad stage or strategy names fail here, before the run directory."""
    t, lr = config.transfer, config.optim.learning_rate
    if t.schedule:
        specs = unfreezing.parse(t.schedule, stage_names(model))
        return [
            Phase(
                name=spec.name,
                epochs=spec.epochs,
                learning_rate=spec.learning_rate
                or lr * (t.unfreeze_lr_scale if spec.first_trainable != HEAD else 1.0),
                first_trainable=spec.first_trainable,
                gradual=True,
            )
            for spec in specs
        ]
    strategy = t.freeze or ("backbone" if t.features_from else "none")
    freezing.frozen_stages(model, strategy)  # validates the name
    return [Phase("train", config.schedule.epochs, lr, strategy)]


def enter_phase(model: keras.Model, phase: Phase, index: int, discriminative_lr: float) -> dict:
    """Sets what trains in ``phase``, prints the per-stage table and returns it as a record."""
    if phase.gradual:
        freezing.set_trainable_from(model, phase.first_trainable)
    else:
        freezing.apply(model, phase.first_trainable)
    report = freezing.trainable_report(model)
    title = f"Phase {index} '{phase.name}': {phase.epochs} epochs at learning rate " + (
        f"{phase.learning_rate:g}"
    )
    if discriminative_lr != 1:
        title += f" (x{discriminative_lr:g} per stage below the head)"
    print(freezing.format_report(report, title), flush=True)
    return {
        "phase": index,
        "name": phase.name,
        "epochs": phase.epochs,
        "learning_rate": phase.learning_rate,
        "stages": [dataclasses.asdict(row) for row in report],
    }


def stage_lr_multipliers(model: keras.Model, factor: float) -> dict[str, float]:
    """Per variable path: ``factor ** (stages between its stage and the head)``."""
    names = stage_names(model)
    per_stage = {stage: factor ** (len(names) - 1 - i) for i, stage in enumerate(names)}
    return {
        variable.path: per_stage[stage]
        for stage, layers in stage_map(model).items()
        for layer in layers
        for variable in layer.trainable_weights
        if per_stage[stage] != 1.0
    }
