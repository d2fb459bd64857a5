"""The FastAPI application: TF Serving's REST API v1 over a :class:`ModelRepository`.

Endpoints (as TF Serving's, routed by its own regular expressions):
  ``GET  /v1/models/<name>[/versions/<v>]``            version status
  ``GET  /v1/models/<name>[/versions/<v>]/metadata``   signature definitions
  ``POST /v1/models/<name>[/versions/<v>]:predict``    row (``instances``) or columnar
                                                      (``inputs``) predict
  ``GET  /monitoring/prometheus/metrics``              Prometheus metrics
Other ``/v1/`` URLs get 400 "Malformed request", as from TF Serving. kimnet adds
``GET /v1/models`` (the loaded models' names) and ``GET /`` (a page to try a model).
Errors are ``{"error": "..."}`` with TF Serving's status codes and wording.

Large bodies are parsed in worker processes (:class:`ParsePool`), so parsing
never holds the event loop or the interpreter lock that status calls and small
predicts need.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import re
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from kimnet.serving import page, rest
from kimnet.serving.batching import Batcher, batch_key
from kimnet.serving.memory import release_memory, trim
from kimnet.serving.metrics import Metrics
from kimnet.serving.models import LoadedVersion, ModelRepository, ServingError, TensorSpec

log = logging.getLogger("kimnet.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
METRICS_PATH = "/monitoring/prometheus/metrics"
# Idle keep-alive connections close after this (uvicorn's 5 s default makes busy clients race
# the close and see dropped connections when they reuse one just as it times out).
KEEP_ALIVE_S = 75
# TF Serving's routes (http_rest_api_util.cc), matched whole, ignoring case, ASCII digits.
_FLAGS = re.IGNORECASE | re.ASCII
_API = re.compile(r"/v1/.*", _FLAGS | re.DOTALL)
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    _FLAGS,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    _FLAGS,
)
_INT64_MAX = 2**63 - 1


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
        limits: Images per request, pixels per image, JSON depth (400 beyond).
        parse_workers: Processes that parse large bodies (0: parse in a thread).
        parse_inline_bytes: Bodies up to this size are parsed in the event loop (fast).
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
    limits: rest.Limits = field(default_factory=rest.Limits)
    parse_workers: int = 2
    parse_inline_bytes: int = 64 * 1024


# Parsing off the event loop ----------------------------------------------------------------------


def _parse_in_worker(
    body: bytes, signatures: Mapping[str, Mapping[str, TensorSpec]] | None, limits: rest.Limits
) -> rest.Parsed | None:
    """Runs in a parse process: the request's tensors (None: only the envelope was checked)."""
    try:
        return _parse_inline(body, signatures, limits)
    finally:
        del body
        release_memory()  # a 30 MiB body leaves ~1 GB of freed Python objects behind


class ParsePool:
    """Parses request bodies: small ones inline, large ones in ``workers`` processes
    (restarted if one dies), or in a thread when ``workers`` is 0."""

    def __init__(self, workers: int, inline_bytes: int, limits: rest.Limits):
        self.workers = workers
        self.inline_bytes = inline_bytes
        self.limits = limits
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.workers > 0:
            self._pool = self._new_pool()
            # Start every worker now, not on the first large request.
            futures = [self._pool.submit(os.getpid) for _ in range(self.workers)]
            concurrent.futures.wait(futures, timeout=120)

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn: forking a process that runs TensorFlow threads is unsafe.
        context = multiprocessing.get_context("spawn")
        return concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context)

    async def parse(
        self, body: bytes, signatures: Mapping[str, Mapping[str, TensorSpec]] | None
    ) -> rest.Parsed | None:
        if len(body) <= self.inline_bytes:
            return _parse_inline(body, signatures, self.limits)
        if self._pool is None:
            return await asyncio.to_thread(_parse_inline, body, signatures, self.limits)
        pool = self._pool
        try:
            future = pool.submit(_parse_in_worker, body, signatures, self.limits)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:  # a worker died (killed for memory?): replace the pool
            with self._lock:
                if self._pool is pool:
                    log.error("A parse worker died; starting new ones.")
                    self._pool = self._new_pool()
            raise ServingError("Internal error: the request parser failed; retry.", 500) from None

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _parse_inline(
    body: bytes, signatures: Mapping[str, Mapping[str, TensorSpec]] | None, limits: rest.Limits
) -> rest.Parsed | None:
    """The request's tensors; with no signatures (unknown model), only the JSON envelope is
    checked, since TF Serving reports JSON errors before a missing model."""
    if signatures is None:
        rest.signature_name(rest.parse_json(body, limits))
        return None
    return rest.parse_request(body, signatures, limits)


# Responses and model runs ---------------------------------------------------------------------


