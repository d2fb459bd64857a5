"""GoogLeNet, i.e. Inception v1 (Szegedy et al., 2014), with optional auxiliary classifiers.

Two forms, chosen with ``batch_norm``:

* ``batch_norm=True`` (default), the torchvision form: every convolution is a
  bias-free convolution, batch normalisation and ReLU; the inception modules'
  "5x5" branch uses a 3x3 kernel (as torchvision's implementation does); no local
  response normalisation. 6,624,904 trainable parameters (13,004,888 with the
  auxiliary heads) at 224 px and 1000 classes, the same as torchvision's
  ``googlenet``.
* ``batch_norm=False``, the paper's form: convolutions with biases followed by
  ReLU, true 5x5 kernels in the "5x5" branch, and local response normalisation
  (size 5, alpha 1e-4, beta 0.75, k 2 as in AlexNet) after the first pooling and
  after the stem's 3x3 convolution, as in the paper's Figure 3. 6,998,552
  trainable parameters (13,378,280 with the auxiliary heads) at 224 px and 1000
  classes: the 5x5 kernels add 380,928 weights over the 3x3 ones, and a bias (one
  value per channel) replaces batch norm's scale and offset (two per channel), which
  removes 7,280 (7,536 with the auxiliary heads).

Pooling uses ``same`` padding throughout, which matches the paper's output sizes
(224 -> 112 -> 56 -> 28 -> 14 -> 7).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import common
from kimnet.models.alexnet import LocalResponseNormalization, require_fixed_size

# Inception modules per group: name -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj),
# the paper's Table 1. A 3x3/2 max pooling precedes groups 4 and 5 (2x2/2 before 5 in
# torchvision; both give 7x7 at 224 px, this builder uses 3x3/2 'same' as the paper).
_GROUPS = (
    (
        ("inception3a", (64, 96, 128, 16, 32, 32)),
        ("inception3b", (128, 128, 192, 32, 96, 64)),
    ),
    (
        ("inception4a", (192, 96, 208, 16, 48, 64)),
        ("inception4b", (160, 112, 224, 24, 64, 64)),
        ("inception4c", (128, 128, 256, 24, 64, 64)),
        ("inception4d", (112, 144, 288, 32, 64, 64)),
        ("inception4e", (256, 160, 320, 32, 128, 128)),
    ),
    (
        ("inception5a", (256, 160, 320, 32, 128, 128)),
        ("inception5b", (384, 192, 384, 48, 128, 128)),
    ),
)
# The auxiliary classifiers sit on these modules' outputs.
_AUX_AFTER = {"inception4a": "aux1", "inception4d": "aux2"}
# torchvision's BasicConv2d batch norm (eps 0.001, momentum 0.1 -> Keras 0.9).
_BN = {"epsilon": 1e-3, "momentum": 0.9}
# Overall stride 32 (8 with small_input): the smallest input that ends at 1x1.
_MIN_SIZE = 32
_MIN_SIZE_SMALL = 8


def _conv(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    *,
    batch_norm: bool,
    name: str,
    strides: int = 1,
    padding: str = "same",
) -> keras.KerasTensor:
    """Convolution + (batch norm) + ReLU, named ``name``, ``name_bn``, ``name_relu``."""
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=not batch_norm, name=name
    )(x)
    if batch_norm:
        x = common.batch_norm(name=f"{name}_bn", **_BN)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _inception(
    x: keras.KerasTensor, widths: Sequence[int], *, batch_norm: bool, name: str
) -> keras.KerasTensor:
    """One inception module: four branches concatenated into ``<name>_output``."""
    c1, r3, c3, r5, c5, pool_proj = widths
    conv: Any = {"batch_norm": batch_norm}
    branch1 = _conv(x, c1, 1, name=f"{name}_1x1", **conv)
    branch2 = _conv(x, r3, 1, name=f"{name}_3x3_reduce", **conv)
    branch2 = _conv(branch2, c3, 3, name=f"{name}_3x3", **conv)
    branch3 = _conv(x, r5, 1, name=f"{name}_5x5_reduce", **conv)
    branch3 = _conv(branch3, c5, 3 if batch_norm else 5, name=f"{name}_5x5", **conv)
    branch4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch4 = _conv(branch4, pool_proj, 1, name=f"{name}_pool_proj", **conv)
    return layers.Concatenate(name=f"{name}_output")([branch1, branch2, branch3, branch4])


def _aux_head(
    x: keras.KerasTensor,
    *,
    classes: int,
    classifier_activation: str | None,
    batch_norm: bool,
    name: str,
) -> keras.KerasTensor:
    """The paper's auxiliary classifier: avgpool 5x5/3, 1x1 conv 128, FC 1024, dropout 0.7.

    The pooling window shrinks to the map when the map is smaller than 5x5 (small
    inputs); at 224 px the 14x14 map becomes 4x4x128, 2048 inputs to the FC layer.
    """
    window = tuple(min(5, side) for side in x.shape[1:3])
    x = layers.AveragePooling2D(window, strides=3, name=f"{name}_pool")(x)
    x = _conv(x, 128, 1, batch_norm=batch_norm, name=f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return layers.Dense(
        classes, activation=classifier_activation, dtype="float32", name=f"{name}_predictions"
    )(x)


def _body(
    img_input: keras.KerasTensor,
    *,
    batch_norm: bool,
    small_input: bool,
    aux_head: Callable[[keras.KerasTensor, str], keras.KerasTensor] | None,
) -> common.Features:
    """Stem and inception groups; ``aux_head(x, name)`` adds the auxiliary classifiers."""
    conv: Any = {"batch_norm": batch_norm}
    if small_input:
        x = _conv(img_input, 64, 7, name="conv1", **conv)
    else:
        x = layers.ZeroPadding2D(common.pad_for_stride2(img_input, 7), name="conv1_pad")(img_input)
        x = _conv(x, 64, 7, strides=2, padding="valid", name="conv1", **conv)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    if not batch_norm:
        x = LocalResponseNormalization(name="lrn1")(x)
    x = _conv(x, 64, 1, name="conv2", **conv)
    x = _conv(x, 192, 3, name="conv3", **conv)
    if not batch_norm:
        x = LocalResponseNormalization(name="lrn2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    features = common.Features(x, [("stem", "pool2")])
    for group_index, group in enumerate(_GROUPS):
        if group_index:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{group_index + 2}")(x)
        for module_name, widths in group:
            x = _inception(x, widths, name=module_name, **conv)
            if aux_head is not None and module_name in _AUX_AFTER:
                features.extra_outputs.append(aux_head(x, _AUX_AFTER[module_name]))
        features.stage_ends.append((f"stage{group_index + 1}", x))
    features.x = x
    return features


def GoogLeNet(
    include_top: bool = True,
    weights: str | None = None,
    input_tensor: keras.KerasTensor | None = None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    *,
    aux_logits: bool = False,
    batch_norm: bool = True,
    dropout_rate: float = 0.4,
    small_input: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds GoogLeNet (Inception v1).

    Layout: stem (``conv1`` 7x7/2, ``pool1`` 3x3/2, ``conv2`` 1x1, ``conv3`` 3x3,
    ``pool2`` 3x3/2), inception modules 3a-3b, ``pool3``, 4a-4e, ``pool4``, 5a-5b,
    global average pooling, dropout and ``predictions``.

    Args:
        include_top: Whether to end with global average pooling, dropout and the
            ``predictions`` layer.
        weights: ``None`` (random initialisation) or the path to a ``.weights.h5``
            file; no ImageNet weights are published for GoogLeNet in Keras.
        input_tensor: Optional Keras tensor to use as the model's input.
        input_shape: ``(height, width, channels)``; defaults to ``(224, 224, 3)``.
            Sides must be at least 32 px (8 px with ``small_input``).
        pooling: With ``include_top=False``: ``None`` (the 4D ``inception5b_output``
            map), ``"avg"`` or ``"max"``.
        classes: Number of classes of the classifier layers.
        classifier_activation: Activation of the classifier layers (``None`` for logits).
        aux_logits: Adds the paper's two auxiliary classifiers (on inception 4a and
            4d; training only). The model then has three outputs, in this order:
            ``predictions``, ``aux1_predictions``, ``aux2_predictions``; the main
            output is first, so the inference model is
            ``keras.Model(model.inputs, model.outputs[0])``, which is how kimnet
            exports it. Train with a loss per output (the paper weights the
            auxiliary losses 0.3). Needs ``include_top=True`` and a fixed input size
            (the auxiliary heads flatten their maps).
        batch_norm: ``True``: torchvision's form (bias-free convolutions with batch
            norm, 3x3 kernels in the "5x5" branch). ``False``: the paper's form
            (biases, true 5x5 kernels, local response normalisation in the stem).
        dropout_rate: Dropout before ``predictions`` (the paper's 0.4; 0 disables).
            The auxiliary heads always use the paper's 0.7.
        small_input: For 28-64 px images: ``conv1`` keeps full resolution (stride 1
            instead of 2) and ``pool1`` is left out, so the overall stride is 8
            instead of 32 (a 32 px image ends at 4x4). Weight shapes are unchanged.
        name: Model name; defaults to ``"googlenet"``.

    Returns:
        A ``keras.Model`` with a stage map: ``stem`` (to ``pool2``, stride 8),
        ``stage1`` (inception 3a-3b, stride 8), ``stage2`` (``pool3``, inception
        4a-4e, stride 16), ``stage3`` (``pool4``, inception 5a-5b, stride 32), then
        the ``head``. Stages follow the functional model's layer order, which puts the
        auxiliary heads' layers after ``pool4``: in ``stage3`` (their pooling and
        convolution) or in the ``head``; freeze through ``stage2`` to keep them trainable.
    """
    if aux_logits and not include_top:
        raise InputError("aux_logits=True needs include_top=True (the auxiliary heads classify).")

    def body(img_input: keras.KerasTensor) -> common.Features:
        if aux_logits:
            require_fixed_size(img_input, name="googlenet", reason="with aux_logits=True")
        aux_head = functools.partial(
            _aux_head,
            classes=classes,
            classifier_activation=classifier_activation,
            batch_norm=batch_norm,
        )
        return _body(
            img_input,
            batch_norm=batch_norm,
            small_input=small_input,
            aux_head=(lambda x, name: aux_head(x, name=name)) if aux_logits else None,
        )

    return common.build(
        "googlenet",
        common.Arguments(
            include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation
        ),
        body,
        min_size=_MIN_SIZE_SMALL if small_input else None,
        dropout_rate=dropout_rate,
        name=name,
    )
