"""Discovery and loading of SavedModels in TF Serving's layout, with hot reload.

``<base>/<model name>/<integer version>/saved_model.pb``: every directory under the
base whose name does not start with ``.`` is a model; every integer-named
directory inside it that holds ``saved_model.pb`` is a version. Anything else (a
hidden ``.3-incomplete-xyz`` staging folder, an integer folder still without
``saved_model.pb``) is never loaded. A :class:`ModelRepository` rescans the base
periodically and serves, per model, the newest ``num_versions`` versions that load
(TF Serving's "latest" policy, availability-preserving as its default one is): a
new version is loaded and answers a warm-up request in the background before it
replaces the serving one; a version that fails to load or warm up is reported in
the status (with paths relative to the base directory) and retried when its folder
changes, while the version it was meant to replace keeps serving.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kimnet.errors import InputError
from kimnet.serving.memory import release_memory

log = logging.getLogger("kimnet.serving")

_VERSION = re.compile(r"^[0-9]+$")
PREDICT_METHOD = "tensorflow/serving/predict"


class ServingError(Exception):
    """An error reported to the client as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message, status)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


def version_dirs(model_dir: str | os.PathLike, *, complete: bool = True) -> dict[int, Path]:
    """``{version: folder}`` of the integer-named folders (``12`` or ``0012``) of ``model_dir``.

    The one version scan of kimnet: the server takes the complete ones (holding
    ``saved_model.pb``), the exporter all of them (``complete=False``) to pick a free number.
    """
    try:
        entries = sorted(Path(model_dir).iterdir())
    except OSError:
        return {}
    found: dict[int, Path] = {}
    for entry in entries:
        if not _VERSION.match(entry.name) or not entry.is_dir():
            continue
        if not complete or (entry / "saved_model.pb").is_file():
            found.setdefault(int(entry.name), entry)
    return dict(sorted(found.items()))


def complete_versions(model_dir: str | os.PathLike) -> list[int]:
    """The complete versions of ``model_dir`` (see :func:`version_dirs`), ascending."""
    return list(version_dirs(model_dir))


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds at least one complete version (``<path>/<int>/saved_model.pb``)."""
    return bool(complete_versions(path))


def resolve_version_dir(path: str | os.PathLike) -> Path:
    """A version folder itself, or the newest complete version of a model folder."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    found = version_dirs(path)
    if not found:
        raise FileNotFoundError(
            f"'{path}' is neither a SavedModel version folder (no saved_model.pb) nor a model "
            f"folder with integer-named versions."
        )
    return found[max(found)]


def _fingerprint(version_dir: Path) -> tuple:
    """Changes whenever files in the version folder change (to retry a failed load)."""
    items = []
    for root, _dirs, files in os.walk(version_dir):
        for name in files:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            items.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(items))


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature, as the SignatureDef records it."""

    name: str
    dtype: str  # TensorFlow's name: "uint8", "float32", "string", ...
    shape: tuple[int | None, ...] | None  # None: unknown rank


@dataclass
class Signature:
    """A callable serving signature with its inputs and outputs."""

    name: str
    function: Any  # a ConcreteFunction taking keyword tensors
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        tensors = {
            key: tf.constant(value, dtype=tf.dtypes.as_dtype(self.inputs[key].dtype))
            for key, value in inputs.items()
        }
        result = self.function(**tensors)
        return {key: value.numpy() for key, value in result.items()}


def _tensor_spec(info: Any) -> TensorSpec:
    import tensorflow as tf

    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim)
    return TensorSpec(name=info.name, dtype=tf.dtypes.as_dtype(info.dtype).name, shape=shape)


def _signature_json(signature_def: Any) -> dict:
    """A SignatureDef as TF Serving's metadata endpoint prints it."""

    def tensor(info: Any) -> dict:
        from tensorflow.core.framework import types_pb2

        dims = [{"size": str(d.size), "name": d.name} for d in info.tensor_shape.dim]
        return {
            "dtype": types_pb2.DataType.Name(info.dtype),
            "tensor_shape": {"dim": dims, "unknown_rank": info.tensor_shape.unknown_rank},
            "name": info.name,
        }

    return {
        "inputs": {key: tensor(value) for key, value in sorted(signature_def.inputs.items())},
        "outputs": {key: tensor(value) for key, value in sorted(signature_def.outputs.items())},
        "method_name": signature_def.method_name,
        "defaults": {},  # SignatureDef's map field, which TF Serving prints even when empty
    }


