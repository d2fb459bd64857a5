"""Starts N local workers of one command, each with its ``TF_CONFIG``, and supervises them.

    python -m kimnet.launch --workers=2 -- python pipelines/train.py \\
        --config.runtime.strategy=multi_worker
    make train-multiworker WORKERS=2 MODEL=mobilenetv2     # the same, through make

Worker 0 is the chief: its output is this command's output. The other workers write
to ``worker-<i>.log`` in a temporary folder, printed (its last lines) and kept when
that worker fails, deleted otherwise. Ctrl-C or SIGTERM is passed on to every worker
(each saves its state at the same step and stops; a second Ctrl-C stops at once).
When one worker exits with an error, the others would wait for it in their next
collective forever: they are stopped too. The exit status is that of the worker that
failed first, else the chief's.

Each worker gets a free loopback port. Several machines need a ``TF_CONFIG`` per
machine with reachable addresses instead: see docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kimnet.errors import InputError

MAX_WORKERS = 64
# How long the other workers get to exit after one failed, before they are killed.
GRACE_SECONDS = 10.0
LOG_LINES_SHOWN = 15


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket()
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def tf_configs(ports: list[int]) -> list[str]:
    """Each worker's ``TF_CONFIG``: one cluster of loopback workers, its own index."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in range(len(ports))
    ]


class Workers:
    """The worker processes: started, signalled and reaped together."""

    def __init__(self, command: list[str], count: int, log_dir: Path):
        self.log_dir = log_dir
        self.first_failed: int | None = None  # the worker whose failure stopped the rest
        self.processes: list[subprocess.Popen] = []
        self.logs = []  # the other workers' log files, closed once all have ended
        for index, config in enumerate(tf_configs(free_ports(count))):
            env = {**os.environ, "TF_CONFIG": config}
            out = None if index == 0 else open(self.log(index), "w")  # noqa: SIM115
            if out is not None:
                self.logs.append(out)
            # Own sessions: a terminal's Ctrl-C reaches the launcher only, which passes
            # it on once (a second copy would stop the workers at once).
            self.processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                    start_new_session=True,
                )
            )

    def log(self, index: int) -> Path:
        return self.log_dir / f"worker-{index}.log"

    def send(self, signal_number: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal_number)

    def wait(self) -> list[int]:
        """Exit statuses once all have ended; stops the rest when one fails."""
        deadline = None
        while None in (statuses := [p.poll() for p in self.processes]):
            failed = [i for i, status in enumerate(statuses) if status not in (None, 0)]
            if failed and deadline is None:
                self.first_failed = failed[0]
                self.send(signal.SIGTERM)
                deadline = time.monotonic() + GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                self.send(signal.SIGKILL)
            time.sleep(0.2)
        for log in self.logs:
            log.close()
        return [p.returncode for p in self.processes]


def exit_status(statuses: list[int], first_failed: int | None) -> int:
    """The status of the worker that failed first (the others were stopped because of it),
    else the chief's, else any failing one's; a signal as 128 + its number."""
    codes = [128 - code if code < 0 else code for code in statuses]
    if first_failed is not None:
        return codes[first_failed]
    return codes[0] or next((code for code in codes if code), 0)


def report_failures(workers: Workers, statuses: list[int]) -> None:
    for index, status in enumerate(statuses[1:], start=1):
        if status == 0:
            continue
        lines = workers.log(index).read_text(errors="replace").splitlines()[-LOG_LINES_SHOWN:]
        print(
            f"worker {index} exited with status {status}; its log: {workers.log(index)}",
            file=sys.stderr,
        )
        for line in lines:
            print(f"  [worker {index}] {line}", file=sys.stderr)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kimnet.launch",
        description="Run COMMAND as N local tf.distribute workers (TF_CONFIG set for each).",
    )
    parser.add_argument("--workers", type=int, default=2, help="number of workers (2)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not 1 <= args.workers <= MAX_WORKERS:
        raise InputError(f"--workers must be between 1 and {MAX_WORKERS}, got {args.workers}.")
    if not args.command:
        raise InputError("no command to run: python -m kimnet.launch --workers=N -- COMMAND ...")
    if shutil.which(args.command[0]) is None:
        raise InputError(f"command not found: {args.command[0]}")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="kimnet-launch-"))
    workers = Workers(args.command, args.workers, log_dir)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda received, frame: workers.send(received))
    statuses = workers.wait()
    report_failures(workers, statuses)
    if all(status == 0 for status in statuses[1:]):
        shutil.rmtree(log_dir, ignore_errors=True)
    return exit_status(statuses, workers.first_failed)


if __name__ == "__main__":
    sys.exit(main())
