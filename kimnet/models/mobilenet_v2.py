"""MobileNetV2 (Sandler et al., 2018): inverted residuals with linear bottlenecks.

Layer names and shapes match ``keras.applications.MobileNetV2``, so its ImageNet
weights load into this model by name.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from kimnet.models import common

# (expansion t, output channels c, repeats n, first stride s) per group, from the paper.
_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Stage k ends after this block index (stages follow the output resolution: /2 ... /32).
_STAGE_LAST_BLOCK = {"stage1": 0, "stage2": 2, "stage3": 5, "stage4": 12, "stage5": 16}

_BN = {"epsilon": 1e-3, "momentum": 0.999}


def _inverted_residual(
    x: keras.KerasTensor, *, expansion: int, stride: int, alpha: float, filters: int, block_id: int
) -> keras.KerasTensor:
    in_channels = x.shape[-1]
    out_channels = common.make_divisible(int(filters * alpha), 8)
    shortcut = x
    if block_id:
        prefix = f"block_{block_id}_"
        x = layers.Conv2D(
            expansion * in_channels, 1, padding="same", use_bias=False, name=f"{prefix}expand"
        )(x)
        x = common.batch_norm(name=f"{prefix}expand_BN", **_BN)(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(common.pad_for_stride2(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(
        3,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = common.batch_norm(name=f"{prefix}depthwise_BN", **_BN)(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(out_channels, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = common.batch_norm(name=f"{prefix}project_BN", **_BN)(x)
    if stride == 1 and in_channels == out_channels:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def _body(img_input: keras.KerasTensor, *, alpha: float, small_input: bool) -> common.Features:
    x = layers.Conv2D(
        common.make_divisible(32 * alpha, 8),
        3,
        strides=1 if small_input else 2,
        padding="same",
        use_bias=False,
        name="Conv1",
    )(img_input)
    x = common.batch_norm(name="bn_Conv1", **_BN)(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    stage_ends: list[tuple[str, Any]] = [("stem", "Conv1_relu")]
    last_layer = {index: stage for stage, index in _STAGE_LAST_BLOCK.items()}
    block_id = 0
    for expansion, filters, repeats, first_stride in _BLOCKS:
        for repeat in range(repeats):
            x = _inverted_residual(
                x,
                expansion=expansion,
                stride=first_stride if repeat == 0 else 1,
                alpha=alpha,
                filters=filters,
                block_id=block_id,
            )
            if block_id in last_layer:
                stage_ends.append((last_layer[block_id], x))
            block_id += 1
    last_channels = common.make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_channels, 1, use_bias=False, name="Conv_1")(x)
    x = common.batch_norm(name="Conv_1_bn", **_BN)(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    stage_ends[-1] = ("stage5", x)
    size = img_input.shape[1] or 224
    return common.Features(x, stage_ends, name=f"mobilenetv2_{alpha:0.2f}_{size}")


def MobileNetV2(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    alpha: float = 1.0,
    dropout_rate: float = 0.0,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds MobileNetV2.

    Args:
        include_top: Whether to end with global pooling and the ``predictions`` layer.
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
            weights; needs ``small_input=False``) or the path to a ``.weights.h5`` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        pooling: With ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the ``predictions`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        alpha: Width multiplier: scales every layer's channel count.
        dropout_rate: Dropout before the ``predictions`` layer (0 disables it, as in
            Keras Applications).
        small_input: For 28-64 px images: the stem convolution keeps full resolution
            (stride 1 instead of 2), so a 32 px image ends at 2x2 instead of 1x1.
            The layer names and weight shapes are unchanged.
        name: Model name; defaults to Keras Applications' ``mobilenetv2_<alpha>_<size>``.

    Returns:
        A ``keras.Model`` with a stage map (``stem``, ``stage1``-``stage5``, ``head``).
    """
    return common.build(
        "mobilenetv2",
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        functools.partial(_body, alpha=alpha, small_input=small_input),
        min_size=16 if small_input else None,
        dropout_rate=dropout_rate,
        imagenet_blocker=(
            "weights='imagenet' needs small_input=False (the stem it was trained with)."
            if small_input
            else None
        ),
        reference_args={"alpha": alpha},
        name=name,
    )
