"""make profile (benchmarks/profile_step.py): a real profile of kimnet's step, by op type."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "profile_step.py"
sys.path.insert(0, str(BENCHMARKS))

import profile_step  # noqa: E402


def _run(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model=resnet5"], "error: Unknown --model 'resnet5'. Did you mean 'resnet50'?"),
        (["--steps=4", "--profiled=3"], "error: --steps=4: must be at least --profiled + 2 (5)"),
        (["--batch=0"], "error: --batch=0: must be at least 1."),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, expected):
    done = _run(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr


def test_table_keeps_the_top_op_types_and_sums_the_rest():
    times = collections.Counter({"Conv2D": 60.0, "Relu6": 20.0, "Mul": 15.0, "Sub": 5.0})
    report = profile_step.table(times, step_ms=[40.0, 50.0], top=2)
    assert [row["op"] for row in report["ops"]] == ["Conv2D", "Relu6", "2 other op types"]
    assert [row["ms_per_step"] for row in report["ops"]] == [30.0, 10.0, 10.0]
    assert [row["share"] for row in report["ops"]] == [0.6, 0.2, 0.2]
    assert report["op_ms_per_step"] == 50.0 and report["profiled_steps"] == 2


@pytest.mark.slow  # a real training run of a few steps under the profiler: about a minute
def test_profiles_kimnets_real_step(tmp_path):
    done = _run("--steps=5", "--profiled=2", "--batch=32", f"--out={tmp_path}", timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "profile.json").read_text())
    assert report["profiled_steps"] == 2 and report["step_wall_ms"] > 0
    assert 0 <= report["input_wait_ms_per_step"] < report["step_wall_ms"]
    ops = {row["op"]: row["share"] for row in report["ops"]}
    # The model's convolutions are there, and batch norm runs on the fused kernel.
    assert any("Conv2D" in op for op in ops) and any("FusedBatchNorm" in op for op in ops)
    assert sum(ops.values()) == pytest.approx(1.0)
    assert "| op type | ms per step |" in (tmp_path / "profile.md").read_text()
