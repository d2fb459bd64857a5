"""make bench-jit (benchmarks/bench_jit.py): the table, bad input, one real family."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_jit.py"


def _run(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--models=resnet18,nope"], "error: Unknown --models entry 'nope'"),
        (["--rounds=0"], "error: --rounds=0: must be at least 1."),
        (["--steps=1"], "error: --steps=1: must be at least 2."),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, expected):
    done = _run(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow  # two compilations (one of them XLA) and a few steps: about a minute
def test_one_family_with_and_without_xla(tmp_path):
    done = _run(
        "--models=mobilenetv3_small", "--rounds=1", "--steps=2", f"--out={tmp_path}", timeout=900
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "jit.json").read_text())
    (row,) = report["models"]
    assert row["model"] == "mobilenetv3_small" and "error" not in row
    assert row["off"]["median"] > 0 and row["on"]["median"] > 0
    assert row["ratio"]["median"] == pytest.approx(row["on"]["median"] / row["off"]["median"])
    assert "| mobilenetv3_small |" in (tmp_path / "jit.md").read_text()
