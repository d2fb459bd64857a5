"""Loading weights into a built model: ``None``, a weights file, or ``"imagenet"``.

ImageNet weights go through Keras Applications' own loading path (download
and cache under ``~/.keras/models``): kimnet builds the reference application
with ``weights="imagenet"`` and copies its weights across by layer name, which
works because kimnet's builders reproduce the reference's layer names.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from kimnet.errors import InputError


def copy_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copies the weights of every layer of ``target`` from the same-named layer of ``source``.

    Returns the number of layers whose weights were copied. Raises ``InputError``
    when a layer with weights is missing from ``source`` or its shapes differ.
    """
    by_name = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in target.layers:
        if not layer.weights:
            continue
        ref = by_name.get(layer.name)
        if ref is None:
            raise InputError(f"Layer '{layer.name}' of '{target.name}' is not in '{source.name}'.")
        values = ref.get_weights()
        shapes = [tuple(v.shape) for v in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            raise InputError(
                f"Layer '{layer.name}' has weights of shapes {expected} but the source "
                f"has {shapes}."
            )
        layer.set_weights(values)
        copied += 1
    return copied


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
