"""The model server against real exported models: TF Serving's REST API, errors, hot reload,
batching, metrics, the client, ``kimnet predict`` and the page at ``GET /`` in headless chromium.

One Fashion-MNIST classifier is trained briefly and exported once per session; a
copy of it is served as a second model. The server runs on a free loopback port
in a background thread and is stopped at the end.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import json
import logging
import os
import shutil
import socket
import time

import httpx
import numpy as np
import pytest

from kimnet import cli
from kimnet.serving import BackgroundServer, ServerConfig, client
from kimnet.serving.batching import Batcher, batch_key
from kimnet.serving.models import complete_versions, resolve_version_dir

MODEL = "fmnist-test"
COPY = "fmnist-copy"
MAX_BODY = 2 * 2**20
TOL = 1e-5


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A Fashion-MNIST classifier trained for a few steps and exported as version 1."""
    from kimnet import experiment
    from kimnet.training import train

    tmp = tmp_path_factory.mktemp("serving")
    base = tmp / "saved"
    config = {
        "model": {"args": "alpha=0.35"},
        "data": {"image_size": 32, "batch_size": 32},
        "schedule": {"epochs": 1, "steps_per_epoch": 10},
        "evaluate": {"bn_recalibration_batches": 2, "max_batches": 5},
        "runtime": {"workdir": str(tmp / "runs"), "run_name": MODEL},
        "export": {"dir": str(base)},
    }
    result = train(experiment.validate(config))
    assert result.export_dir == base / MODEL / "1"
    # A second model: a copy, put in place the way export does (hidden folder, then rename).
    staging = base / COPY / ".1-incomplete-copy"
    shutil.copytree(result.export_dir, staging)
    os.rename(staging, base / COPY / "1")
    return result, base


@pytest.fixture(scope="session")
def reference(trained):
    """The SavedModel's own signatures, loaded without the server."""
    from kimnet.export import load

    return load(trained[0].export_dir)


@pytest.fixture(scope="session")
def images():
    """Eight real Fashion-MNIST test images, uint8 [8, 28, 28, 1]."""
    from kimnet.data import load

    batch = [image.numpy() for image, _ in load("fashion_mnist").test.take(8)]
    array = np.stack(batch).astype(np.uint8)
    return array if array.ndim == 4 else array[..., None]


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def server(trained):
    config = ServerConfig(
        model_dir=trained[1],
        max_batch_size=16,
        batch_timeout_ms=20,
        num_batch_threads=2,
        max_body_bytes=MAX_BODY,
        poll_interval_s=0.2,
        num_versions=0,
    )
    with BackgroundServer(config) as running:
        assert running.url.startswith("http://127.0.0.1:")
        yield running


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as session:
        yield session


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


# Status and metadata ----------------------------------------------------------------------------


def test_model_status_in_tf_serving_format(http):
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert _ok(http.get(f"/v1/models/{COPY}")) == expected
    assert _ok(http.get(f"/v1/models/{COPY}/versions/1")) == expected
    assert http.get("/v1/models").json()["models"] == sorted([MODEL, COPY])


