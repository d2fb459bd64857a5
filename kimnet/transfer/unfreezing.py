"""Gradual unfreezing: a schedule of phases, each unfreezing down to a stage.

Syntax: comma-separated ``<from>:<epochs>[@<learning rate>]`` items, e.g.
``head:3,stage4:2,stage3:2,all:4``. ``<from>`` is the first stage that trains in
that phase (``head``, ``stageK``, ``stem``) or ``all``; everything from it to
the head trains and everything before it is frozen. A phase without ``@lr``
uses the run's learning rate when only the head trains, and the learning rate
times ``unfreeze_lr_scale`` once backbone stages train.
"""

from __future__ import annotations

import dataclasses
import re

from kimnet.errors import InputError

_ITEM = re.compile(r"^(?P<stage>[A-Za-z][A-Za-z0-9_]*):(?P<epochs>\d+)(?:@(?P<lr>[0-9.eE+-]+))?$")


@dataclasses.dataclass(frozen=True)
class PhaseSpec:
    """One phase of a schedule: train from ``first_trainable`` for ``epochs`` epochs."""

    first_trainable: str  # "head", "stageK", "stem" or "all"
    epochs: int
    learning_rate: float | None = None

    @property
    def name(self) -> str:
        return self.first_trainable


def parse(text: str, stage_names: list[str]) -> list[PhaseSpec]:
    """Parses ``text`` against a model's stage names (``["stem", ..., "head"]``).

    Raises ``InputError`` naming the bad item and the valid stages, before any training.
    """
    valid = [*stage_names, "all"]
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(
            f"Empty schedule '{text}'. Write phases as <stage>:<epochs>[@lr], e.g. "
            f"head:3,{stage_names[-2]}:2,all:4."
        )
    phases = []
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            raise InputError(
                f"Schedule phase '{item}' does not parse: write <stage>:<epochs>[@lr], "
                f"e.g. head:3 or stage3:2@1e-4."
            )
        stage, epochs = match.group("stage"), int(match.group("epochs"))
        if stage not in valid:
            raise InputError(
                f"Schedule phase '{item}' names stage '{stage}', which the model does not "
                f"have. Valid: {', '.join(valid)}."
            )
        if epochs < 1:
            raise InputError(f"Schedule phase '{item}' needs at least 1 epoch.")
        lr = None
        if match.group("lr") is not None:
            try:
                lr = float(match.group("lr"))
            except ValueError:
                lr = -1.0
            if not lr > 0:
                raise InputError(
                    f"Schedule phase '{item}': the learning rate after @ must be a positive number."
                )
        phases.append(PhaseSpec(stage, epochs, lr))
    return phases


def total_epochs(phases: list[PhaseSpec]) -> int:
    return sum(phase.epochs for phase in phases)
