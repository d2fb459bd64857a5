"""Every model kimnet builds, declared once: the registry, the listing and the docs read this.

One row per variant, as timm's ``default_cfgs``: registry name, builder, the
parameter counts at the default configuration (``(total, trainable)`` at the
default size with the 1000-class head; a test checks each against a built model),
sizes, normalisation, the Keras Applications reference whose ImageNet weights load
by name (``None``: no ImageNet weights) and the builder's fixed arguments.

Adding a variant of an existing family is one row here. This module imports no
Keras, so ``kimnet models`` lists the zoo without starting TensorFlow.
"""

from __future__ import annotations

import functools
from typing import Any

from kimnet.models.registry import ModelSpec


def _family(family: str, builder: str, **shared: Any) -> Any:
    """Row maker for one family: ``row(name, (params, trainable), **fields_and_kwargs)``."""
    fields = {"default_size", "min_size", "normalization", "reference"}

    def row(name: str, counts: tuple[int, int], **values: Any) -> ModelSpec:
        merged = {**shared, **values}
        kwargs = {k: v for k, v in merged.items() if k not in fields}
        return ModelSpec(
            name=name,
            family=family,
            builder=builder,
            params=counts[0],
            trainable_params=counts[1],
            fixed_kwargs=kwargs,
            **{k: v for k, v in merged.items() if k in fields},
        )

    return row


_alexnet = _family("alexnet", "alexnet:AlexNet", default_size=227, min_size=67)
_vgg = _family("vgg", "vgg:VGG", normalization="caffe")
_googlenet = _family("googlenet", "googlenet:GoogLeNet", normalization="torch")
_resnet = _family("resnet", "resnet:ResNet", normalization="torch")
_senet = _family("senet", "senet:SENet", normalization="torch")
_densenet = _family("densenet", "densenet:DenseNet", normalization="torch")
_mobilenet = functools.partial(_family, "mobilenet")

TABLE: tuple[ModelSpec, ...] = (
    _alexnet("alexnet", (62_378_344, 62_378_344), normalization="torch"),
    # Configurations A, B, D, E of the paper; the torchvision counts.
    _vgg("vgg11", (132_863_336, 132_863_336), depth=11, batch_norm=False),
    _vgg("vgg13", (133_047_848, 133_047_848), depth=13, batch_norm=False),
    _vgg("vgg16", (138_357_544, 138_357_544), reference="VGG16", depth=16, batch_norm=False),
    _vgg("vgg19", (143_667_240, 143_667_240), reference="VGG19", depth=19, batch_norm=False),
    _vgg("vgg11_bn", (132_874_344, 132_868_840), depth=11, batch_norm=True),
    _vgg("vgg13_bn", (133_059_624, 133_053_736), depth=13, batch_norm=True),
    _vgg("vgg16_bn", (138_374_440, 138_365_992), depth=16, batch_norm=True),
    _vgg("vgg19_bn", (143_689_256, 143_678_248), depth=19, batch_norm=True),
    # torchvision's googlenet (trainable 6,624,904).
    _googlenet("googlenet", (6_639_464, 6_624_904)),
    # resnet18/34: torchvision; resnet50-152: Keras Applications.
    _resnet("resnet18", (11_699_112, 11_689_512), depth=18),
    _resnet("resnet34", (21_814_696, 21_797_672), depth=34),
    _resnet(
        "resnet50", (25_636_712, 25_583_592), normalization="caffe", reference="ResNet50", depth=50
    ),
    _resnet(
        "resnet101",
        (44_707_176, 44_601_832),
        normalization="caffe",
        reference="ResNet101",
        depth=101,
    ),
    _resnet(
        "resnet152",
        (60_419_944, 60_268_520),
        normalization="caffe",
        reference="ResNet152",
        depth=152,
    ),
    # Cadene's pretrainedmodels (trainable counts).
    _senet("se_resnet50", (28_141_144, 28_088_024), variant="se_resnet50"),
    _senet("se_resnet101", (49_432_216, 49_326_872), variant="se_resnet101"),
    _senet("se_resnext50", (27_628_120, 27_559_896), variant="se_resnext50"),
    _senet("senet154", (115_336_536, 115_088_984), variant="senet154"),
    _densenet("densenet121", (8_062_504, 7_978_856), reference="DenseNet121", depth=121),
    _densenet("densenet169", (14_307_880, 14_149_480), reference="DenseNet169", depth=169),
    _densenet("densenet201", (20_242_984, 20_013_928), reference="DenseNet201", depth=201),
    _mobilenet("mobilenet:MobileNet")("mobilenet", (4_253_864, 4_231_976), reference="MobileNet"),
    _mobilenet("mobilenet_v2:MobileNetV2")(
        "mobilenetv2", (3_538_984, 3_504_872), reference="MobileNetV2"
    ),
    _mobilenet("mobilenet_v3:MobileNetV3Small", normalization="raw")(
        "mobilenetv3_small", (2_554_968, 2_542_856), reference="MobileNetV3Small"
    ),
    _mobilenet("mobilenet_v3:MobileNetV3Large", normalization="raw")(
        "mobilenetv3_large", (5_507_432, 5_483_032), reference="MobileNetV3Large"
    ),
)
