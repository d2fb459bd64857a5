"""A small client for TF Serving's REST API (kimnet's server or tensorflow/serving itself).

Standard library only, so it works wherever kimnet is installed::

    from kimnet.serving.client import predict_files
    results = predict_files("http://127.0.0.1:8501", ["shoe.png"], model="fmnist-mobilenetv2")
    results[0]["top5_names"], results[0]["top5_scores"]
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kimnet.errors import InputError


class ServerError(RuntimeError):
    """The server answered with an error (``status`` and TF Serving's error message)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _request(url: str, body: dict | None = None, timeout: float = 60.0) -> Any:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            message = json.loads(payload).get("error", payload.decode("utf-8", "replace"))
        except (ValueError, AttributeError):
            message = payload.decode("utf-8", "replace")
        raise ServerError(error.code, message) from None


def _split_url(server: str, model: str | None, timeout: float) -> tuple[str, str]:
    """``http://host:port[/v1/models/<name>]`` and an optional model -> (root, model name)."""
    server = server.rstrip("/")
    if "/v1/models/" in server:
        root, _, rest = server.partition("/v1/models/")
        return root, model or urllib.parse.unquote(rest.split("/")[0])
    if model:
        return server, model
    names = _request(f"{server}/v1/models", timeout=timeout).get("models", [])
    if len(names) != 1:
        raise InputError(
            f"The server at {server} serves {len(names)} models ({', '.join(names) or 'none'}); "
            f"name one (--model NAME or a URL ending in /v1/models/NAME)."
        )
    return server, names[0]


def _model_url(root: str, model: str, version: int | str | None) -> str:
    path = f"{root}/v1/models/{urllib.parse.quote(model, safe='')}"
    return path if version is None else f"{path}/versions/{version}"


def status(server: str, model: str | None = None, timeout: float = 30.0) -> dict:
    """``GET /v1/models/<model>``: the model's version status."""
    root, model = _split_url(server, model, timeout)
    return _request(_model_url(root, model, None), timeout=timeout)


def metadata(
    server: str, model: str | None = None, version: int | str | None = None, timeout: float = 30.0
) -> dict:
    """``GET /v1/models/<model>[/versions/<v>]/metadata``: the signature definitions."""
    root, model = _split_url(server, model, timeout)
    return _request(_model_url(root, model, version) + "/metadata", timeout=timeout)


def predict(
    server: str,
    body: dict,
    model: str | None = None,
    version: int | str | None = None,
    timeout: float = 60.0,
) -> dict:
    """``POST .../<model>[/versions/<v>]:predict`` with a TF Serving request ``body``."""
    root, model = _split_url(server, model, timeout)
    return _request(_model_url(root, model, version) + ":predict", body, timeout=timeout)


def predict_images(
    server: str,
    images: list[bytes],
    model: str | None = None,
    version: int | str | None = None,
    timeout: float = 60.0,
) -> list[dict]:
    """Encoded images (PNG/JPEG bytes) -> one ``{output name: value}`` dict per image.

    Uses the ``serving_bytes`` signature of kimnet's SavedModels, sending each image
    as ``{"b64": ...}`` in the row format.
    """
    body = {
        "signature_name": "serving_bytes",
        "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images],
    }
    return predict(server, body, model=model, version=version, timeout=timeout)["predictions"]


def predict_files(
    server: str,
    paths: list[str | os.PathLike],
    model: str | None = None,
    version: int | str | None = None,
    timeout: float = 60.0,
) -> list[dict]:
    """Image files -> one ``{"top5_names": [...], "top5_scores": [...], ...}`` dict per file."""
    return predict_images(
        server, [Path(p).read_bytes() for p in paths], model=model, version=version, timeout=timeout
    )
