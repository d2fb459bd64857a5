"""Squeeze-and-excitation networks (Hu et al., 2018): SE-ResNet, SE-ResNeXt, SENet-154.

The architectures (and their parameter counts) follow the widely used PyTorch
port of the original Caffe models (Cadene's ``pretrainedmodels``):

* SE-ResNet-50/101: bottlenecks with the stride on the first 1x1 convolution.
* SE-ResNeXt-50 (32x4d): 3x3 convolutions in 32 groups, the stride on the 3x3.
* SENet-154: a three-convolution stem (3x3: 64 stride 2, 64, 128), 3x3 convolutions
  in 64 groups, 3x3 projection shortcuts and dropout 0.2 before the classifier.

Every block gates its residual branch with squeeze-and-excitation (ratio 1/16,
biased 1x1 convolutions); the other convolutions have no bias. Blocks, stem and
layer names come from :mod:`kimnet.models.resnet` (``conv2_block1_se_reduce`` ...).
No ImageNet weights are published through Keras Applications.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from kimnet.errors import InputError
from kimnet.models import common, resnet


@dataclasses.dataclass(frozen=True)
class _Variant:
    blocks: tuple[int, ...]
    style: resnet.BlockStyle
    stem_widths: tuple[int, ...] = (64,)
    dropout_rate: float = 0.0


_SE = 1 / 16
_VARIANTS: dict[str, _Variant] = {
    "se_resnet50": _Variant((3, 4, 6, 3), resnet.BlockStyle(stride_on_3x3=False, se_ratio=_SE)),
    "se_resnet101": _Variant((3, 4, 23, 3), resnet.BlockStyle(stride_on_3x3=False, se_ratio=_SE)),
    "se_resnext50": _Variant(
        (3, 4, 6, 3), resnet.BlockStyle(groups=32, widths=(2.0, 2.0), se_ratio=_SE)
    ),
    "senet154": _Variant(
        (3, 8, 36, 3),
        resnet.BlockStyle(groups=64, widths=(2.0, 4.0), shortcut_kernel=3, se_ratio=_SE),
        stem_widths=(64, 64, 128),
        dropout_rate=0.2,
    ),
}


def SENet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    variant: str = "se_resnet50",
    dropout_rate: float | None = None,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds SE-ResNet-50/101, SE-ResNeXt-50 (32x4d) or SENet-154.

    Args:
        include_top: Whether to end with global pooling and the ``predictions`` layer.
        weights: ``None`` (random initialisation) or the path to a ``.weights.h5``
            file; no ImageNet weights are published for these models.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        pooling: With ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the ``predictions`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        variant: ``"se_resnet50"``, ``"se_resnet101"``, ``"se_resnext50"`` or ``"senet154"``.
        dropout_rate: Dropout before the ``predictions`` layer; ``None`` takes the
            variant's reference value (0.2 for SENet-154, 0 for the others).
        small_input: For 28-64 px images: the stem convolutions all have stride 1 (a
            single 7x7 one becomes 3x3) and there is no max pooling, so the network
            down-samples by 8 instead of 32 (32 px end at 4x4).
        name: Model name; defaults to ``variant``.

    Returns:
        A ``keras.Model`` with a stage map (``stem``, ``stage1``-``stage4``, ``head``).
    """
    if variant not in _VARIANTS:
        raise InputError(f"variant must be one of {sorted(_VARIANTS)}, got {variant!r}.")
    config = _VARIANTS[variant]
    return common.build(
        variant,
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        resnet.residual_body(
            style=config.style,
            blocks=config.blocks,
            stem_widths=config.stem_widths,
            ceil_pool=True,
            small_input=small_input,
        ),
        min_size=resnet.SMALL_MIN_SIZE if small_input else None,
        dropout_rate=config.dropout_rate if dropout_rate is None else dropout_rate,
        name=name,
    )
