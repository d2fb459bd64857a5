"""The model zoo at a glance: parameters, multiply-adds, stages, input sizes.

``describe()`` builds each registered model once (1000 classes, the Keras
Applications head), measures it and frees it, so memory stays bounded however
many families are registered. Multiply-adds are computed from the built layers,
never typed in:

* ``Conv1D/2D/3D`` (grouped or not): output positions x kernel size, i.e.
  ``H_out * W_out * k_h * k_w * (C_in / groups) * C_out``;
* ``DepthwiseConv1D/2D``: output positions x ``k_h * k_w * C_in * depth_multiplier``;
* ``SeparableConv1D/2D``: its depthwise part plus its pointwise part;
* ``Dense``: ``C_in * C_out`` per output vector (once per position when it is
  applied to a sequence or feature map);
* layers of nested models, counted once per call of the nested model.

Not counted: biases, batch normalisation, activations, pooling, element-wise
additions and multiplications (squeeze-and-excite gating, residuals), resizing,
transposed convolutions, ``EinsumDense`` and attention (``MultiHeadAttention``),
and any layer type not listed above. These are small for convolutional networks;
the figures match the papers' "multiply-adds" (MobileNetV2 ~300M, ResNet50 ~4.1G at 224 px).

Command line (``make models``): ``python -m kimnet.models --details [--size N] [names...]``.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import keras_internals, registry
from kimnet.models.common import count_params
from kimnet.models.listing import format_table
from kimnet.models.stages import stage_names

__all__ = ["count_macs", "describe", "describe_model", "format_table", "layer_macs"]


def _positions(shape: Sequence[int | None]) -> int:
    """Number of output vectors of a layer: the product of the non-batch, non-channel dims."""
    dims = list(shape[1:-1])
    if any(d is None for d in dims):
        raise InputError(
            f"Cannot count multiply-adds for an output of unknown size {tuple(shape)}; build "
            f"the model with a fixed input_shape."
        )
    return math.prod(dims)


def _kernel_size(layer: keras.layers.Layer, attribute: str) -> int:
    return math.prod(getattr(layer, attribute).shape)


def layer_macs(layer: keras.layers.Layer) -> int:
    """Multiply-adds of every call of one layer (0 for layers that are not counted)."""
    if isinstance(layer, keras.Model):
        return count_macs(layer) * max(1, len(keras_internals.call_output_shapes(layer)))
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        per_position = _kernel_size(layer, "depthwise_kernel") + _kernel_size(
            layer, "pointwise_kernel"
        )
    elif isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        per_position = _kernel_size(layer, "kernel")
    elif isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        # kernel: (*window, C_in / groups, C_out), so its size is the MACs per position.
        # (Conv*Transpose layers subclass other bases and are not counted.)
        per_position = _kernel_size(layer, "kernel")
    elif isinstance(layer, layers.Dense):
        per_position = _kernel_size(layer, "kernel")
    else:
        return 0
    return sum(
        per_position * _positions(shape) for shape in keras_internals.call_output_shapes(layer)
    )


def count_macs(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of one image through ``model``.

    See the module docstring for what is counted. ``model`` needs a fixed input size.
    """
    return sum(layer_macs(layer) for layer in model.layers)


def describe_model(model: keras.Model) -> dict[str, Any]:
    """Measurements of an already built model (no registry metadata)."""
    total, trainable = count_params(model)
    return {
        "params": total,
        "trainable_params": trainable,
        "macs": count_macs(model),
        "stages": stage_names(model),
    }


def describe(name: str | None = None, input_size: int | None = None) -> list[dict[str, Any]]:
    """One row per registered model (or only ``name``), measured at ``input_size``.

    Each row holds: ``name``, ``family``, ``params`` and ``trainable_params`` (of the
    model with its 1000-class head), ``macs`` (multiply-adds of one image at
    ``input_size``), ``input_size`` (default: the model's ``default_size``),
    ``stages`` (stage names, ending with ``head``), ``default_size``, ``min_size``,
    ``normalization``, ``imagenet`` (whether ImageNet weights exist) and ``error``
    (``None``, or why the model could not be built at ``input_size``).

    Raises:
        InputError: ``name`` is not registered (the message suggests the nearest
            name), or ``name`` was given and ``input_size`` is below its minimum.
    """
    specs = (
        [registry.get(name)] if name is not None else [registry.get(n) for n in registry.names()]
    )
    if input_size is not None and input_size < 1:
        raise InputError(f"input_size must be a positive number of pixels, got {input_size}.")
    rows = []
    for spec in specs:
        size = input_size or spec.default_size
        row: dict[str, Any] = {
            "name": spec.name,
            "family": spec.family,
            "params": None,
            "trainable_params": None,
            "macs": None,
            "input_size": size,
            "stages": [],
            "default_size": spec.default_size,
            "min_size": spec.min_size,
            "normalization": spec.normalization,
            "imagenet": spec.imagenet,
            "error": None,
        }
        if size < spec.min_size:
            message = f"'{spec.name}' needs inputs of at least {spec.min_size} px, got {size}."
            if name is not None:
                raise InputError(message)
            row["error"] = message
            rows.append(row)
            continue
        model = spec(input_shape=(size, size, 3))
        try:
            row.update(describe_model(model))
        finally:
            del model
            keras.backend.clear_session()
            gc.collect()
        rows.append(row)
    return rows