def test_metadata_lists_signatures_as_tf_serving_prints_them(http):
    for url in (f"/v1/models/{COPY}/metadata", f"/v1/models/{COPY}/versions/1/metadata"):
        body = _ok(http.get(url))
        assert body["model_spec"] == {"name": COPY, "signature_name": "", "version": "1"}
        signatures = body["metadata"]["signature_def"]["signature_def"]
        assert {"serving_default", "serving_bytes"} <= set(signatures)
        images = signatures["serving_default"]["inputs"]["images"]
        assert images["dtype"] == "DT_UINT8"
        assert images["tensor_shape"] == {
            "dim": [{"size": "-1", "name": ""}] * 4,
            "unknown_rank": False,
        }
        assert images["name"].endswith(":0")
        outputs = signatures["serving_default"]["outputs"]
        assert set(outputs) == {"probabilities", "top5_indices", "top5_scores", "top5_names"}
        assert outputs["probabilities"]["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in outputs["probabilities"]["tensor_shape"]["dim"]] == ["-1", "10"]
        assert outputs["top5_names"]["dtype"] == "DT_STRING"
        assert outputs["top5_indices"]["dtype"] == "DT_INT32"
        assert signatures["serving_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
        assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"


# Predict ----------------------------------------------------------------------------------------


def _assert_matches(rows: list[dict], expected: dict[str, np.ndarray]) -> None:
    assert len(rows) == len(expected["probabilities"])
    probabilities = np.array([r["probabilities"] for r in rows], dtype=np.float32)
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=TOL, rtol=0)
    np.testing.assert_allclose(
        np.array([r["top5_scores"] for r in rows]), expected["top5_scores"], atol=TOL, rtol=0
    )
    assert [r["top5_names"] for r in rows] == expected["top5_names"].tolist()
    assert [r["top5_indices"] for r in rows] == expected["top5_indices"].tolist()


def test_row_format_matches_the_savedmodel(http, reference, images):
    expected = reference.predict(images)
    assert expected["probabilities"].shape == (8, 10)
    body = _ok(http.post(f"/v1/models/{MODEL}:predict", json={"instances": images.tolist()}))
    assert set(body) == {"predictions"}
    assert set(body["predictions"][0]) == {
        "probabilities",
        "top5_indices",
        "top5_scores",
        "top5_names",
    }
    _assert_matches(body["predictions"], expected)
    # Per version, and with named instances.
    named = {"instances": [{"images": image.tolist()} for image in images[:3]]}
    body = _ok(http.post(f"/v1/models/{MODEL}/versions/1:predict", json=named))
    _assert_matches(body["predictions"], {k: v[:3] for k, v in expected.items()})


def test_columnar_format_matches_the_savedmodel(http, reference, images):
    expected = reference.predict(images[:5])
    for inputs in (images[:5].tolist(), {"images": images[:5].tolist()}):
        body = _ok(
            http.post(
                f"/v1/models/{MODEL}:predict",
                json={"signature_name": "serving_default", "inputs": inputs},
            )
        )
        assert set(body) == {"outputs"}
        outputs = body["outputs"]
        assert set(outputs) == {"probabilities", "top5_indices", "top5_scores", "top5_names"}
        rows = [{k: outputs[k][i] for k in outputs} for i in range(5)]
        _assert_matches(rows, expected)


def test_b64_image_bytes_match_the_savedmodel(http, reference, images):
    encoded = [_png(image) for image in images]
    expected = reference.predict_bytes(encoded)
    body = _ok(
        http.post(
            f"/v1/models/{MODEL}:predict",
            json={"signature_name": "serving_bytes", "instances": [_b64(e) for e in encoded]},
        )
    )
    _assert_matches(body["predictions"], expected)
    body = _ok(
        http.post(
            f"/v1/models/{MODEL}:predict",
            json={"signature_name": "serving_bytes", "inputs": {"image_bytes": [_b64(encoded[0])]}},
        )
    )
    np.testing.assert_allclose(
        body["outputs"]["probabilities"], expected["probabilities"][:1], atol=TOL, rtol=0
    )


def test_rgb_images_of_another_size(http, reference, images):
    rgb = np.repeat(images[:2], 3, axis=-1)
    rgb = np.pad(rgb, ((0, 0), (2, 2), (2, 2), (0, 0)))  # 32x32x3
    body = _ok(http.post(f"/v1/models/{MODEL}:predict", json={"instances": rgb.tolist()}))
    _assert_matches(body["predictions"], reference.predict(rgb))


# Errors -----------------------------------------------------------------------------------------

_IMAGE = [[[0]] * 4] * 4  # one 4x4x1 image


ERRORS = [
    ("malformed json", f"/v1/models/{MODEL}:predict", b'{"instances": [1, ', 400, "JSON Parse"),
    ("not an object", f"/v1/models/{MODEL}:predict", b"[1, 2]", 400, "object"),
    ("no inputs", f"/v1/models/{MODEL}:predict", {"foo": 1}, 400, "instances"),
    (
        "both formats",
        f"/v1/models/{MODEL}:predict",
        {"instances": [_IMAGE], "inputs": [_IMAGE]},
        400,
        "Only one",
    ),
    ("empty instances", f"/v1/models/{MODEL}:predict", {"instances": []}, 400, "No values"),
    (  # TF Serving parses the body before it looks the model up
        "malformed json to an unknown model",
        "/v1/models/nope:predict",
        b'{"instances": [1, ',
        400,
        "JSON Parse error",
    ),
    (
        "unknown model",
        "/v1/models/nope:predict",
        {"instances": [_IMAGE]},
        404,
        "Servable not found",
    ),
    (
        "unknown version",
        f"/v1/models/{MODEL}/versions/9:predict",
        {"instances": [_IMAGE]},
        404,
        "Specific",
    ),
    (
        "bad version",
        f"/v1/models/{MODEL}/versions/x:predict",
        {"instances": [_IMAGE]},
        400,
        "Malformed request",
    ),
    (
        "unknown signature",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "nope", "instances": [_IMAGE]},
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    ("wrong rank", f"/v1/models/{MODEL}:predict", {"instances": [[1, 2, 3]]}, 400, "[-1,-1,-1,-1]"),
    (
        "float for uint8",
        f"/v1/models/{MODEL}:predict",
        {"instances": [[[[0.5]]]]},
        400,
        "JSON Value: 0.5 Type: Number is not of expected type: uint8",
    ),
    (
        "string for uint8",
        f"/v1/models/{MODEL}:predict",
        {"instances": [[[["a"]]]]},
        400,
        'JSON Value: "a" Type: String is not of expected type: uint8',
    ),
    ("out of range", f"/v1/models/{MODEL}:predict", {"instances": [[[[256]]]]}, 400, "[0, 255]"),
    (
        "ragged",
        f"/v1/models/{MODEL}:predict",
        {"instances": [[[[1], [2]]], [[[1]]]]},
        400,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting "
        "tensor size: 2 but got: 1",
    ),
    (
        "b64 for uint8",
        f"/v1/models/{MODEL}:predict",
        {"instances": [{"b64": "AAAA"}]},
        400,
        "Type: Object is not of expected type: uint8",
    ),
    ("two channels", f"/v1/models/{MODEL}:predict", {"instances": [[[[1, 2]]]]}, 400, "depth"),
    (
        "undecodable bytes",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "serving_bytes", "instances": [{"b64": "aGVsbG8="}]},
        400,
        "image",
    ),
    (
        "bad base64",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "serving_bytes", "instances": [{"b64": "@@@"}]},
        400,
        "Unable to base64 decode",
    ),
    (
        "number for string",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "serving_bytes", "instances": [3]},
        400,
        "JSON Value: 3 Type: Number is not of expected type: string",
    ),
    ("classify", f"/v1/models/{MODEL}:classify", {"examples": []}, 400, "predict"),
    (
        "integer of 5000 digits",
        f"/v1/models/{MODEL}:predict",
        b'{"instances": [' + b"7" * 5000 + b"]}",
        400,
        "JSON Parse error",
    ),
    (
        "version over int64",
        f"/v1/models/{MODEL}/versions/{2**63}:predict",
        {"instances": [_IMAGE]},
        400,
        f"Failed to convert version: {2**63} to numeric.",
    ),
    (
        "version 0_1",
        f"/v1/models/{MODEL}/versions/0_1:predict",
        {"instances": [_IMAGE]},
        400,
        "Malformed request",
    ),
    (
        "version with spaces",
        f"/v1/models/{MODEL}/versions/%201%20:predict",
        {"instances": [_IMAGE]},
        400,
        "Malformed request",
    ),
    (
        "metadata by POST",
        f"/v1/models/{MODEL}/metadata",
        {"instances": [_IMAGE]},
        400,
        f"Malformed request: POST /v1/models/{MODEL}/metadata",
    ),
    (
        "unknown verb",
        f"/v1/models/{MODEL}:explode",
        {"instances": [_IMAGE]},
        400,
        f"Malformed request: POST /v1/models/{MODEL}:explode",
    ),
    ("no verb", f"/v1/models/{MODEL}", {"instances": [_IMAGE]}, 400, "Malformed request"),
]


