"""A registry of model builders keyed by name (``kimnet.models.get("resnet50")``).

Each family module registers its variants with :func:`register`. A registered
name resolves to a :class:`ModelSpec`: the builder plus what the rest of kimnet
needs to know about it without building it (default input size, the smallest
input it accepts, the input normalisation it was designed for, and whether
Keras Applications publishes ImageNet weights for it).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable
from typing import Any

import keras

from kimnet.errors import InputError

# Input normalisations a model can ask for (applied by kimnet.data.preprocess and
# inside exported models, never by the model itself):
#   "tf"    -> [-1, 1]                       (MobileNet, Inception)
#   "torch" -> ImageNet mean/std on [0, 1]   (DenseNet, the PyTorch-reference families)
#   "caffe" -> BGR, ImageNet mean subtracted (VGG, ResNet v1 in Keras Applications)
#   "raw"   -> [0, 255], the model rescales itself (MobileNetV3)
NORMALIZATIONS = ("tf", "torch", "caffe", "raw")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What kimnet knows about a registered model before building it.

    Attributes:
        name: Registry name, e.g. ``"mobilenetv2"``.
        family: Family the variant belongs to, e.g. ``"mobilenet"``.
        builder: Function with the Keras Applications signature.
        default_size: Canonical square input size (pixels).
        min_size: Smallest input side the builder accepts with its default arguments.
        normalization: One of :data:`NORMALIZATIONS`.
        imagenet: Whether ImageNet weights are published (through Keras Applications).
        fixed_kwargs: Arguments that define the variant (e.g. ``depth=50``).
    """

    name: str
    family: str
    builder: Callable[..., keras.Model]
    default_size: int = 224
    min_size: int = 32
    normalization: str = "tf"
    imagenet: bool = False
    fixed_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, **kwargs: Any) -> keras.Model:
        """Builds the model; ``kwargs`` are the builder's arguments."""
        clash = set(kwargs) & set(self.fixed_kwargs)
        if clash:
            raise InputError(
                f"Model '{self.name}' fixes {sorted(clash)}; pick another registered "
                f"variant instead of overriding it."
            )
        return self.builder(**self.fixed_kwargs, **kwargs)


_REGISTRY: dict[str, ModelSpec] = {}


def register(
    name: str,
    *,
    family: str,
    default_size: int = 224,
    min_size: int = 32,
    normalization: str = "tf",
    imagenet: bool = False,
    **fixed_kwargs: Any,
) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Decorator that registers ``builder`` under ``name``; stackable for variants."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"Model name '{name}' is registered twice.")
        _REGISTRY[name] = ModelSpec(
            name=name,
            family=family,
            builder=builder,
            default_size=default_size,
            min_size=min_size,
            normalization=normalization,
            imagenet=imagenet,
            fixed_kwargs=fixed_kwargs,
        )
        return builder

    return decorator


@functools.cache
def _load_families() -> None:
    # Importing the package registers every family module.
    import kimnet.models  # noqa: F401


def names() -> list[str]:
    """Names of every registered model, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One-line error for an unknown name: the nearest match, then every known name."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"Unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(known)}."


def get(name: str) -> ModelSpec:
    """The registered model ``name``: call it to build, read it for metadata.

    Raises:
        InputError: ``name`` is not registered; the message lists the known names.
    """
    _load_families()
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise InputError(unknown_name_message("model", name, names()))
    return _REGISTRY[key]
