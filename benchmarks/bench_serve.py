"""Benchmark of kimnet's model server: throughput and latency with and without batching.

Starts ``kimnet serve`` on a free 127.0.0.1 port (a subprocess), sends batch-1
predict requests (a 28x28x1 uint8 image in the row format) from 1, 8 and 32
concurrent clients with server-side batching on and off, and prints a markdown
table of requests/s, p50 and p99 latency. Then, with batching on, it runs a load
of thousands of mixed requests (row, columnar and b64 PNG), which must end with
zero failed requests and the server still answering. Two more phases (issue 11):
``large``: two ~31 MiB bodies kept in flight beside 8 small-request clients, the
small requests' p50/p99 against the same clients alone; ``soak``: at least 20,000
mixed requests with the server's RSS (process and parse workers) sampled each second.

    python benchmarks/bench_serve.py                      # builds a small model to serve
    python benchmarks/bench_serve.py --model_dir savedmodels --model fmnist-mobilenetv2
    python benchmarks/bench_serve.py --phases large,soak   # only the two new phases

Every loop is bounded by a request count and a time limit. Exit status 1 when a
request failed or the server died.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _build_model(base: Path) -> str:
    """Exports a randomly initialised Fashion-MNIST-sized MobileNetV2 (speed only)."""
    import kimnet.models
    from kimnet.export import export

    model = kimnet.models.get("mobilenetv2")(input_shape=(32, 32, 1), classes=10, small_input=True)
    names = [f"class{i}" for i in range(10)]
    export(model, base / "bench", class_names=names, normalization="tf")
    return "bench"


class Server:
    """``kimnet serve`` in a subprocess on a free loopback port."""

    def __init__(self, model_dir: Path, batching: bool, args: argparse.Namespace, log: Path):
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        command = [
            sys.executable,
            "-m",
            "kimnet.cli",
            "serve",
            "--model_dir",
            str(model_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--batch_size",
            str(args.batch_size),
            "--batch_timeout_ms",
            str(args.batch_timeout_ms),
            "--log_level",
            "warning",
        ]
        if not batching:
            command.append("--no_batching")
        self.log = log
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env
        )

    def wait_ready(self, model: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models/{model}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("The server did not become ready in time.")

    def alive(self, model: str) -> bool:
        if self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/v1/models/{model}", timeout=30).status_code == 200
        except httpx.HTTPError:
            return False

    def rss_mib(self) -> float:
        """RSS of the server and its parse workers, MiB."""
        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return float("nan")
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


async def _run_load(
    url: str, bodies: list[dict], clients: int, max_requests: int, max_seconds: float
) -> dict:
    """``clients`` concurrent senders; stops after ``max_requests`` or ``max_seconds``."""
    latencies: list[float] = []
    failures: list[str] = []
    issued = 0
    deadline = time.monotonic() + max_seconds

    async def sender() -> None:
        # One connection per client: a shared httpx pool of 32 connections costs more CPU
        # than the server's work and would measure the load generator instead.
        async with httpx.AsyncClient(timeout=120) as session:
            await send(session)

    async def send(session: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < max_requests and time.monotonic() < deadline:
            body = bodies[issued % len(bodies)]
            issued += 1
            started = time.perf_counter()
            try:
                response = await session.post(url, json=body)
                answer = response.json()
                if response.status_code != 200 or not ({"predictions", "outputs"} & set(answer)):
                    failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    continue
            except (httpx.HTTPError, ValueError) as error:  # connection problems, non-JSON body
                failures.append(f"{type(error).__name__}: {error}")
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "requests": len(latencies) + len(failures),
        "ok": len(latencies),
        "failed": len(failures),
        "failures": failures[:5],
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
    }


def _big_body(mib: float) -> bytes:
    """A valid predict body of about ``mib`` MiB: one uint8 image of 3 channels, 2600 wide."""
    rows = int(mib * 2**20 / (2600 * 8))
    row = b"[" + b",".join([b"[0,0,0]"] * 2600) + b"]"
    return b'{"instances": [[' + b",".join([row] * rows) + b"]]}"


async def _large_beside_small(
    url: str, big: bytes, big_clients: int, small: list[dict], args: argparse.Namespace
) -> tuple[dict, int]:
    """Small-request load while ``big_clients`` senders keep large bodies in flight."""
    done = asyncio.Event()
    sent = 0

    async def big_sender() -> None:
        nonlocal sent
        async with httpx.AsyncClient(timeout=600) as session:
            for _ in range(args.big_max_requests):  # bounded even if the small load stalls
                if done.is_set():
                    return
                await session.post(url, content=big)
                sent += 1

    senders = [asyncio.create_task(big_sender()) for _ in range(big_clients)]
    await asyncio.sleep(2.0)  # let the large bodies arrive and start parsing
    stats = await _run_load(url, small, args.small_clients, args.small_requests, args.seconds * 3)
    done.set()
    await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), timeout=600)
    return stats, sent


async def _soak(url: str, bodies: list[dict], server: Server, args: argparse.Namespace) -> tuple:
    """The mixed load for ``soak_requests`` requests, RSS sampled every second."""
    curve: list[tuple[float, float]] = []
    started = time.monotonic()

    async def sample() -> None:
        while True:
            curve.append((time.monotonic() - started, server.rss_mib()))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    try:
        stats = await _run_load(
            url, bodies, args.load_clients, args.soak_requests, args.soak_seconds
        )
    finally:
        sampler.cancel()
    curve.append((time.monotonic() - started, server.rss_mib()))
    return stats, curve


def _print_curve(curve: list[tuple[float, float]], points: int = 12) -> None:
    step = max(1, len(curve) // points)
    samples = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
    print("RSS curve (s, MiB): " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in samples))


def _run_new_phases(
    server: Server, url: str, rows: list[dict], mixed: list[dict], args: argparse.Namespace
) -> int:
    """The ``large`` and ``soak`` phases; the number of failed requests."""
    failed = 0
    if "large" in args.phases:
        alone = asyncio.run(_run_load(url, rows, args.small_clients, args.small_requests, 60))
        big = _big_body(args.big_mb)
        beside, sent = asyncio.run(_large_beside_small(url, big, 2, rows, args))
        print(
            f"\nSmall requests ({args.small_clients} clients, batch 1): alone p50 "
            f"{alone['p50']:.1f} ms, p99 {alone['p99']:.1f} ms; beside two {len(big) / 2**20:.1f} "
            f"MiB bodies in flight ({sent} sent): p50 {beside['p50']:.1f} ms, p99 "
            f"{beside['p99']:.1f} ms ({beside['p99'] / alone['p99']:.1f}x); "
            f"{alone['failed'] + beside['failed']} failed.",
            flush=True,
        )
        failed += alone["failed"] + beside["failed"]
    if "soak" in args.phases:
        stats, curve = asyncio.run(_soak(url, mixed, server, args))
        print(
            f"\nSoak: {stats['requests']} mixed requests from {args.load_clients} clients in "
            f"{stats['seconds']:.0f} s, {stats['failed']} failed, {stats['rps']:.1f} req/s, "
            f"p50 {stats['p50']:.1f} ms, p99 {stats['p99']:.1f} ms.",
            flush=True,
        )
        _print_curve(curve)
        failed += stats["failed"]
    return failed


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0]).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", help="Base directory of models (default: build one).")
    parser.add_argument("--model", help="Model name under --model_dir.")
    parser.add_argument("--concurrency", default="1,8,32", help="Client counts to measure.")
    parser.add_argument("--requests", type=int, default=600, help="Requests per measurement.")
    parser.add_argument("--seconds", type=float, default=20, help="Time limit per measurement.")
    parser.add_argument("--warmup_seconds", type=float, default=4, help="Warm-up per measurement.")
    parser.add_argument("--load_requests", type=int, default=3000, help="Requests in the load.")
    parser.add_argument("--load_clients", type=int, default=32)
    parser.add_argument("--load_seconds", type=float, default=240, help="Time limit of the load.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--batch_timeout_ms", type=float, default=5)
    parser.add_argument("--startup_seconds", type=float, default=600)
    parser.add_argument(
        "--phases", default="batching,large,soak", help="Any of batching, large, soak."
    )
    parser.add_argument("--big_mb", type=float, default=31, help="Size of each large body.")
    parser.add_argument("--big_max_requests", type=int, default=20, help="Per large sender.")
    parser.add_argument("--small_clients", type=int, default=8)
    parser.add_argument("--small_requests", type=int, default=400)
    parser.add_argument("--soak_requests", type=int, default=20000)
    parser.add_argument("--soak_seconds", type=float, default=1200, help="Soak time limit.")
    args = parser.parse_args()
    counts = [int(c) for c in args.concurrency.split(",") if c.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        if args.model_dir:
            model_dir, model = Path(args.model_dir), args.model
            if not model:
                names = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("."))
                model = names[0]
        else:
            print("Exporting a MobileNetV2 (32x32x1 input, 10 classes) to serve...", flush=True)
            model_dir = tmp / "models"
            model = _build_model(model_dir)
        url_path = f"/v1/models/{model}:predict"

        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(64, 28, 28, 1), dtype=np.uint8)
        rows = [{"instances": images[i : i + 1].tolist()} for i in range(len(images))]
        mixed = []
        for i in range(len(images)):
            mixed.append(rows[i])
            mixed.append({"inputs": {"images": images[i : i + 1].tolist()}})
            png = base64.b64encode(_png(images[i])).decode("ascii")
            mixed.append({"signature_name": "serving_bytes", "instances": [{"b64": png}]})

        results: list[tuple[str, int, dict]] = []
        load: dict | None = None
        alive = True
        extra_failed = 0
        modes = (True, False) if "batching" in args.phases else (True,)
        for batching in modes:
            label = "on" if batching else "off"
            log = tmp / f"server-{label}.log"
            server = Server(model_dir, batching, args, log)
            try:
                server.wait_ready(model, args.startup_seconds)
                url = server.url + url_path
                if batching and {"large", "soak"} & set(args.phases.split(",")):
                    extra_failed += _run_new_phases(server, url, rows, mixed, args)
                if "batching" not in args.phases:
                    alive = alive and server.alive(model)
                    continue
                for clients in counts:
                    # Warm-up: traces and compiles the batch sizes this load produces.
                    asyncio.run(_run_load(url, rows, clients, 10**6, args.warmup_seconds))
                    stats = asyncio.run(_run_load(url, rows, clients, args.requests, args.seconds))
                    results.append((label, clients, stats))
                    print(
                        f"batching {label:>3}, {clients:>2} clients: {stats['rps']:7.1f} req/s, "
                        f"p50 {stats['p50']:6.1f} ms, p99 {stats['p99']:6.1f} ms, "
                        f"{stats['failed']} failed",
                        flush=True,
                    )
                if batching:
                    print(
                        f"Load: {args.load_requests} mixed requests from {args.load_clients} "
                        f"clients (at most {args.load_seconds:.0f} s)...",
                        flush=True,
                    )
                    load = asyncio.run(
                        _run_load(
                            url, mixed, args.load_clients, args.load_requests, args.load_seconds
                        )
                    )
                alive = alive and server.alive(model)
            finally:
                server.stop()

    print()
    print(f"Server-side batching: max batch {args.batch_size}, timeout {args.batch_timeout_ms} ms.")
    print("Batch-1 requests (28x28x1 uint8, row format), loopback, same machine as the clients.")
    print()
    print("| batching | clients | requests | failed | requests/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, clients, s in results:
        print(
            f"| {label} | {clients} | {s['requests']} | {s['failed']} | {s['rps']:.1f} | "
            f"{s['p50']:.1f} | {s['p99']:.1f} |"
        )
    failed = sum(s["failed"] for _, _, s in results) + extra_failed
    if load is not None:
        print()
        print(
            f"Load (batching on, {args.load_clients} clients, mixed row/columnar/b64): "
            f"{load['requests']} requests in {load['seconds']:.1f} s, {load['failed']} failed, "
            f"{load['rps']:.1f} req/s, p50 {load['p50']:.1f} ms, p99 {load['p99']:.1f} ms; "
            f"server alive afterwards: {'yes' if alive else 'NO'}."
        )
        failed += load["failed"]
        for failure in load["failures"]:
            print(f"  failure: {failure}")
    return 0 if failed == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
