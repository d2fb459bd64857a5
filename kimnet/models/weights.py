"""Loading weights into a built model: ``None``, a weights file, or ``"imagenet"``.

ImageNet weights go through Keras Applications' own loading path (download
and cache under ``~/.keras/models``): kimnet builds the reference application
with ``weights="imagenet"`` and copies its weights across by layer name, which
works because kimnet's builders reproduce the reference's layer names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

import keras
import numpy as np

from kimnet.errors import InputError


@dataclasses.dataclass
class Copied:
    """The outcome of :func:`copy_matching`.

    Attributes:
        copied: Names of the layers whose weights were set.
        missing: ``{layer name: why not}`` for the layers with weights that were not.
    """

    copied: list[str] = dataclasses.field(default_factory=list)
    missing: dict[str, str] = dataclasses.field(default_factory=dict)


def copy_matching(
    values_of: Callable[[str], list[np.ndarray] | None],
    target: keras.Model,
    *,
    skip: Collection[str] = (),
) -> Copied:
    """Sets each layer of ``target`` from ``values_of(its name)`` when the shapes match.

    ``values_of`` returns a layer's weight values, or ``None`` when the source has no
    such layer. Layers in ``skip`` keep their values. This is the one place kimnet
    copies weights by layer name (ImageNet references, weights files, runs).
    """
    result = Copied()
    for layer in target.layers:
        if not layer.weights:
            continue
        values = None if layer.name in skip else values_of(layer.name)
        expected = [tuple(w.shape) for w in layer.weights]
        if values is None:
            result.missing[layer.name] = "absent"
            continue
        shapes = [tuple(v.shape) for v in values]
        if shapes != expected:
            result.missing[layer.name] = f"shapes {shapes}, needs {expected}"
            continue
        layer.set_weights(values)
        result.copied.append(layer.name)
    return result


def values_by_name(model: keras.Model) -> Callable[[str], list[np.ndarray] | None]:
    """``values_of`` for :func:`copy_matching` that reads the layers of a built model."""
    by_name = {layer.name: layer for layer in model.layers}

    def values_of(name: str) -> list[np.ndarray] | None:
        layer = by_name.get(name)
        return layer.get_weights() if layer is not None and layer.weights else None

    return values_of


def copy_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copies the weights of every layer of ``target`` from the same-named layer of ``source``.

    Returns the number of layers whose weights were copied. Raises ``InputError``
    when a layer with weights is missing from ``source`` or its shapes differ.
    """
    result = copy_matching(values_by_name(source), target)
    for name, why in result.missing.items():
        raise InputError(
            f"Layer '{name}' of '{target.name}' cannot come from '{source.name}': {why}."
        )
    return len(result.copied)


def load(
    model: keras.Model,
    weights: str | None,
    *,
    reference: Callable[[], keras.Model] | None = None,
) -> keras.Model:
    """Loads ``weights`` into ``model`` and returns it.

    Args:
        model: A freshly built kimnet model.
        weights: ``None`` (keep the initialisation), ``"imagenet"`` or a path to a
            ``.weights.h5`` file saved from the same architecture.
        reference: For ``"imagenet"``: builds the Keras Applications model with
            ``weights="imagenet"`` and the same architecture arguments.
    """
    if weights is None:
        return model
    if weights == "imagenet":
        if reference is None:
            raise InputError(f"No ImageNet weights are published for '{model.name}'.")
        copy_by_name(reference(), model)
        return model
    try:
        model.load_weights(weights)
    except (ValueError, KeyError, OSError) as error:
        raise InputError(
            f"The weights file '{weights}' does not fit model '{model.name}' ({error}). "
            f"Use a file saved from the same architecture and arguments."
        ) from error
    return model