def _json(body: dict | bytes, status: int = 200) -> Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content=content, status_code=status, media_type="application/json")


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
        except tf.errors.ResourceExhaustedError as error:
            raise ServingError(_tf_error_message(error), status=429) from None
        except tf.errors.OpError as error:
            raise ServingError(_tf_error_message(error), status=500) from None

    return runner


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServingError(
            f"Request body of {length} bytes exceeds the limit of {limit} (--max_body_mb).", 413
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(
                f"Request body exceeds the limit of {limit} bytes (--max_body_mb).", 413
            )
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class _Route:
    """A parsed ``/v1/`` URL (ParseModelInfo)."""

    method: str
    name: str
    version: int | None
    label: str | None
    verb: str  # "predict", "classify", "regress", "metadata", "status"


def parse_route(method: str, raw_path: str) -> _Route:
    """TF Serving's URL parsing; anything else under ``/v1/`` is 400 "Malformed request"."""
    malformed = ServingError(f"Malformed request: {method} {raw_path}")
    if method == "POST":
        match = _PREDICT.fullmatch(raw_path)
        verb = match.group(4) if match else ""
        if verb not in ("predict", "classify", "regress"):  # only lowercase ones dispatch
            raise malformed
    elif method == "GET":
        match = _STATUS.fullmatch(raw_path)
        if not match:
            raise malformed
        verb = "metadata" if match.group(4) == "metadata" else "status"
    else:
        raise malformed
    name = urllib.parse.unquote(match.group(1) or "")
    version = None
    if match.group(2):
        number = int(match.group(2))
        if number > _INT64_MAX:
            raise ServingError(f"Failed to convert version: {match.group(2)} to numeric.")
        version = number
    label = urllib.parse.unquote(match.group(3)) if match.group(3) else None
    return _Route(method, name, version, label, verb)


def create_app(config: ServerConfig, repository: ModelRepository | None = None) -> FastAPI:
    """The application; models load (and polling starts) when it starts up."""
    if repository is None:
        repository = ModelRepository(
            config.model_dir,
            model_name=config.model_name,
            num_versions=config.num_versions,
            poll_interval_s=config.poll_interval_s,
        )
    metrics = Metrics()
    repository.on_load_failure = metrics.load_failure
    parser = ParsePool(config.parse_workers, config.parse_inline_bytes, config.limits)
    threads = config.num_batch_threads or os.cpu_count() or 1

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="kimnet-run")
        app.state.batcher = Batcher(
            executor,
            enabled=config.enable_batching,
            max_batch_size=config.max_batch_size,
            batch_timeout_ms=config.batch_timeout_ms,
            on_batch=metrics.batch,
        )
        await asyncio.gather(asyncio.to_thread(repository.start), asyncio.to_thread(parser.start))
        log.info("Serving models %s from '%s'.", repository.names(), repository.base_dir)
        try:
            yield
        finally:
            repository.stop()
            parser.stop()
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
    app.state.metrics = metrics
    app.state.parser = parser

    @app.get("/")
    async def index() -> Response:
        return HTMLResponse(page.HTML)

    @app.get(METRICS_PATH)
    async def prometheus() -> Response:
        return PlainTextResponse(metrics.render())

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

    @app.api_route("/{path:path}", methods=methods)
    async def api(request: Request) -> Response:
        started = time.perf_counter()
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        info = {"model": "", "version": "", "signature": "", "api": "other"}
        try:
            response = await _dispatch(request, raw_path, info)
        except ServingError as error:
            response = _json({"error": error.message}, error.status)
        except Exception as error:  # a bug, not the client's mistake: report it, keep serving
            log.exception("Request %s %s failed.", request.method, raw_path)
            response = _json({"error": f"Internal error: {type(error).__name__}"}, 500)
        seconds = time.perf_counter() - started
        if info["api"] != "other":
            metrics.request(**info, code=response.status_code, seconds=seconds)
        if log.isEnabledFor(logging.DEBUG):
            record = {"method": request.method, "path": raw_path, **info}
            record.update(code=response.status_code, ms=round(seconds * 1000, 2))
            log.debug("request %s", orjson.dumps(record).decode())
        return response

    async def _dispatch(request: Request, raw_path: str, info: dict) -> Response:
        if not _API.fullmatch(raw_path):
            return _json({"error": f"Not found: {request.method} {raw_path}"}, 404)
        if request.method == "OPTIONS":  # CORS preflight, as TF Serving answers it
            if re.search(r"https?://", request.headers.get("origin", "")):
                return Response(status_code=200)
            raise ServingError("Origin header is missing in CORS preflight")
        route = parse_route(request.method, raw_path)
        info.update(model=route.name, api=route.verb)
        if route.label is not None:
            raise ServingError(
                f"Version labels are not supported by kimnet (got '{route.label}'); "
                f"use /versions/<number>."
            )
        if route.verb == "status":
            if not route.name:
                if route.version is None:  # kimnet's addition: list the models
                    return _json({"models": repository.names()})
                raise ServingError("Missing model name in request.")
            return _json(repository.status_json(route.name, route.version))
        if route.verb == "metadata":
            if not route.name:
                raise ServingError("Missing model name in request.")
            return _json(repository.get(route.name, route.version).metadata_json())
        if route.verb != "predict":
            raise ServingError(
                f"The {route.verb} API isn't supported; kimnet's SavedModels use the predict "
                f"API (POST /v1/models/{route.name}:predict)."
            )
        return await _predict(request, route, info)

    async def _predict(request: Request, route: _Route, info: dict) -> Response:
        body = await _read_body(request, config.max_body_bytes)
        try:
            servable = repository.get(route.name, route.version)
        except ServingError:
            # TF Serving parses the JSON before looking the model up: its errors come first.
            await parser.parse(body, None)
            raise
        info["version"] = str(servable.version)
        signatures = {key: sig.inputs for key, sig in servable.signatures.items()}
        parsed = await parser.parse(body, signatures)
        info["signature"] = parsed.signature_name
        runner = _run_signature(servable, parsed.signature_name)
        key = batch_key(
            (servable.name, servable.version, id(servable)), parsed.signature_name, parsed.inputs
        )
        outputs = await app.state.batcher.run(key, runner, parsed.inputs, parsed.rows)
        content = rest.format_outputs(outputs, parsed.row_format)
        if len(body) > config.parse_inline_bytes:
            del body, parsed
            await asyncio.to_thread(trim)  # hand the body's pages back to the OS
        return _json(content)

    return app


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
