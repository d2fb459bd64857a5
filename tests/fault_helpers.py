"""Helpers for fault tests: a tiny real filesystem that fills up, and a tidy subprocess env."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs mounted for the test (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("disk-full tests mount a 2 MiB tmpfs, which needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The environment for a ``python -m kimnet...`` child: this checkout, quiet TF."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


# TensorFlow's C++ start-up lines (quieting them is another part of issue 12).
_FRAMEWORK_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


def _kimnet_lines(stderr: str) -> list[str]:
    return [
        line for line in stderr.splitlines() if line.strip() and not _FRAMEWORK_LINE.match(line)
    ]


@pytest.fixture
def one_line():
    """``one_line(stderr)``: the single line kimnet printed; fails when there are more."""

    def check(stderr: str) -> str:
        lines = _kimnet_lines(stderr)
        assert len(lines) == 1, stderr
        return lines[0]

    return check
