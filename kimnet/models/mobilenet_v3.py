"""MobileNetV3 Small and Large (Howard et al., 2019): searched inverted residuals.

Layer names and weight shapes match ``keras.applications.MobileNetV3Small`` /
``MobileNetV3Large`` (``minimalistic=False``, ``include_preprocessing=True``), so
their ImageNet weights load by name and the models compute the same function.

Like Keras Applications, the model rescales its input itself (a ``Rescaling``
layer maps [0, 255] to [-1, 1]): feed raw pixel values (kimnet normalisation
``"raw"``). The head is Keras Applications' too: global average pooling that keeps
a 1x1 map, a 1x1 convolution ``conv_2`` with bias and activation, dropout, a 1x1
convolution ``logits``, a flatten and the ``predictions`` activation. The 1x1
convolutions are kept (instead of ``Dense`` layers) because the published weights
have convolution kernels. ``logits`` and ``predictions`` compute in float32, so the
model works under mixed-precision policies.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import common

# One row per inverted-residual block:
# (expansion, output channels, kernel ("k" = the variant's large kernel, 5 or 3 when
#  minimalistic), stride, squeeze-excite, activation ("relu" or "hs" = hard swish,
#  relu when minimalistic)). From the paper's Tables 1 and 2.
_SMALL = (
    (1, 16, 3, 2, True, "relu"),
    (72 / 16, 24, 3, 2, False, "relu"),
    (88 / 24, 24, 3, 1, False, "relu"),
    (4, 40, "k", 2, True, "hs"),
    (6, 40, "k", 1, True, "hs"),
    (6, 40, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"),
    (6, 96, "k", 2, True, "hs"),
    (6, 96, "k", 1, True, "hs"),
    (6, 96, "k", 1, True, "hs"),
)
_LARGE = (
    (1, 16, 3, 1, False, "relu"),
    (4, 24, 3, 2, False, "relu"),
    (3, 24, 3, 1, False, "relu"),
    (3, 40, "k", 2, True, "relu"),
    (3, 40, "k", 1, True, "relu"),
    (3, 40, "k", 1, True, "relu"),
    (6, 80, 3, 2, False, "hs"),
    (2.5, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 112, 3, 1, True, "hs"),
    (6, 160, "k", 2, True, "hs"),
    (6, 160, "k", 1, True, "hs"),
    (6, 160, "k", 1, True, "hs"),
)
# Width of the head's conv_2 (before alpha > 1 scaling).
_LAST_POINT = {"small": 1024, "large": 1280}
# Stage k ends after this block (stages follow the output resolution). The Small
# variant's first block already halves the stem's resolution, so it has 4 stages.
_STAGE_LAST_BLOCK = {
    "small": {0: "stage1", 2: "stage2", 7: "stage3", 10: "stage4"},
    "large": {0: "stage1", 2: "stage2", 5: "stage3", 11: "stage4", 14: "stage5"},
}
_SE_RATIO = 0.25
# ImageNet weights published by Keras Applications: (minimalistic, alpha).
_IMAGENET = ((False, 0.75), (False, 1.0), (True, 1.0))

_BN = {"epsilon": 1e-3, "momentum": 0.999}


def _activation(x: keras.KerasTensor, kind: str, name: str) -> keras.KerasTensor:
    if kind == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)
    return layers.Activation("hard_swish", name=f"{name}_hard_swish")(x)


def _squeeze_excite(x: keras.KerasTensor, *, prefix: str) -> keras.KerasTensor:
    """Channel gating: pool, reduce to 1/4 (ReLU), expand back (hard sigmoid), scale."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(x)
    s = layers.Conv2D(
        common.make_divisible(channels * _SE_RATIO, 8),
        1,
        padding="same",
        name=f"{prefix}squeeze_excite_conv",
    )(s)
    s = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(s)
    s = layers.Conv2D(channels, 1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(s)
    s = layers.Activation("hard_sigmoid", name=f"{prefix}squeeze_excite_hard_sigmoid")(s)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _inverted_residual(
    x: keras.KerasTensor,
    *,
    expansion: float,
    filters: int,
    kernel_size: int,
    stride: int,
    squeeze_excite: bool,
    activation: str,
    block_id: int,
) -> keras.KerasTensor:
    in_channels = x.shape[-1]
    shortcut = x
    if block_id:
        prefix = f"expanded_conv_{block_id}_"
        x = layers.Conv2D(
            common.make_divisible(in_channels * expansion, 8),
            1,
            padding="same",
            use_bias=False,
            name=f"{prefix}expand",
        )(x)
        x = common.batch_norm(name=f"{prefix}expand_bn", **_BN)(x)
        x = _activation(x, activation, f"{prefix}expand")
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(
            common.pad_for_stride2(x, kernel_size), name=f"{prefix}depthwise_pad"
        )(x)
    x = layers.DepthwiseConv2D(
        kernel_size,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = common.batch_norm(name=f"{prefix}depthwise_bn", **_BN)(x)
    x = _activation(x, activation, f"{prefix}depthwise")
    if squeeze_excite:
        x = _squeeze_excite(x, prefix=prefix)
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = common.batch_norm(name=f"{prefix}project_bn", **_BN)(x)
    if stride == 1 and in_channels == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def _mobilenet_v3(
    variant: str,
    *,
    include_top: bool,
    weights: str | None,
    input_tensor: keras.KerasTensor | None,
    input_shape: Sequence[int | None] | None,
    pooling: str | None,
    classes: int,
    classifier_activation: str | None,
    alpha: float,
    minimalistic: bool,
    dropout_rate: float,
    small_input: bool,
    name: str | None,
) -> keras.Model:
    if alpha <= 0:
        raise InputError(f"alpha must be > 0, got {alpha}.")
    blocker = None
    if small_input:
        blocker = "weights='imagenet' needs small_input=False (the stem it was trained with)."
    elif (minimalistic, alpha) not in _IMAGENET:
        blocker = (
            "ImageNet weights exist for alpha 0.75 or 1.0 (minimalistic=False) and "
            f"alpha 1.0 (minimalistic=True); got alpha={alpha}, minimalistic={minimalistic}."
        )
    head_activation = "relu" if minimalistic else "hs"
    return common.build(
        f"mobilenetv3_{variant}",
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        functools.partial(
            _body, variant=variant, alpha=alpha, minimalistic=minimalistic, small_input=small_input
        ),
        min_size=16 if small_input else None,
        top=functools.partial(
            _conv_head,
            last_point=_LAST_POINT[variant],
            alpha=alpha,
            activation=head_activation,
            dropout_rate=dropout_rate,
            classes=classes,
            classifier_activation=classifier_activation,
        ),
        imagenet_blocker=blocker,
        # The weights do not depend on the input size (the head is convolutional), so
        # the reference is built at the size Keras publishes them for.
        reference_args={
            "input_shape": (224, 224, 3),
            "alpha": alpha,
            "minimalistic": minimalistic,
            "pooling": None,
            "classifier_activation": None,
            "include_preprocessing": True,
        },
        name=name or f"MobileNetV3{variant.capitalize()}",
    )


def _body(
    img_input: keras.KerasTensor,
    *,
    variant: str,
    alpha: float,
    minimalistic: bool,
    small_input: bool,
) -> common.Features:
    """Rescaling, stem, the inverted residual blocks and the last 1x1 convolution."""
    large_kernel, head_activation = (3, "relu") if minimalistic else (5, "hs")
    x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(img_input)
    x = layers.Conv2D(
        16, 3, strides=1 if small_input else 2, padding="same", use_bias=False, name="conv"
    )(x)
    x = common.batch_norm(name="conv_bn", **_BN)(x)
    x = _activation(x, head_activation, "conv")
    stage_ends: list[tuple[str, Any]] = [("stem", x)]
    last_block = _STAGE_LAST_BLOCK[variant]
    for block_id, (expansion, filters, kernel, stride, se, act) in enumerate(
        _SMALL if variant == "small" else _LARGE
    ):
        x = _inverted_residual(
            x,
            expansion=expansion,
            filters=common.make_divisible(filters * alpha, 8),
            kernel_size=large_kernel if kernel == "k" else kernel,
            stride=stride,
            squeeze_excite=se and not minimalistic,
            activation="relu" if minimalistic else act,
            block_id=block_id,
        )
        if block_id in last_block:
            stage_ends.append((last_block[block_id], x))
    x = layers.Conv2D(
        common.make_divisible(x.shape[-1] * 6, 8),
        1,
        padding="same",
        use_bias=False,
        name="conv_1",
    )(x)
    x = common.batch_norm(name="conv_1_bn", **_BN)(x)
    x = _activation(x, head_activation, "conv_1")
    stage_ends[-1] = (stage_ends[-1][0], x)
    return common.Features(x, stage_ends)


def _conv_head(
    x: keras.KerasTensor,
    *,
    last_point: int,
    alpha: float,
    activation: str,
    dropout_rate: float,
    classes: int,
    classifier_activation: str | None,
) -> keras.KerasTensor:
    """Keras Applications' head: pool to 1x1, ``conv_2``, dropout, ``logits``, flatten."""
    if alpha > 1.0:
        last_point = common.make_divisible(last_point * alpha, 8)
    x = layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    x = layers.Conv2D(last_point, 1, padding="same", name="conv_2")(x)
    x = _activation(x, activation, "conv_2")
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="dropout")(x)
    x = layers.Conv2D(classes, 1, padding="same", dtype="float32", name="logits")(x)
    x = layers.Flatten(dtype="float32", name="flatten")(x)
    return layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)


