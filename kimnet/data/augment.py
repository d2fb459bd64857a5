"""Data augmentation composed by name: ``--augment=flip_h,crop,randaugment=2:9,mixup=0.2``.

Each op is a KerasCV augmentation layer (a Keras core layer where KerasCV has
none) with a default strength that an ``=value`` overrides. A strength of several
numbers is written with colons (``randaugment=2:9``); numbers left out at the end
take their defaults. Ops run on batches of float images in [0, 255] inside the
tf.data pipeline, never inside the exported model. The mixing ops (``mixup``,
``cutmix``) also mix the batch's one-hot labels, so training then takes soft targets.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import keras
import keras_cv
import tensorflow as tf

from kimnet.errors import InputError
from kimnet.models.registry import unknown_name_message

# One number, or one per part of a several-number strength such as randaugment's N:M.
Strength = float | tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Part:
    """One number of a strength: its name, default and valid range (inclusive)."""

    name: str
    default: float
    low: float
    high: float
    whole: bool = False  # a count

    def range(self) -> str:
        return f"{self.low:g}..{self.high:g}"

    def problem(self, value: float) -> str | None:
        """What a valid value is, when ``value`` is not one; ``None`` when it is."""
        if self.low <= value <= self.high and (value == int(value) or not self.whole):
            return None
        return f"{'a whole number ' if self.whole else ''}between {self.low:g} and {self.high:g}"


@dataclasses.dataclass(frozen=True)
class Op:
    """An augmentation op: what it does, the parts of its strength, and how to build it.

    ``build(strength, image_size, seed)`` gets one float for a one-part strength and a
    tuple otherwise. A mixing op is called with ``{"images", "labels"}`` (one-hot float
    labels) and returns both.
    """

    help: str
    parts: tuple[Part, ...]
    build: Callable[[Strength, int, int], keras.layers.Layer]
    mixes_labels: bool = False
    rule: Callable[[tuple[float, ...]], str | None] | None = None  # a check across parts

    @property
    def default(self) -> Strength:
        return _strength(tuple(float(part.default) for part in self.parts))

    def syntax(self) -> str:
        """``crop=0..256``, or ``randaugment=ops:magnitude (ops 1..10, magnitude 0..10)``."""
        if len(self.parts) == 1:
            return self.parts[0].range()
        names = ":".join(part.name for part in self.parts)
        return f"{names} ({', '.join(f'{p.name} {p.range()}' for p in self.parts)})"


def _one(help: str, default: float, build: Callable, valid: tuple[float, float] = (0.0, 1.0)) -> Op:
    """An op whose strength is a single number in ``valid``."""
    return Op(help, (Part("strength", default, *valid),), build)


def _strength(values: tuple[float, ...]) -> Strength:
    return values[0] if len(values) == 1 else values


def _pad_then_crop(pad: float, size: int, seed: int) -> keras.layers.Layer:
    pad = int(pad)
    return keras.Sequential(
        [
            keras.layers.ZeroPadding2D(pad),
            keras_cv.layers.RandomCrop(size, size, seed=seed),
        ],
        name="pad_crop",
    )


def _noise(stddev: float, size: int, seed: int) -> keras.layers.Layer:
    # KerasCV has no Gaussian noise layer; Keras' GaussianNoise adds it only in training
    # and takes its std on a [0, 1] scale, hence the rescaling around it.
    return keras.Sequential(
        [
            keras.layers.Rescaling(1 / 255),
            keras.layers.GaussianNoise(stddev, seed=seed),
            keras.layers.Rescaling(255),
            keras.layers.Lambda(_clip_pixels),
        ],
        name="noise",
    )


def _clip_pixels(images):
    return keras.ops.clip(images, 0.0, 255.0)


class _GrayAsRGB(keras.layers.Layer):
    """Runs an RGB-only layer on grayscale batches too: repeat the channel, run, keep one.

    RandAugment's colour-degeneration op calls ``tf.image.rgb_to_grayscale``, which
    needs 3 channels. Every op of its policy keeps grey pixels grey (tested), so the
    first channel of the result is all of it.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, images, training=False):
        if images.shape[-1] != 1:
            return self.layer(images, training=training)
        return self.layer(keras.ops.repeat(images, 3, axis=-1), training=training)[..., :1]


def _rand_augment(strength: tuple[float, float], size: int, seed: int) -> keras.layers.Layer:
    ops, magnitude = strength
    # KerasCV's magnitude is on [0, 1]; the paper's (and timm's) M is on [0, 10].
    layer = keras_cv.layers.RandAugment(
        value_range=(0, 255),
        augmentations_per_image=int(ops),
        magnitude=magnitude / 10,
        seed=seed,
    )
    return _GrayAsRGB(layer, name="randaugment")