@pytest.mark.parametrize(
    ("url", "body", "status", "fragment"),
    [e[1:] for e in ERRORS],
    ids=[e[0] for e in ERRORS],
)
def test_errors_as_tf_serving_returns_them(http, url, body, status, fragment):
    if isinstance(body, bytes):
        response = http.post(url, content=body, headers={"Content-Type": "application/json"})
    else:
        response = http.post(url, json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"}
    assert fragment.lower() in payload["error"].lower()
    assert http.get(f"/v1/models/{MODEL}").status_code == 200  # still serving


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/v1/models/nope", 404, "nope"),
        ("/v1/models/nope/metadata", 404, "nope"),
        (f"/v1/models/{MODEL}/versions/9", 404, "version 9"),
        (f"/v1/models/{MODEL}/versions/9/metadata", 404, "Specific"),
        ("/v2/anything", 404, "Not found"),
        ("/v1/foo", 400, "Malformed request: GET /v1/foo"),
        (f"/v1/models/{MODEL}:predict", 400, "Malformed request"),
        (f"/v1/models/{MODEL}/versions/{2**64}", 400, "Failed to convert version"),
        ("/v1/models/versions/1", 400, "Missing model name in request."),
    ],
)
def test_get_errors(http, url, status, fragment):
    response = http.get(url)
    assert response.status_code == status
    assert fragment.lower() in response.json()["error"].lower()


def test_other_methods_are_malformed_requests(http):
    for method in ("PUT", "DELETE", "PATCH"):
        response = http.request(method, f"/v1/models/{MODEL}")
        assert response.status_code == 400
        assert response.json() == {"error": f"Malformed request: {method} /v1/models/{MODEL}"}


def test_floats_are_written_as_tf_serving_writes_them(http, images):
    text = _ok_text(http.post(f"/v1/models/{MODEL}:predict", json={"inputs": images[:2].tolist()}))
    scores = text.split('"top5_scores":')[1]
    # float32 values with at most nine significant digits, never a double's seventeen.
    numbers = scores.replace("[", " ").replace("]", " ").replace(",", " ").split("}")[0].split()
    assert numbers and all(
        len(n.replace(".", "").replace("-", "").lstrip("0")) <= 9 for n in numbers
    )


def _ok_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.text


def test_metadata_prints_empty_defaults(http):
    signatures = _ok(http.get(f"/v1/models/{MODEL}/metadata"))["metadata"]["signature_def"]
    for signature in signatures["signature_def"].values():
        assert signature["defaults"] == {}


def test_one_structured_debug_line_per_request(http, images, caplog):
    with caplog.at_level(logging.DEBUG, logger="kimnet.serving"):
        _ok(http.post(f"/v1/models/{COPY}:predict", json={"instances": images[:1].tolist()}))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")]
    record = json.loads(lines[-1].removeprefix("request "))
    assert record["method"] == "POST" and record["path"] == f"/v1/models/{COPY}:predict"
    assert (record["model"], record["version"], record["signature"]) == (
        COPY,
        "1",
        "serving_default",
    )
    assert record["code"] == 200 and record["ms"] > 0


