"""A uniform stage map: ``stem``, ``stage1`` ... ``stageN``, ``head`` for every family.

Builders record where each stage ends (the name of its last layer). Because a
functional model lists its layers in topological order, a layer belongs to the
first stage whose end comes at or after it; everything after the last stage is
the ``head``. Freezing, fine-tuning and feature extraction use this map, so they
never need a family's layer names.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from kimnet.errors import InputError

_ATTR = "_kimnet_stage_ends"
HEAD = "head"


def set_stages(model: keras.Model, stage_ends: Sequence[tuple[str, str]]) -> keras.Model:
    """Attaches the stage map ``[(stage name, name of its last layer), ...]`` to ``model``."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    last = -1
    for stage, layer_name in stage_ends:
        if layer_name not in order:
            raise ValueError(f"Stage '{stage}' ends at unknown layer '{layer_name}'.")
        if order[layer_name] <= last:
            raise ValueError(f"Stage '{stage}' ends before the stage preceding it.")
        last = order[layer_name]
    setattr(model, _ATTR, tuple((str(s), str(n)) for s, n in stage_ends))
    return model


def _stage_ends(model: keras.Model) -> tuple[tuple[str, str], ...]:
    ends = getattr(model, _ATTR, None)
    if ends is None:
        raise InputError(
            f"Model '{model.name}' has no stage map; build it with kimnet.models.get(name)."
        )
    return ends


def stage_names(model: keras.Model) -> list[str]:
    """Stage names in order, ending with ``head``."""
    return [stage for stage, _ in _stage_ends(model)] + [HEAD]


def stages(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """Every layer of ``model`` assigned to its stage, stages in order."""
    ends = _stage_ends(model)
    grouped: dict[str, list[keras.layers.Layer]] = {stage: [] for stage, _ in ends}
    grouped[HEAD] = []
    boundaries = iter(ends)
    current, end_name = next(boundaries)
    for layer in model.layers:
        grouped[current].append(layer)
        if layer.name == end_name:
            current, end_name = next(boundaries, (HEAD, None))
    return grouped


def stage_output(model: keras.Model, stage: str) -> keras.KerasTensor:
    """The output tensor of ``stage`` (for cutting the backbone there)."""
    ends = dict(_stage_ends(model))
    if stage not in ends:
        raise InputError(
            f"Model '{model.name}' has no stage '{stage}'. "
            f"Its stages: {', '.join(stage_names(model)[:-1])}."
        )
    return model.get_layer(ends[stage]).output
