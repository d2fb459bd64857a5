"""The one build path every family shares, and the pieces it is made of.

Builders keep the Keras Applications contract: ``include_top, weights,
input_tensor, input_shape, pooling, classes, classifier_activation``
(:class:`Arguments`). :func:`build` implements it once, as Keras Applications'
``ResNet(stack_fn, ...)`` does: check the arguments against the variant's row of
the metadata table, resolve the input, run the family's body, add the classifier
head, make the model, attach the stage map and load the weights. A family module
only describes its own blocks (its ``body``).

Every batch normalisation layer a builder creates comes from :func:`batch_norm`, so
swapping in another implementation is a change to that one function.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
from keras import layers

from kimnet.errors import InputError
from kimnet.models import registry
from kimnet.models import weights as weights_lib
from kimnet.models.batch_norm import BatchNormalization
from kimnet.models.stages import StagedModel, set_stages

POOLINGS = (None, "avg", "max")


@dataclasses.dataclass(frozen=True)
class Arguments:
    """The Keras Applications arguments every builder takes (see any builder's docstring)."""

    include_top: bool = True
    weights: str | None = None
    input_tensor: Any = None
    input_shape: Sequence[int | None] | None = None
    pooling: str | None = None
    classes: int = 1000
    classifier_activation: str | None = "softmax"


@dataclasses.dataclass
class Features:
    """What a family's body returns.

    Attributes:
        x: The last feature map (the classifier head goes on top of it).
        stage_ends: ``[(stage name, its last tensor or the name of its last layer)]``.
        extra_outputs: Outputs after the main one (e.g. auxiliary classifiers).
        name: Default model name when the caller gives none (else the variant's name).
    """

    x: keras.KerasTensor
    stage_ends: list[tuple[str, Any]]
    extra_outputs: list[keras.KerasTensor] = dataclasses.field(default_factory=list)
    name: str | None = None


def build(
    variant: str,
    args: Arguments,
    body: Callable[[keras.KerasTensor], Features],
    *,
    min_size: int | None = None,
    top: Callable[[keras.KerasTensor], keras.KerasTensor] | None = None,
    dropout_rate: float = 0.0,
    imagenet_blocker: str | None = None,
    reference_args: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds registered model ``variant`` around the family's ``body``.

    Args:
        variant: Registry name; its table row gives the default size, the minimum size,
            and the Keras Applications reference (ImageNet weights).
        args: The Keras Applications arguments.
        body: Maps the input image tensor to :class:`Features`.
        min_size: Smallest input side with these arguments (default: the table's).
        top: The classifier for ``include_top=True`` (default: :func:`classifier_head`
            with ``dropout_rate``); ``include_top=False`` always pools as ``pooling`` says.
        dropout_rate: Dropout of the default head.
        imagenet_blocker: Why ``weights="imagenet"`` cannot apply to these arguments
            (``None``: it can).
        reference_args: Arguments of the Keras Applications reference that differ from
            this model's (e.g. ``alpha``, a fixed ``input_shape``).
        name: Model name (default: the body's, else ``variant``).
    """
    spec = registry.get(variant)
    check_arguments(
        name=variant,
        include_top=args.include_top,
        weights=args.weights,
        pooling=args.pooling,
        classes=args.classes,
    )
    if args.weights == "imagenet" and imagenet_blocker:
        raise InputError(imagenet_blocker)
    img_input = resolve_input(
        name=variant,
        input_tensor=args.input_tensor,
        input_shape=args.input_shape,
        default_size=spec.default_size,
        min_size=min_size or spec.min_size,
    )
    features = body(img_input)
    x = _head(features.x, args, top=top, dropout_rate=dropout_rate)
    outputs = [x, *features.extra_outputs] if features.extra_outputs else x
    model = StagedModel(
        model_inputs(img_input, args.input_tensor),
        outputs,
        name=name or features.name or variant,
    )
    set_stages(model, _stage_layer_names(model, features.stage_ends))
    reference = None
    if spec.reference is not None:
        reference = functools.partial(
            reference_model, spec.reference, args, img_input, reference_args or {}
        )
    return weights_lib.load(model, args.weights, reference=reference)


def _head(
    x: keras.KerasTensor,
    args: Arguments,
    *,
    top: Callable[[keras.KerasTensor], keras.KerasTensor] | None,
    dropout_rate: float,
) -> keras.KerasTensor:
    """The family's own ``top`` when it has one and ``include_top``; else the shared head."""
    if args.include_top and top is not None:
        return top(x)
    return classifier_head(
        x,
        include_top=args.include_top,
        pooling=args.pooling,
        classes=args.classes,
        classifier_activation=args.classifier_activation,
        dropout_rate=dropout_rate,
    )


def reference_model(
    application: str,
    args: Arguments,
    img_input: keras.KerasTensor,
    overrides: Mapping[str, Any],
) -> keras.Model:
    """``keras.applications.<application>`` with ImageNet weights and ``args``' architecture."""
    kwargs = {
        "include_top": args.include_top,
        "weights": "imagenet",
        "input_shape": tuple(img_input.shape[1:]),
        "pooling": args.pooling,
        "classes": args.classes,
        "classifier_activation": args.classifier_activation,
        **overrides,
    }
    return getattr(keras.applications, application)(**kwargs)


def _stage_layer_names(
    model: keras.Model, stage_ends: Sequence[tuple[str, Any]]
) -> list[tuple[str, str]]:
    """Stage ends given as tensors become the names of the layers that produced them."""
    producers = {}
    for layer in model.layers:
        output = layer.output
        for tensor in output if isinstance(output, list | tuple) else [output]:
            producers[id(tensor)] = layer.name
    return [
        (stage, end if isinstance(end, str) else producers[id(end)]) for stage, end in stage_ends
    ]


def batch_norm(*, name: str, epsilon: float = 1e-3, momentum: float = 0.99) -> keras.layers.Layer:
    """The batch normalisation layer of every kimnet builder: Keras' own on other backends,
    TensorFlow's fused kernel on TensorFlow (same weights, names and results)."""
    return BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)


def count_params(layer: keras.layers.Layer) -> tuple[int, int]:
    """``(total, trainable)`` parameters of a model or layer (total = ``count_params()``)."""
    total = sum(math.prod(w.shape) for w in layer.weights)
    trainable = sum(math.prod(w.shape) for w in layer.trainable_weights)
    return int(total), int(trainable)


def check_arguments(
    *,
    name: str,
    include_top: bool,
    weights: str | None,
    pooling: str | None,
    classes: int,
) -> None:
    """Rejects argument combinations that cannot work, before any layer is built.

    Whether ``weights="imagenet"`` exists for ``name`` comes from its table row.
    """
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    if not isinstance(classes, int) or classes < 1:
        raise InputError(f"classes must be a positive integer, got {classes!r}.")
    if weights is None:
        return
    if weights == "imagenet":
        spec = registry.find(name)
        if spec is None or not spec.imagenet:
            raise InputError(
                f"No ImageNet weights are published for '{name}'. Use weights=None to "
                f"train from scratch, or a path to a .weights.h5 file."
            )
        if include_top and classes != 1000:
            raise InputError(
                "weights='imagenet' with include_top=True needs classes=1000; use "
                "include_top=False and add your own head for another class count."
            )
        return
    if not os.path.exists(weights):
        raise InputError(
            f"weights must be None, 'imagenet' or the path to a weights file; "
            f"'{weights}' does not exist."
        )


def resolve_input(
    *,
    name: str,
    input_tensor: keras.KerasTensor | None,
    input_shape: Sequence[int | None] | None,
    default_size: int,
    min_size: int,
) -> keras.KerasTensor:
    """The model's input tensor, after checking the image shape is usable.

    ``input_shape`` defaults to ``(default_size, default_size, 3)``; channels-last
    only. A side smaller than ``min_size`` (the size under which the family's
    down-sampling collapses the feature map) is rejected with the fix in the message.
    """
    if input_tensor is not None:
        shape = tuple(input_tensor.shape[1:])
    elif input_shape is not None:
        shape = tuple(input_shape)
    else:
        shape = (default_size, default_size, 3)
    if len(shape) != 3:
        raise InputError(f"input_shape must be (height, width, channels), got {shape}.")
    height, width, channels = shape
    if channels is None or channels < 1:
        raise InputError(f"input_shape needs a known channel count, got {shape}.")
    for side in (height, width):
        if side is not None and side < min_size:
            raise InputError(
                f"'{name}' needs inputs of at least {min_size}x{min_size} with these "
                f"arguments, got {height}x{width}. Resize the images (--image_size) or use "
                f"the family's small-input option (small_input=True) if it has one."
            )
    if input_tensor is None:
        return keras.Input(shape=shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=shape)
    return input_tensor


def classifier_head(
    x: keras.KerasTensor,
    *,
    classes: int,
    include_top: bool = True,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    dropout_rate: float = 0.0,
) -> keras.KerasTensor:
    """Global pooling, optional dropout and the ``predictions`` layer.

    With ``include_top=True``: ``avg_pool``, ``top_dropout`` (when ``dropout_rate > 0``)
    and the ``Dense`` layer ``predictions``. With ``include_top=False``: ``x`` itself
    (``pooling=None``) or its global pooling ``avg_pool`` / ``max_pool``.

    The ``predictions`` layer computes in float32 even under a mixed-precision
    policy, so probabilities and the loss never overflow in float16.
    """
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        return layers.Dense(
            classes, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def model_inputs(
    img_input: keras.KerasTensor, input_tensor: keras.KerasTensor | None
) -> keras.KerasTensor:
    """The graph inputs of the model, as Keras Applications finds them."""
    if input_tensor is not None:
        return keras.utils.get_source_inputs(input_tensor)
    return img_input


def pad_for_stride2(x: keras.KerasTensor, kernel_size: int) -> tuple:
    """Zero padding that makes a stride-2 'valid' convolution centre like 'same'.

    TensorFlow's 'same' pads more at the bottom/right for even sizes; explicit
    padding keeps the result identical across backends (as Keras Applications do).
    """
    pads = []
    for size in x.shape[1:3]:
        half = kernel_size // 2
        adjust = 1 if size is None else 1 - size % 2
        pads.append((half - adjust, half))
    return tuple(pads)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a channel count to a multiple of ``divisor`` without losing over 10%."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded
