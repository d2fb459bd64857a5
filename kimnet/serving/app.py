"""The FastAPI application: TF Serving's REST API v1 over a :class:`ModelRepository`.

Endpoints (as TF Serving's):
  ``GET  /v1/models/<name>[/versions/<v>]``            version status
  ``GET  /v1/models/<name>[/versions/<v>]/metadata``   signature definitions
  ``POST /v1/models/<name>[/versions/<v>]:predict``    row (``instances``) or columnar
                                                      (``inputs``) predict
Plus ``GET /v1/models`` (not in TF Serving): the names of the loaded models.
Errors are ``{"error": "..."}`` with 400 (bad request), 404 (unknown model, version,
signature or route), 413 (body over the limit) or 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kimnet.serving import rest
from kimnet.serving.batching import Batcher, batch_key
from kimnet.serving.models import LoadedVersion, ModelRepository, ServingError

log = logging.getLogger("kimnet.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
# Idle keep-alive connections close after this (uvicorn's 5 s default makes busy clients race
# the close and see dropped connections when they reuse one just as it times out).
KEEP_ALIVE_S = 75
# Bodies larger than this are parsed in a worker thread so the event loop stays responsive.
_PARSE_INLINE_BYTES = 64 * 1024


@dataclass
class ServerConfig:
    """Settings of a model server (the ``kimnet serve`` flags).

    Args:
        model_dir: Base directory ``<base>/<model>/<version>/`` (or one model's folder).
        model_name: Serve ``model_dir`` as this single model.
        enable_batching: Batch concurrent requests together.
        max_batch_size: Most examples in one batch.
        batch_timeout_ms: Longest a request waits for a batch to fill.
        num_batch_threads: Threads that run the model (default: the number of CPUs).
        max_body_bytes: Larger request bodies are refused with 413.
        poll_interval_s: Seconds between rescans of ``model_dir`` for new versions.
        num_versions: Newest versions kept loaded per model (0: all).
    """

    model_dir: str | os.PathLike = "savedmodels"
    model_name: str | None = None
    enable_batching: bool = True
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    num_batch_threads: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    poll_interval_s: float = 2.0
    num_versions: int = 1


def _json(body: dict, status: int = 200) -> Response:
    return Response(
        content=json.dumps(body, allow_nan=True, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
    )


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


def _tf_error_message(error: Exception) -> str:
    """The op's own complaint in a TensorFlow runtime error, without the graph trace."""
    message = getattr(error, "message", None) or str(error)
    noise = (
        "Graph execution error",
        "Detected at node",
        "<stack traces unavailable>",
        "Stack trace for op",
        "dummy_",
        "File ",
        "[[",
        "tf2xla",
    )
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(noise)]
    text = (useful or lines or [type(error).__name__])[0]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", text)[:1000]


