"""The server as an operator and an attacker try it: bad deploys while requests flow,
bomb images, floods of large bodies, hot reloads; memory measured, never a 500.

Each test runs its own server on loopback over copies of one small SavedModel,
exported by kimnet.export from an untrained Keras model: these tests are about the
server, not the model's accuracy (test_serving.py checks predictions).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import struct
import threading
import time
import zlib

import httpx
import numpy as np
import psutil
import pytest

from kimnet.serving import BackgroundServer, ServerConfig
from kimnet.serving.rest import Limits

MiB = 2**20

# Real bombs, floods and hot reloads against a live server: minutes on two cores.
pytestmark = pytest.mark.slow


def _tree_rss() -> int:
    """RSS of this process (which runs the server) and its parse workers."""
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def _copy_version(source, model_dir, version: int) -> None:
    """As export does: a hidden staging folder renamed into place."""
    staging = model_dir / f".{version}-incomplete"
    shutil.copytree(source, staging)
    os.rename(staging, model_dir / str(version))


def _wait_for(predicate, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _default_version(http: httpx.Client, name: str) -> str | None:
    response = http.get(f"/v1/models/{name}/metadata")
    return response.json()["model_spec"]["version"] if response.status_code == 200 else None


def _status(http: httpx.Client, name: str) -> dict[str, dict]:
    body = http.get(f"/v1/models/{name}").json()
    return {entry["version"]: entry for entry in body.get("model_version_status", [])}


class _Traffic:
    """Predict requests sent back to back from a thread, every status code recorded."""

    def __init__(self, url: str, path: str, body: dict, max_requests: int = 5000):
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, path, body, max_requests))

    def _run(self, url: str, path: str, body: dict, max_requests: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as session:
            while not self._stop.is_set() and len(self.codes) < max_requests:
                self.codes.append(session.post(path, json=body).status_code)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A version folder written by kimnet.export (a 32x32x1 model, ten classes)."""
    import keras

    from kimnet.export import export

    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    names = [f"class{i}" for i in range(10)]
    return export(
        model, tmp_path_factory.mktemp("export") / "m", class_names=names, normalization="raw"
    )


@pytest.fixture
def model_dir(tmp_path, source):
    base = tmp_path / "models"
    (base / "m").mkdir(parents=True)
    _copy_version(source, base / "m", 1)
    return base


IMAGE = {"instances": np.zeros((1, 28, 28, 1), np.uint8).tolist()}


def _config(model_dir, **overrides) -> ServerConfig:
    settings = dict(
        model_dir=model_dir, poll_interval_s=0.2, num_batch_threads=2, batch_timeout_ms=2
    )
    return ServerConfig(**{**settings, **overrides})


