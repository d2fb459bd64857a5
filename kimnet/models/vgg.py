"""VGG (Simonyan and Zisserman, 2014): configurations A, B, D and E, with or without batch norm.

``vgg16`` and ``vgg19`` reproduce ``keras.applications.VGG16`` / ``VGG19`` layer for
layer (``block1_conv1`` ... ``block5_pool``, ``flatten``, ``fc1``, ``fc2``,
``predictions``), so Keras Applications' ImageNet weights load into them by name
and the two models compute the same function. ``vgg11`` and ``vgg13`` follow the
same naming. The ``_bn`` variants put batch normalisation and a separate ReLU
after every convolution (``blockB_convC``, ``blockB_convC_bn``,
``blockB_convC_relu``); their convolutions keep their biases, as in torchvision,
so their parameter counts match torchvision's ``vgg*_bn``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import common
from kimnet.models.alexnet import flatten_head, require_fixed_size

# Convolutions per block for each depth (the paper's configurations A, B, D, E).
_CONVS_PER_BLOCK = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
_FILTERS = (64, 128, 256, 512, 512)
_FC_UNITS = 4096
# Five 2x2 poolings need 32 px; small_input drops the last one, so 16 px suffice.
_MIN_SIZE = 32
_MIN_SIZE_SMALL = 16
# torchvision's BatchNorm2d defaults (eps 1e-5, momentum 0.1 -> Keras 0.9).
_BN = {"epsilon": 1e-5, "momentum": 0.9}


def _block(
    x: keras.KerasTensor, *, block: int, convs: int, filters: int, batch_norm: bool, pool: bool
) -> keras.KerasTensor:
    for index in range(1, convs + 1):
        conv_name = f"block{block}_conv{index}"
        if batch_norm:
            x = layers.Conv2D(filters, 3, padding="same", name=conv_name)(x)
            x = common.batch_norm(name=f"{conv_name}_bn", **_BN)(x)
            x = layers.ReLU(name=f"{conv_name}_relu")(x)
        else:
            x = layers.Conv2D(filters, 3, activation="relu", padding="same", name=conv_name)(x)
    if pool:
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return x


def _scaled(channels: int, width: float) -> int:
    return max(1, int(channels * width))


def _body(
    img_input: keras.KerasTensor,
    *,
    depth: int,
    batch_norm: bool,
    small_input: bool,
    width: float,
) -> common.Features:
    """Five blocks; ``small_input`` leaves out the last pooling."""
    x = img_input
    stage_ends = []
    stage_names = ("stem", "stage1", "stage2", "stage3", "stage4")
    filters_per_block = [_scaled(filters, width) for filters in _FILTERS]
    blocks = zip(_CONVS_PER_BLOCK[depth], filters_per_block, strict=True)
    for block, (convs, filters) in enumerate(blocks, start=1):
        x = _block(
            x,
            block=block,
            convs=convs,
            filters=filters,
            batch_norm=batch_norm,
            pool=not (small_input and block == 5),
        )
        stage_ends.append((stage_names[block - 1], x))
    return common.Features(x, stage_ends)


def VGG(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    depth: int = 16,
    batch_norm: bool = False,
    dropout_rate: float = 0.0,
    small_input: bool = False,
    width: float = 1.0,
    name: str | None = None,
) -> keras.Model:
    """Builds VGG-11/13/16/19, optionally with batch normalisation.

    Five blocks of 3x3 convolutions (64, 128, 256, 512, 512 filters, ``same``
    padding, ReLU), each ending with 2x2 max pooling, then the flatten head.

    Args:
        include_top: ``True``: flatten the last map and classify with ``fc1`` (4096),
            ``fc2`` (4096) and ``predictions``, exactly like Keras Applications; needs a
            fixed input size, and ``fc1``'s size follows it (7x7x512 inputs at 224 px).
            ``False``: the model ends at ``block5_pool`` (``block5_conv<N>`` with
            ``small_input``), a 4D map, or its global pooling (see ``pooling``).
        weights: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
            weights; ``vgg16`` and ``vgg19`` only; with ``include_top=True`` the input must
            be 224x224 without ``small_input``) or the path to a ``.weights.h5`` file.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``. Sides
            must be at least 32 px (16 px with ``small_input``).
        pooling: With ``include_top=False``: ``None`` (4D map), ``"avg"`` or ``"max"``.
            Ignored with ``include_top=True``, as in Keras Applications.
        classes: Number of classes of the ``predictions`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        depth: 11, 13, 16 or 19 weight layers (fixed by the registered name).
        batch_norm: Batch normalisation after every convolution (fixed by the name).
        dropout_rate: Dropout after ``fc1`` and after ``fc2``. 0 (the default) keeps the
            model identical to Keras Applications; the paper trains with 0.5.
        small_input: For 28-64 px images: ``block5_pool`` is left out (overall stride 16
            instead of 32), so a 28 px image ends at 1x1 instead of collapsing, 32 px at
            2x2 and 64 px at 4x4. Every weight shape except ``fc1``'s is unchanged.
        width: Width multiplier, as MobileNet's ``alpha``: every convolution has
            ``int(filters * width)`` filters and ``fc1``/``fc2`` ``int(4096 * width)``
            units. Below 1 it makes VGG cheap enough for small experiments on a CPU (0.25
            trained about 15 times as fast as 1.0 at 32 px on 2 CPU cores); ImageNet
            weights need 1.0.
        name: Model name; defaults to ``"vgg<depth>"`` (``"vgg<depth>_bn"``).

    Returns:
        A ``keras.Model`` with a stage map: ``stem`` (block 1), ``stage1``-``stage4``
        (blocks 2-5, each with its pooling), then the ``head``.
    """
    if depth not in _CONVS_PER_BLOCK:
        raise InputError(f"depth must be one of {sorted(_CONVS_PER_BLOCK)}, got {depth!r}.")
    if not 1 / 64 <= width <= 4:
        raise InputError(f"width must be between 1/64 and 4, got {width!r}.")
    model_name = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"

    def body(img_input: keras.KerasTensor) -> common.Features:
        if include_top:
            require_fixed_size(
                img_input, name=model_name, reason="with include_top=True (flatten head)"
            )
        size = tuple(img_input.shape[1:3])
        if include_top and weights == "imagenet" and (small_input or size != (224, 224)):
            raise InputError(
                f"weights='imagenet' with include_top=True needs 224x224 inputs and "
                f"small_input=False (the size fc1 was trained at), got {size} with "
                f"small_input={small_input}. Use include_top=False for other sizes."
            )
        return _body(
            img_input, depth=depth, batch_norm=batch_norm, small_input=small_input, width=width
        )

    return common.build(
        model_name,
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        body,
        min_size=_MIN_SIZE_SMALL if small_input else None,
        top=functools.partial(
            flatten_head,
            classes=classes,
            classifier_activation=classifier_activation,
            dropout_rate=dropout_rate,
            units=(_scaled(_FC_UNITS, width),) * 2,
        ),
        imagenet_blocker=(
            None if width == 1 else f"weights='imagenet' needs width=1.0, got {width!r}."
        ),
        # Without the top the weights do not depend on the size: the reference is built
        # size-free so small inputs (which Keras Applications rejects) still get them.
        reference_args={} if include_top else {"input_shape": (None, None, 3)},
        name=name,
    )
