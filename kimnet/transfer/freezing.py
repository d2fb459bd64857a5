"""Which layers train: freezing strategies over the uniform stage map, and reports.

Every family exposes the same stages (``stem``, ``stage1`` ... ``stageN``,
``head``; :mod:`kimnet.models.stages`), so one strategy name means the same thing
for every model:

- ``none``: everything trains.
- ``backbone``: only the head trains (feature extraction).
- ``stages:K``: the stem and ``stage1`` ... ``stageK`` are frozen (``stages:0``: the stem
  only); ``stages:stageK`` is the same.
- ``bn``: every batch-norm layer is frozen (statistics, scale and offset); the rest trains.

Freezing sets ``layer.trainable = False``. A frozen ``BatchNormalization`` layer
runs in inference mode in Keras 3: it normalises with its moving statistics and
never updates them, even in ``fit``. The model must be (re)compiled after the
flags change, which :func:`kimnet.training.train` does at the start of each phase.
"""

from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np

from kimnet.errors import InputError
from kimnet.models.stages import stage_names
from kimnet.models.stages import stages as stage_map

STRATEGIES = ("none", "backbone", "stages:K", "bn")


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def backbone_stages(model: keras.Model) -> list[str]:
    """``["stem", "stage1", ...]``: every stage but the head."""
    return stage_names(model)[:-1]


def valid_strategies(model: keras.Model) -> str:
    """The strategy names ``model`` accepts, for error messages."""
    last = len(backbone_stages(model)) - 1
    return f"none, backbone, bn, stages:K with K in 0..{last} (or stages:stageK)"


def frozen_stages(model: keras.Model, strategy: str) -> list[str]:
    """The stages ``strategy`` freezes entirely (``bn`` freezes none entirely).

    Raises ``InputError`` listing the valid strategies for ``model`` when
    ``strategy`` is unknown or names a stage the model does not have.
    """
    names = backbone_stages(model)
    if strategy == "none" or strategy == "bn":
        return []
    if strategy == "backbone":
        return names
    match = re.fullmatch(r"stages:(?:(\d+)|(stage\d+|stem))", strategy)
    if match:
        if match.group(1) is not None:
            k = int(match.group(1))
            stage = "stem" if k == 0 else f"stage{k}"
        else:
            stage = match.group(2)
        if stage in names:
            return names[: names.index(stage) + 1]
    raise InputError(
        f"Unknown freezing strategy '{strategy}' for {model.name} (stages "
        f"{', '.join(names)}). Valid strategies: {valid_strategies(model)}."
    )


def set_trainable_from(model: keras.Model, first_trainable: str | None) -> None:
    """Freezes every stage before ``first_trainable``; it and later stages train.

    ``None`` or ``"all"`` makes everything trainable.
    """
    order = stage_names(model)
    if first_trainable in (None, "all"):
        first_trainable = order[0]
    if first_trainable not in order:
        raise InputError(
            f"Model '{model.name}' has no stage '{first_trainable}'. "
            f"Its stages: {', '.join(order)} (or all)."
        )
    start = order.index(first_trainable)
    model.trainable = True
    for index, layers in enumerate(stage_map(model).values()):
        for layer in layers:
            layer.trainable = index >= start


def apply(model: keras.Model, strategy: str) -> None:
    """Sets ``layer.trainable`` on every layer of ``model`` according to ``strategy``."""
    frozen = set(frozen_stages(model, strategy))
    model.trainable = True
    for stage, layers in stage_map(model).items():
        for layer in layers:
            layer.trainable = stage not in frozen
    if strategy == "bn":
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


@dataclasses.dataclass(frozen=True)
class StageCount:
    stage: str
    trainable: int
    frozen: int


def trainable_report(model: keras.Model) -> list[StageCount]:
    """Per stage: parameters that train and parameters that do not.

    Batch-norm moving statistics are never trained by gradients, so they count as
    frozen; a trainable batch-norm layer still updates them in training.
    """
    report = []
    for stage, layers in stage_map(model).items():
        trainable = sum(_count(layer.trainable_weights) for layer in layers)
        total = sum(_count(layer.weights) for layer in layers)
        report.append(StageCount(stage, trainable, total - trainable))
    return report


def format_report(report: list[StageCount], title: str = "") -> str:
    """A small fixed-width table of :func:`trainable_report`."""
    lines = [title] if title else []
    lines.append(f"{'stage':<8} {'trainable':>12} {'frozen':>12}")
    for row in report:
        lines.append(f"{row.stage:<8} {row.trainable:>12,} {row.frozen:>12,}")
    lines.append(
        f"{'total':<8} {sum(r.trainable for r in report):>12,} {sum(r.frozen for r in report):>12,}"
    )
    return "\n".join(lines)
