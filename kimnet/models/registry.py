"""Registered models found by name (``kimnet.models.get("resnet50")``), without importing Keras.

Every variant is declared once, as a row of :data:`kimnet.models.table.TABLE`: its
family, builder, sizes, normalisation, Keras Applications reference and parameter
count. A name resolves to that row, a :class:`ModelSpec`; calling the spec imports
the family's module and builds the model. Reading a spec never imports TensorFlow,
so listing the models is instant.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kimnet.errors import InputError

if TYPE_CHECKING:
    import keras

# Input normalisations a model can ask for (applied by kimnet.data.pipeline.normalize and
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
        builder: ``"module:function"`` in ``kimnet.models`` with the Keras Applications
            signature, e.g. ``"resnet:ResNet"``.
        params: Parameters (``model.count_params()``) at ``default_size`` with the
            1000-class head and the variant's default arguments.
        trainable_params: The trainable part of ``params`` (without BN statistics).
        default_size: Canonical square input size (pixels).
        min_size: Smallest input side the builder accepts with its default arguments.
        normalization: One of :data:`NORMALIZATIONS`.
        reference: The ``keras.applications`` model with the same layers whose ImageNet
            weights kimnet loads (``None``: no ImageNet weights are published).
        fixed_kwargs: Arguments that define the variant (e.g. ``depth=50``).
    """

    name: str
    family: str
    builder: str
    params: int
    trainable_params: int
    default_size: int = 224
    min_size: int = 32
    normalization: str = "tf"
    reference: str | None = None
    fixed_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"{self.name}: normalization must be one of {NORMALIZATIONS}, "
                f"got {self.normalization!r}."
            )

    @property
    def imagenet(self) -> bool:
        """Whether ImageNet weights are published (through Keras Applications)."""
        return self.reference is not None

    def build_function(self) -> Any:
        """The family's builder function (imports its module, and so Keras)."""
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(f"kimnet.models.{module}"), function)

    def __call__(self, **kwargs: Any) -> keras.Model:
        """Builds the model; ``kwargs`` are the builder's arguments."""
        clash = set(kwargs) & set(self.fixed_kwargs)
        if clash:
            raise InputError(
                f"Model '{self.name}' fixes {sorted(clash)}; pick another registered "
                f"variant instead of overriding it."
            )
        return self.build_function()(**self.fixed_kwargs, **kwargs)


@functools.cache
def _by_name() -> dict[str, ModelSpec]:
    from kimnet.models.table import TABLE

    specs: dict[str, ModelSpec] = {}
    for spec in TABLE:
        if spec.name in specs:
            raise ValueError(f"Model name '{spec.name}' is declared twice.")
        specs[spec.name] = spec
    return specs


def names() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_by_name())


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One-line error for an unknown name: the nearest match, then every known name."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"Unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(known)}."


def find(name: str) -> ModelSpec | None:
    """The registered model ``name`` (any case), or ``None``."""
    return _by_name().get(name.strip().lower())


def get(name: str) -> ModelSpec:
    """The registered model ``name``: call it to build, read it for metadata.

    Raises:
        InputError: ``name`` is not registered; the message lists the known names.
    """
    spec = find(name)
    if spec is None:
        raise InputError(unknown_name_message("model", name, names()))
    return spec
