"""ResNet v1 (He et al., 2016): residual networks of basic blocks (18, 34) or bottlenecks.

``resnet50``, ``resnet101`` and ``resnet152`` reproduce ``keras.applications.ResNet50/
101/152`` layer for layer (names, shapes, biases, BatchNormalization epsilon 1.001e-5,
the stride on the first 1x1 convolution of a bottleneck), so Keras' ImageNet weights
load by name. ``resnet18`` and ``resnet34`` have no Keras reference; they follow the
torchvision layout (convolutions without bias, stride on the first 3x3) with Keras'
naming scheme (``conv2_block1_1_conv`` ...).

The block and stem helpers here are shared with other residual families (SENet):
:class:`BlockStyle` describes how a block is built, :func:`residual_block` builds one,
:func:`residual_stages` the four stages and :func:`stem` the input stem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import common
from kimnet.models.grouped_conv import GroupedConv2D
from kimnet.models.se import squeeze_excite


@dataclasses.dataclass(frozen=True)
class BlockStyle:
    """How the residual blocks of a ResNet-like network are built.

    Attributes:
        bottleneck: 1x1-3x3-1x1 bottleneck with 4x expansion; ``False`` for the basic
            block (two 3x3 convolutions, no expansion).
        use_bias: Biases on the block and shortcut convolutions (Keras' ResNet v1 has
            them; the PyTorch families do not).
        bn_epsilon: Epsilon of every BatchNormalization.
        stride_on_3x3: A bottleneck's stride sits on its 3x3 convolution (torchvision,
            ResNeXt) instead of its first 1x1 (Caffe, Keras' ResNet v1, SE-ResNet).
        groups: Groups of a bottleneck's 3x3 convolution (ResNeXt's cardinality).
        widths: Channels of a bottleneck's first 1x1 and of its 3x3 convolution, as
            multiples of the stage's base width (``(1, 1)`` for ResNet, ``(2, 2)`` for
            ResNeXt 32x4d, ``(2, 4)`` for SENet-154).
        shortcut_kernel: Kernel of a strided projection shortcut (3 in SENet-154); a
            stride-1 projection is always 1x1.
        se_ratio: Squeeze-and-excitation on every block's residual branch, with this
            bottleneck ratio (``None``: no SE).
    """

    bottleneck: bool = True
    use_bias: bool = False
    bn_epsilon: float = 1e-5
    stride_on_3x3: bool = True
    groups: int = 1
    widths: tuple[float, float] = (1.0, 1.0)
    shortcut_kernel: int = 1
    se_ratio: float | None = None

    @property
    def expansion(self) -> int:
        return 4 if self.bottleneck else 1


# Keras Applications' ResNet v1: conv biases, stride on the first 1x1, epsilon 1.001e-5.
KERAS_BOTTLENECK = BlockStyle(
    bottleneck=True, use_bias=True, bn_epsilon=1.001e-5, stride_on_3x3=False
)
# torchvision's ResNet-18/34 basic block.
TORCH_BASIC = BlockStyle(bottleneck=False, use_bias=False, bn_epsilon=1e-5)

# depth -> (block style, blocks per stage)
_DEPTHS: dict[int, tuple[BlockStyle, tuple[int, ...]]] = {
    18: (TORCH_BASIC, (2, 2, 2, 2)),
    34: (TORCH_BASIC, (3, 4, 6, 3)),
    50: (KERAS_BOTTLENECK, (3, 4, 6, 3)),
    101: (KERAS_BOTTLENECK, (3, 4, 23, 3)),
    152: (KERAS_BOTTLENECK, (3, 8, 36, 3)),
}
# Smallest input side: 32 px reach stage 4 at 1x1; the small-input stem divides by 8 only.
MIN_SIZE = 32
SMALL_MIN_SIZE = 8


def conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    style: BlockStyle,
    stride: int = 1,
    groups: int = 1,
    relu: bool = True,
) -> keras.KerasTensor:
    """Convolution, BatchNormalization and optionally ReLU: ``{name}_conv/_bn/_relu``.

    A strided convolution with a kernel over 1 gets explicit symmetric zero padding
    (``{name}_pad``, as PyTorch's ``padding=k//2``); a stride-1 one uses 'same'.
    """
    padding = "valid"
    if kernel_size > 1 and stride > 1:
        x = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    elif kernel_size > 1:
        padding = "same"
    # GroupedConv2D: TensorFlow's grouped Conv2D is far too slow on the CPU.
    conv = GroupedConv2D if groups > 1 else layers.Conv2D
    x = conv(
        filters,
        kernel_size,
        strides=stride,
        padding=padding,
        groups=groups,
        use_bias=style.use_bias,
        name=f"{name}_conv",
    )(x)
    x = common.batch_norm(epsilon=style.bn_epsilon, name=f"{name}_bn")(x)
    if relu:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def residual_block(
    x: keras.KerasTensor, filters: int, *, stride: int, style: BlockStyle, name: str
) -> keras.KerasTensor:
    """One residual block; its output has ``filters * style.expansion`` channels.

    Layers: ``{name}_0_*`` projection shortcut (when the stride or the channel count
    changes), ``{name}_1_*`` ... the residual branch, ``{name}_se_*`` the optional
    squeeze-and-excitation, ``{name}_add`` and ``{name}_out`` (the final ReLU).
    """
    out_channels = filters * style.expansion
    shortcut = x
    if stride != 1 or x.shape[-1] != out_channels:
        kernel = style.shortcut_kernel if stride != 1 else 1
        shortcut = conv_bn(
            x, out_channels, kernel, stride=stride, style=style, relu=False, name=f"{name}_0"
        )
    if style.bottleneck:
        first_stride, mid_stride = (1, stride) if style.stride_on_3x3 else (stride, 1)
        y = conv_bn(
            x, int(filters * style.widths[0]), 1, stride=first_stride, style=style, name=f"{name}_1"
        )
        y = conv_bn(
            y,
            int(filters * style.widths[1]),
            3,
            stride=mid_stride,
            groups=style.groups,
            style=style,
            name=f"{name}_2",
        )
        y = conv_bn(y, out_channels, 1, style=style, relu=False, name=f"{name}_3")
    else:
        y = conv_bn(x, filters, 3, stride=stride, style=style, name=f"{name}_1")
        y = conv_bn(y, filters, 3, style=style, relu=False, name=f"{name}_2")
    if style.se_ratio is not None:
        y = squeeze_excite(y, style.se_ratio, f"{name}_se")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def stem(
    x: keras.KerasTensor,
    *,
    style: BlockStyle,
    widths: Sequence[int] = (64,),
    ceil_pool: bool = False,
    small_input: bool = False,
) -> keras.KerasTensor:
    """The input stem (``conv1`` and ``pool1``): down-samples by 4.

    Args:
        x: The image tensor.
        style: Bias and BatchNormalization settings of the convolutions.
        widths: One width: a 7x7 stride-2 convolution (``conv1_*``). Several: 3x3
            convolutions, the first with stride 2 (``conv1_1_*``, ``conv1_2_*`` ...).
        ceil_pool: Max pooling as PyTorch's ``ceil_mode=True`` without padding (padded
            at the bottom/right only; Caffe-ported models). Otherwise symmetric padding
            of 1 (``pool1_pad``, as torchvision and Keras).
        small_input: Keep full resolution: every stem convolution has stride 1, a single
            one is 3x3 instead of 7x7, and there is no pooling.
    """
    stride = 1 if small_input else 2
    if len(widths) == 1:
        x = conv_bn(x, widths[0], 3 if small_input else 7, stride=stride, style=style, name="conv1")
    else:
        for index, width in enumerate(widths):
            x = conv_bn(
                x,
                width,
                3,
                stride=stride if index == 0 else 1,
                style=style,
                name=f"conv1_{index + 1}",
            )
    if small_input:
        return x
    if ceil_pool:
        return layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def residual_stages(
    x: keras.KerasTensor, blocks: Sequence[int], *, style: BlockStyle
) -> tuple[keras.KerasTensor, list[tuple[str, keras.KerasTensor]]]:
    """The four stages ``conv2`` ... ``conv5`` (base widths 64 ... 512, stride 2 from conv3).

    Returns the output and the stage map entries ``("stage1", its last tensor)`` ...
    """
    stage_ends = []
    for stage, repeats in enumerate(blocks):
        for block in range(repeats):
            x = residual_block(
                x,
                64 * 2**stage,
                stride=2 if stage > 0 and block == 0 else 1,
                style=style,
                name=f"conv{stage + 2}_block{block + 1}",
            )
        stage_ends.append((f"stage{stage + 1}", x))
    return x, stage_ends


def residual_body(
    *,
    style: BlockStyle,
    blocks: Sequence[int],
    stem_widths: Sequence[int] = (64,),
    ceil_pool: bool = False,
    small_input: bool = False,
) -> Callable[[keras.KerasTensor], common.Features]:
    """The body of a ResNet-like network: :func:`stem`, then :func:`residual_stages`."""

    def body(img_input: keras.KerasTensor) -> common.Features:
        x = stem(
            img_input,
            style=style,
            widths=stem_widths,
            ceil_pool=ceil_pool,
            small_input=small_input,
        )
        stage_ends: list[tuple[str, Any]] = [("stem", x)]
        x, body_ends = residual_stages(x, blocks, style=style)
        return common.Features(x, stage_ends + body_ends)

    return body


def ResNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    depth: int = 50,
    se_ratio: float | None = None,
    dropout_rate: float = 0.0,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds ResNet-18/34/50/101/152 (v1).

    Args:
        include_top: Whether to end with global pooling and the ``predictions`` layer.
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
            weights; depth 50, 101 or 152 only, with ``se_ratio=None`` and
            ``small_input=False``) or the path to a ``.weights.h5`` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
        pooling: With ``include_top=False``: ``None`` (4D feature map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the ``predictions`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        depth: 18 or 34 (basic blocks, torchvision layout) or 50, 101, 152 (bottlenecks,
            Keras Applications layout).
        se_ratio: Adds squeeze-and-excitation (``kimnet.models.se``) to every residual
            block, with this bottleneck ratio (e.g. ``1 / 16``); ``None`` disables it.
        dropout_rate: Dropout before the ``predictions`` layer (0 disables it, as in
            Keras Applications).
        small_input: For 28-64 px images: the stem is a 3x3 stride-1 convolution without
            max pooling, so the network down-samples by 8 instead of 32 (32 px end at
            4x4). ``conv1_conv`` becomes 3x3, so ImageNet weights do not apply.
        name: Model name; defaults to ``resnet<depth>`` (``se_resnet<depth>`` with SE).

    Returns:
        A ``keras.Model`` with a stage map (``stem``, ``stage1``-``stage4``, ``head``).
    """
    if depth not in _DEPTHS:
        raise InputError(f"depth must be one of {sorted(_DEPTHS)}, got {depth!r}.")
    style, blocks = _DEPTHS[depth]
    blocker = None
    if small_input or se_ratio is not None:
        blocker = (
            "weights='imagenet' needs small_input=False and se_ratio=None (the "
            "architecture the ImageNet weights were trained with)."
        )
    return common.build(
        f"resnet{depth}",
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        residual_body(
            style=dataclasses.replace(style, se_ratio=se_ratio),
            blocks=blocks,
            small_input=small_input,
        ),
        min_size=SMALL_MIN_SIZE if small_input else None,
        dropout_rate=dropout_rate,
        imagenet_blocker=blocker,
        name=name or (None if se_ratio is None else f"se_resnet{depth}"),
    )
