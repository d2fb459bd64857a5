"""What a user sees: a live progress bar with an ETA on a terminal (make train under a
pseudo-terminal), and kimnet's own lines only, without TensorFlow's start-up log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# TensorFlow's C++ log lines: "I0000 00:00:...", "E1130 12:00:...", and absl's notice.
FRAMEWORK_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:|absl::InitializeLog")


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow  # a real (quick) training run
def test_make_train_on_a_terminal_shows_a_progress_bar_with_an_eta(tmp_path):
    overrides = " ".join(
        [
            "--config.model.args=alpha=0.35",
            "--config.schedule.epochs=1",
            "--config.evaluate.max_batches=2",
            "--config.evaluate.bn_recalibration_batches=2",
            f"--config.runtime.workdir={tmp_path}/runs",
            f"--config.export.dir={tmp_path}/saved",
        ]
    )
    command = [
        "make",
        "--no-print-directory",
        "train",
        "QUICK=1",
        f"PY={sys.executable}",
        f"ARGS={overrides}",
    ]
    leader, follower = os.openpty()
    process = subprocess.Popen(
        command, cwd=ROOT, stdin=follower, stdout=follower, stderr=follower, close_fds=True
    )
    os.close(follower)
    screen = _read_all(leader).decode(errors="replace")
    os.close(leader)
    assert process.wait(timeout=60) == 0, screen[-3000:]
    # Keras' bar: "7/20 ━━━━━━━━━━━━━━━━━━━━ 9s 700ms/step - loss: ..." while the epoch runs.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    bar = re.search(r"\b(\d+)/20 \S+ \d+(:\d\d)*s \d+m?s/step", plain)
    assert bar and int(bar.group(1)) < 20, screen[-3000:]
    assert "top1:" in plain and "Done: mobilenetv2 on fashion_mnist" in plain
    assert not [line for line in plain.splitlines() if FRAMEWORK_LOG.search(line)]