_DOC = """Builds MobileNetV3{Variant}.

    Args:
        include_top: Whether to end with Keras Applications' head (pooling, the 1x1
            convolutions ``conv_2`` and ``logits``, ``predictions``).
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
            weights; needs ``alpha`` 0.75 or 1.0, or 1.0 with ``minimalistic=True``, and
            ``small_input=False``) or the path to a ``.weights.h5`` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
            Pixel values in [0, 255]: the model rescales them itself.
        pooling: With ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the ``logits`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        alpha: Width multiplier: scales the blocks' channel counts (rounded to multiples
            of 8); the stem and the last 1x1 convolution keep theirs, ``conv_2`` grows
            only for ``alpha > 1``.
        minimalistic: The paper's minimalistic variant: 3x3 kernels, ReLU instead of
            hard swish and no squeeze-and-excite.
        dropout_rate: Dropout before ``logits`` (Keras Applications' default 0.2;
            0 removes the layer).
        small_input: For 28-64 px images: the stem convolution keeps full resolution
            (stride 1 instead of 2), so a 32 px image ends at 2x2 instead of 1x1 and
            inputs down to 16 px work. Layer names and weight shapes are unchanged.
        name: Model name; defaults to Keras Applications' ``MobileNetV3{Variant}``.

    Returns:
        A ``keras.Model`` with a stage map ({stages}, ``head``).
    """


def MobileNetV3Small(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    alpha: float = 1.0,
    minimalistic: bool = False,
    dropout_rate: float = 0.2,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    return _mobilenet_v3(
        "small",
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        alpha=alpha,
        minimalistic=minimalistic,
        dropout_rate=dropout_rate,
        small_input=small_input,
        name=name,
    )


def MobileNetV3Large(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    alpha: float = 1.0,
    minimalistic: bool = False,
    dropout_rate: float = 0.2,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    return _mobilenet_v3(
        "large",
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        alpha=alpha,
        minimalistic=minimalistic,
        dropout_rate=dropout_rate,
        small_input=small_input,
        name=name,
    )


MobileNetV3Small.__doc__ = _DOC.format(Variant="Small", stages="``stem``, ``stage1``-``stage4``")
MobileNetV3Large.__doc__ = _DOC.format(Variant="Large", stages="``stem``, ``stage1``-``stage5``")
