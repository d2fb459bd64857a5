"""Pieces every builder shares: argument checks, the input, the classifier head.

Builders keep the Keras Applications contract: ``include_top, weights,
input_tensor, input_shape, pooling, classes, classifier_activation``. The
helpers here implement that contract once so each family file only describes
its own blocks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
from keras import layers

from kimnet.errors import InputError

POOLINGS = (None, "avg", "max")


def check_arguments(
    *,
    name: str,
    include_top: bool,
    weights: str | None,
    pooling: str | None,
    classes: int,
    imagenet: bool,
) -> None:
    """Rejects argument combinations that cannot work, before any layer is built."""
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    if not isinstance(classes, int) or classes < 1:
        raise InputError(f"classes must be a positive integer, got {classes!r}.")
    if weights is None:
        return
    if weights == "imagenet":
        if not imagenet:
            raise InputError(
                f"No ImageNet weights are published for '{name}'. Use weights=None to "
                f"train from scratch, or a path to a .weights.h5 file."
            )
        if include_top and classes != 1000:
            raise InputError(
                "weights='imagenet' with include_top=True needs classes=1000; use "
                "include_top=False and add your own head for another class count."
            )
        return
    if not os.path.exists(weights):
        raise InputError(
            f"weights must be None, 'imagenet' or the path to a weights file; "
            f"'{weights}' does not exist."
        )


def resolve_input(
    *,
    name: str,
    input_tensor: keras.KerasTensor | None,
    input_shape: Sequence[int | None] | None,
    default_size: int,
    min_size: int,
) -> keras.KerasTensor:
    """The model's input tensor, after checking the image shape is usable.

    ``input_shape`` defaults to ``(default_size, default_size, 3)``; channels-last
    only. A side smaller than ``min_size`` (the size under which the family's
    down-sampling collapses the feature map) is rejected with the fix in the message.
    """
    if input_tensor is not None:
        shape = tuple(input_tensor.shape[1:])
    elif input_shape is not None:
        shape = tuple(input_shape)
    else:
        shape = (default_size, default_size, 3)
    if len(shape) != 3:
        raise InputError(f"input_shape must be (height, width, channels), got {shape}.")
    height, width, channels = shape
    if channels is None or channels < 1:
        raise InputError(f"input_shape needs a known channel count, got {shape}.")
    for side in (height, width):
        if side is not None and side < min_size:
            raise InputError(
                f"'{name}' needs inputs of at least {min_size}x{min_size} with these "
                f"arguments, got {height}x{width}. Resize the images (--image_size) or use "
                f"the family's small-input option (small_input=True) if it has one."
            )
    if input_tensor is None:
        return keras.Input(shape=shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=shape)
    return input_tensor


def classifier_head(
    x: keras.KerasTensor,
    *,
    include_top: bool,
    pooling: str | None,
    classes: int,
    classifier_activation: str | None,
    dropout_rate: float = 0.0,
) -> keras.KerasTensor:
    """Global pooling, optional dropout and the ``predictions`` layer.

    The ``predictions`` layer computes in float32 even under a mixed-precision
    policy, so probabilities and the loss never overflow in float16.
    """
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        return layers.Dense(
            classes, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def model_inputs(
    img_input: keras.KerasTensor, input_tensor: keras.KerasTensor | None
) -> keras.KerasTensor:
    """The graph inputs of the model, as Keras Applications finds them."""
    if input_tensor is not None:
        return keras.utils.get_source_inputs(input_tensor)
    return img_input


def pad_for_stride2(x: keras.KerasTensor, kernel_size: int) -> tuple:
    """Zero padding that makes a stride-2 'valid' convolution centre like 'same'.

    TensorFlow's 'same' pads more at the bottom/right for even sizes; explicit
    padding keeps the result identical across backends (as Keras Applications do).
    """
    pads = []
    for size in x.shape[1:3]:
        half = kernel_size // 2
        adjust = 1 if size is None else 1 - size % 2
        pads.append((half - adjust, half))
    return tuple(pads)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a channel count to a multiple of ``divisor`` without losing over 10%."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def layer_name(x: keras.KerasTensor) -> str:
    """Name of the layer that produced the symbolic tensor ``x``."""
    return x._keras_history.operation.name
