"""Data augmentation composed by name: ``--augment=flip_h,crop,rotate=15,noise``.

Each op is a KerasCV augmentation layer (a Keras core layer where KerasCV has
none) with a default strength that an ``=value`` overrides. Ops run on batches of
float images in [0, 255] inside the tf.data pipeline, never inside the exported
model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import keras_cv

from kimnet.errors import InputError
from kimnet.models.registry import unknown_name_message


@dataclasses.dataclass(frozen=True)
class Op:
    """An augmentation op: what it does, its default strength, and how to build it."""

    help: str
    default: float
    build: Callable[[float, int, int], keras.layers.Layer]
    valid: tuple[float, float] = (0.0, 1.0)  # inclusive range of the strength


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


OPS: dict[str, Op] = {
    "flip_h": Op(
        "random horizontal flip (strength unused)",
        0,
        lambda _, size, seed: keras_cv.layers.RandomFlip("horizontal", seed=seed),
    ),
    "flip_v": Op(
        "random vertical flip (strength unused)",
        0,
        lambda _, size, seed: keras_cv.layers.RandomFlip("vertical", seed=seed),
    ),
    "crop": Op("zero-pad by N pixels, then random crop back to size", 4, _pad_then_crop, (0, 256)),
    "resized_crop": Op(
        "random-resized crop keeping at least this share of the area (aspect 3/4-4/3)",
        0.35,
        lambda area, size, seed: keras_cv.layers.RandomCropAndResize(
            (size, size),
            crop_area_factor=(area, 1.0),
            aspect_ratio_factor=(3 / 4, 4 / 3),
            seed=seed,
        ),
    ),
    "rotate": Op(
        "random rotation up to +/- N degrees",
        15,
        lambda degrees, size, seed: keras_cv.layers.RandomRotation(
            degrees / 360, fill_mode="constant", seed=seed
        ),
        (0, 180),
    ),
    "zoom": Op(
        "random scaling: zoom in or out by up to this fraction",
        0.1,
        lambda factor, size, seed: keras_cv.layers.RandomZoom(
            (-factor, factor), fill_mode="constant", seed=seed
        ),
        (0, 0.9),
    ),
    "translate": Op(
        "random translation by up to this fraction of the size, zero padding",
        0.1,
        lambda factor, size, seed: keras_cv.layers.RandomTranslation(
            factor, factor, fill_mode="constant", seed=seed
        ),
    ),
    "noise": Op("additive Gaussian noise, std as a fraction of the pixel range", 0.04, _noise),
}
NONE = "none"


def parse(spec: str) -> list[tuple[str, float]]:
    """Parses ``"flip_h,rotate=15"`` into ``[("flip_h", 0), ("rotate", 15.0)]``.

    ``none`` or an empty string means no augmentation. Unknown names and
    strengths that are not numbers raise ``InputError`` naming the known ops.
    """
    spec = spec.strip()
    if spec in ("", NONE):
        return []
    ops = []
    for item in spec.split(","):
        name, _, value = item.strip().partition("=")
        if name not in OPS:
            raise InputError(unknown_name_message("augmentation", name, [*OPS, NONE]))
        if not value:
            ops.append((name, float(OPS[name].default)))
            continue
        try:
            strength = float(value)
        except ValueError:
            raise InputError(
                f"Augmentation '{item}': strength '{value}' is not a number."
            ) from None
        low, high = OPS[name].valid
        if not low <= strength <= high:
            raise InputError(
                f"Augmentation '{item}': the strength of {name} must be between {low:g} and "
                f"{high:g} ({OPS[name].help})."
            )
        ops.append((name, strength))
    return ops


class Augmenter(keras.layers.Layer):
    """Applies its ops in order when ``training=True``; passes images through otherwise.

    (Some KerasCV layers resize or centre-crop at inference; augmentation must not.)
    """

    def __init__(self, ops: list[keras.layers.Layer], **kwargs):
        super().__init__(**kwargs)
        self.ops = ops

    def call(self, images, training=False):
        if not training:
            return images
        for op in self.ops:
            images = op(images, training=True)
        return images


def build(spec: str, image_size: int, seed: int | None = None) -> Augmenter | None:
    """A layer applying the ops of ``spec`` in order, or ``None`` for no augmentation.

    Call it with ``training=True`` on batches of float images in [0, 255] of
    shape ``[batch, image_size, image_size, channels]``.
    """
    ops = parse(spec)
    if not ops:
        return None
    base = 0 if seed is None else seed
    return Augmenter(
        [OPS[name].build(strength, image_size, base + i) for i, (name, strength) in enumerate(ops)],
        name="augment",
    )


def describe() -> str:
    """One line per op: name, default strength and meaning."""
    return "\n".join(
        f"{name}={op.default:g} ({op.valid[0]:g}..{op.valid[1]:g}): {op.help}"
        for name, op in OPS.items()
    )
