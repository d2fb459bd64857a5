"""Model builders with the Keras Applications signature, found by name.

>>> import kimnet.models
>>> model = kimnet.models.get("mobilenetv2")(classes=10, input_shape=(32, 32, 3))

Importing this package does not import Keras: the registry reads the metadata
table (:mod:`kimnet.models.table`) and a family module is imported when one of its
models is built. The helpers that need Keras are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from kimnet.models.registry import ModelSpec, get, names

# Public name -> module that defines it (imported on first access, PEP 562).
_LAZY = {
    "count_params": "kimnet.models.common",
    "describe": "kimnet.models.zoo",
    "stage_names": "kimnet.models.stages",
    "stage_output": "kimnet.models.stages",
    "stages": "kimnet.models.stages",
}

__all__ = [
    "ModelSpec",
    "count_params",
    "describe",
    "get",
    "names",
    "stage_names",
    "stage_output",
    "stages",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kimnet.models' has no attribute '{name}'")
