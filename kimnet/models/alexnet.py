"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), as a single tower.

The paper splits every layer across two GPUs; this builder keeps the original
channel widths (96, 256, 384, 384, 256; fully connected 4096, 4096) in one tower
with no grouped convolutions. Its head is the paper's: flatten the last pooled
map, then two 4096-unit fully connected layers, so (unlike global-pooling
families) the parameter count depends on the input size.

This module also holds two pieces the other classic families share: the
:class:`LocalResponseNormalization` layer (Keras has none) and :func:`flatten_head`,
the flatten + fully connected classifier of AlexNet and VGG.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

from kimnet.errors import InputError
from kimnet.models import common

# Smallest input side with the 11x11 / stride-4 stem: 67 -> 15 -> pool 7 -> pool 3 -> pool 1.
_MIN_SIZE = 67
# With small_input (5x5 / stride-1 stem): 15 -> pool 7 -> pool 3 -> pool 1.
_MIN_SIZE_SMALL = 15


@keras.saving.register_keras_serializable(package="kimnet")
class LocalResponseNormalization(layers.Layer):
    """Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3).

    Each activation ``a`` at channel ``c`` becomes
    ``a / (k + alpha * sum(a_j ** 2 for j in the size channels centred on c)) ** beta``,
    where the window is clipped at the first and last channel. This is the paper's
    formula (and TensorFlow's ``tf.nn.local_response_normalization``): ``alpha``
    multiplies the sum; Caffe and PyTorch divide ``alpha`` by ``size`` first.

    The arithmetic runs in float32 whatever the layer's dtype policy, because the
    squared activations can overflow float16; the result is cast back to the
    input's dtype.

    Args:
        size: Number of channels in the window (odd; the paper's ``n``).
        alpha: Scale of the sum of squares.
        beta: Exponent.
        k: Additive constant.
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if size < 1 or size % 2 == 0:
            raise InputError(f"LocalResponseNormalization size must be odd and >= 1, got {size}.")
        self.size = int(size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def call(self, inputs: Any) -> Any:
        values = ops.cast(inputs, "float32")
        squares = ops.square(values)
        half = self.size // 2
        channels = squares.shape[-1]
        padding = [[0, 0]] * (len(squares.shape) - 1) + [[half, half]]
        padded = ops.pad(squares, padding)
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        scale = ops.power(self.k + self.alpha * window_sum, self.beta)
        return ops.cast(values / scale, inputs.dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k})
        return config


def require_fixed_size(img_input: keras.KerasTensor, *, name: str, reason: str) -> None:
    """Rejects an input with unknown height or width where a layer needs a fixed size."""
    height, width = img_input.shape[1:3]
    if height is None or width is None:
        raise InputError(
            f"'{name}' {reason} needs a fixed input size, got {height}x{width}. Pass "
            f"input_shape=(height, width, channels), or include_top=False with pooling."
        )


def flatten_head(
    x: keras.KerasTensor,
    *,
    classes: int,
    classifier_activation: str | None,
    dropout_rate: float,
    units: Sequence[int] = (4096, 4096),
) -> keras.KerasTensor:
    """The AlexNet/VGG classifier: flatten, ``fc1``, ``fc2``, ``predictions``.

    The feature map is flattened (so the model needs a fixed input size) and passed
    through ReLU ``Dense`` layers ``fc1``, ``fc2``, ..., each followed by dropout
    ``fc<i>_dropout`` when ``dropout_rate > 0``, then the ``predictions`` layer, which
    computes in float32 under mixed precision.
    """
    x = layers.Flatten(name="flatten")(x)
    for index, width in enumerate(units, start=1):
        x = layers.Dense(width, activation="relu", name=f"fc{index}")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name=f"fc{index}_dropout")(x)
    return layers.Dense(
        classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)


def _conv(
    x: keras.KerasTensor, filters: int, kernel: int, *, name: str, **kwargs: Any
) -> keras.KerasTensor:
    return layers.Conv2D(filters, kernel, activation="relu", name=name, **kwargs)(x)


def _pool(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    # The paper's overlapping pooling: 3x3 windows, stride 2, no padding.
    return layers.MaxPooling2D(3, strides=2, name=name)(x)


def _body(img_input: keras.KerasTensor, *, lrn: bool, small_input: bool) -> common.Features:
    if small_input:
        x = _conv(img_input, 96, 5, padding="same", name="conv1")
    else:
        x = _conv(img_input, 96, 11, strides=4, name="conv1")
    if lrn:
        x = LocalResponseNormalization(name="conv1_lrn")(x)
    x = _pool(x, "pool1")
    x = _conv(x, 256, 5, padding="same", name="conv2")
    if lrn:
        x = LocalResponseNormalization(name="conv2_lrn")(x)
    x = _pool(x, "pool2")
    x = _conv(x, 384, 3, padding="same", name="conv3")
    x = _conv(x, 384, 3, padding="same", name="conv4")
    x = _conv(x, 256, 3, padding="same", name="conv5")
    x = _pool(x, "pool5")
    return common.Features(x, [("stem", "pool1"), ("stage1", "pool2"), ("stage2", "pool5")])


def AlexNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    lrn: bool = False,
    dropout_rate: float = 0.5,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds AlexNet (single tower, original widths).

    Layout: ``conv1`` 11x11/4 (96) [``conv1_lrn``] ``pool1`` - ``conv2`` 5x5 (256)
    [``conv2_lrn``] ``pool2`` - ``conv3`` 3x3 (384) - ``conv4`` 3x3 (384) - ``conv5``
    3x3 (256) ``pool5``, every convolution with bias and ReLU, every pooling 3x3 with
    stride 2. At 227x227 the last map is 6x6x256 and the model has 62,378,344
    trainable parameters (``classes=1000``).

    Args:
        include_top: ``True``: flatten ``pool5`` and classify with ``fc1`` (4096),
            ``fc2`` (4096) and ``predictions``; needs a fixed input size, and the size
            of ``fc1`` follows it (6x6x256 inputs at 227 px). ``False``: the model ends
            at ``pool5``, a 4D map, or its global pooling (see ``pooling``).
        weights: ``None`` (random initialisation) or the path to a ``.weights.h5``
            file; no ImageNet weights are published for AlexNet.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(227, 227, 3)``.
            Sides must be at least 67 px (15 px with ``small_input``).
        pooling: With ``include_top=False``: ``None`` (the ``pool5`` map), ``"avg"``
            or ``"max"`` (global pooling to a vector). Ignored with ``include_top=True``.
        classes: Number of classes of the ``predictions`` layer.
        classifier_activation: Activation of the ``predictions`` layer (``None`` for logits).
        lrn: Whether to apply local response normalisation after the first two
            convolutions (the paper's k=2, n=5, alpha=1e-4, beta=0.75).
        dropout_rate: Dropout after ``fc1`` and after ``fc2`` (the paper's 0.5; 0 disables).
        small_input: For 28-64 px images: the stem is a 5x5 convolution with stride 1
            (instead of 11x11 with stride 4), so a 32 px image ends at 3x3 and a 28 px
            one at 2x2.
        name: Model name; defaults to ``"alexnet"``.

    Returns:
        A ``keras.Model`` with a stage map: ``stem`` (conv1 to pool1), ``stage1``
        (conv2 to pool2), ``stage2`` (conv3 to pool5), then the ``head``.
    """

    def body(img_input: keras.KerasTensor) -> common.Features:
        if include_top:
            require_fixed_size(
                img_input, name="alexnet", reason="with include_top=True (flatten head)"
            )
        return _body(img_input, lrn=lrn, small_input=small_input)

    return common.build(
        "alexnet",
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
        ),
        name=name,
    )