def test_prometheus_metrics(http, images):
    _ok(http.post(f"/v1/models/{COPY}:predict", json={"instances": images[:2].tolist()}))
    http.post(f"/v1/models/{COPY}:predict", json={"instances": [[1]]})
    response = http.get("/monitoring/prometheus/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()

    def value(prefix: str) -> float:
        (line,) = [line for line in lines if line.startswith(prefix + " ")]
        return float(line.split()[-1])

    labels = f'model="{COPY}",version="1",signature="serving_default",api="predict"'
    assert value(f'kimnet_requests_total{{{labels},code="200"}}') >= 1
    assert (
        value(
            f'kimnet_requests_total{{model="{COPY}",version="1",signature="",api="predict",code="400"}}'
        )
        >= 1
    )
    assert value(f'kimnet_request_latency_seconds_count{{model="{COPY}",api="predict"}}') >= 2
    assert value('kimnet_batch_size_bucket{le="+Inf"}') >= 1
    assert value("kimnet_resident_memory_bytes") > 0


def test_oversized_body_is_refused_and_server_keeps_serving(http, reference, images):
    big = b'{"instances": [' + b"0," * (MAX_BODY // 2) + b"0]}"
    response = http.post(f"/v1/models/{MODEL}:predict", content=big)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(MAX_BODY // 2**16 + 2):
            yield b" " * 2**16

    response = http.post(f"/v1/models/{MODEL}:predict", content=chunks())
    assert response.status_code == 413
    body = _ok(http.post(f"/v1/models/{MODEL}:predict", json={"instances": images[:1].tolist()}))
    _assert_matches(body["predictions"], reference.predict(images[:1]))


# Batching ---------------------------------------------------------------------------------------


def test_concurrent_requests_are_batched_and_stay_correct(server, reference, images):
    batcher = server.app.state.batcher
    before = batcher.batches_run, batcher.examples_run
    encoded = [_png(image) for image in images]
    rgb = np.repeat(images, 3, axis=-1)[:, :20, :20]  # another shape: never stacked with 28x28x1
    jobs = []
    for i in range(8):
        jobs.append(("images", i, {"instances": images[i : i + 1].tolist()}))
        jobs.append(("rgb", i, {"instances": rgb[i : i + 1].tolist()}))
        jobs.append(
            ("bytes", i, {"signature_name": "serving_bytes", "instances": [_b64(encoded[i])]})
        )
    bad = {"signature_name": "serving_bytes", "instances": [{"b64": "aGVsbG8="}]}
    jobs.append(("bad", 0, bad))

    def send(job):
        with httpx.Client(base_url=server.url, timeout=120) as session:
            return job, session.post(f"/v1/models/{MODEL}:predict", json=job[2])

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(send, jobs))
    expected = {
        "images": reference.predict(images),
        "rgb": reference.predict(rgb),
        "bytes": reference.predict_bytes(encoded),
    }
    for (kind, i, _), response in results:
        if kind == "bad":
            assert response.status_code == 400  # fails alone, not its batch mates
            continue
        rows = _ok(response)["predictions"]
        _assert_matches(rows, {k: v[i : i + 1] for k, v in expected[kind].items()})
    batches = batcher.batches_run - before[0]
    examples = batcher.examples_run - before[1]
    assert examples == len(jobs)
    assert batches < len(jobs), "no two concurrent requests were batched together"


class _Recorder:
    """A fake model: doubles its input and records the batch sizes it ran."""

    def __init__(self):
        self.sizes: list[int] = []

    def __call__(self, inputs):
        x = inputs["x"]
        self.sizes.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2}


def test_batcher_groups_up_to_max_batch_size_and_isolates_failures():
    async def scenario():
        recorder = _Recorder()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            batcher = Batcher(pool, max_batch_size=4, batch_timeout_ms=50)
            inputs = [{"x": np.array([[i]], np.float32)} for i in range(10)]
            inputs[5] = {"x": np.array([[-1.0]], np.float32)}
            calls = [batcher.run(batch_key("m", "s", x), recorder, x, 1) for x in inputs]
            results = await asyncio.gather(*calls, return_exceptions=True)
            big = {"x": np.zeros((6, 1), np.float32)}
            alone = await batcher.run(batch_key("m", "s", big), recorder, big, 6)
        return recorder, results, alone

    recorder, results, alone = asyncio.run(scenario())
    for i, result in enumerate(results):
        if i == 5:
            assert isinstance(result, ValueError)
        else:
            np.testing.assert_array_equal(result["y"], [[2.0 * i]])
    # Full batches of 4 and 4 (the second fails and is rerun one by one: 1, 1, 1, 1), then the
    # remaining 2 after the timeout, then the request larger than a batch on its own.
    assert recorder.sizes == [4, 4, 1, 1, 1, 1, 2, 6]
    assert alone["y"].shape == (6, 1)


def test_batching_off_runs_requests_alone():
    async def scenario():
        recorder = _Recorder()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            batcher = Batcher(pool, enabled=False)
            x = {"x": np.ones((1, 1), np.float32)}
            await asyncio.gather(*[batcher.run(batch_key("m", "s", x), recorder, x, 1)] * 1)
            await asyncio.gather(
                *(batcher.run(batch_key("m", "s", x), recorder, x, 1) for _ in range(5))
            )
        return recorder

    assert asyncio.run(scenario()).sizes == [1] * 6


# Discovery and hot reload -----------------------------------------------------------------------


def test_discovery_ignores_incomplete_versions(tmp_path):
    for name in ("1", "3", ".4-incomplete-abc", "5", "notes", "0012"):
        (tmp_path / name).mkdir()
    for name in ("1", "3", ".4-incomplete-abc", "0012"):
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    (tmp_path / "5" / "variables").mkdir()  # integer folder still being written: no .pb yet
    assert complete_versions(tmp_path) == [1, 3, 12]
    assert resolve_version_dir(tmp_path) == tmp_path / "0012"
    assert resolve_version_dir(tmp_path / "1") == tmp_path / "1"
    with pytest.raises(FileNotFoundError):
        resolve_version_dir(tmp_path / "5")


def test_a_broken_version_is_reported_not_served(tmp_path):
    from kimnet.serving import ModelRepository, ServingError

    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "saved_model.pb").write_bytes(b"not a protobuf")
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    repository = ModelRepository(tmp_path, poll_interval_s=0)
    repository.scan()
    assert repository.names() == []
    (status,) = repository.status_json("broken")["model_version_status"]
    assert status["version"] == "1" and status["state"] == "END"
    assert status["status"]["error_code"] == "UNKNOWN" and status["status"]["error_message"]
    with pytest.raises(ServingError) as error:
        repository.get("broken")
    assert error.value.status == 404
    with pytest.raises(ServingError):
        repository.status_json(".hidden")


