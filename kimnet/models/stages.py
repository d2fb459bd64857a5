"""A uniform stage map: ``stem``, ``stage1`` ... ``stageN``, ``head`` for every family.

Builders record where each stage ends (the name of its last layer). Because a
functional model lists its layers in topological order, a layer belongs to the
first stage whose end comes at or after it; everything after the last stage is
the ``head``. Freezing, fine-tuning and feature extraction use this map, so they
never need a family's layer names.

kimnet's builders return a :class:`StagedModel`, a functional model whose config
holds the stage map, so the map survives ``model.save`` / ``keras.models.load_model``
and ``keras.models.clone_model`` (which rebuilds the same class from the same layer
names). On any other functional model :func:`set_stages` keeps it as an attribute.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

import keras

from kimnet.errors import InputError

_ATTR = "_kimnet_stage_ends"
HEAD = "head"


# Stage maps by the model's layer names, so clone_model (which rebuilds a StagedModel
# from new layers with the same names, without its config) finds the map again.
_BY_LAYER_NAMES: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


def _layer_names(model: keras.Model) -> tuple[str, ...]:
    # Without the input layers, which clone_model recreates under new names.
    return tuple(
        layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
    )


@keras.saving.register_keras_serializable(package="kimnet")
class StagedModel(keras.Model):
    """A functional model that carries its stage map through save/load and cloning.

    Built like ``keras.Model(inputs, outputs, name=...)``, with the extra keyword
    ``stage_ends`` (the argument of :func:`set_stages`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        stage_ends = kwargs.pop("stage_ends", None)
        super().__init__(*args, **kwargs)
        if stage_ends is None:
            stage_ends = _BY_LAYER_NAMES.get(_layer_names(self))
        if stage_ends:
            set_stages(self, stage_ends)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["stage_ends"] = [list(end) for end in getattr(self, _ATTR, ())]
        return config


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
    ends = tuple((str(s), str(n)) for s, n in stage_ends)
    setattr(model, _ATTR, ends)
    _BY_LAYER_NAMES[_layer_names(model)] = ends
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


class _CallableModule(types.ModuleType):
    """``kimnet.models.stages`` names both this module and the function :func:`stages`.

    Python binds a package's attribute to a submodule once it is imported, so the
    package cannot keep the function under the module's name; calling the module
    calls the function (``kimnet.models.stages(model)``).
    """

    def __call__(self, model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
        return stages(model)


sys.modules[__name__].__class__ = _CallableModule