def test_bad_deploys_never_interrupt_serving(model_dir, source):
    m = model_dir / "m"
    with (
        BackgroundServer(_config(model_dir)) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        with _Traffic(server.url, "/v1/models/m:predict", IMAGE) as traffic:
            # A corrupt version: saved_model.pb truncated.
            shutil.copytree(source, m / ".2-tmp")
            pb = (m / ".2-tmp" / "saved_model.pb").read_bytes()
            (m / ".2-tmp" / "saved_model.pb").write_bytes(pb[: len(pb) // 3])
            os.rename(m / ".2-tmp", m / "2")
            _wait_for(lambda: _status(http, "m").get("2", {}).get("state") == "END")
            failed = _status(http, "m")["2"]["status"]
            assert failed["error_code"] == "UNKNOWN" and failed["error_message"]
            assert str(model_dir) not in failed["error_message"]
            assert str(model_dir.resolve()) not in failed["error_message"]
            assert _status(http, "m")["1"]["state"] == "AVAILABLE"
            assert _default_version(http, "m") == "1"
            # A version copied in the wrong order: saved_model.pb before variables/.
            (m / "3").mkdir()
            shutil.copy(source / "saved_model.pb", m / "3" / "saved_model.pb")
            time.sleep(1.5)  # several polls try it and fail; version 1 keeps serving
            assert _default_version(http, "m") == "1"
            for item in source.iterdir():
                if item.name != "saved_model.pb":
                    copy = shutil.copytree if item.is_dir() else shutil.copy
                    copy(item, m / "3" / item.name)
            _wait_for(lambda: _default_version(http, "m") == "3")
            assert _status(http, "m")["3"]["state"] == "AVAILABLE"
            # Deleting the newest version falls back to the newest one that loads (1).
            shutil.rmtree(m / "3")
            _wait_for(lambda: _default_version(http, "m") == "1")
            # A fixed version 2 is retried (its folder changed) and takes over.
            shutil.rmtree(m / "2")
            _copy_version(source, m, 2)
            _wait_for(lambda: _default_version(http, "m") == "2")
        metrics = http.get("/monitoring/prometheus/metrics").text
    assert len(traffic.codes) > 20, "too few requests to show anything"
    assert set(traffic.codes) == {200}, f"failed requests: {traffic.codes.count(404)} x 404"
    assert 'kimnet_model_load_failures_total{model="m",version="2"}' in metrics


def _png_bomb(side: int) -> bytes:
    """A real side x side greyscale PNG of zeros, compressed row by row (never in memory)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def _tiny_gif() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "GIF")
    return buffer.getvalue()


def test_bomb_and_many_tiny_images_are_refused_and_memory_returns(model_dir):
    bomb = base64.b64encode(_png_bomb(16000)).decode()
    tiny = base64.b64encode(_tiny_gif()).decode()
    many = {"signature_name": "serving_bytes", "instances": [{"b64": tiny}] * 20000}
    with (
        BackgroundServer(_config(model_dir)) as server,
        httpx.Client(base_url=server.url, timeout=120) as http,
    ):
        one = {"signature_name": "serving_bytes", "instances": [{"b64": tiny}]}
        assert http.post("/v1/models/m:predict", json=one).status_code == 200
        steady = _tree_rss()
        for _ in range(3):
            response = http.post(
                "/v1/models/m:predict",
                json={"signature_name": "serving_bytes", "instances": [{"b64": bomb}]},
            )
            assert response.status_code == 400
            assert response.json()["error"] == (
                f"Instance 0: Image of 16000x16000 pixels exceeds the limit of "
                f"{Limits().max_image_pixels} decoded pixels per image (--max_image_pixels)"
            )
            response = http.post("/v1/models/m:predict", json=many)
            assert response.status_code == 400
            assert "Task size 20000 is larger than maximum input batch size" in response.text
        time.sleep(1.0)
        grown = _tree_rss() - steady
        assert http.post("/v1/models/m:predict", json=one).status_code == 200
    print(f"bombs: RSS {steady / MiB:.0f} MiB before, {grown / MiB:+.0f} MiB after")  # docs figure
    assert grown < 200 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"


def test_ten_hot_reloads_keep_memory_bounded(model_dir, source):
    m = model_dir / "m"
    with (
        BackgroundServer(_config(model_dir, parse_workers=0)) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        after_first = None
        for version in range(2, 12):
            _copy_version(source, m, version)
            _wait_for(lambda v=version: _default_version(http, "m") == str(v))
            _wait_for(lambda v=version: list(_status(http, "m")) == [str(v)])  # old one gone
            shutil.rmtree(m / str(version - 1))
            if after_first is None:
                after_first = _tree_rss()
        grown = _tree_rss() - after_first
    print(f"reloads: RSS {after_first / MiB:.0f} MiB after the first, {grown / MiB:+.0f} MiB later")
    assert grown < 150 * MiB, f"RSS grew by {grown / MiB:.0f} MiB over nine reloads"


def test_status_answers_within_a_second_during_a_flood_of_large_bodies(model_dir):
    # ~31.7 MiB: one 1600x2600x3 uint8 image written as JSON ("0," per value).
    big = (
        b'{"instances": [['
        + b",".join([b"[" + b",".join([b"[0,0,0]"] * 2600) + b"]"] * 1600)
        + b"]]}"
    )
    assert 30 * MiB < len(big) < 32 * MiB
    small = IMAGE
    with (
        BackgroundServer(_config(model_dir)) as server,
        httpx.Client(base_url=server.url, timeout=120) as http,
    ):
        codes: list[int] = []

        def send_big() -> None:
            with httpx.Client(base_url=server.url, timeout=300) as session:
                codes.append(session.post("/v1/models/m:predict", content=big).status_code)

        senders = [threading.Thread(target=send_big) for _ in range(4)]
        for sender in senders:
            sender.start()
        waits = []
        deadline = time.monotonic() + 120
        while any(s.is_alive() for s in senders) and time.monotonic() < deadline:
            started = time.monotonic()
            assert http.get("/v1/models/m").status_code == 200
            assert http.post("/v1/models/m:predict", json=small).status_code == 200
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
        for sender in senders:
            sender.join(timeout=300)
    print(f"flood: {len(waits)} status+predict pairs, slowest {max(waits):.2f} s")
    assert codes == [200] * 4
    assert len(waits) >= 5, "the large requests finished before the small ones were timed"
    assert max(waits) < 1.0, f"a status call and a small predict took {max(waits):.2f} s"
