"""Squeeze-and-excitation (Hu et al., 2018): a learned, per-channel gate on a feature map.

The block squeezes the feature map to one value per channel (global average
pooling), passes it through a small bottleneck (reduce, activation, expand,
sigmoid) and multiplies the feature map by the result. Any family can switch
it on through an ``se_ratio`` argument and call :func:`squeeze_excite`.

Layer names, for ``name="conv2_block1_se"``: ``conv2_block1_se_squeeze``
(pooling), ``conv2_block1_se_reduce`` and ``conv2_block1_se_expand`` (biased
1x1 convolutions, the only layers with weights) and ``conv2_block1_se_excite``
(the multiplication). These are the names Keras Applications' EfficientNet
gives its SE weights, so such weights copy across by name.
"""

from __future__ import annotations

import keras
from keras import layers

from kimnet.errors import InputError


def se_filters(channels: int, ratio: float) -> int:
    """Width of the squeeze bottleneck: ``channels * ratio`` rounded down, at least 1.

    A small tolerance keeps e.g. ``48 * (1 / 3)`` at 16 despite float rounding.
    """
    if not 0 < ratio <= 1:
        raise InputError(f"se_ratio must be in (0, 1], got {ratio!r}.")
    return max(1, int(channels * ratio + 1e-6))


def squeeze_excite(
    x: keras.KerasTensor,
    ratio: float,
    name: str,
    *,
    filters: int | None = None,
    activation: str = "relu",
) -> keras.KerasTensor:
    """Gates the channels of ``x`` with a squeeze-and-excitation block.

    Args:
        x: 4D feature map, channels last.
        ratio: Bottleneck width as a fraction of the channels of ``x`` (``1 / 16`` in
            SENet, ``0.25`` in EfficientNet).
        name: Prefix of the block's layer names.
        filters: Bottleneck width; overrides ``ratio`` (for families that size it from
            another tensor, e.g. a block's input instead of its expanded features).
        activation: Activation of the bottleneck (``"relu"``, ``"swish"`` ...).

    Returns:
        ``x`` multiplied channel-wise by a sigmoid gate in ``(0, 1)``; same shape and dtype.
    """
    channels = x.shape[-1]
    reduced = filters if filters is not None else se_filters(channels, ratio)
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Conv2D(reduced, 1, activation=activation, name=f"{name}_reduce")(s)
    s = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_expand")(s)
    return layers.Multiply(name=f"{name}_excite")([x, s])