@dataclass
class LoadedVersion:
    """One loaded version of a model: its signatures and TF Serving-style metadata."""

    name: str
    version: int
    path: Path
    signatures: dict[str, Signature]
    signature_defs_json: dict[str, dict]
    _loaded: Any = field(repr=False, default=None)  # keeps the restored object alive

    @classmethod
    def load(cls, name: str, version: int, path: str | os.PathLike) -> LoadedVersion:
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        path = Path(path)
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags]
        if not graphs:
            raise InputError(f"'{path}' has no MetaGraph tagged 'serve'.")
        signature_defs = graphs[0].signature_def
        loaded = tf.saved_model.load(str(path), tags=["serve"])
        signatures = {}
        for key, function in loaded.signatures.items():
            sig_def = signature_defs.get(key)
            if sig_def is None:
                continue
            signatures[key] = Signature(
                name=key,
                function=function,
                inputs={k: _tensor_spec(v) for k, v in sig_def.inputs.items()},
                outputs={k: _tensor_spec(v) for k, v in sig_def.outputs.items()},
            )
        return cls(
            name=name,
            version=version,
            path=path,
            signatures=signatures,
            signature_defs_json={k: _signature_json(v) for k, v in sorted(signature_defs.items())},
            _loaded=loaded,
        )

    def signature(self, signature_name: str | None) -> Signature:
        key = signature_name or "serving_default"
        if key not in self.signatures:  # TF Serving's GetInfoMap: InvalidArgument, 400
            raise ServingError(f'Serving signature name: "{key}" not found in signature def')
        return self.signatures[key]

    def warm_up(self) -> None:
        """Runs every signature once on a tiny input, so a version that loads but cannot
        run (half-copied variables, a broken graph) never replaces a serving one."""
        for signature in self.signatures.values():
            signature({key: _warm_up_input(spec) for key, spec in signature.inputs.items()})

    def metadata_json(self) -> dict:
        """The body of ``GET /v1/models/<name>[/versions/<v>]/metadata``."""
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": self.signature_defs_json}},
        }


def _warm_up_input(spec: TensorSpec) -> np.ndarray:
    """One example for ``spec``: unknown dimensions 1, strings a 1x1 PNG."""
    if spec.shape is None:
        raise InputError(f"Input '{spec.name}' has an unknown rank; cannot warm it up.")
    shape = tuple(1 if d is None else d for d in spec.shape)
    if spec.dtype == "string":
        return np.full(shape, _tiny_png(), dtype=object)
    return np.zeros(shape, dtype=spec.dtype)


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class _Failure:
    fingerprint: tuple
    message: str


@dataclass
class _Model:
    name: str
    directory: Path
    loaded: dict[int, LoadedVersion] = field(default_factory=dict)
    failed: dict[int, _Failure] = field(default_factory=dict)
    loading: int | None = None


