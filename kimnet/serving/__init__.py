"""kimnet's model server: TF Serving's REST API v1 for kimnet SavedModels.

``kimnet serve --model_dir savedmodels`` (see :mod:`kimnet.cli`) or, from Python::

    from kimnet.serving import BackgroundServer, ServerConfig
    with BackgroundServer(ServerConfig(model_dir="savedmodels")) as server:
        print(server.url)  # http://127.0.0.1:<free port>

Modules: :mod:`~kimnet.serving.models` (discovery, loading, hot reload),
:mod:`~kimnet.serving.rest` (the JSON formats), :mod:`~kimnet.serving.batching`
(server-side batching), :mod:`~kimnet.serving.app` (the FastAPI app) and
:mod:`~kimnet.serving.client` (a standard-library client).
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use, so that kimnet.export can use the version scan of
# kimnet.serving.models without the serve extra (FastAPI, orjson) installed.
_EXPORTS = {
    "BackgroundServer": "kimnet.serving.app",
    "ServerConfig": "kimnet.serving.app",
    "create_app": "kimnet.serving.app",
    "serve": "kimnet.serving.app",
    "ModelRepository": "kimnet.serving.models",
    "ServingError": "kimnet.serving.models",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kimnet.serving' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "BackgroundServer",
    "ModelRepository",
    "ServerConfig",
    "ServingError",
    "create_app",
    "serve",
]
