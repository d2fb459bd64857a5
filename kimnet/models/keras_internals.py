"""The one place kimnet reads Keras internals, for what no public API offers.

Keras 3 has no public way to list every call of a layer in the graphs it was used in
(``layer.output`` refuses layers called more than once, e.g. a nested model used
twice). :func:`call_output_shapes` reads the private ``Layer._inbound_nodes`` for
that; ``tests/test_keras_internals.py`` fails with a clear message when a Keras
upgrade removes or changes it.
"""

from __future__ import annotations

import keras

ATTRIBUTE = "_inbound_nodes"


class KerasInternalsError(RuntimeError):
    """A Keras upgrade changed an internal kimnet relies on (see this module)."""


def call_output_shapes(layer: keras.layers.Layer) -> list[tuple[int | None, ...]]:
    """Shape of the (first) output of each call of ``layer``; one entry if never traced."""
    nodes = getattr(layer, ATTRIBUTE, None)
    if nodes is None:
        raise KerasInternalsError(
            f"Keras {keras.__version__} layers have no '{ATTRIBUTE}'; update "
            f"kimnet.models.keras_internals.call_output_shapes for this Keras version."
        )
    try:
        shapes = [tuple(node.output_tensors[0].shape) for node in nodes]
    except (AttributeError, IndexError, TypeError) as error:
        raise KerasInternalsError(
            f"Keras {keras.__version__} changed the nodes in '{ATTRIBUTE}' ({error}); update "
            f"kimnet.models.keras_internals.call_output_shapes for this Keras version."
        ) from error
    return shapes or [tuple(layer.output.shape)]
