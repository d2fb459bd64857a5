"""DenseNet (Huang et al., 2017): every layer of a block sees all earlier layers' features.

Layer names and shapes match ``keras.applications.DenseNet121/169/201``, so Keras'
ImageNet weights load by name. The two weightless padding layers that Keras leaves
unnamed are called ``conv1_pad`` and ``pool1_pad`` here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import common

# depth -> layers per dense block (the same depth names the Keras Applications model)
_BLOCKS: dict[int, tuple[int, ...]] = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
}
_GROWTH = 32  # channels each layer adds
_COMPRESSION = 0.5  # transitions halve the channels
_BN_EPSILON = 1.001e-5
MIN_SIZE = 32
SMALL_MIN_SIZE = 8


def _bn_relu(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    x = common.batch_norm(epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _dense_layer(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """BN-ReLU-1x1 (4 x growth) and BN-ReLU-3x3 (growth), concatenated to the input."""
    y = _bn_relu(x, f"{name}_0")
    y = layers.Conv2D(4 * _GROWTH, 1, use_bias=False, name=f"{name}_1_conv")(y)
    y = _bn_relu(y, f"{name}_1")
    y = layers.Conv2D(_GROWTH, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """BN-ReLU, a 1x1 convolution that halves the channels, 2x2 average pooling."""
    channels = int(x.shape[-1] * _COMPRESSION)
    x = _bn_relu(x, name)
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def _body(
    img_input: keras.KerasTensor, *, blocks: Sequence[int], small_input: bool
) -> common.Features:
    """Stem, then dense blocks joined by transitions; the last block ends with BN-ReLU."""
    if small_input:
        x = layers.Conv2D(64, 3, padding="same", use_bias=False, name="conv1_conv")(img_input)
        x = _bn_relu(x, "conv1")
    else:
        x = layers.ZeroPadding2D(3, name="conv1_pad")(img_input)
        x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = _bn_relu(x, "conv1")
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    stage_ends: list[tuple[str, Any]] = [("stem", x)]
    for index, repeats in enumerate(blocks):
        for layer in range(repeats):
            x = _dense_layer(x, f"conv{index + 2}_block{layer + 1}")
        if index < len(blocks) - 1:
            x = _transition(x, f"pool{index + 2}")
        else:
            x = common.batch_norm(epsilon=_BN_EPSILON, name="bn")(x)
            x = layers.Activation("relu", name="relu")(x)
        stage_ends.append((f"stage{index + 1}", x))
    return common.Features(x, stage_ends)


def DenseNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    depth: int = 121,
    dropout_rate: float = 0.0,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds DenseNet-121/169/201.

    Args:
        include_top: Whether to end with global pooling and the ``predictions`` layer.
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
            weights; needs ``small_input=False``) or the path to a ``.weights.h5`` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        pooling: With ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the ``predictions`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        depth: 121, 169 or 201.
        dropout_rate: Dropout before the ``predictions`` layer (0 disables it, as in
            Keras Applications).
        small_input: For 28-64 px images: the stem is a 3x3 stride-1 convolution without
            max pooling, so the network down-samples by 8 instead of 32 (32 px end at
            4x4). ``conv1_conv`` becomes 3x3, so ImageNet weights do not apply.
        name: Model name; defaults to ``densenet<depth>``.

    Returns:
        A ``keras.Model`` with a stage map (``stem``; ``stage1``-``stage3``: a dense block
        and the transition after it; ``stage4``: the last block and its BN-ReLU; ``head``).
    """
    if depth not in _BLOCKS:
        raise InputError(f"depth must be one of {sorted(_BLOCKS)}, got {depth!r}.")
    return common.build(
        f"densenet{depth}",
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        functools.partial(_body, blocks=_BLOCKS[depth], small_input=small_input),
        min_size=SMALL_MIN_SIZE if small_input else None,
        dropout_rate=dropout_rate,
        imagenet_blocker=(
            "weights='imagenet' needs small_input=False (the stem it was trained with)."
            if small_input
            else None
        ),
        name=name,
    )