def _run_signature(version: LoadedVersion, signature_name: str):
    signature = version.signature(signature_name)

    def runner(inputs: dict) -> dict:
        import tensorflow as tf

        try:
            return signature(inputs)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
            raise ServingError(_tf_error_message(error), status=400) from None
        except tf.errors.OpError as error:
            raise ServingError(_tf_error_message(error), status=500) from None

    return runner


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServingError(f"Request body of {length} bytes exceeds the limit of {limit}.", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(f"Request body exceeds the limit of {limit} bytes.", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServerConfig, repository: ModelRepository | None = None) -> FastAPI:
    """The application; models load (and polling starts) when it starts up."""
    if repository is None:
        repository = ModelRepository(
            config.model_dir,
            model_name=config.model_name,
            num_versions=config.num_versions,
            poll_interval_s=config.poll_interval_s,
        )
    threads = config.num_batch_threads or os.cpu_count() or 1

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="kimnet-run")
        app.state.batcher = Batcher(
            executor,
            enabled=config.enable_batching,
            max_batch_size=config.max_batch_size,
            batch_timeout_ms=config.batch_timeout_ms,
        )
        await asyncio.to_thread(repository.start)
        log.info("Serving models %s from '%s'.", repository.names(), repository.base_dir)
        try:
            yield
        finally:
            repository.stop()
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="kimnet model server",
        description="TF Serving-compatible REST API v1 for kimnet SavedModels.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.repository = repository
    app.state.config = config

    @app.exception_handler(ServingError)
    async def serving_error(_request: Request, error: ServingError) -> Response:
        return _error(error.message, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        message = error.detail if error.status_code != 404 else "Malformed request"
        return _error(f"{message}: {request.method} {request.url.path}", error.status_code)

    @app.get("/v1/models")
    async def list_models() -> Response:
        return _json({"models": repository.names()})

    @app.get("/v1/models/{name}")
    async def model_status(name: str) -> Response:
        return _json(repository.status_json(name))

    @app.get("/v1/models/{name}/versions/{version}")
    async def version_status(name: str, version: str) -> Response:
        return _json(repository.status_json(name, version))

    @app.get("/v1/models/{name}/metadata")
    async def model_metadata(name: str) -> Response:
        return _json(repository.get(name).metadata_json())

    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def version_metadata(name: str, version: str) -> Response:
        return _json(repository.get(name, version).metadata_json())

    @app.post("/v1/models/{name_and_verb}")
    async def model_verb(name_and_verb: str, request: Request) -> Response:
        name, verb = _split_verb(name_and_verb, request)
        return await _predict(request, name, None, verb)

    @app.post("/v1/models/{name}/versions/{version_and_verb}")
    async def version_verb(name: str, version_and_verb: str, request: Request) -> Response:
        version, verb = _split_verb(version_and_verb, request)
        return await _predict(request, name, version, verb)

    async def _predict(request: Request, name: str, version: str | None, verb: str) -> Response:
        try:
            return await _predict_unchecked(request, name, version, verb)
        except ServingError:
            raise
        except Exception as error:  # anything unexpected: report it, keep serving
            log.exception("Predict request failed.")
            raise ServingError(f"Internal error: {type(error).__name__}: {error}", 500) from None

    async def _predict_unchecked(
        request: Request, name: str, version: str | None, verb: str
    ) -> Response:
        if verb in ("classify", "regress"):
            raise ServingError(
                f"The {verb} API isn't supported; kimnet's SavedModels use the predict API "
                f"(POST /v1/models/{name}:predict).",
                400,
            )
        if verb != "predict":
            raise ServingError(f"Malformed request: POST {request.url.path}", 404)
        body = await _read_body(request, config.max_body_bytes)
        servable = repository.get(name, version)  # 404 before parsing, as TF Serving
        if len(body) > _PARSE_INLINE_BYTES:
            parsed = await asyncio.to_thread(_parse, body, servable)
        else:
            parsed = _parse(body, servable)
        signature_name, inputs, rows, row_format = parsed
        runner = _run_signature(servable, signature_name)
        key = batch_key((servable.name, servable.version, id(servable)), signature_name, inputs)
        outputs = await app.state.batcher.run(key, runner, inputs, rows)
        return _json(rest.format_outputs(outputs, row_format))

    return app


def _parse(body: bytes, servable: LoadedVersion) -> tuple:
    request = rest.parse_json(body)
    signature_name = rest.signature_name(request)
    signature = servable.signature(signature_name)
    inputs, rows, row_format = rest.parse_inputs(request, signature)
    return signature_name, inputs, rows, row_format


def _split_verb(value: str, request: Request) -> tuple[str, str]:
    head, sep, verb = value.rpartition(":")
    if not sep or not head:
        raise ServingError(
            f"Malformed request: POST {request.url.path} (expected .../<model>:predict)", 404
        )
    return head, verb


class BackgroundServer:
    """Runs the server in a background thread (tests, benchmarks, notebooks).

    ``port=0`` picks a free port; ``url`` says which. Use as a context manager or
    call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        config: ServerConfig,
        host: str = DEFAULT_HOST,
        port: int = 0,
        log_level: str = "warning",
        startup_timeout_s: float = 300.0,
    ):
        import uvicorn

        self.app = create_app(config)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def repository(self) -> ModelRepository:
        return self.app.state.repository

    def start(self) -> BackgroundServer:
        self._thread = threading.Thread(target=self._server.run, name="kimnet-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The model server failed to start.")
            time.sleep(0.05)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    config: ServerConfig,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Runs the server in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
