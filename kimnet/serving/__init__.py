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

from kimnet.serving.app import BackgroundServer, ServerConfig, create_app, serve
from kimnet.serving.models import ModelRepository, ServingError

__all__ = [
    "BackgroundServer",
    "ModelRepository",
    "ServerConfig",
    "ServingError",
    "create_app",
    "serve",
]