def _erasing(strength: tuple[float, float, float], size: int, seed: int) -> keras.layers.Layer:
    probability, min_area, max_area = strength
    # Height and width are each drawn from [sqrt(min), sqrt(max)] of the image's, so the
    # rectangle's share of the area lies in [min, max] (before clipping at the border).
    sides = (math.sqrt(min_area), math.sqrt(max_area))
    # Mid-grey: the centre of the pixel range stands in for the mean that Cutout and
    # Random Erasing fill with (zero after mean normalisation).
    cutout = keras_cv.layers.RandomCutout(
        sides, sides, fill_mode="constant", fill_value=127.5, seed=seed
    )
    return keras_cv.layers.RandomApply(cutout, rate=probability, seed=seed, name="erasing")


class _CutMix(keras.layers.Layer):
    """KerasCV's CutMix, with each label weighted by the pixels its image really gives.

    KerasCV 0.9 weighs the two labels by the area of the pasted box before the box is
    clipped at the image border, so a box near an edge pastes fewer pixels than its
    label weight says. An extra channel holding each image's index in the batch goes
    through the layer with the pixels and tells where every output pixel came from.
    """

    def __init__(self, alpha: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.cutmix = keras_cv.layers.CutMix(alpha=alpha, seed=seed)

    def call(self, inputs, training=False):
        images, labels = inputs["images"], inputs["labels"]
        own = tf.range(tf.shape(images)[0])
        index = tf.ones_like(images[..., :1]) * tf.cast(own, images.dtype)[:, None, None, None]
        mixed = self.cutmix({"images": tf.concat([images, index], -1), "labels": labels})
        source = tf.cast(tf.round(mixed["images"][..., -1]), tf.int32)
        is_own = source == own[:, None, None]
        kept = tf.reduce_mean(tf.cast(is_own, labels.dtype), axis=[1, 2])[:, None]
        # The one other image that gave pixels; the image itself when none did.
        other = tf.reduce_max(tf.where(is_own, -1, source), axis=[1, 2])
        other = tf.where(other < 0, own, other)
        labels = kept * labels + (1 - kept) * tf.gather(labels, other)
        return {"images": mixed["images"][..., :-1], "labels": labels}


def _erasing_areas(values: tuple[float, ...]) -> str | None:
    _, min_area, max_area = values
    return None if min_area <= max_area else "min_area must not exceed max_area"


OPS: dict[str, Op] = {
    "flip_h": _one(
        "random horizontal flip (strength unused)",
        0,
        lambda _, size, seed: keras_cv.layers.RandomFlip("horizontal", seed=seed),
    ),
    "flip_v": _one(
        "random vertical flip (strength unused)",
        0,
        lambda _, size, seed: keras_cv.layers.RandomFlip("vertical", seed=seed),
    ),
    "crop": _one(
        "zero-pad by N pixels, then random crop back to size", 4, _pad_then_crop, (0, 256)
    ),
    "resized_crop": _one(
        "random-resized crop keeping at least this share of the area (aspect 3/4-4/3)",
        0.35,
        lambda area, size, seed: keras_cv.layers.RandomCropAndResize(
            (size, size),
            crop_area_factor=(area, 1.0),
            aspect_ratio_factor=(3 / 4, 4 / 3),
            seed=seed,
        ),
    ),
    "rotate": _one(
        "random rotation up to +/- N degrees",
        15,
        lambda degrees, size, seed: keras_cv.layers.RandomRotation(
            degrees / 360, fill_mode="constant", seed=seed
        ),
        (0, 180),
    ),
    "zoom": _one(
        "random scaling: zoom in or out by up to this fraction",
        0.1,
        lambda factor, size, seed: keras_cv.layers.RandomZoom(
            (-factor, factor), fill_mode="constant", seed=seed
        ),
        (0, 0.9),
    ),
    "translate": _one(
        "random translation by up to this fraction of the size, zero padding",
        0.1,
        lambda factor, size, seed: keras_cv.layers.RandomTranslation(
            factor, factor, fill_mode="constant", seed=seed
        ),
    ),
    "noise": _one("additive Gaussian noise, std as a fraction of the pixel range", 0.04, _noise),
    "randaugment": Op(
        "RandAugment: N ops per image from KerasCV's standard policy at magnitude M of 10",
        (Part("ops", 2, 1, 10, whole=True), Part("magnitude", 9, 0, 10)),
        _rand_augment,
    ),
    # Mixing weights are drawn from Beta(alpha, alpha), which needs alpha > 0; at 0.01
    # nearly every weight is already 0 or 1 (no mixing), so lower is not useful.
    "mixup": Op(
        "MixUp: blend each image and its label with another's, weight ~ Beta(a, a)",
        (Part("alpha", 0.2, 0.01, 10),),
        lambda alpha, size, seed: keras_cv.layers.MixUp(alpha=alpha, seed=seed),
        mixes_labels=True,
    ),
    "cutmix": Op(
        "CutMix: paste a box of another image (area ~ Beta(a, a)); labels by pixel share",
        (Part("alpha", 1.0, 0.01, 10),),
        lambda alpha, size, seed: _CutMix(alpha, seed, name="cutmix"),
        mixes_labels=True,
    ),
    "erasing": Op(
        "random erasing: with probability P, a rectangle of area share min..max turns grey",
        (
            Part("probability", 0.25, 0, 1),
            Part("min_area", 0.02, 0, 1),
            Part("max_area", 0.33, 0, 1),
        ),
        _erasing,
        rule=_erasing_areas,
    ),
}
NONE = "none"


def parse(spec: str) -> list[tuple[str, Strength]]:
    """Parses ``"flip_h,rotate=15,randaugment=2:9"`` into ``[("flip_h", 0.0), ("rotate",
    15.0), ("randaugment", (2.0, 9.0))]``.

    ``none`` or an empty string means no augmentation. Unknown names and strengths
    that are not numbers or out of range raise a one-line ``InputError`` that lists
    the known ops and their valid strengths.
    """
    spec = spec.strip()
    if spec in ("", NONE):
        return []
    return [_parse_op(item.strip()) for item in spec.split(",")]


def _parse_op(item: str) -> tuple[str, Strength]:
    name, _, value = item.partition("=")
    if name not in OPS:
        message = unknown_name_message("augmentation", name, [*OPS, NONE])
        raise InputError(f"{message} {_valid_strengths()}")
    op = OPS[name]
    if not value:
        return name, op.default
    texts = value.split(":")
    if len(texts) > len(op.parts):
        raise _strength_error(item, f"{name} takes at most {len(op.parts)} number(s)")
    values = tuple(_number(item, text) for text in texts)
    values += tuple(float(part.default) for part in op.parts[len(values) :])
    for part, number in zip(op.parts, values, strict=True):
        if problem := part.problem(number):
            raise _strength_error(item, f"the {part.name} of {name} must be {problem}")
    if op.rule and (problem := op.rule(values)):
        raise _strength_error(item, problem)
    return name, _strength(values)


def _number(item: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _strength_error(item, f"'{text}' is not a number") from None


def _strength_error(item: str, problem: str) -> InputError:
    name = item.partition("=")[0]
    return InputError(f"Augmentation '{item}': {problem} ({OPS[name].help}). {_valid_strengths()}")


def _valid_strengths() -> str:
    return "Valid strengths: " + ", ".join(f"{n}={op.syntax()}" for n, op in OPS.items()) + "."


class Augmenter(keras.layers.Layer):
    """Applies its ops in order when ``training=True``; passes images through otherwise.

    Called as ``augmenter(images)`` it returns images; as ``augmenter(images,
    labels)`` (one-hot float labels) it returns ``(images, labels)``, the labels mixed
    by the mixing ops. Without labels the mixing ops still mix the images (a preview of
    what training sees). (Some KerasCV layers resize or centre-crop at inference;
    augmentation must not.)
    """

    def __init__(self, ops: list[keras.layers.Layer], mixing: list[bool] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ops = ops
        self.mixing = list(mixing or [False] * len(ops))

    @property
    def mixes_labels(self) -> bool:
        """Whether an op mixes labels, so that the pipeline must pass one-hot labels."""
        return any(self.mixing)

    def call(self, images, labels=None, training=False):
        if not training:
            return images if labels is None else (images, labels)
        # KerasCV's mixing layers need labels; a placeholder column stands in for none.
        targets = tf.ones_like(images[:, :1, 0, 0]) if labels is None else labels
        for op, mixes in zip(self.ops, self.mixing, strict=True):
            if mixes:
                mixed = op({"images": images, "labels": targets}, training=True)
                # Blending in float32 can land a hair outside [0, 255] (255.00002).
                images, targets = _clip_pixels(mixed["images"]), mixed["labels"]
            else:
                images = op(images, training=True)
        return images if labels is None else (images, targets)


def build(spec: str, image_size: int, seed: int | None = None) -> Augmenter | None:
    """A layer applying the ops of ``spec`` in order, or ``None`` for no augmentation.

    Call it with ``training=True`` on batches of float images in [0, 255] of
    shape ``[batch, image_size, image_size, channels]`` (and one-hot labels when
    ``mixes_labels``).
    """
    ops = parse(spec)
    if not ops:
        return None
    base = 0 if seed is None else seed
    return Augmenter(
        [OPS[name].build(strength, image_size, base + i) for i, (name, strength) in enumerate(ops)],
        mixing=[OPS[name].mixes_labels for name, _ in ops],
        name="augment",
    )


def describe() -> str:
    """One line per op: name, default strength, valid range and meaning."""
    return "\n".join(
        f"{name}={_format(op.default)} ({_ranges(op)}): {op.help}" for name, op in OPS.items()
    )


def _format(strength: Strength) -> str:
    values = strength if isinstance(strength, tuple) else (strength,)
    return ":".join(f"{value:g}" for value in values)


def _ranges(op: Op) -> str:
    if len(op.parts) == 1:
        return op.parts[0].range()
    return ", ".join(f"{part.name} {part.range()}" for part in op.parts)