def _wait_for(predicate, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_new_version_is_served_without_restart_and_half_written_ones_never(
    trained, http, reference, images
):
    _result, base = trained
    model_dir = base / MODEL
    # Half-written versions: a hidden staging folder (complete inside) and an integer
    # folder without saved_model.pb. Neither may ever be loaded.
    shutil.copytree(model_dir / "1", model_dir / ".3-incomplete-xyz")
    (model_dir / "4" / "variables").mkdir(parents=True)
    # A new version appears the way kimnet.export writes one (a hidden folder renamed into
    # place; the slow test below runs export() itself).
    shutil.copytree(model_dir / "1", model_dir / ".2-incomplete-abc")
    time.sleep(0.5)  # the server polls meanwhile: the staging folder must stay unloaded
    assert http.get(f"/v1/models/{MODEL}/versions/2").status_code == 404
    os.rename(model_dir / ".2-incomplete-abc", model_dir / "2")

    def version_two_loaded():  # it is LOADING first, as in TF Serving
        status = http.get(f"/v1/models/{MODEL}").json()["model_version_status"]
        return [(s["version"], s["state"]) for s in status] == [
            ("2", "AVAILABLE"),
            ("1", "AVAILABLE"),
        ]

    _wait_for(version_two_loaded)
    time.sleep(1.0)  # several more polls: the incomplete ones must still be ignored
    status = _ok(http.get(f"/v1/models/{MODEL}"))["model_version_status"]
    assert [s["version"] for s in status] == ["2", "1"]
    assert all(s["state"] == "AVAILABLE" for s in status)
    assert http.get(f"/v1/models/{MODEL}/versions/3").status_code == 404
    assert http.get(f"/v1/models/{MODEL}/versions/4").status_code == 404
    # The new version is the default now.
    assert _ok(http.get(f"/v1/models/{MODEL}/metadata"))["model_spec"]["version"] == "2"
    body = _ok(http.post(f"/v1/models/{MODEL}:predict", json={"instances": images[:2].tolist()}))
    _assert_matches(body["predictions"], reference.predict(images[:2]))  # same weights
    body = _ok(
        http.post(f"/v1/models/{MODEL}/versions/2:predict", json={"inputs": images[:2].tolist()})
    )
    assert len(body["outputs"]["probabilities"]) == 2


# Client and command line ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def image_files(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(2):
        path = folder / f"item{i}.png"
        path.write_bytes(_png(images[i]))
        paths.append(path)
    return paths


def test_client_functions(server, reference, images, image_files):
    assert client.status(server.url, COPY)["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.metadata(f"{server.url}/v1/models/{COPY}")["model_spec"]["name"] == COPY
    rows = client.predict_files(server.url, image_files, model=COPY)
    _assert_matches(rows, reference.predict_bytes([p.read_bytes() for p in image_files]))
    with pytest.raises(client.ServerError) as error:
        client.predict(server.url, {"instances": [1]}, model="nope")
    assert error.value.status == 404
    with pytest.raises(ValueError, match="serves 2 models"):
        client.predict_files(server.url, image_files)


def _expected_text(reference, image_files) -> str:
    outputs = reference.predict_bytes([p.read_bytes() for p in image_files])
    return "\n".join(
        cli.format_top(str(p), names, scores)
        for p, names, scores in zip(
            image_files, outputs["top5_names"], outputs["top5_scores"], strict=True
        )
    )


def test_kimnet_predict_with_a_server(server, reference, image_files, capsys):
    paths = [str(p) for p in image_files]
    assert cli.main(["predict", "--server", f"{server.url}/v1/models/{COPY}", *paths]) == 0
    out = capsys.readouterr().out
    assert out.strip() == _expected_text(reference, image_files)
    assert any(name in out for name in reference.class_names)  # names, not indices
    assert cli.main(["predict", "--server", server.url, "--model", "nope", *paths]) == 1
    err = capsys.readouterr().err
    assert "404" in err and f"Served models: {COPY}, {MODEL}." in err
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert cli.main(["predict", "--server", closed, "--model", MODEL, *paths]) == 1
    assert capsys.readouterr().err.startswith(f"error: could not reach a server at {closed} (")


def test_kimnet_predict_with_a_model_dir(trained, reference, image_files, capsys):
    model_dir = trained[1] / COPY
    assert cli.main(["predict", "--model_dir", str(model_dir), *map(str, image_files)]) == 0
    assert capsys.readouterr().out.strip() == _expected_text(reference, image_files)
    assert cli.main(["predict", "--model_dir", str(trained[1] / "nope"), str(image_files[0])]) == 1
    assert "neither" in capsys.readouterr().err


def test_kimnet_serve_flags(tmp_path, capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.batch_size, args.no_batching) == (
        "127.0.0.1",
        8501,
        32,
        False,
    )
    args = parser.parse_args(
        ["serve", "--model_dir", "m", "--host", "0.0.0.0", "--port", "9000", "--no_batching"]
    )
    assert (args.model_dir, args.host, args.port, args.no_batching) == ("m", "0.0.0.0", 9000, True)
    assert cli.main(["serve", "--model_dir", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert cli.main(["serve", "--model_dir", str(tmp_path), "--batch_size", "0"]) == 2
    args = parser.parse_args(["serve", "--max_instances", "8", "--max_image_pixels", "100"])
    assert (args.max_instances, args.max_image_pixels, args.max_json_depth) == (8, 100, 32)
    assert args.parse_workers == 2
    for flag in ("--max_instances", "--max_image_pixels", "--max_json_depth"):
        assert cli.main(["serve", "--model_dir", str(tmp_path), flag, "0"]) == 2
        assert flag in capsys.readouterr().err


def test_json_error_bodies_are_json(http):
    response = http.post(f"/v1/models/{MODEL}:predict", content=b"\xff\xfe")
    assert response.status_code == 400
    assert json.loads(response.text)["error"].startswith("JSON Parse error")
    response = http.post(f"/v1/models/{MODEL}:predict", content=b"")
    assert response.json() == {"error": "JSON Parse error: The document is empty"}


@pytest.mark.slow
def test_a_version_written_by_export_is_served_without_restart(trained, http, reference, images):
    from kimnet.export import export, versions

    result, base = trained
    version = max(versions(base / COPY)) + 1
    export(
        result.model,
        base / COPY,
        class_names=list(reference.class_names),
        normalization=reference.metadata["normalization"],
        version=version,
    )
    _wait_for(
        lambda: (
            http.get(f"/v1/models/{COPY}/metadata").json()["model_spec"]["version"] == str(version)
        )
    )
    body = _ok(http.post(f"/v1/models/{COPY}:predict", json={"instances": images[:2].tolist()}))
    _assert_matches(body["predictions"], reference.predict(images[:2]))  # the same weights


# The page at GET / ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    SELENIUM = True
except ImportError:
    SELENIUM = False

needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER and SELENIUM),
    reason="needs a headless browser: apt-get install chromium chromium-driver, "
    "pip install selenium (kimnet[dev])",
)


@pytest.fixture
def browser():
    """Debian's chromium, headless, driven by selenium through chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@needs_browser
def test_page_classifies_an_uploaded_image(browser, server, reference, images, tmp_path):
    """The page at GET / in headless chromium: it lists the served models, takes an uploaded
    Fashion-MNIST test image and shows the model's top-5, equal to the SavedModel's own."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    image = tmp_path / "test-image.png"
    image.write_bytes(_png(images[3]))
    expected = reference.predict_bytes([image.read_bytes()])

    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    select = Select(browser.find_element(By.ID, "model"))
    labels = [option.text for option in select.options]
    assert f"{COPY}, version 1" in labels
    select.select_by_visible_text(f"{COPY}, version 1")
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") != "busy")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", (
        browser.find_element(By.ID, "error").text
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#top5 li")
    names = [row.get_attribute("data-name") for row in rows]
    scores = [float(row.get_attribute("data-score")) for row in rows]
    assert names == [n.decode() if isinstance(n, bytes) else n for n in expected["top5_names"][0]]
    np.testing.assert_allclose(scores, expected["top5_scores"][0], atol=1e-5)
    assert all(row.is_displayed() for row in rows)  # rendered, not only in the DOM
    assert browser.find_element(By.ID, "preview").get_attribute("src").startswith("blob:")