class ModelRepository:
    """The models under a base directory, rescanned every ``poll_interval_s`` seconds.

    Args:
        base_dir: ``<base>`` with ``<base>/<model>/<version>/``, or a single model's folder
            (``<model>/<version>/``) when ``model_name`` is given or the folder itself holds
            integer-named versions.
        model_name: Serve only ``base_dir`` as this model (TF Serving's ``--model_name``).
        num_versions: How many of the newest versions of each model stay loaded
            (0 keeps all; TF Serving's default policy keeps 1).
        poll_interval_s: Seconds between rescans of the directory (0 disables polling).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike,
        *,
        model_name: str | None = None,
        num_versions: int = 1,
        poll_interval_s: float = 2.0,
    ):
        self.base_dir = Path(base_dir)
        if model_name is None and is_model_dir(self.base_dir):
            model_name = self.base_dir.resolve().name
        self.model_name = model_name
        if num_versions < 0:
            raise InputError(f"num_versions must be >= 0, got {num_versions}.")
        self.num_versions = num_versions
        self.poll_interval_s = poll_interval_s
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Called with (model, version) when a version fails to load (the server's metrics).
        self.on_load_failure: Callable[[str, int], None] | None = None
        self._unloaded = False  # since the last scan: memory to give back

    # Discovery ---------------------------------------------------------------------------------

    def _model_dirs(self) -> dict[str, Path]:
        if self.model_name is not None:
            return {self.model_name: self.base_dir}
        try:
            entries = list(self.base_dir.iterdir())
        except OSError:
            return {}
        return {e.name: e for e in entries if e.is_dir() and not e.name.startswith(".")}

    def _target(self, available: int) -> int:
        return available if self.num_versions == 0 else min(self.num_versions, available)

    def scan(self) -> None:
        """Loads new versions and unloads removed or superseded ones (one pass)."""
        with self._scan_lock:
            model_dirs = self._model_dirs()
            for name, directory in sorted(model_dirs.items()):
                self._scan_model(name, directory)
            with self._lock:
                removed = [n for n in self._models if n not in model_dirs]
                for name in removed:
                    log.info("Model '%s' removed; unloading it.", name)
                    del self._models[name]
            if removed or self._unloaded:
                # A full collection holds the GIL for a while: only after an unload.
                self._unloaded = False
                release_memory()

    def _scan_model(self, name: str, directory: Path) -> None:
        """Serves the newest ``num_versions`` versions that load and warm up; a loaded
        version is retired only once its replacements serve (availability preserving)."""
        with self._lock:
            model = self._models.get(name) or _Model(name=name, directory=directory)
        on_disk = version_dirs(directory)
        serving: list[int] = []
        for version in sorted(on_disk, reverse=True):  # newest first: it becomes the default
            if len(serving) >= self._target(len(on_disk)):
                break
            if version in model.loaded or self._load(model, version, on_disk[version]):
                serving.append(version)
        with self._lock:
            gone = [v for v in model.loaded if v not in serving]
            if gone:
                log.info("Unloading model '%s' versions %s.", name, gone)
                self._unloaded = True
                model.loaded = {v: m for v, m in model.loaded.items() if v in serving}
            model.failed = {v: f for v, f in model.failed.items() if v in on_disk}
            if model.loaded or model.failed:
                self._models[name] = model
            else:
                self._models.pop(name, None)

    def _load(self, model: _Model, version: int, version_dir: Path) -> bool:
        """Loads and warms up one version; a failure is recorded, never raised."""
        fingerprint = _fingerprint(version_dir)
        failure = model.failed.get(version)
        if failure is not None and failure.fingerprint == fingerprint:
            return False  # failed before and unchanged since: don't retry every poll
        started = time.monotonic()
        with self._lock:
            model.loading = version
            self._models[model.name] = model
        try:
            loaded = LoadedVersion.load(model.name, version, version_dir)
            loaded.warm_up()
        except Exception as error:  # a broken version must not stop the server
            message = self._relative(f"{type(error).__name__}: {error}".strip())
            message = message.splitlines()[0][:500]
            log.error("Failed to load %s version %d: %s", model.name, version, message)
            if self.on_load_failure is not None:
                self.on_load_failure(model.name, version)
            with self._lock:  # copy on write: readers copy these dicts under the lock
                model.failed = {**model.failed, version: _Failure(fingerprint, message)}
                model.loading = None
            return False
        log.info(
            "Loaded model '%s' version %d from %s in %.1f s.",
            model.name,
            version,
            self._relative(str(version_dir)),
            time.monotonic() - started,
        )
        with self._lock:
            model.loaded = {**model.loaded, version: loaded}
            model.failed = {v: f for v, f in model.failed.items() if v != version}
            model.loading = None
        return True

    def _relative(self, message: str) -> str:
        """``message`` with the base directory's absolute path removed (status is public)."""
        spellings = {
            str(self.base_dir.resolve()),
            str(self.base_dir.absolute()),
            str(self.base_dir),
        }
        for base in sorted(spellings, key=len, reverse=True):  # longest first: no partial match
            if len(base) > 1:
                message = message.replace(base + os.sep, "").replace(base, ".")
        return message

    def start(self) -> None:
        """Scans once (synchronously), then keeps polling in a daemon thread."""
        self.scan()
        if self.poll_interval_s > 0 and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._poll, name="kimnet-model-poll", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.scan()
            except Exception:  # keep polling whatever happens
                log.exception("Model directory scan failed.")

    # Lookup ------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return sorted(n for n, m in self._models.items() if m.loaded)

    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        """The requested version (default: the newest loaded one) or a 404 ``ServingError``."""
        with self._lock:
            model = self._models.get(name)
            loaded = dict(model.loaded) if model is not None else {}
        if version is None:
            if not loaded:
                raise ServingError(f"Servable not found for request: Latest({name})", status=404)
            return loaded[max(loaded)]
        if version not in loaded:
            raise ServingError(
                f"Servable not found for request: Specific({name}, {version})", status=404
            )
        return loaded[version]

    def status_json(self, name: str, version: int | None = None) -> dict:
        """The body of ``GET /v1/models/<name>[/versions/<v>]`` (TF Serving's format)."""
        with self._lock:
            model = self._models.get(name)
            loaded = dict(model.loaded) if model else {}
            failed = dict(model.failed) if model else {}
            loading = model.loading if model else None
        entries = {v: _status_entry(v, "AVAILABLE") for v in loaded}
        for v, failure in failed.items():
            entries.setdefault(v, _status_entry(v, "END", "UNKNOWN", failure.message))
        if loading is not None:
            entries.setdefault(loading, _status_entry(loading, "LOADING"))
        if version is not None:
            if version not in entries:
                raise ServingError(f"Could not find version {version} of model {name}", status=404)
            entries = {version: entries[version]}
        elif not entries:
            raise ServingError(f"Could not find any versions of model {name}", status=404)
        return {"model_version_status": [entries[v] for v in sorted(entries, reverse=True)]}


def _status_entry(version: int, state: str, code: str = "OK", message: str = "") -> dict:
    return {
        "version": str(version),
        "state": state,
        "status": {"error_code": code, "error_message": message},
    }
