"""Model builders with the Keras Applications signature, found by name.

>>> import kimnet.models
>>> model = kimnet.models.get("mobilenetv2")(classes=10, input_shape=(32, 32, 3))
"""

# Importing a family module registers its builders.
from kimnet.models import (  # noqa: F401
    alexnet,
    densenet,
    googlenet,
    mobilenet,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
    senet,
    vgg,
)
from kimnet.models.registry import ModelSpec, get, names, register
from kimnet.models.stages import stage_names, stage_output, stages
from kimnet.models.zoo import describe

__all__ = [
    "ModelSpec",
    "describe",
    "get",
    "names",
    "register",
    "stage_names",
    "stage_output",
    "stages",
]
