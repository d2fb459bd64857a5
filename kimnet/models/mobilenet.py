"""MobileNet V1 (Howard et al., 2017): depthwise-separable convolutions throughout.

Layer names and weight shapes match ``keras.applications.MobileNet`` (``conv1``,
``conv_dw_1`` ... ``conv_pw_13``, ``conv_preds``), so its ImageNet weights load
into this model by name and the two compute the same function.

The classifier head is Keras Applications' own: global average pooling that keeps
a 1x1 map, dropout, a 1x1 convolution ``conv_preds`` (a dense layer in disguise,
with a ``(1, 1, channels, classes)`` kernel), a reshape and the ``predictions``
activation. kimnet keeps that head rather than the shared ``Dense`` head because
the published weights of ``conv_preds`` have the convolution's kernel shape.
``conv_preds`` and ``predictions`` compute in float32, so the model works under
mixed-precision policies.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import common

# (pointwise output channels, depthwise stride) of blocks 1..13, from the paper.
_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
# Stage k ends after this block (stages follow the output resolution: /2 ... /32).
_STAGE_LAST_BLOCK = {1: "stage1", 3: "stage2", 5: "stage3", 11: "stage4", 13: "stage5"}

# Weights published by Keras Applications: width multipliers and input sizes.
_IMAGENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)


def _separable_block(
    x: keras.KerasTensor, *, filters: int, stride: int, depth_multiplier: int, block_id: int
) -> keras.KerasTensor:
    """Depthwise 3x3 (BN, ReLU6) then pointwise 1x1 (BN, ReLU6)."""
    if stride == 2:
        # Pad bottom/right only, then a 'valid' stride-2 convolution (as the reference).
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block_id}")(x)
    x = layers.DepthwiseConv2D(
        3,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        depth_multiplier=depth_multiplier,
        use_bias=False,
        name=f"conv_dw_{block_id}",
    )(x)
    x = common.batch_norm(name=f"conv_dw_{block_id}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block_id}_relu")(x)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"conv_pw_{block_id}")(x)
    x = common.batch_norm(name=f"conv_pw_{block_id}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block_id}_relu")(x)


def _conv_head(
    x: keras.KerasTensor,
    *,
    classes: int,
    classifier_activation: str | None,
    dropout_rate: float,
) -> keras.KerasTensor:
    """Keras Applications' MobileNet head: pool to 1x1, dropout, 1x1 conv, flatten."""
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="dropout")(x)
    x = layers.Conv2D(classes, 1, padding="same", dtype="float32", name="conv_preds")(x)
    x = layers.Reshape((classes,), dtype="float32", name="reshape_2")(x)
    return layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)


def _body(
    img_input: keras.KerasTensor, *, alpha: float, depth_multiplier: int, small_input: bool
) -> common.Features:
    x = layers.Conv2D(
        int(32 * alpha),
        3,
        strides=1 if small_input else 2,
        padding="same",
        use_bias=False,
        name="conv1",
    )(img_input)
    x = common.batch_norm(name="conv1_bn")(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    stage_ends: list[tuple[str, Any]] = [("stem", "conv1_relu")]
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = _separable_block(
            x,
            filters=int(filters * alpha),
            stride=stride,
            depth_multiplier=depth_multiplier,
            block_id=block_id,
        )
        if block_id in _STAGE_LAST_BLOCK:
            stage_ends.append((_STAGE_LAST_BLOCK[block_id], x))
    size = img_input.shape[1] or 224
    return common.Features(x, stage_ends, name=f"mobilenet_{alpha:0.2f}_{size}")


def MobileNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    alpha: float = 1.0,
    depth_multiplier: int = 1,
    dropout_rate: float = 1e-3,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds MobileNet (V1).

    Args:
        include_top: Whether to end with Keras Applications' classifier head
            (pooling, dropout, the 1x1 convolution ``conv_preds``, ``predictions``).
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
            weights; needs ``alpha`` in 0.25/0.5/0.75/1.0, ``depth_multiplier=1`` and
            ``small_input=False``) or the path to a ``.weights.h5`` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        pooling: With ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the ``conv_preds`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        alpha: Width multiplier: every layer has ``int(channels * alpha)`` channels.
        depth_multiplier: Channels each depthwise convolution makes per input channel
            (the paper's "resolution multiplier" argument of Keras Applications).
        dropout_rate: Dropout before ``conv_preds`` (Keras Applications' default 0.001;
            0 removes the layer).
        small_input: For 28-64 px images: the stem convolution keeps full resolution
            (stride 1 instead of 2), so a 32 px image ends at 2x2 instead of 1x1 and
            inputs down to 16 px work. Layer names and weight shapes are unchanged.
        name: Model name; defaults to Keras Applications' ``mobilenet_<alpha>_<size>``.

    Returns:
        A ``keras.Model`` with a stage map (``stem``, ``stage1``-``stage5``, ``head``).
    """
    blocker = None
    if small_input:
        blocker = "weights='imagenet' needs small_input=False (the stem it was trained with)."
    elif depth_multiplier != 1 or alpha not in _IMAGENET_ALPHAS:
        blocker = (
            f"ImageNet weights exist for depth_multiplier=1 and alpha in "
            f"{_IMAGENET_ALPHAS}; got depth_multiplier={depth_multiplier}, alpha={alpha}."
        )
    if depth_multiplier < 1 or alpha <= 0:
        raise InputError(
            f"alpha must be > 0 and depth_multiplier >= 1, got {alpha}, {depth_multiplier}."
        )
    return common.build(
        "mobilenet",
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        functools.partial(
            _body, alpha=alpha, depth_multiplier=depth_multiplier, small_input=small_input
        ),
        min_size=16 if small_input else None,
        top=functools.partial(
            _conv_head,
            classes=classes,
            classifier_activation=classifier_activation,
            dropout_rate=dropout_rate,
        ),
        imagenet_blocker=blocker,
        # The weights do not depend on the input size (the head is convolutional), so
        # the reference is built at the size Keras publishes them for.
        reference_args={
            "input_shape": (224, 224, 3),
            "alpha": alpha,
            "depth_multiplier": depth_multiplier,
            "pooling": None,
            "classifier_activation": None,
        },
        name=name,
    )
