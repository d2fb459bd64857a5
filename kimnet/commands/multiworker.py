"""``make train-multiworker WORKERS=2``: one training run over N worker processes here.

Starts N processes of ``kimnet train`` with ``config.runtime.strategy=multi_worker``,
each with a ``TF_CONFIG`` naming all N on loopback ports and its own task index, so the
multi-worker path (``tf.distribute.MultiWorkerMirroredStrategy``) can be tried on one
machine. Worker 0 is the chief: it writes the run directory and the SavedModel. Each
line a worker prints is prefixed with ``[worker i]``; Ctrl-C and SIGTERM are passed on.
The exit status is the first non-zero status of a worker, else 0.

    python -m kimnet.commands.multiworker --workers=2 -- --config=configs/train.py:quick
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """TensorFlow's ``TF_CONFIG`` for worker ``index`` of a loopback cluster."""
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _relay(index: int, stream) -> None:
    for line in stream:
        print(f"[worker {index}] {line}", end="", flush=True)


def launch(workers: int, train_args: Sequence[str]) -> int:
    ports = free_ports(workers)
    command = [
        sys.executable,
        "-m",
        "kimnet.commands.train",
        *train_args,
        "--config.runtime.strategy=multi_worker",
    ]
    processes = [
        subprocess.Popen(
            command,
            env={**os.environ, "TF_CONFIG": tf_config(ports, i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(workers)
    ]
    relays = [
        threading.Thread(target=_relay, args=(i, p.stdout), daemon=True)
        for i, p in enumerate(processes)
    ]
    for relay in relays:
        relay.start()

    def forward(number, frame):
        for process in processes:
            process.send_signal(number)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        statuses = [process.wait() for process in processes]
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    for relay in relays:
        relay.join(timeout=5)
    return next((status for status in statuses if status), 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kimnet train-multiworker", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("train_args", nargs="*", help="kimnet train's flags, after --")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        print(f"error: --workers must be between 1 and 64, got {args.workers}.", file=sys.stderr)
        return 2
    return launch(args.workers, args.train_args)


if __name__ == "__main__":
    sys.exit(main())
